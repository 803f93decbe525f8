//! The load/reload/remove state machine of one plugin name, and the
//! history it leaves for GET /plugins.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::baseline::Compiler;
use super::consumer::{PluginRun, StopMode};
use super::files::PluginFiles;
use super::prepare::{LiveVersion, LoadReport, PrepareError, Prepared, prepare};
use super::{Live, Plugin, PluginHost};

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
    /// The plugin API (`PUT` or `DELETE /plugins/NAME`).
    Admin,
    /// The optimized build of a version live with baseline code is ready
    /// (baseline.rs). Its swap is no new version and leaves no record.
    Optimize,
}

/// Why the host looked at a plugin's files, and who asked (the plugin
/// API's caller), as the history records it.
#[derive(Debug, Clone)]
pub(super) struct Cause {
    pub(super) trigger: Trigger,
    pub(super) by: Option<String>,
}

impl From<Trigger> for Cause {
    fn from(trigger: Trigger) -> Cause {
        Cause { trigger, by: None }
    }
}

impl Cause {
    /// A change made through the plugin API by `by` (who, from where).
    pub(super) fn admin(by: &str) -> Cause {
        Cause {
            trigger: Trigger::Admin,
            by: Some(by.to_string()),
        }
    }
}

/// How many loads and reloads ended each way since the host started (the
/// history keeps only the latest few): for /metrics and statsd.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ReloadCounts {
    pub loaded: u64,
    pub reloaded: u64,
    pub removed: u64,
    pub failed: u64,
}

impl ReloadCounts {
    pub fn add(&mut self, result: &ReloadResult) {
        match result {
            ReloadResult::Loaded => self.loaded += 1,
            ReloadResult::Reloaded => self.reloaded += 1,
            ReloadResult::Removed => self.removed += 1,
            ReloadResult::Failed(_) => self.failed += 1,
        }
    }
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
    /// Who made the change through the plugin API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    pub old_hash: Option<String>,
    pub new_hash: Option<String>,
    pub result: ReloadResult,
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
    /// Brings plugin `name` in line with its files: load, reload, remove, or
    /// nothing if they did not change. Errors are logged and kept for /plugins.
    pub async fn sync_plugin(&self, name: &str, trigger: Trigger) -> SyncResult {
        let _one_at_a_time = self.sync_lock.lock().await;
        self.sync_locked(name, &trigger.into()).await
    }

    /// [`PluginHost::sync_plugin`], with `sync_lock` held by the caller.
    pub(super) async fn sync_locked(&self, name: &str, cause: &Cause) -> SyncResult {
        let (dir, plugin) = (self.dir.clone(), name.to_string());
        let found = tokio::task::spawn_blocking(move || PluginFiles::find(&dir, &plugin)).await;
        let PluginFiles {
            manifest: manifest_file,
            manifest_exists,
            module: module_file,
        } = match found {
            Ok(files) => files,
            Err(e) => return SyncResult::Failed(format!("cannot look for {name}'s files: {e}")),
        };
        let known = self.plugins.lock().contains_key(name);
        if module_file.is_none() && !manifest_exists {
            return if known {
                self.remove(name, cause, "its files were removed").await
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
                .remove_or_fail(name, cause, &manifest_file, None, why)
                .await;
        };
        if !manifest_exists {
            let why = format!(
                "{}: no manifest beside it ({name}.toml)",
                module_file.display()
            );
            return self
                .remove_or_fail(name, cause, &manifest_file, Some(module_file), why)
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
                    cause,
                    &manifest_file,
                    Some(module_file),
                    new_hash,
                    why.clone(),
                );
                SyncResult::Failed(why)
            }
            Ok(prepared) => {
                self.go_live(name, cause, module_file, manifest_file, prepared)
                    .await
            }
        }
    }

    /// Starts a prepared version, then retires the one it replaces.
    async fn go_live(
        &self,
        name: &str,
        cause: &Cause,
        module_file: PathBuf,
        manifest_file: PathBuf,
        prepared: Prepared,
    ) -> SyncResult {
        let manifest = prepared.link.manifest.clone();
        let stats = prepared.link.stats.clone();
        let kind = prepared.guest.kind();
        let run = match PluginRun::start(prepared.link, prepared.guest, &self.runtime.executor) {
            Ok(run) => run,
            Err(e) => {
                let why = format!("{}: {e:#}", module_file.display());
                self.record_failure(
                    name,
                    cause,
                    &manifest_file,
                    Some(module_file),
                    Some(prepared.module_hash),
                    why.clone(),
                );
                return SyncResult::Failed(why);
            }
        };
        let baseline = prepared.load.compiler == Compiler::Baseline;
        let mut new_live = Live {
            run,
            module_hash: prepared.module_hash.clone(),
            manifest,
            kind,
            load: prepared.load,
            files: prepared.files,
        };
        let module = new_live.files.module.clone();
        let old = {
            let mut plugins = self.plugins.lock();
            let plugin = plugins
                .entry(name.to_string())
                .or_insert_with(|| Plugin::new(&manifest_file, stats));
            plugin.module_file = Some(module_file);
            plugin.removed = false;
            plugin.error = None;
            let recompiled = plugin.live.as_ref().filter(|old| {
                old.module_hash == new_live.module_hash && old.manifest == new_live.manifest
            });
            if let Some(old) = recompiled {
                // The same version with optimized code: it keeps the load
                // time and cache use of its first load.
                new_live.load = LoadReport {
                    compiler: new_live.load.compiler,
                    ..old.load
                };
            }
            let was_recompiled = recompiled.is_some();
            let old = plugin.live.replace(new_live);
            if !was_recompiled {
                let old_hash = old.as_ref().map(|o| o.module_hash.clone());
                let result = if old.is_some() {
                    ReloadResult::Reloaded
                } else {
                    ReloadResult::Loaded
                };
                plugin.record(cause, old_hash, Some(prepared.module_hash.clone()), result);
            }
            old.map(|old| (old, was_recompiled))
        };
        if baseline {
            self.optimize_later(name, module, prepared.module_hash.clone());
        }
        match old {
            Some((old, recompiled)) => {
                if recompiled {
                    tracing::info!(plugin = name, hash = %prepared.module_hash, "PLUGIN: optimized code live");
                } else {
                    tracing::info!(plugin = name, from = %old.module_hash, to = %prepared.module_hash, "PLUGIN: reloaded");
                }
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
        cause: &Cause,
        manifest_file: &Path,
        module_file: Option<PathBuf>,
        why: String,
    ) -> SyncResult {
        if self.live_version(name).is_some() {
            let result = self.remove(name, cause, &why).await;
            if let Some(plugin) = self.plugins.lock().get_mut(name) {
                plugin.error = Some(why);
            }
            return result;
        }
        self.record_failure(name, cause, manifest_file, module_file, None, why.clone());
        SyncResult::Failed(why)
    }

    /// Stops a plugin. Its in-flight messages finish; its channel and the
    /// messages queued there stay, as when a consumer disconnects.
    async fn remove(&self, name: &str, cause: &Cause, why: &str) -> SyncResult {
        let old = {
            let mut plugins = self.plugins.lock();
            let Some(plugin) = plugins.get_mut(name) else {
                return SyncResult::Unknown;
            };
            let old = plugin.live.take();
            plugin.removed = true;
            plugin.record(
                cause,
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
        cause: &Cause,
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
        plugin.record(cause, old_hash, new_hash, ReloadResult::Failed(why.clone()));
        plugin.error = Some(why);
    }

    fn live_version(&self, name: &str) -> Option<LiveVersion> {
        let plugins = self.plugins.lock();
        plugins.get(name)?.live.as_ref().map(|l| LiveVersion {
            module_hash: l.module_hash.clone(),
            manifest: l.manifest.clone(),
        })
    }

    /// Compiles the optimized build of a version that went live with
    /// baseline code, on a blocking thread, then swaps it in by a reload
    /// of the same version, if that version is still the live one.
    fn optimize_later(&self, name: &str, module: Arc<[u8]>, hash: String) {
        let (host, runtime, name) = (self.me.clone(), self.runtime.clone(), name.to_string());
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let build_hash = hash.clone();
            let compiled = tokio::task::spawn_blocking(move || {
                runtime.compile_optimized(&module, &build_hash)
            })
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("the compile task failed: {e}")));
            let pre = match compiled {
                Ok(pre) => pre,
                Err(e) => {
                    tracing::warn!(plugin = %name, error = %format!("{e:#}"), "PLUGIN: no optimized build; the baseline code stays live");
                    return;
                }
            };
            let Some(host) = host.upgrade() else {
                return;
            };
            // Under the lock every load takes, so no other version goes
            // live between the look and the swap.
            let _one_at_a_time = host.sync_lock.lock().await;
            let live = host.live_version(&name);
            if live.is_none_or(|live| live.module_hash != hash) {
                return;
            }
            host.runtime.offer_optimized(&name, &hash, pre);
            host.sync_locked(&name, &Trigger::Optimize.into()).await;
            // Not taken if the files changed meanwhile.
            host.runtime.take_optimized(&name, &hash);
            tracing::debug!(plugin = %name, ms = started.elapsed().as_millis() as u64, "PLUGIN: optimized build handled");
        });
    }
}
