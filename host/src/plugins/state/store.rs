//! Where plugin state lives: one fjall keyspace in the data path
//! (`plugin-state/`), chosen by measurement over redb (bench/README.md,
//! "Plugin state: which embedded store").
//!
//! - partition `state.NAME`: plugin NAME's keys and values;
//! - partition `meta`: per plugin, its [`Totals`] (bytes, keys), written in
//!   the same batch as the writes they count, so they are exact after a
//!   crash without a scan;
//! - partition `applied`: a marker per message whose writes committed, in
//!   the same batch: key plugin NAME, NUL, channel, NUL, the message's
//!   location in the channel's disk queue (segment, offset: big-endian, so
//!   markers sort as the queue does); value the message id. A message
//!   delivered again from that location after a crash (or after its FIN
//!   was refused) is recognised and finished without its handler counting
//!   it twice. Markers before the channel's durably saved read checkpoint
//!   can never match again and are forgotten.
//!
//! One commit applies a group of messages' writes as one batch (atomic in
//! fjall's journal): an fsync in durable mode, else a write to the OS.
//! Before it, each message's commit is checked against what other calls
//! committed since it first looked (versions.rs). State is kept by plugin
//! name: it outlives reloads and the plugin's removal, until
//! [`StateStore::clear`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fjall::{Config, Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};
use parking_lot::Mutex;
use wasq_storage::Location;

use super::cache::ReadCache;
use super::limits::{Entries, StateError, Totals};
use super::pending::PendingWrites;
use super::versions::Versions;
use crate::broker::message::MessageId;

/// A plugin partition's memtable before it is flushed: a counter's every
/// increment is an entry there, and inserting into fjall's default 16 MiB
/// skiplist (hundreds of thousands of entries deep) was the commit
/// thread's main cost.
const MEMTABLE_BYTES: u32 = 4 << 20;

/// Deletions per batch when a plugin's state is cleared.
const CLEAR_BATCH: usize = 10_000;

/// Where a message sits in its channel: what a crash redelivers it from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub channel: String,
    pub location: Location,
    pub id: MessageId,
}

/// One message's part of a commit.
#[derive(Debug)]
pub struct Commit {
    pub plugin: std::sync::Arc<str>,
    pub writes: PendingWrites,
    /// Recorded with the writes, to recognise the message if it comes back.
    pub marker: Option<Marker>,
    /// The commit sequence number when the call first touched the state.
    pub snapshot: u64,
    /// The handler call the writes were made in.
    pub call: u64,
}

/// What became of one message's commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    Applied,
    /// Another call changed what this one read: handle the message again.
    Conflict,
}

pub struct StateStore {
    keyspace: Keyspace,
    meta: PartitionHandle,
    applied: PartitionHandle,
    /// Open partitions by plugin name.
    partitions: Mutex<HashMap<String, PartitionHandle>>,
    /// Committed totals by plugin name, as `meta` holds them.
    totals: Mutex<HashMap<String, Totals>>,
    /// Recent changes per plugin, for the conflict check.
    versions: Mutex<HashMap<String, Versions>>,
    /// Committed values of recently used keys.
    cache: Mutex<ReadCache>,
    /// The last commit sequence number whose writes are visible.
    visible: AtomicU64,
    /// Numbers handler calls (see [`Commit::call`]).
    calls: AtomicU64,
    /// fsync each group (durable mode) rather than write it to the OS.
    durable: bool,
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

/// The start of every marker key of `plugin` on `channel` (`None`: of
/// every channel).
fn markers_of(plugin: &str, channel: Option<&str>) -> Vec<u8> {
    let mut key = Vec::with_capacity(plugin.len() + 2 + 64 + 16);
    key.extend_from_slice(plugin.as_bytes());
    key.push(0);
    if let Some(channel) = channel {
        key.extend_from_slice(channel.as_bytes());
        key.push(0);
    }
    key
}

fn marker_key(plugin: &str, channel: &str, at: Location) -> Vec<u8> {
    let mut key = markers_of(plugin, Some(channel));
    key.extend_from_slice(&at.segment.to_be_bytes());
    key.extend_from_slice(&at.offset.to_be_bytes());
    key
}

impl StateStore {
    /// Opens (or creates) the store in `dir`, recovering from its journal
    /// after a crash. `durable`: each commit is fsynced before it counts;
    /// else it is written to the OS (a crash of wasqd loses nothing; a
    /// power loss what the last `fsync_every` did not cover).
    pub fn open(
        dir: &Path,
        durable: bool,
        fsync_every: Duration,
    ) -> Result<StateStore, StateError> {
        let fsync_ms = u16::try_from(fsync_every.as_millis())
            .unwrap_or(u16::MAX)
            .max(1);
        let keyspace = Config::new(dir)
            .fsync_ms((!durable).then_some(fsync_ms))
            .open()
            .map_err(io)?;
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
            versions: Mutex::new(HashMap::new()),
            cache: Mutex::new(ReadCache::default()),
            visible: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            durable,
        })
    }

    /// The sequence number a call starting to read now sees through.
    pub fn snapshot(&self) -> u64 {
        self.visible.load(Ordering::Acquire)
    }

    /// A number for a new handler call.
    pub fn new_call(&self) -> u64 {
        self.calls.fetch_add(1, Ordering::Relaxed) + 1
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
            .open_partition(
                &name,
                PartitionCreateOptions::default().max_memtable_size(MEMTABLE_BYTES),
            )
            .map_err(io)?;
        self.partitions
            .lock()
            .insert(plugin.to_string(), partition.clone());
        Ok(partition)
    }

    pub fn get(&self, plugin: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let generation = {
            let cache = self.cache.lock();
            if let Some(value) = cache.get(plugin, key) {
                return Ok(value);
            }
            cache.generation()
        };
        let value = self
            .partition(plugin)?
            .get(key)
            .map_err(io)?
            .map(|v| v.to_vec());
        self.cache
            .lock()
            .fill(plugin, key, value.clone(), generation);
        Ok(value)
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

    /// Whether the message at `marker`'s location committed its writes.
    pub fn was_applied(&self, plugin: &str, marker: &Marker) -> Result<bool, StateError> {
        let key = marker_key(plugin, &marker.channel, marker.location);
        Ok(self
            .applied
            .get(key)
            .map_err(io)?
            .is_some_and(|id| *id == marker.id.0[..]))
    }

    /// Forgets `plugin`'s markers on `channel` before `checkpoint` (the
    /// channel's durably saved read checkpoint: nothing before it is ever
    /// delivered again). Returns how many.
    pub fn forget_applied_before(
        &self,
        plugin: &str,
        channel: &str,
        checkpoint: Location,
    ) -> Result<usize, StateError> {
        let start = markers_of(plugin, Some(channel));
        let end = marker_key(plugin, channel, checkpoint);
        let mut batch = self.keyspace.batch();
        for entry in self.applied.range(start..end) {
            let (key, _) = entry.map_err(io)?;
            batch.remove(&self.applied, key);
        }
        let forgotten = batch.len();
        if forgotten > 0 {
            batch.commit().map_err(io)?;
        }
        Ok(forgotten)
    }

    /// Checks and applies `group` as one atomic batch (fsynced in durable
    /// mode): every message's writes, its marker and its plugin's new
    /// totals. A commit that conflicts (versions.rs) is left out, and so
    /// are the later ones of the same call (they may have read it).
    pub fn commit(&self, group: &[Commit]) -> Result<Vec<Committed>, StateError> {
        let mut batch = self.keyspace.batch();
        let mut totals: HashMap<&str, Totals> = HashMap::new();
        let mut outcomes = Vec::with_capacity(group.len());
        let mut conflicted_calls = Vec::new();
        let mut seq = self.visible.load(Ordering::Acquire);
        {
            let mut versions = self.versions.lock();
            // Consecutive commits are mostly one plugin's: its partition
            // is looked up once for them.
            let mut partition: Option<(&str, PartitionHandle)> = None;
            for commit in group {
                let plugin = &*commit.plugin;
                if !versions.contains_key(plugin) {
                    versions.insert(plugin.to_string(), Versions::default());
                }
                let versions = versions.get_mut(plugin).expect("inserted above");
                if conflicted_calls.contains(&commit.call)
                    || versions.conflicts(commit.writes.touched(), commit.snapshot, commit.call)
                {
                    conflicted_calls.push(commit.call);
                    outcomes.push(Committed::Conflict);
                    continue;
                }
                outcomes.push(Committed::Applied);
                seq += 1;
                let partition = match &partition {
                    Some((name, handle)) if *name == plugin => handle,
                    _ => &partition.insert((plugin, self.partition(plugin)?)).1,
                };
                for (key, value) in commit.writes.writes() {
                    match value {
                        Some(value) => batch.insert(partition, key, value),
                        None => batch.remove(partition, key),
                    }
                }
                versions.record(commit.writes.writes().map(|(key, _)| key), seq, commit.call);
                if let Some(marker) = &commit.marker {
                    let key = marker_key(plugin, &marker.channel, marker.location);
                    batch.insert(&self.applied, key, marker.id.0);
                }
                let before = match totals.get(plugin) {
                    Some(totals) => *totals,
                    None => self.totals(plugin)?,
                };
                totals.insert(plugin, commit.writes.delta().applied_to(before));
            }
        }
        for (plugin, totals) in &totals {
            batch.insert(&self.meta, *plugin, encode_totals(*totals));
        }
        if !batch.is_empty() {
            batch.commit().map_err(io)?;
            let mut cache = self.cache.lock();
            let applied = group.iter().zip(&outcomes);
            for (commit, _) in applied.filter(|(_, o)| **o == Committed::Applied) {
                for (key, value) in commit.writes.writes() {
                    cache.put(&commit.plugin, key, value);
                }
            }
            drop(cache);
            let mode = if self.durable {
                PersistMode::SyncAll
            } else {
                PersistMode::Buffer
            };
            self.keyspace.persist(mode).map_err(io)?;
        }
        self.visible.store(seq, Ordering::Release);
        let mut known = self.totals.lock();
        for (plugin, totals) in totals {
            known.insert(plugin.to_string(), totals);
        }
        Ok(outcomes)
    }

    /// Deletes every key, marker and total of `plugin` (the operator's
    /// `DELETE /plugins/NAME/state`), durably. Returns how many keys went.
    pub fn clear(&self, plugin: &str) -> Result<u64, StateError> {
        let keys = self.totals(plugin)?.keys;
        // Key by key (a partition dropped and made again under the same
        // name is not something fjall promises), in batches of bounded
        // size; the totals go last, so a crash in between leaves totals
        // that only overstate what is left.
        let partition = self.partition(plugin)?;
        let prefix = markers_of(plugin, None);
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
        self.versions.lock().remove(plugin);
        self.cache.lock().forget(plugin);
        Ok(keys)
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

    fn open(dir: &Path) -> StateStore {
        StateStore::open(dir, true, Duration::from_secs(1)).unwrap()
    }

    fn marker(segment: u64, id: u8) -> Marker {
        Marker {
            channel: "ch".into(),
            location: Location { segment, offset: 0 },
            id: MessageId([id; 16]),
        }
    }

    /// One call incrementing `key`, with the marker of message `id`.
    fn increments(store: &StateStore, plugin: &str, key: &[u8], id: u8) -> Commit {
        let mut writes = PendingWrites::default();
        let totals = store.totals(plugin).unwrap();
        let snapshot = store.snapshot();
        writes
            .increment(key, 1, &LIMITS, totals, |k| store.get(plugin, k))
            .unwrap();
        Commit {
            plugin: plugin.into(),
            writes,
            marker: Some(marker(u64::from(id), id)),
            snapshot,
            call: store.new_call(),
        }
    }

    #[test]
    fn a_group_commits_writes_markers_and_totals_that_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            let group = [
                increments(&store, "counter", b"k/a", 1),
                increments(&store, "counter", b"k/b", 2),
                increments(&store, "other", b"k/a", 1),
            ];
            assert_eq!(store.commit(&group).unwrap(), [Committed::Applied; 3]);
            let again = [increments(&store, "counter", b"k/a", 3)];
            store.commit(&again).unwrap();
        }
        let store = open(dir.path());
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
        assert!(store.was_applied("counter", &marker(3, 3)).unwrap());
        assert!(!store.was_applied("counter", &marker(4, 4)).unwrap());
        assert!(
            !store.was_applied("counter", &marker(3, 9)).unwrap(),
            "another message at the same place (a queue made anew)"
        );
        assert!(
            !store.was_applied("other", &marker(2, 2)).unwrap(),
            "markers are per plugin"
        );
        let before = Location {
            segment: 3,
            offset: 0,
        };
        assert_eq!(
            store
                .forget_applied_before("counter", "ch", before)
                .unwrap(),
            2
        );
        assert!(!store.was_applied("counter", &marker(2, 2)).unwrap());
        assert!(store.was_applied("counter", &marker(3, 3)).unwrap());
    }

    #[test]
    fn concurrent_increments_of_one_key_conflict_and_none_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        // Two calls read the counter at 0 before either commits.
        let first = increments(&store, "c", b"n", 1);
        let second = increments(&store, "c", b"n", 2);
        assert_eq!(
            store.commit(&[first, second]).unwrap(),
            [Committed::Applied, Committed::Conflict]
        );
        assert_eq!(store.get("c", b"n").unwrap(), Some(b"1".to_vec()));
        assert!(
            !store.was_applied("c", &marker(2, 2)).unwrap(),
            "the conflicting message is not marked"
        );
        // Handled again, it sees the first one's write.
        let retried = increments(&store, "c", b"n", 2);
        assert_eq!(store.commit(&[retried]).unwrap(), [Committed::Applied]);
        assert_eq!(store.get("c", b"n").unwrap(), Some(b"2".to_vec()));
    }

    #[test]
    fn clearing_a_plugin_leaves_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let group = [
            increments(&store, "gone", b"k", 1),
            increments(&store, "kept", b"k", 1),
        ];
        store.commit(&group).unwrap();
        store.clear("gone").unwrap();
        assert_eq!(store.get("gone", b"k").unwrap(), None);
        assert_eq!(store.totals("gone").unwrap(), Totals::default());
        assert!(!store.was_applied("gone", &marker(1, 1)).unwrap());
        assert_eq!(store.get("kept", b"k").unwrap(), Some(b"1".to_vec()));
        drop(store);
        let store = open(dir.path());
        assert_eq!(store.get("gone", b"k").unwrap(), None);
        assert_eq!(store.totals("kept").unwrap(), Totals { bytes: 2, keys: 1 });
    }
}
