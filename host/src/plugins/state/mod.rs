//! Plugins that remember: a key-value store per plugin whose writes
//! commit with the message's FIN (guest-sdk/ABI.md, "State").
//!
//! - [`limits`]: how much a plugin may keep, and the errors a guest sees
//! - [`call`]: a handler call's view: the store under its messages'
//!   writes, kept until their outcomes are known
//! - [`commit`]: what a call hands to the store
//! - [`store`]: the fjall store the writes commit to, with a marker per
//!   message so that one delivered again is not counted twice
//! - [`journal`]: the file each group of commits is written to first
//! - [`layout`]: where the store keeps things in fjall
//! - [`record`]: a group's record in it
//! - [`replay`]: what a crash left, applied when the store opens
//! - [`plugin_store`]: one plugin's part of the store
//! - [`hot`]: its keys in memory, and the conflict check between its
//!   instances
//! - [`overlay`]: a listing seen through newer writes
//! - [`committer`]: group commit, one batch and one fsync for many workers
//! - [`stats`]: its counters

pub mod call;
pub mod commit;
pub mod committer;
pub mod hot;
pub mod journal;
pub mod layout;
pub mod limits;
pub mod overlay;
pub mod plugin_store;
pub mod record;
pub mod replay;
pub mod stats;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use committer::StateCommitter;
use limits::StateLimits;
use plugin_store::PluginStore;
use store::StateStore;

/// A plugin's door to the store: its name (state is kept by name), its
/// limits, its part of the store and where its commits go.
#[derive(Debug)]
pub struct PluginState {
    pub name: Arc<str>,
    pub limits: StateLimits,
    pub store: Arc<StateStore>,
    pub plugin: Arc<PluginStore>,
    pub committer: StateCommitter,
}

#[cfg(test)]
impl PluginState {
    /// Plugin `name`'s door to `store`, committing nowhere (unit tests
    /// commit through the store directly).
    pub fn detached(store: &Arc<StateStore>, name: &str, limits: StateLimits) -> PluginState {
        let plugin = store.plugin(name).expect("a plugin name");
        PluginState {
            name: plugin.name.clone(),
            limits,
            store: store.clone(),
            plugin,
            committer: StateCommitter::detached(),
        }
    }
}

/// The broker's one store, opened when the first plugin granted state
/// loads (a broker without such plugins keeps no state files).
#[derive(Debug)]
pub struct SharedStore {
    dir: Option<PathBuf>,
    durable: bool,
    fsync_every: Duration,
    opened: Mutex<Option<(Arc<StateStore>, StateCommitter)>>,
}

impl SharedStore {
    /// The store in `dir` (`None`: none can be opened, and a plugin asking
    /// for state does not load). `durable`: fsync every commit.
    pub fn new(dir: Option<PathBuf>, durable: bool, fsync_every: Duration) -> SharedStore {
        SharedStore {
            dir,
            durable,
            fsync_every,
            opened: Mutex::new(None),
        }
    }

    /// The store, opened on first use (blocking: recovery reads its
    /// journal).
    pub fn get(&self) -> anyhow::Result<(Arc<StateStore>, StateCommitter)> {
        let mut opened = self.opened.lock();
        if let Some((store, committer)) = &*opened {
            return Ok((store.clone(), committer.clone()));
        }
        let Some(dir) = &self.dir else {
            anyhow::bail!("this host keeps no plugin state (no data path)");
        };
        let store = Arc::new(
            StateStore::open(dir, self.durable, self.fsync_every).map_err(|e| {
                anyhow::anyhow!("cannot open the plugin state in {}: {e}", dir.display())
            })?,
        );
        let committer = StateCommitter::start(store.clone())?;
        tracing::info!(dir = %dir.display(), durable = self.durable, "STATE: plugin state opened");
        *opened = Some((store.clone(), committer.clone()));
        Ok((store, committer))
    }

    /// The store if it is open.
    pub fn if_open(&self) -> Option<Arc<StateStore>> {
        self.opened.lock().as_ref().map(|(store, _)| store.clone())
    }

    /// The store if it is open or on disk (state of plugins since
    /// removed), for the operator's endpoints; `None` if there is none.
    pub fn existing(&self) -> Option<anyhow::Result<Arc<StateStore>>> {
        if let Some(store) = self.if_open() {
            return Some(Ok(store));
        }
        self.dir.as_ref().filter(|dir| dir.is_dir())?;
        Some(self.get().map(|(store, _)| store))
    }

    /// The door for plugin `name` with `limits`.
    pub fn for_plugin(&self, name: &str, limits: StateLimits) -> anyhow::Result<Arc<PluginState>> {
        let (store, committer) = self.get()?;
        let plugin = store.plugin(name)?;
        Ok(Arc::new(PluginState {
            name: plugin.name.clone(),
            limits,
            store,
            plugin,
            committer,
        }))
    }
}
