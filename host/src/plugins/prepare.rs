//! Reading, checking, compiling and trying one version of a plugin: CPU
//! and file work, run on a blocking thread, off the delivery path.

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::InstancePre;

use super::instance::GuestInstance;
use super::manifest::Manifest;
use super::runtime::{GuestState, PluginLink, WasmRuntime};
use super::stats::PluginStats;
use crate::broker::Broker;

/// A version compiled, linked and tried, ready to go live.
pub(super) struct Prepared {
    pub(super) pre: InstancePre<GuestState>,
    pub(super) link: Arc<PluginLink>,
    pub(super) module_hash: String,
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
    let fail = |hash: Option<&String>, why: String| PrepareError::Failed(hash.cloned(), why);
    let bytes = std::fs::read(module_file)
        .map_err(|e| fail(None, format!("{}: cannot read: {e}", module_file.display())))?;
    let module_hash = hex(&Sha256::digest(&bytes));
    let text = std::fs::read_to_string(manifest_file).map_err(|e| {
        fail(
            Some(&module_hash),
            format!("{}: cannot read the manifest: {e}", manifest_file.display()),
        )
    })?;
    let manifest =
        Manifest::parse(name, manifest_file, &text).map_err(|e| fail(Some(&module_hash), e))?;
    if live
        .as_ref()
        .is_some_and(|l| l.module_hash == module_hash && l.manifest == manifest)
    {
        return Err(PrepareError::Unchanged);
    }
    let pre = runtime.compile(&bytes, &module_hash).map_err(|e| {
        fail(
            Some(&module_hash),
            format!("{}: {e:#}", module_file.display()),
        )
    })?;
    let link = Arc::new(PluginLink {
        name: name.into(),
        manifest,
        broker,
        stats,
    });
    // One trial instance proves the ABI version and init before going live.
    GuestInstance::new(&pre, link.clone()).map_err(|e| {
        fail(
            Some(&module_hash),
            format!("{}: {e}", module_file.display()),
        )
    })?;
    Ok(Prepared {
        pre,
        link,
        module_hash,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
