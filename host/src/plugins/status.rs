//! What GET /plugins and the /stats `plugins` section report of a plugin.

use serde::Serialize;

use super::Plugin;
use super::instance::GuestKind;
use super::prepare::LoadReport;
use super::reload::{ReloadCounts, ReloadRecord};
use super::state::stats::StateCountersView;
use super::stats::CountersView;

impl PluginState {
    /// Every state, for metrics that give each its own series.
    pub const ALL: [PluginState; 4] = [
        PluginState::Running,
        PluginState::Failed,
        PluginState::Removed,
        PluginState::Loading,
    ];
}

impl std::fmt::Display for PluginState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so the text /stats can align it in a column.
        f.pad(match self {
            PluginState::Running => "running",
            PluginState::Failed => "failed",
            PluginState::Removed => "removed",
            PluginState::Loading => "loading",
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
    /// Found at start-up, still being compiled or tried.
    Loading,
}

/// One plugin in GET /plugins and the /stats `plugins` section.
#[derive(Debug, Clone, Serialize)]
pub struct PluginStatus {
    pub name: String,
    pub file: Option<String>,
    pub manifest_file: String,
    /// The hash (SHA-256) of the module that is live, if any.
    pub module_hash: Option<String>,
    /// `core-module` (ABI v1) or `component` (the WIT world), if live.
    pub kind: Option<GuestKind>,
    /// How long the live version took to load, and whether its compiled
    /// artifact came from the cache.
    pub load: Option<LoadReport>,
    pub topic: Option<String>,
    pub channel: Option<String>,
    pub state: PluginState,
    pub last_error: Option<String>,
    pub instances: usize,
    pub concurrency: usize,
    pub max_in_flight: i64,
    pub backoff_level: u32,
    pub counters: CountersView,
    /// What the live version's manifest grants beyond the channel.
    pub grants: Option<Grants>,
    pub history: Vec<ReloadRecord>,
    /// Every load and reload since start-up, by outcome.
    pub reloads: ReloadCounts,
    /// The plugin's key-value store, when the live version has one.
    pub state_store: Option<StateStoreStatus>,
}

/// A plugin's key-value store in GET /plugins.
#[derive(Debug, Clone, Serialize)]
pub struct StateStoreStatus {
    /// Committed keys, and their keys' and values' bytes.
    pub keys: u64,
    pub bytes: u64,
    /// `state_limit_mib`, in bytes.
    pub limit_bytes: u64,
    #[serde(flatten)]
    pub counters: StateCountersView,
}

impl StateStoreStatus {
    fn of(
        state: &super::state::PluginState,
        stats: &super::stats::PluginStats,
    ) -> StateStoreStatus {
        let totals = state.plugin.totals();
        StateStoreStatus {
            keys: totals.keys,
            bytes: totals.bytes,
            limit_bytes: state.limits.max_total_bytes,
            counters: stats.state.view(),
        }
    }
}

/// The capabilities a manifest grants, as GET /plugins shows them:
/// configuration by key only (values may be secrets).
#[derive(Debug, Clone, Serialize)]
pub struct Grants {
    pub publish: Vec<String>,
    pub allowed_outbound_hosts: Vec<String>,
    pub http_timeout_ms: u64,
    pub http_max_response_kib: usize,
    pub http_max_concurrent: usize,
    pub tls_root_ca_file: Option<String>,
    pub config_keys: Vec<String>,
    /// `state = true`: the plugin has a key-value store.
    pub state: bool,
}

impl Grants {
    fn of(manifest: &super::manifest::Manifest) -> Grants {
        Grants {
            publish: manifest.publish.clone(),
            allowed_outbound_hosts: manifest.allowed_outbound_hosts.written().to_vec(),
            http_timeout_ms: manifest.http.timeout.as_millis() as u64,
            http_max_response_kib: manifest.http.max_response_bytes >> 10,
            http_max_concurrent: manifest.http.max_concurrent,
            tls_root_ca_file: manifest.tls_root_ca_file.clone(),
            config_keys: manifest.config.keys().cloned().collect(),
            state: manifest.state.is_some(),
        }
    }
}

impl PluginStatus {
    /// A plugin found at start-up that is not loaded yet.
    pub(super) fn loading(name: &str, dir: &std::path::Path) -> PluginStatus {
        PluginStatus {
            name: name.to_string(),
            file: None,
            manifest_file: dir.join(format!("{name}.toml")).display().to_string(),
            module_hash: None,
            kind: None,
            load: None,
            topic: None,
            channel: None,
            state: PluginState::Loading,
            last_error: None,
            instances: 0,
            concurrency: 0,
            max_in_flight: 0,
            backoff_level: 0,
            counters: super::stats::PluginStats::default().snapshot(),
            grants: None,
            history: Vec::new(),
            reloads: ReloadCounts::default(),
            state_store: None,
        }
    }
}

impl Plugin {
    pub(super) fn status(&self, name: &str) -> PluginStatus {
        let live = self.live.as_ref();
        let manifest = live.map(|l| &l.manifest);
        PluginStatus {
            name: name.to_string(),
            file: self.module_file.as_ref().map(|f| f.display().to_string()),
            manifest_file: self.manifest_file.display().to_string(),
            module_hash: live.map(|l| l.module_hash.clone()),
            kind: live.map(|l| l.kind),
            load: live.map(|l| l.load),
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
            grants: manifest.map(Grants::of),
            history: self.history.iter().cloned().collect(),
            reloads: self.reloads,
            state_store: live
                .and_then(|l| l.run.link.state.as_ref())
                .map(|state| StateStoreStatus::of(state, &self.stats)),
        }
    }
}
