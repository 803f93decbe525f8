//! WebAssembly plugins: consumers that live inside the broker.
//!
//! - [`manifest`]: the manifest, `plugins/NAME.toml`
//! - [`abi`]: the host side of guest-sdk/ABI.md
//! - [`runtime`]: engine, linker, imports, epoch deadlines
//! - [`instance`]: one guest instance, reused per worker
//! - [`consumer`]: the dispatcher and workers of a running plugin
//! - [`backoff`]: server-side consumer backoff
//!
//! A bad module or manifest is reported (log and GET /plugins) and skipped;
//! the broker keeps running.

pub mod abi;
pub mod backoff;
pub mod consumer;
pub mod instance;
mod log_stream;
pub mod manifest;
pub mod runtime;
pub mod stats;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::broker::Broker;
use consumer::PluginRun;
use instance::GuestInstance;
use manifest::Manifest;
use runtime::{PluginLink, WasmRuntime};
use stats::{CountersView, PluginStats};

/// Module file extensions, in order of preference.
const MODULE_EXTENSIONS: [&str; 2] = ["wasm", "wat"];

pub struct PluginHost {
    broker: Arc<Broker>,
    runtime: WasmRuntime,
    dir: PathBuf,
    plugins: Mutex<BTreeMap<String, Plugin>>,
}

/// What the host knows of one plugin name, loaded or not.
struct Plugin {
    module_file: Option<PathBuf>,
    manifest_file: PathBuf,
    module_hash: Option<String>,
    manifest: Option<Manifest>,
    stats: Arc<PluginStats>,
    run: Option<Arc<PluginRun>>,
    error: Option<String>,
}

impl PluginHost {
    pub fn new(broker: Arc<Broker>, dir: PathBuf) -> anyhow::Result<Arc<PluginHost>> {
        Ok(Arc::new(PluginHost {
            broker,
            runtime: WasmRuntime::new()?,
            dir,
            plugins: Mutex::new(BTreeMap::new()),
        }))
    }

    /// Loads every plugin in the directory. Compiling is CPU work, so call
    /// this off the async threads (`spawn_blocking`).
    pub fn load_all(&self) {
        let names = match plugin_names(&self.dir) {
            Ok(names) => names,
            Err(e) => {
                tracing::info!(dir = %self.dir.display(), "PLUGINS: no plugins loaded ({e})");
                return;
            }
        };
        for name in names {
            self.load(&name);
        }
    }

    /// Loads one plugin by name; any error is logged and kept for /plugins.
    pub fn load(&self, name: &str) {
        let manifest_file = self.dir.join(format!("{name}.toml"));
        let module_file = MODULE_EXTENSIONS
            .iter()
            .map(|ext| self.dir.join(format!("{name}.{ext}")))
            .find(|p| p.exists());
        let stats = Arc::new(PluginStats::default());
        let mut plugin = Plugin {
            module_file: module_file.clone(),
            manifest_file: manifest_file.clone(),
            module_hash: None,
            manifest: None,
            stats: stats.clone(),
            run: None,
            error: None,
        };
        let result = (|| -> Result<Arc<PluginRun>, String> {
            let module_file = module_file.ok_or_else(|| {
                format!(
                    "{}: no module beside it ({name}.wasm or {name}.wat)",
                    manifest_file.display()
                )
            })?;
            let text = std::fs::read_to_string(&manifest_file).map_err(|e| {
                format!("{}: cannot read the manifest: {e}", manifest_file.display())
            })?;
            let manifest = Manifest::parse(name, &manifest_file, &text)?;
            plugin.manifest = Some(manifest.clone());
            let bytes = std::fs::read(&module_file)
                .map_err(|e| format!("{}: cannot read: {e}", module_file.display()))?;
            plugin.module_hash = Some(hex(&Sha256::digest(&bytes)));
            let pre = self
                .runtime
                .compile(&bytes)
                .map_err(|e| format!("{}: {e:#}", module_file.display()))?;
            let link = Arc::new(PluginLink {
                name: name.into(),
                manifest,
                broker: self.broker.clone(),
                stats,
            });
            // One trial instance proves the ABI version and init before subscribing.
            GuestInstance::new(&pre, link.clone())
                .map_err(|e| format!("{}: {e}", module_file.display()))?;
            PluginRun::start(link, pre).map_err(|e| format!("{}: {e:#}", module_file.display()))
        })();
        match result {
            Ok(run) => plugin.run = Some(run),
            Err(error) => {
                tracing::error!(plugin = name, "PLUGIN: not loaded: {error}");
                plugin.error = Some(error);
            }
        }
        self.plugins.lock().insert(name.to_string(), plugin);
    }

    /// Stops every plugin, returning what they hold to their channels.
    pub async fn stop_all(&self) {
        let runs: Vec<Arc<PluginRun>> = self
            .plugins
            .lock()
            .values()
            .filter_map(|p| p.run.clone())
            .collect();
        for run in runs {
            run.stop().await;
        }
    }

    pub fn status(&self) -> Vec<PluginStatus> {
        let plugins = self.plugins.lock();
        plugins
            .iter()
            .map(|(name, p)| {
                let run = p.run.as_ref();
                PluginStatus {
                    name: name.clone(),
                    file: p.module_file.as_ref().map(|f| f.display().to_string()),
                    manifest_file: p.manifest_file.display().to_string(),
                    module_hash: p.module_hash.clone(),
                    topic: p.manifest.as_ref().map(|m| m.topic.clone()),
                    channel: p.manifest.as_ref().map(|m| m.channel.clone()),
                    state: if run.is_some() { "running" } else { "failed" },
                    last_error: p.error.clone().or_else(|| run.and_then(|r| r.last_error())),
                    instances: run.map_or(0, |r| r.live_instances()),
                    concurrency: p.manifest.as_ref().map_or(0, |m| m.concurrency),
                    max_in_flight: p.manifest.as_ref().map_or(0, |m| m.max_in_flight),
                    backoff_level: run.map_or(0, |r| r.backoff_level()),
                    counters: p.stats.snapshot(),
                }
            })
            .collect()
    }
}

/// One plugin in GET /plugins and the /stats `plugins` section.
#[derive(Debug, Clone, Serialize)]
pub struct PluginStatus {
    pub name: String,
    pub file: Option<String>,
    pub manifest_file: String,
    pub module_hash: Option<String>,
    pub topic: Option<String>,
    pub channel: Option<String>,
    pub state: &'static str,
    pub last_error: Option<String>,
    pub instances: usize,
    pub concurrency: usize,
    pub max_in_flight: i64,
    pub backoff_level: u32,
    pub counters: CountersView,
}

/// Plugin names in `dir`: every stem of a manifest or a module file.
fn plugin_names(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if (ext == "toml" || MODULE_EXTENSIONS.contains(&ext))
            && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
        {
            names.insert(stem.to_string());
        }
    }
    Ok(names.into_iter().collect())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
