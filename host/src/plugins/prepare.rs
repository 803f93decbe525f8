//! Reading, checking, compiling and trying one version of a plugin: CPU
//! and file work, run on a blocking thread, off the delivery path.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::baseline::Compiler;
use super::files::read_manifest_text;
use super::instance::CompiledGuest;
use super::manifest::Manifest;
use super::outbound::Outbound;
use super::runtime::{PluginLink, WasmRuntime};
use super::stats::PluginStats;
use crate::broker::Broker;

/// A version compiled, linked and tried, ready to go live.
pub(super) struct Prepared {
    pub(super) guest: CompiledGuest,
    pub(super) link: Arc<PluginLink>,
    pub(super) module_hash: String,
    pub(super) load: LoadReport,
    pub(super) files: VersionFiles,
}

/// A version's files as they were read: what GET /plugins/NAME/module and
/// /manifest give back (to roll a deploy back to), whatever is on disk
/// since. Kept in memory while the version is live: a component's module
/// is megabytes, small beside its compiled code.
#[derive(Debug, Clone)]
pub struct VersionFiles {
    pub module: Arc<[u8]>,
    pub manifest: Arc<str>,
}

/// How a version was loaded, for GET /plugins.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct LoadReport {
    /// Reading, compiling (or loading from the cache), linking and trying
    /// one instance, in milliseconds.
    pub load_ms: u64,
    /// Whether the compiled artifact came from the cache under --data-path.
    pub from_cache: bool,
    /// Which compiler made the live code: `baseline` until the optimized
    /// build of a large component takes over (baseline.rs).
    pub compiler: Compiler,
}

pub(super) enum PrepareError {
    /// Module and manifest are what is already live.
    Unchanged,
    /// The new files are unusable (with the new module's hash if it was read).
    Failed(Option<String>, String),
}

/// What is live now: a version with the same module and manifest is
/// not loaded again.
pub(super) struct LiveVersion {
    pub(super) module_hash: String,
    pub(super) manifest: Manifest,
}

/// Reads, checks, compiles and tries a version; CPU work, run off the async threads.
pub(super) fn prepare(
    runtime: &WasmRuntime,
    broker: Arc<Broker>,
    name: &str,
    module_file: &Path,
    manifest_file: &Path,
    stats: Arc<PluginStats>,
    live: Option<LiveVersion>,
) -> Result<Prepared, PrepareError> {
    let started = Instant::now();
    let fail = |hash: Option<&String>, why: String| PrepareError::Failed(hash.cloned(), why);
    let bytes = std::fs::read(module_file)
        .map_err(|e| fail(None, format!("{}: cannot read: {e}", module_file.display())))?;
    let module_hash = module_hash(&bytes);
    let manifest_text =
        read_manifest_text(manifest_file).map_err(|e| fail(Some(&module_hash), e))?;
    let manifest = Manifest::parse(name, manifest_file, &manifest_text)
        .map_err(|e| fail(Some(&module_hash), e))?;
    // The same version again, unless its optimized build is ready (one is
    // offered only for a version live with baseline code).
    if live.as_ref().is_some_and(|l| {
        l.module_hash == module_hash
            && l.manifest == manifest
            && !runtime.has_optimized(name, &module_hash)
    }) {
        return Err(PrepareError::Unchanged);
    }
    let compiled = match runtime.take_optimized(name, &module_hash) {
        Some(optimized) => optimized,
        None => runtime.compile(&bytes, &module_hash).map_err(|e| {
            fail(
                Some(&module_hash),
                format!("{}: {e:#}", module_file.display()),
            )
        })?,
    };
    let outbound = outbound_for(name, &manifest, manifest_file, &stats).map_err(|e| {
        fail(
            Some(&module_hash),
            format!("{}: {e:#}", manifest_file.display()),
        )
    })?;
    let state = manifest
        .state
        .map(|limits| runtime.state.for_plugin(name, limits))
        .transpose()
        .map_err(|e| {
            fail(
                Some(&module_hash),
                format!("{}: state = true: {e:#}", manifest_file.display()),
            )
        })?;
    let link = Arc::new(PluginLink {
        name: name.into(),
        manifest,
        broker,
        stats,
        outbound,
        clock: runtime.clock.clone(),
        recorded: None,
        state,
    });
    // One trial instance proves the ABI version and init before going live.
    runtime
        .executor
        .block_on(compiled.guest.instantiate(link.clone()))
        .map_err(|e| {
            fail(
                Some(&module_hash),
                format!("{}: {e}", module_file.display()),
            )
        })?;
    let load = LoadReport {
        load_ms: millis(started.elapsed()),
        from_cache: compiled.from_cache,
        compiler: compiled.compiler,
    };
    tracing::info!(plugin = name, kind = ?compiled.guest.kind(), load_ms = load.load_ms, from_cache = load.from_cache, compiler = ?load.compiler, "PLUGIN: version ready");
    Ok(Prepared {
        guest: compiled.guest,
        link,
        module_hash,
        load,
        files: VersionFiles {
            module: bytes.into(),
            manifest: manifest_text.into(),
        },
    })
}

/// The plugin's outbound HTTP as its manifest grants it, with
/// `tls_root_ca_file` read from beside the manifest.
pub(super) fn outbound_for(
    name: &str,
    manifest: &Manifest,
    manifest_file: &Path,
    stats: &PluginStats,
) -> anyhow::Result<Arc<Outbound>> {
    let roots = manifest
        .tls_root_ca_file
        .as_ref()
        .map(|file| manifest_file.parent().unwrap_or(Path::new(".")).join(file));
    Ok(Arc::new(Outbound::new(
        name,
        manifest.allowed_outbound_hosts.clone(),
        manifest.http,
        roots.as_deref(),
        stats.outbound.clone(),
    )?))
}

fn millis(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}

/// A module's hash as /plugins reports it: hex SHA-256 of its bytes
/// (what `wasq plugin deploy` compares a node's live version with).
pub fn module_hash(module: &[u8]) -> String {
    Sha256::digest(module)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
