//! WebAssembly plugins: consumers that live inside the broker.
//!
//! - [`manifest`]: the manifest, `plugins/NAME.toml`
//! - [`abi`]: the host side of guest-sdk/ABI.md
//! - [`runtime`]: engine, linker, imports, epoch deadlines, compiled-module cache
//! - [`instance`]: one guest instance, reused per worker
//! - [`consumer`]: the dispatcher and workers of a running plugin
//! - [`backoff`]: server-side consumer backoff
//! - [`watcher`]: hot reload when files in the plugins directory change
//!
//! Loading, reloading and removing a plugin all go through
//! [`PluginHost::sync_plugin`], which brings the running plugin in line with
//! its files: a new version is compiled and tried off the delivery path,
//! then started beside the old one, which stops taking messages and finishes
//! those it holds. A version that fails never replaces a working one.

pub mod abi;
pub mod backoff;
pub mod consumer;
pub mod instance;
mod log_stream;
pub mod manifest;
pub mod runtime;
pub mod stats;
pub mod watcher;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmtime::InstancePre;

use crate::broker::Broker;
use consumer::{PluginRun, StopMode};
use instance::GuestInstance;
use manifest::Manifest;
use runtime::{GuestState, PluginLink, WasmRuntime};
use stats::{CountersView, PluginStats};

/// Module file extensions, in order of preference.
pub const MODULE_EXTENSIONS: [&str; 2] = ["wasm", "wat"];

/// Reload records kept per plugin for GET /plugins.
const HISTORY_LEN: usize = 20;

pub struct PluginHost {
    broker: Arc<Broker>,
    runtime: Arc<WasmRuntime>,
    dir: PathBuf,
    plugins: Mutex<BTreeMap<String, Plugin>>,
    /// One load/reload/remove at a time, so versions never interleave.
    sync_lock: tokio::sync::Mutex<()>,
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
}

/// The version that is consuming.
struct Live {
    run: Arc<PluginRun>,
    module_hash: String,
    manifest: Manifest,
}

/// A version compiled, linked and tried, ready to go live.
struct Prepared {
    pre: InstancePre<GuestState>,
    link: Arc<PluginLink>,
    module_hash: String,
}

/// What made the host look at a plugin's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// Start-up.
    Start,
    /// The watcher saw the files change.
    Watch,
    /// `POST /plugins/NAME/reload`.
    Http,
}

/// How a load or reload ended, as the history reports it: `loaded`,
/// `reloaded`, `removed`, or `failed: <reason>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadResult {
    Loaded,
    Reloaded,
    Removed,
    Failed(String),
}

impl Serialize for ReloadResult {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ReloadResult::Loaded => serializer.serialize_str("loaded"),
            ReloadResult::Reloaded => serializer.serialize_str("reloaded"),
            ReloadResult::Removed => serializer.serialize_str("removed"),
            ReloadResult::Failed(why) => serializer.collect_str(&format_args!("failed: {why}")),
        }
    }
}

/// One entry of a plugin's reload history.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadRecord {
    /// Unix milliseconds.
    pub time_ms: i64,
    pub trigger: Trigger,
    pub old_hash: Option<String>,
    pub new_hash: Option<String>,
    pub result: ReloadResult,
}

impl std::fmt::Display for PluginState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so the text /stats can align it in a column.
        f.pad(match self {
            PluginState::Running => "running",
            PluginState::Failed => "failed",
            PluginState::Removed => "removed",
        })
    }
}

/// A plugin's state in GET /plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginState {
    /// A version is live and consuming.
    Running,
    /// No version is live: the files are bad.
    Failed,
    /// The files were removed; the plugin stopped.
    Removed,
}

/// What [`PluginHost::sync_plugin`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncResult {
    Loaded,
    Reloaded,
    Unchanged,
    Removed,
    /// Nothing by that name, and no files for it.
    Unknown,
    /// The files are bad; the previous version (if any) stays live.
    Failed(String),
}

impl PluginHost {
    pub fn new(
        broker: Arc<Broker>,
        dir: PathBuf,
        cache_dir: Option<PathBuf>,
    ) -> anyhow::Result<Arc<PluginHost>> {
        Ok(Arc::new(PluginHost {
            broker,
            runtime: Arc::new(WasmRuntime::new(cache_dir)?),
            dir,
            plugins: Mutex::new(BTreeMap::new()),
            sync_lock: tokio::sync::Mutex::new(()),
        }))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads every plugin in the directory.
    pub async fn load_all(&self) {
        let names = match plugin_names(&self.dir) {
            Ok(names) => names,
            Err(e) => {
                tracing::info!(dir = %self.dir.display(), "PLUGINS: no plugins loaded ({e})");
                return;
            }
        };
        for name in names {
            self.sync_plugin(&name, Trigger::Start).await;
        }
    }

    /// Brings plugin `name` in line with its files: load, reload, remove, or
    /// nothing if they did not change. Errors are logged and kept for /plugins.
    pub async fn sync_plugin(&self, name: &str, trigger: Trigger) -> SyncResult {
        let _one_at_a_time = self.sync_lock.lock().await;
        let manifest_file = self.dir.join(format!("{name}.toml"));
        let module_file = MODULE_EXTENSIONS
            .iter()
            .map(|ext| self.dir.join(format!("{name}.{ext}")))
            .find(|p| p.exists());
        let known = self.plugins.lock().contains_key(name);
        if module_file.is_none() && !manifest_file.exists() {
            return if known {
                self.remove(name, trigger, "its files were removed").await
            } else {
                SyncResult::Unknown
            };
        }
        let Some(module_file) = module_file else {
            let why = format!(
                "{}: no module beside it ({name}.wasm or {name}.wat)",
                manifest_file.display()
            );
            return self
                .remove_or_fail(name, trigger, &manifest_file, None, why)
                .await;
        };
        if !manifest_file.exists() {
            let why = format!(
                "{}: no manifest beside it ({name}.toml)",
                module_file.display()
            );
            return self
                .remove_or_fail(name, trigger, &manifest_file, Some(module_file), why)
                .await;
        }

        let stats = self
            .plugins
            .lock()
            .get(name)
            .map(|p| p.stats.clone())
            .unwrap_or_default();
        let (runtime, broker) = (self.runtime.clone(), self.broker.clone());
        let (plugin_name, files) = (
            name.to_string(),
            (module_file.clone(), manifest_file.clone()),
        );
        let live_version = self.live_version(name);
        let prepared = tokio::task::spawn_blocking(move || {
            prepare(
                &runtime,
                broker,
                &plugin_name,
                &files.0,
                &files.1,
                stats,
                live_version,
            )
        })
        .await
        .unwrap_or_else(|e| {
            Err(PrepareError::Failed(
                None,
                format!("compilation task failed: {e}"),
            ))
        });

        match prepared {
            Err(PrepareError::Unchanged) => SyncResult::Unchanged,
            Err(PrepareError::Failed(new_hash, why)) => {
                self.record_failure(
                    name,
                    trigger,
                    &manifest_file,
                    Some(module_file),
                    new_hash,
                    why.clone(),
                );
                SyncResult::Failed(why)
            }
            Ok(prepared) => {
                self.go_live(name, trigger, module_file, manifest_file, prepared)
                    .await
            }
        }
    }

    /// Starts a prepared version, then retires the one it replaces.
    async fn go_live(
        &self,
        name: &str,
        trigger: Trigger,
        module_file: PathBuf,
        manifest_file: PathBuf,
        prepared: Prepared,
    ) -> SyncResult {
        let manifest = prepared.link.manifest.clone();
        let stats = prepared.link.stats.clone();
        let run = match PluginRun::start(prepared.link, prepared.pre) {
            Ok(run) => run,
            Err(e) => {
                let why = format!("{}: {e:#}", module_file.display());
                self.record_failure(
                    name,
                    trigger,
                    &manifest_file,
                    Some(module_file),
                    Some(prepared.module_hash),
                    why.clone(),
                );
                return SyncResult::Failed(why);
            }
        };
        let new_live = Live {
            run,
            module_hash: prepared.module_hash.clone(),
            manifest,
        };
        let old = {
            let mut plugins = self.plugins.lock();
            let plugin = plugins
                .entry(name.to_string())
                .or_insert_with(|| Plugin::new(&manifest_file, stats));
            plugin.module_file = Some(module_file);
            plugin.removed = false;
            plugin.error = None;
            let old = plugin.live.replace(new_live);
            let old_hash = old.as_ref().map(|o| o.module_hash.clone());
            let result = if old.is_some() {
                ReloadResult::Reloaded
            } else {
                ReloadResult::Loaded
            };
            plugin.record(
                trigger,
                old_hash,
                Some(prepared.module_hash.clone()),
                result,
            );
            old
        };
        match old {
            Some(old) => {
                tracing::info!(plugin = name, from = %old.module_hash, to = %prepared.module_hash, "PLUGIN: reloaded");
                old.run.stop(StopMode::Drain).await;
                SyncResult::Reloaded
            }
            None => {
                tracing::info!(plugin = name, hash = %prepared.module_hash, "PLUGIN: loaded");
                SyncResult::Loaded
            }
        }
    }

    /// A plugin lost a file: a running one stops; a new one is a failure.
    async fn remove_or_fail(
        &self,
        name: &str,
        trigger: Trigger,
        manifest_file: &Path,
        module_file: Option<PathBuf>,
        why: String,
    ) -> SyncResult {
        if self.live_version(name).is_some() {
            let result = self.remove(name, trigger, &why).await;
            if let Some(plugin) = self.plugins.lock().get_mut(name) {
                plugin.error = Some(why);
            }
            return result;
        }
        self.record_failure(name, trigger, manifest_file, module_file, None, why.clone());
        SyncResult::Failed(why)
    }

    /// Stops a plugin. Its in-flight messages finish; its channel and the
    /// messages queued there stay, as when a consumer disconnects.
    async fn remove(&self, name: &str, trigger: Trigger, why: &str) -> SyncResult {
        let old = {
            let mut plugins = self.plugins.lock();
            let Some(plugin) = plugins.get_mut(name) else {
                return SyncResult::Unknown;
            };
            let old = plugin.live.take();
            plugin.removed = true;
            plugin.record(
                trigger,
                old.as_ref().map(|o| o.module_hash.clone()),
                None,
                ReloadResult::Removed,
            );
            old
        };
        if let Some(old) = old {
            tracing::info!(plugin = name, "PLUGIN: removed ({why})");
            old.run.stop(StopMode::Drain).await;
        }
        SyncResult::Removed
    }

    fn record_failure(
        &self,
        name: &str,
        trigger: Trigger,
        manifest_file: &Path,
        module_file: Option<PathBuf>,
        new_hash: Option<String>,
        why: String,
    ) {
        let mut plugins = self.plugins.lock();
        let plugin = plugins
            .entry(name.to_string())
            .or_insert_with(|| Plugin::new(manifest_file, Arc::default()));
        if module_file.is_some() {
            plugin.module_file = module_file;
        }
        let old_hash = plugin.live.as_ref().map(|l| l.module_hash.clone());
        if plugin.live.is_some() {
            tracing::error!(
                plugin = name,
                "PLUGIN: new version rejected, the previous one stays live: {why}"
            );
        } else {
            tracing::error!(plugin = name, "PLUGIN: not loaded: {why}");
        }
        plugin.record(
            trigger,
            old_hash,
            new_hash,
            ReloadResult::Failed(why.clone()),
        );
        plugin.error = Some(why);
    }

    fn live_version(&self, name: &str) -> Option<(String, Manifest)> {
        let plugins = self.plugins.lock();
        plugins
            .get(name)?
            .live
            .as_ref()
            .map(|l| (l.module_hash.clone(), l.manifest.clone()))
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
        let plugins = self.plugins.lock();
        plugins.iter().map(|(name, p)| p.status(name)).collect()
    }

    pub fn status_of(&self, name: &str) -> Option<PluginStatus> {
        self.plugins.lock().get(name).map(|p| p.status(name))
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
        }
    }

    fn record(
        &mut self,
        trigger: Trigger,
        old_hash: Option<String>,
        new_hash: Option<String>,
        result: ReloadResult,
    ) {
        if self.history.len() == HISTORY_LEN {
            self.history.pop_front();
        }
        let time_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        self.history.push_back(ReloadRecord {
            time_ms,
            trigger,
            old_hash,
            new_hash,
            result,
        });
    }

    fn status(&self, name: &str) -> PluginStatus {
        let live = self.live.as_ref();
        let manifest = live.map(|l| &l.manifest);
        PluginStatus {
            name: name.to_string(),
            file: self.module_file.as_ref().map(|f| f.display().to_string()),
            manifest_file: self.manifest_file.display().to_string(),
            module_hash: live.map(|l| l.module_hash.clone()),
            topic: manifest.map(|m| m.topic.clone()),
            channel: manifest.map(|m| m.channel.clone()),
            state: match (live, self.removed) {
                (Some(_), _) => PluginState::Running,
                (None, true) => PluginState::Removed,
                (None, false) => PluginState::Failed,
            },
            last_error: self
                .error
                .clone()
                .or_else(|| live.and_then(|l| l.run.last_error())),
            instances: live.map_or(0, |l| l.run.live_instances()),
            concurrency: manifest.map_or(0, |m| m.concurrency),
            max_in_flight: manifest.map_or(0, |m| m.max_in_flight),
            backoff_level: live.map_or(0, |l| l.run.backoff_level()),
            counters: self.stats.snapshot(),
            history: self.history.iter().cloned().collect(),
        }
    }
}

enum PrepareError {
    /// Module and manifest are what is already live.
    Unchanged,
    /// The new files are unusable (with the new module's hash if it was read).
    Failed(Option<String>, String),
}

/// Reads, checks, compiles and tries a version; CPU work, run off the async threads.
fn prepare(
    runtime: &WasmRuntime,
    broker: Arc<Broker>,
    name: &str,
    module_file: &Path,
    manifest_file: &Path,
    stats: Arc<PluginStats>,
    live: Option<(String, Manifest)>,
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
        .is_some_and(|(hash, m)| *hash == module_hash && *m == manifest)
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

/// One plugin in GET /plugins and the /stats `plugins` section.
#[derive(Debug, Clone, Serialize)]
pub struct PluginStatus {
    pub name: String,
    pub file: Option<String>,
    pub manifest_file: String,
    /// The hash (SHA-256) of the module that is live, if any.
    pub module_hash: Option<String>,
    pub topic: Option<String>,
    pub channel: Option<String>,
    pub state: PluginState,
    pub last_error: Option<String>,
    pub instances: usize,
    pub concurrency: usize,
    pub max_in_flight: i64,
    pub backoff_level: u32,
    pub counters: CountersView,
    pub history: Vec<ReloadRecord>,
}

/// `[A-Za-z0-9_.-]+` not starting with `.`, the names a plugin may have;
/// hidden files are editors' and rsync's temporaries, never plugins.
pub fn is_plugin_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}
/// Plugin names in `dir`: every stem of a manifest or a module file.
fn plugin_names(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if (ext == "toml" || MODULE_EXTENSIONS.contains(&ext))
            && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
            && is_plugin_name(stem)
        {
            names.insert(stem.to_string());
        }
    }
    Ok(names.into_iter().collect())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
