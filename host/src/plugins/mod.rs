//! WebAssembly plugins: consumers that live inside the broker.
//!
//! - [`manifest`]: the manifest, `plugins/NAME.toml`
//! - [`abi`]: the host side of guest-sdk/ABI.md
//! - [`runtime`]: engine, linkers, epoch deadlines, compiled-artifact cache
//! - [`function_cache`]: compiled functions kept across versions (a new
//!   JavaScript or Python version compiles only what changed)
//! - [`executor`]: the threads every guest call runs on, apart from the broker's
//! - [`core_module`]: core modules speaking ABI v1
//! - [`component`]: components of the WIT world guest-sdk/wit (JS, Python, …)
//! - [`imports`]: what `log`, `publish` and `config_get` mean, and how a
//!   refused state operation is counted, for both kinds
//! - [`core_state`]: ABI v1's state imports
//! - [`outbound`]: outbound HTTP behind the manifest's allowlist
//! - [`state`]: per-plugin key-value state committed with the FIN
//! - [`instance`]: one guest instance of either kind, reused per worker
//! - [`offline`]: one plugin run without a broker (`wasq plugin test`)
//! - [`consumer`]: the dispatcher and workers of a running plugin
//! - [`backoff`]: server-side consumer backoff
//! - [`watcher`]: hot reload when files in the plugins directory change
//!
//! - [`files`]: which files make a plugin, and its name rules
//! - [`prepare`]: reading, checking, compiling and trying a version
//! - [`reload`]: the load/reload/remove state machine and its history
//! - [`install`]: writing and removing a plugin's files for the plugin API
//! - [`status`]: what GET /plugins reports
//!
//! Here: the host, which owns every plugin by name. Loading, reloading and
//! removing a plugin all go through [`PluginHost::sync_plugin`], which
//! brings the running plugin in line with its files: a new version is
//! compiled and tried off the delivery path, then started beside the old
//! one, which stops taking messages and finishes those it holds. A version
//! that fails never replaces a working one.

pub mod abi;
pub mod backoff;
pub mod baseline;
pub mod component;
pub mod component_batch;
pub mod consumer;
pub mod core_module;
mod core_state;
pub mod epoch;
pub mod executor;
pub mod files;
mod function_cache;
pub mod imports;
pub mod install;
pub mod instance;
mod log_stream;
pub mod manifest;
pub mod offline;
pub mod outbound;
mod prepare;
pub mod reload;
pub mod runtime;
pub mod state;
pub mod stats;
pub mod status;
pub mod watcher;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::broker::Broker;
use consumer::{PluginRun, StopMode};
use manifest::Manifest;
use runtime::WasmRuntime;
use stats::PluginStats;

use files::PluginFiles;
pub use files::{MODULE_EXTENSIONS, is_plugin_name};
pub use prepare::module_hash;
pub use reload::{ReloadCounts, ReloadRecord, ReloadResult, SyncResult, Trigger};
pub use status::{PluginState, PluginStatus};

/// Reload records kept per plugin for GET /plugins.
const HISTORY_LEN: usize = 20;

pub struct PluginHost {
    /// This host, for the tasks it starts that outlive a call (a version's
    /// optimized compile, baseline.rs).
    me: std::sync::Weak<PluginHost>,
    broker: Arc<Broker>,
    runtime: Arc<WasmRuntime>,
    dir: PathBuf,
    plugins: Mutex<BTreeMap<String, Plugin>>,
    /// One load/reload/remove at a time, so versions never interleave.
    sync_lock: tokio::sync::Mutex<()>,
    /// Plugins found at start-up and not loaded yet.
    loading: Mutex<BTreeSet<String>>,
}

/// What the host knows of one plugin name.
struct Plugin {
    module_file: Option<PathBuf>,
    manifest_file: PathBuf,
    stats: Arc<PluginStats>,
    live: Option<Live>,
    removed: bool,
    /// Why the last load or reload failed (cleared by a successful one).
    error: Option<String>,
    history: VecDeque<ReloadRecord>,
    reloads: ReloadCounts,
}

/// The version that is consuming.
struct Live {
    run: Arc<PluginRun>,
    module_hash: String,
    manifest: Manifest,
    kind: instance::GuestKind,
    load: prepare::LoadReport,
    files: prepare::VersionFiles,
}

impl PluginHost {
    pub fn new(
        broker: Arc<Broker>,
        dir: PathBuf,
        cache_dir: Option<PathBuf>,
        state_dir: Option<PathBuf>,
    ) -> anyhow::Result<Arc<PluginHost>> {
        // State commits are as durable as publishes: fsynced each time in
        // durable mode (--sync-every=1), else every --sync-timeout.
        let options = &broker.options;
        let state =
            state::SharedStore::new(state_dir, options.sync_every == 1, options.sync_timeout);
        let runtime = Arc::new(WasmRuntime::new(cache_dir, state)?);
        Ok(Arc::new_cyclic(|me| PluginHost {
            me: me.clone(),
            runtime,
            broker,
            dir,
            plugins: Mutex::new(BTreeMap::new()),
            sync_lock: tokio::sync::Mutex::new(()),
            loading: Mutex::new(BTreeSet::new()),
        }))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads every plugin in the directory and returns when each is loaded
    /// (or failed to load). Embedders and the fuzzer; wasqd uses
    /// [`PluginHost::start_loading`].
    pub async fn load_all(self: &Arc<Self>) {
        let names = self.claim(self.find_plugins().await);
        self.load(names).await;
    }

    /// Loads every plugin in the directory, in the background: compiling a
    /// large component takes seconds, and the broker serves meanwhile. Each
    /// plugin's topic and channel are created first, before this returns,
    /// so every message published from then on waits for its plugin. Until
    /// a plugin is loaded (or fails to), GET /plugins reports it `loading`.
    pub async fn start_loading(self: &Arc<Self>) {
        let names = self.claim(self.find_plugins().await);
        let host = self.clone();
        tokio::spawn(async move { host.load(names).await });
    }

    /// The plugins in the directory, with their manifests when readable.
    async fn find_plugins(&self) -> Vec<(String, Option<Manifest>)> {
        let dir = self.dir.clone();
        let found = tokio::task::spawn_blocking(move || {
            let names = files::plugin_names(&dir)?;
            Ok::<_, std::io::Error>(
                names
                    .into_iter()
                    .map(|name| {
                        let file = PluginFiles::find(&dir, &name).manifest;
                        let manifest = files::read_manifest(&file, &name).ok();
                        (name, manifest)
                    })
                    .collect(),
            )
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        found.unwrap_or_else(|e| {
            tracing::info!(dir = %self.dir.display(), "PLUGINS: no plugins loaded ({e})");
            Vec::new()
        })
    }

    /// Creates each plugin's topic and channel and marks it `loading`.
    fn claim(&self, found: Vec<(String, Option<Manifest>)>) -> Vec<String> {
        let mut names = Vec::new();
        for (name, manifest) in found {
            if let Some(manifest) = manifest {
                let topic = self.broker.topic(&manifest.topic);
                let _ = self.broker.channel(&topic, &manifest.channel);
            }
            self.loading.lock().insert(name.clone());
            names.push(name);
        }
        names
    }

    async fn load(&self, names: Vec<String>) {
        for name in names {
            self.sync_plugin(&name, Trigger::Start).await;
            self.loading.lock().remove(&name);
        }
        tracing::info!("PLUGINS: every plugin loaded");
    }

    /// Stops every plugin, returning what they hold to their channels.
    pub async fn stop_all(&self) {
        let _one_at_a_time = self.sync_lock.lock().await;
        let runs: Vec<Arc<PluginRun>> = self
            .plugins
            .lock()
            .values()
            .filter_map(|p| p.live.as_ref().map(|l| l.run.clone()))
            .collect();
        for run in runs {
            run.stop(StopMode::Requeue).await;
        }
    }

    pub fn status(&self) -> Vec<PluginStatus> {
        let loading = self.loading.lock().clone();
        let plugins = self.plugins.lock();
        let mut all: Vec<PluginStatus> = plugins.iter().map(|(name, p)| p.status(name)).collect();
        for name in loading.iter().filter(|name| !plugins.contains_key(*name)) {
            all.push(PluginStatus::loading(name, &self.dir));
        }
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// The plugin state store, shared by every plugin granted state.
    pub fn state_store(&self) -> &state::SharedStore {
        &self.runtime.state
    }

    /// Whether a live version of plugin `name` uses its state.
    pub fn uses_state(&self, name: &str) -> bool {
        self.plugins
            .lock()
            .get(name)
            .and_then(|p| p.live.as_ref())
            .is_some_and(|live| live.run.link.state.is_some())
    }

    pub fn status_of(&self, name: &str) -> Option<PluginStatus> {
        if let Some(plugin) = self.plugins.lock().get(name) {
            return Some(plugin.status(name));
        }
        self.loading
            .lock()
            .contains(name)
            .then(|| PluginStatus::loading(name, &self.dir))
    }
}

impl Plugin {
    fn new(manifest_file: &Path, stats: Arc<PluginStats>) -> Plugin {
        Plugin {
            module_file: None,
            manifest_file: manifest_file.to_path_buf(),
            stats,
            live: None,
            removed: false,
            error: None,
            history: VecDeque::new(),
            reloads: ReloadCounts::default(),
        }
    }

    fn record(
        &mut self,
        cause: &reload::Cause,
        old_hash: Option<String>,
        new_hash: Option<String>,
        result: ReloadResult,
    ) {
        self.reloads.add(&result);
        if self.history.len() == HISTORY_LEN {
            self.history.pop_front();
        }
        let time_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        self.history.push_back(ReloadRecord {
            time_ms,
            trigger: cause.trigger,
            by: cause.by.clone(),
            old_hash,
            new_hash,
            result,
        });
    }
}
