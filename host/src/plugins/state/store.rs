//! Where plugin state lives: one fjall keyspace in the data path
//! (`plugin-state/`), chosen by measurement over redb (bench/README.md,
//! "Plugin state: which embedded store").
//!
//! - partition `state.NAME`: plugin NAME's keys and values;
//! - partition `meta`: per plugin, its [`Totals`] (bytes, keys), written in
//!   the same batch as the writes they count, so they are exact after a
//!   crash without a scan;
//! - partition `applied`: a marker per message whose writes committed
//!   (plugin NAME, NUL, the message's marker), in the same batch: a message
//!   delivered again after a crash is recognised and finished without its
//!   handler counting it twice.
//!
//! One commit applies a group of messages' writes as one batch (atomic in
//! fjall's journal) and, for durable mode, one fsync. State is kept by
//! plugin name: it outlives reloads and the plugin's removal, until
//! [`StateStore::clear`].

use std::collections::HashMap;
use std::path::Path;

use fjall::{Config, Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};
use parking_lot::Mutex;

use super::limits::{Entries, StateError, Totals};
use super::pending::PendingWrites;

/// Deletions per batch when a plugin's state is cleared.
const CLEAR_BATCH: usize = 10_000;

/// One message's part of a commit.
#[derive(Debug)]
pub struct Commit {
    pub plugin: String,
    pub writes: PendingWrites,
    /// The message's marker (channel and id), if it is to be recognised
    /// when delivered again.
    pub applied: Option<Vec<u8>>,
}

pub struct StateStore {
    keyspace: Keyspace,
    meta: PartitionHandle,
    applied: PartitionHandle,
    /// Open partitions by plugin name.
    partitions: Mutex<HashMap<String, PartitionHandle>>,
    /// Committed totals by plugin name, as `meta` holds them.
    totals: Mutex<HashMap<String, Totals>>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore").finish_non_exhaustive()
    }
}

fn io(error: impl std::fmt::Display) -> StateError {
    StateError::Io(error.to_string())
}

fn encode_totals(totals: Totals) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&totals.bytes.to_le_bytes());
    out[8..].copy_from_slice(&totals.keys.to_le_bytes());
    out
}

fn decode_totals(bytes: &[u8]) -> Totals {
    let word = |at: usize| {
        bytes
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    };
    Totals {
        bytes: word(0),
        keys: word(8),
    }
}

fn applied_key(plugin: &str, marker: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(plugin.len() + 1 + marker.len());
    key.extend_from_slice(plugin.as_bytes());
    key.push(0);
    key.extend_from_slice(marker);
    key
}

impl StateStore {
    /// Opens (or creates) the store in `dir`, recovering from its journal
    /// after a crash.
    pub fn open(dir: &Path) -> Result<StateStore, StateError> {
        let keyspace = Config::new(dir).open().map_err(io)?;
        let meta = keyspace
            .open_partition("meta", PartitionCreateOptions::default())
            .map_err(io)?;
        let applied = keyspace
            .open_partition("applied", PartitionCreateOptions::default())
            .map_err(io)?;
        Ok(StateStore {
            keyspace,
            meta,
            applied,
            partitions: Mutex::new(HashMap::new()),
            totals: Mutex::new(HashMap::new()),
        })
    }

    /// Plugin `plugin`'s partition, opened on first use.
    fn partition(&self, plugin: &str) -> Result<PartitionHandle, StateError> {
        if let Some(partition) = self.partitions.lock().get(plugin) {
            return Ok(partition.clone());
        }
        let name = format!("state.{plugin}");
        if name.len() > 255 || !crate::plugins::files::is_plugin_name(plugin) {
            return Err(StateError::Io(format!(
                "{plugin:?}: no state for this name"
            )));
        }
        let partition = self
            .keyspace
            .open_partition(&name, PartitionCreateOptions::default())
            .map_err(io)?;
        self.partitions
            .lock()
            .insert(plugin.to_string(), partition.clone());
        Ok(partition)
    }

    pub fn get(&self, plugin: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self
            .partition(plugin)?
            .get(key)
            .map_err(io)?
            .map(|v| v.to_vec()))
    }

    /// Up to `limit` entries whose keys start with `prefix`, in key order.
    pub fn scan(&self, plugin: &str, prefix: &[u8], limit: usize) -> Result<Entries, StateError> {
        self.partition(plugin)?
            .prefix(prefix)
            .take(limit)
            .map(|entry| entry.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(io))
            .collect()
    }

    /// Plugin `plugin`'s committed totals.
    pub fn totals(&self, plugin: &str) -> Result<Totals, StateError> {
        if let Some(totals) = self.totals.lock().get(plugin) {
            return Ok(*totals);
        }
        let totals = self
            .meta
            .get(plugin)
            .map_err(io)?
            .map_or_else(Totals::default, |v| decode_totals(&v));
        self.totals.lock().insert(plugin.to_string(), totals);
        Ok(totals)
    }

    /// Whether a message with `marker` already committed its writes.
    pub fn was_applied(&self, plugin: &str, marker: &[u8]) -> Result<bool, StateError> {
        self.applied
            .contains_key(applied_key(plugin, marker))
            .map_err(io)
    }

    /// Forgets the markers of messages that can no longer come back.
    pub fn forget_applied(&self, plugin: &str, markers: &[Vec<u8>]) -> Result<(), StateError> {
        let mut batch = self.keyspace.batch();
        for marker in markers {
            batch.remove(&self.applied, applied_key(plugin, marker));
        }
        batch.commit().map_err(io)
    }

    /// Applies `group` as one atomic batch, with an fsync if `durable`:
    /// every message's writes, its marker and its plugin's new totals.
    pub fn commit(&self, group: &[Commit], durable: bool) -> Result<(), StateError> {
        let mut batch = self.keyspace.batch();
        let mut totals: HashMap<&str, Totals> = HashMap::new();
        for commit in group {
            let partition = self.partition(&commit.plugin)?;
            for (key, value) in commit.writes.writes() {
                match value {
                    Some(value) => batch.insert(&partition, key, value),
                    None => batch.remove(&partition, key),
                }
            }
            if let Some(marker) = &commit.applied {
                batch.insert(&self.applied, applied_key(&commit.plugin, marker), []);
            }
            let before = match totals.get(commit.plugin.as_str()) {
                Some(totals) => *totals,
                None => self.totals(&commit.plugin)?,
            };
            totals.insert(&commit.plugin, commit.writes.delta().applied_to(before));
        }
        for (plugin, totals) in &totals {
            batch.insert(&self.meta, *plugin, encode_totals(*totals));
        }
        batch.commit().map_err(io)?;
        if durable {
            self.keyspace.persist(PersistMode::SyncAll).map_err(io)?;
        }
        let mut known = self.totals.lock();
        for (plugin, totals) in totals {
            known.insert(plugin.to_string(), totals);
        }
        Ok(())
    }

    /// Deletes every key, marker and total of `plugin` (the operator's
    /// `DELETE /plugins/NAME/state`), durably.
    pub fn clear(&self, plugin: &str) -> Result<(), StateError> {
        // Key by key (a partition dropped and made again under the same
        // name is not something fjall promises), in batches of bounded
        // size; the totals go last, so a crash in between leaves totals
        // that only overstate what is left.
        let partition = self.partition(plugin)?;
        let prefix = applied_key(plugin, b"");
        let doomed = partition
            .iter()
            .map(|entry| entry.map(|(key, _)| (partition.clone(), key)))
            .chain(
                self.applied
                    .prefix(prefix)
                    .map(|entry| entry.map(|(key, _)| (self.applied.clone(), key))),
            );
        let mut batch = self.keyspace.batch();
        for entry in doomed {
            let (from, key) = entry.map_err(io)?;
            batch.remove(&from, key);
            if batch.len() >= CLEAR_BATCH {
                std::mem::replace(&mut batch, self.keyspace.batch())
                    .commit()
                    .map_err(io)?;
            }
        }
        batch.remove(&self.meta, plugin);
        batch.commit().map_err(io)?;
        self.keyspace.persist(PersistMode::SyncAll).map_err(io)?;
        self.totals.lock().remove(plugin);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::state::limits::StateLimits;

    const LIMITS: StateLimits = StateLimits {
        max_key_bytes: 64,
        max_value_bytes: 64,
        max_total_bytes: 1 << 20,
    };

    fn increments(store: &StateStore, plugin: &str, key: &[u8], marker: &[u8]) -> Commit {
        let mut writes = PendingWrites::default();
        let totals = store.totals(plugin).unwrap();
        writes
            .increment(key, 1, &LIMITS, totals, |k| store.get(plugin, k))
            .unwrap();
        Commit {
            plugin: plugin.into(),
            writes,
            applied: Some(marker.to_vec()),
        }
    }

    #[test]
    fn a_group_commits_writes_markers_and_totals_that_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = StateStore::open(dir.path()).unwrap();
            let group = [
                increments(&store, "counter", b"k/a", b"m1"),
                increments(&store, "counter", b"k/b", b"m2"),
                increments(&store, "other", b"k/a", b"m1"),
            ];
            store.commit(&group, true).unwrap();
            let again = [increments(&store, "counter", b"k/a", b"m3")];
            store.commit(&again, true).unwrap();
        }
        let store = StateStore::open(dir.path()).unwrap();
        assert_eq!(store.get("counter", b"k/a").unwrap(), Some(b"2".to_vec()));
        assert_eq!(
            store.scan("counter", b"k/", 10).unwrap(),
            vec![
                (b"k/a".to_vec(), b"2".to_vec()),
                (b"k/b".to_vec(), b"1".to_vec())
            ]
        );
        assert_eq!(
            store.totals("counter").unwrap(),
            Totals { bytes: 8, keys: 2 }
        );
        assert!(store.was_applied("counter", b"m3").unwrap());
        assert!(!store.was_applied("counter", b"m4").unwrap());
        assert!(
            !store.was_applied("other", b"m2").unwrap(),
            "markers are per plugin"
        );
        store.forget_applied("counter", &[b"m3".to_vec()]).unwrap();
        assert!(!store.was_applied("counter", b"m3").unwrap());
    }

    #[test]
    fn clearing_a_plugin_leaves_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let group = [
            increments(&store, "gone", b"k", b"m1"),
            increments(&store, "kept", b"k", b"m1"),
        ];
        store.commit(&group, false).unwrap();
        store.clear("gone").unwrap();
        assert_eq!(store.get("gone", b"k").unwrap(), None);
        assert_eq!(store.totals("gone").unwrap(), Totals::default());
        assert!(!store.was_applied("gone", b"m1").unwrap());
        assert_eq!(store.get("kept", b"k").unwrap(), Some(b"1".to_vec()));
        drop(store);
        let store = StateStore::open(dir.path()).unwrap();
        assert_eq!(store.get("gone", b"k").unwrap(), None);
        assert_eq!(store.totals("kept").unwrap(), Totals { bytes: 2, keys: 1 });
    }
}
