//! Where plugin state lives: one fjall keyspace in the data path
//! (`plugin-state/`), chosen by measurement over redb (bench/README.md,
//! "Plugin state: which embedded store"), with a journal in front of it
//! (`plugin-state/commits/`, journal.rs).
//!
//! - partition `state.NAME`: plugin NAME's keys and values;
//! - partition `meta`: per plugin, its [`Totals`] (bytes, keys), so they
//!   are known without a scan;
//! - partition `applied`: a marker per message whose writes committed:
//!   key plugin NAME, NUL, channel, NUL, the message's location in the
//!   channel's disk queue (segment, offset: big-endian, so markers sort as
//!   the queue does); value the message id. A message delivered again
//!   from that location after a crash (or after its FIN was refused) is
//!   recognised and finished without its handler counting it twice.
//!   Markers before the channel's durably saved read checkpoint can never
//!   match again and are forgotten;
//! - partition `log`: where earlier versions kept their records; replayed
//!   once if a store they left has any.
//!
//! A group of commits (committer.rs) is checked for conflicts (hot.rs),
//! then written to the journal as one record: its changes, markers and
//! totals, fsynced in durable mode, else written to the OS. Only then do
//! its values land in the plugins' keys in memory, where reads find them,
//! and its markers in the `applied` partition (not yet durable there).
//! Every [`APPLY_EVERY`] (or sooner, past [`APPLY_LOG_BYTES`]) the values
//! written since are applied to the partitions, each key once however
//! often it changed, with the totals, in one fjall batch made durable
//! with the markers before it; then the journal starts a new file.
//! Opening the store replays what a crash left in the journal
//! (replay.rs). State is kept by plugin name: it outlives reloads and the
//! plugin's removal, until [`StateStore::clear`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fjall::{Config, Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};
use parking_lot::Mutex;
use wasq_storage::Location;

pub use super::commit::{Commit, Committed, Marker};
use super::journal::Journal;
use super::layout::{
    decode_totals, encode_totals, marker_key, marker_location, markers_of, plugin_partition,
};
use super::limits::{Entries, StateBytes, StateError, Totals};
use super::plugin_store::{PluginStore, io};
use super::record::{put_changes, put_marker, put_totals};
use super::replay::{replay_journal, replay_legacy_log};

/// How often the journal is applied to the partitions at least.
const APPLY_EVERY: Duration = Duration::from_secs(1);

/// How often the commit thread looks whether an apply is due.
pub const APPLY_CHECK: Duration = Duration::from_millis(50);

/// Journal bytes (or one plugin's values in memory not yet applied) past
/// which an apply does not wait for [`APPLY_EVERY`]: what a crash makes
/// the next start replay, and what memory holds twice, stays small.
const APPLY_LOG_BYTES: usize = 16 << 20;

/// Deletions per batch when a plugin's state is cleared.
const CLEAR_BATCH: usize = 10_000;

pub struct StateStore {
    keyspace: Keyspace,
    meta: PartitionHandle,
    applied: PartitionHandle,
    /// Open plugins by name.
    plugins: Mutex<HashMap<String, Arc<PluginStore>>>,
    /// The commit side: one group at a time.
    writer: Mutex<Writer>,
    /// The last commit sequence number whose writes are visible.
    visible: AtomicU64,
    /// Numbers handler calls (see [`Commit::call`]).
    calls: AtomicU64,
    /// The last location with a marker, by plugin and channel (the
    /// [`markers_of`] of both): read from `applied` at the first question,
    /// then raised by every commit. A message read from disk past it
    /// cannot have committed, so only a message delivered again (at or
    /// before it) costs a look-up in `applied`.
    last_marked: Mutex<HashMap<Vec<u8>, Option<Location>>>,
    /// fsync each group (durable mode) rather than write it to the OS.
    durable: bool,
    /// How often the journal is fdatasynced in the default mode.
    fsync_every: Duration,
}

/// The commit side: the journal (whatever its current file holds is not
/// yet applied), and the values in memory not yet applied.
#[derive(Debug)]
struct Writer {
    journal: Journal,
    /// The most bytes of values not yet applied that a plugin holds.
    dirty_bytes: usize,
    last_apply: Instant,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore").finish_non_exhaustive()
    }
}

/// The keys a group's commits wrote so far, by plugin (its address) and
/// key, with the call that wrote them.
type GroupWrites<'a> = HashMap<(usize, &'a [u8]), u64, foldhash::fast::RandomState>;

/// Whether `commit` touched what an earlier commit of its group (of
/// another call) wrote: that one is newer than its snapshot.
fn conflicts_in_group(written: &GroupWrites<'_>, commit: &Commit) -> bool {
    let plugin = Arc::as_ptr(&commit.plugin) as usize;
    let other = |call: &u64| *call != commit.call;
    commit
        .keys
        .iter()
        .any(|touched| written.get(&(plugin, &*touched.key)).is_some_and(other))
        || commit.prefixes.iter().any(|prefix| {
            written
                .iter()
                .any(|(&(p, key), call)| p == plugin && key.starts_with(prefix) && other(call))
        })
}

impl StateStore {
    /// Opens (or creates) the store in `dir`, replaying what a crash left
    /// in its log. `durable`: each commit is fsynced before it counts;
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
        let open = |name: &str| {
            keyspace
                .open_partition(name, PartitionCreateOptions::default())
                .map_err(io)
        };
        let (meta, applied) = (open("meta")?, open("applied")?);
        replay_legacy_log(&keyspace, &open("log")?)?;
        let journal_dir = dir.join("commits");
        let found = Journal::find(&journal_dir)?;
        replay_journal(&keyspace, &meta, &applied, &found)?;
        let journal = Journal::start(&journal_dir, found, durable)?;
        Ok(StateStore {
            meta,
            applied,
            keyspace,
            plugins: Mutex::new(HashMap::new()),
            writer: Mutex::new(Writer {
                journal,
                dirty_bytes: 0,
                last_apply: Instant::now(),
            }),
            visible: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            last_marked: Mutex::new(HashMap::new()),
            durable,
            fsync_every,
        })
    }

    /// Whether each commit is fsynced before it counts.
    pub fn durable(&self) -> bool {
        self.durable
    }

    fn persist_mode(&self) -> PersistMode {
        if self.durable {
            PersistMode::SyncAll
        } else {
            PersistMode::Buffer
        }
    }

    /// The sequence number a call starting to read now sees through.
    pub fn snapshot(&self) -> u64 {
        self.visible.load(Ordering::Acquire)
    }

    /// A number for a new handler call.
    pub fn new_call(&self) -> u64 {
        self.calls.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Plugin `name`'s part of the store, opened on first use.
    pub fn plugin(&self, name: &str) -> Result<Arc<PluginStore>, StateError> {
        let mut plugins = self.plugins.lock();
        if let Some(plugin) = plugins.get(name) {
            return Ok(plugin.clone());
        }
        let partition = plugin_partition(&self.keyspace, name)?;
        let totals = self
            .meta
            .get(name)
            .map_err(io)?
            .map_or_else(Totals::default, |v| decode_totals(&v));
        let plugin = Arc::new(PluginStore::new(name, partition, totals));
        plugins.insert(name.to_string(), plugin.clone());
        Ok(plugin)
    }

    pub fn get(&self, plugin: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.plugin(plugin)?.get(key)?.map(StateBytes::into_vec))
    }

    /// Up to `limit` entries whose keys start with `prefix`, in key order.
    pub fn scan(&self, plugin: &str, prefix: &[u8], limit: usize) -> Result<Entries, StateError> {
        self.plugin(plugin)?.scan(prefix, limit)
    }

    /// Plugin `plugin`'s committed totals.
    pub fn totals(&self, plugin: &str) -> Result<Totals, StateError> {
        Ok(self.plugin(plugin)?.totals())
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

    /// The last location of `channel` whose message's writes `plugin`
    /// committed (`None`: none): no message after it has a marker. Stale
    /// only upwards (markers forgotten or cleared since), which costs a
    /// look-up, never a message counted twice.
    pub fn last_marked(&self, plugin: &str, channel: &str) -> Result<Option<Location>, StateError> {
        let prefix = markers_of(plugin, Some(channel));
        let mut known = self.last_marked.lock();
        if let Some(last) = known.get(&prefix) {
            return Ok(*last);
        }
        // Under the lock: a commit meanwhile raises what this reads (its
        // marker is in `applied` before it raises the entry).
        let last = match self.applied.prefix(&prefix).next_back() {
            Some(entry) => marker_location(&entry.map_err(io)?.0),
            None => None,
        };
        known.insert(prefix, last);
        Ok(last)
    }

    /// Raises the known last markers to those `commits` made (already in
    /// `applied`). An entry not yet read from `applied` is left to that
    /// read, which sees them.
    fn raise_last_marked<'a>(&self, commits: impl Iterator<Item = &'a Commit>) {
        let mut known = self.last_marked.lock();
        if known.is_empty() {
            return;
        }
        for commit in commits {
            let mut markers = commit.markers.iter().peekable();
            while let Some(first) = markers.next() {
                // A call's markers are mostly of one channel: one look-up.
                let mut last = first.location;
                while let Some(next) = markers.next_if(|m| m.channel == first.channel) {
                    last = last.max(next.location);
                }
                let prefix = markers_of(&commit.plugin.name, Some(&first.channel));
                if let Some(entry) = known.get_mut(&prefix) {
                    *entry = (*entry).max(Some(last));
                }
            }
        }
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

    /// Checks `group` and commits the commits that do not conflict as one
    /// journal record (fsynced in durable mode): their changes, markers
    /// and their plugins' new totals; then makes their values visible.
    pub fn commit(&self, group: Vec<Commit>) -> Result<Vec<Committed>, StateError> {
        let mut writer = self.writer.lock();
        let writer = &mut *writer;
        let mut outcomes = Vec::with_capacity(group.len());
        let mut written = GroupWrites::default();
        // Mostly one plugin: looked up in a list.
        let mut totals: Vec<(&PluginStore, Totals)> = Vec::new();
        let mut markers = self.keyspace.batch();
        let visible = self.visible.load(Ordering::Acquire);
        let record = writer.journal.record();
        for commit in &group {
            // Nothing committed since the call first looked (one worker
            // alone, mostly): nothing to conflict with.
            let checked = commit.snapshot < visible || !written.is_empty();
            let keys = commit.keys.iter().map(|t| (t.hash, &*t.key));
            if checked
                && (commit
                    .plugin
                    .hot()
                    .changed_since(commit.snapshot, keys, &commit.prefixes)
                    || conflicts_in_group(&written, commit))
            {
                outcomes.push(Committed::Conflict);
                continue;
            }
            outcomes.push(Committed::Applied);
            let plugin = &*commit.plugin;
            if group.len() > 1 {
                let id = Arc::as_ptr(&commit.plugin) as usize;
                for (key, _) in commit.changes() {
                    written.insert((id, key), commit.call);
                }
            }
            put_changes(record, &plugin.name, commit.changes());
            for marker in &commit.markers {
                put_marker(record, &plugin.name, marker);
                let key = marker_key(&plugin.name, &marker.channel, marker.location);
                markers.insert(&self.applied, key, marker.id.0);
            }
            match totals.iter_mut().find(|(p, _)| std::ptr::eq(*p, plugin)) {
                Some((_, before)) => *before = commit.delta.applied_to(*before),
                None => totals.push((plugin, commit.delta.applied_to(plugin.totals()))),
            }
        }
        if totals.is_empty() {
            return Ok(outcomes);
        }
        for (plugin, totals) in &totals {
            put_totals(record, &plugin.name, *totals);
        }
        writer.journal.append()?;
        if !markers.is_empty() {
            // Found by `was_applied` from now on; made durable by the next
            // apply before the journal record goes, or replayed from it.
            // The commit is durable already: a failure here is told, not
            // undone.
            if let Err(error) = markers.commit() {
                tracing::error!(error = %error, "STATE: cannot note the committed messages' markers; a message delivered again before a restart may be handled again");
            }
            let applied = group.iter().zip(&outcomes);
            self.raise_last_marked(
                applied
                    .filter(|(_, o)| **o == Committed::Applied)
                    .map(|(c, _)| c),
            );
        }
        for (plugin, totals) in totals {
            plugin.set_totals(totals);
        }
        drop(written);
        let mut seq = visible;
        let mut dirty_bytes = 0;
        let applied = group.into_iter().zip(&outcomes);
        for (commit, _) in applied.filter(|(_, o)| **o == Committed::Applied) {
            seq += 1;
            let mut hot = commit.plugin.hot();
            for touched in commit.keys.into_iter().filter(|t| t.written) {
                hot.commit(touched.hash, touched.key, touched.value, seq);
            }
            dirty_bytes = dirty_bytes.max(hot.dirty_bytes());
        }
        self.visible.store(seq, Ordering::Release);
        writer.dirty_bytes = writer.dirty_bytes.max(dirty_bytes);
        Ok(outcomes)
    }

    /// Applies the journal if it was not applied for [`APPLY_EVERY`], or
    /// if it (or a plugin's values not yet applied) outgrew
    /// [`APPLY_LOG_BYTES`]; in the default mode, fdatasyncs it every
    /// `fsync_every`. The commit thread asks after every group and every
    /// [`APPLY_CHECK`], so a worker never waits for an apply it did not
    /// need.
    pub fn apply_if_due(&self) {
        let mut writer = self.writer.lock();
        let journal_bytes = usize::try_from(writer.journal.bytes()).unwrap_or(usize::MAX);
        let due = writer.last_apply.elapsed() >= APPLY_EVERY
            || journal_bytes.max(writer.dirty_bytes) >= APPLY_LOG_BYTES;
        if journal_bytes > 0 && due {
            self.apply_logged(&mut writer);
        }
        let Some(file) = writer.journal.sync_due(self.fsync_every) else {
            return;
        };
        // Synced without the lock: commits go on meanwhile.
        drop(writer);
        if let Err(error) = file.and_then(|file| file.sync_data().map_err(io)) {
            tracing::warn!(error = %error, "STATE: cannot fdatasync the plugin state journal");
        }
    }

    /// [`StateStore::apply`], a failure logged (the records stay in the
    /// journal and are applied later, or replayed at the next start).
    fn apply_logged(&self, writer: &mut Writer) {
        if let Err(error) = self.apply(writer) {
            tracing::error!(error = %error, "STATE: cannot apply the journal to the plugins' partitions; retrying later");
        }
    }

    /// Writes every plugin's values changed since the last apply to its
    /// partition, with the markers and totals, in one batch; then starts
    /// the journal's next file.
    fn apply(&self, writer: &mut Writer) -> Result<(), StateError> {
        writer.last_apply = Instant::now();
        if writer.journal.bytes() == 0 {
            return Ok(());
        }
        let plugins: Vec<Arc<PluginStore>> = self.plugins.lock().values().cloned().collect();
        let mut batch = self.keyspace.batch();
        for plugin in &plugins {
            let hot = plugin.hot();
            for (key, value) in hot.dirty() {
                match value {
                    Some(value) => batch.insert(plugin.partition(), key, value),
                    None => batch.remove(plugin.partition(), key),
                }
            }
            batch.insert(&self.meta, &*plugin.name, encode_totals(plugin.totals()));
        }
        batch.commit().map_err(io)?;
        self.keyspace.persist(self.persist_mode()).map_err(io)?;
        let seq = self.visible.load(Ordering::Acquire);
        for plugin in &plugins {
            plugin.hot().applied(seq);
        }
        writer.dirty_bytes = 0;
        // Until the journal starts anew, its records are applied again at
        // the next apply's end or at a start (harmless: they hold values).
        writer.journal.rotate()
    }

    /// Deletes every key, marker and total of `plugin` (the operator's
    /// `DELETE /plugins/NAME/state`), durably. Returns how many keys went.
    pub fn clear(&self, name: &str) -> Result<u64, StateError> {
        let mut writer = self.writer.lock();
        // Nothing of the plugin's may wait in the journal to come back.
        self.apply(&mut writer)?;
        let plugin = self.plugin(name)?;
        let keys = plugin.totals().keys;
        // Key by key (a partition dropped and made again under the same
        // name is not something fjall promises), in batches of bounded
        // size; the totals go last, so a crash in between leaves totals
        // that only overstate what is left.
        let partition = plugin.partition();
        let prefix = markers_of(name, None);
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
        batch.remove(&self.meta, name);
        batch.commit().map_err(io)?;
        self.keyspace.persist(PersistMode::SyncAll).map_err(io)?;
        plugin.set_totals(Totals::default());
        plugin.hot().forget(self.visible.load(Ordering::Acquire));
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::message::MessageId;
    use crate::plugins::state::PluginState;
    use crate::plugins::state::call::CallState;
    use crate::plugins::state::limits::StateLimits;

    const LIMITS: StateLimits = StateLimits {
        max_key_bytes: 64,
        max_value_bytes: 64,
        max_total_bytes: 1 << 20,
    };

    fn open(dir: &Path) -> Arc<StateStore> {
        Arc::new(StateStore::open(dir, true, Duration::from_secs(1)).unwrap())
    }

    fn state(store: &Arc<StateStore>, name: &str) -> PluginState {
        PluginState::detached(store, name, LIMITS)
    }

    fn marker(segment: u64, id: u8) -> Marker {
        Marker {
            channel: "ch".into(),
            location: Location { segment, offset: 0 },
            id: MessageId([id; 16]),
        }
    }

    /// One call of one message incrementing `key`, marked as message `id`.
    fn increments(state: &PluginState, key: &[u8], id: u8) -> Commit {
        let mut call = CallState::default();
        call.increment(state, 0, key, 1).unwrap();
        let marked = Some(marker(u64::from(id), id));
        call.finish()
            .commit(state, &[0], |_| marked.clone())
            .unwrap()
            .0
    }

    #[test]
    fn commits_survive_a_reopen_applied_or_only_logged() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            let (counter, other) = (state(&store, "counter"), state(&store, "other"));
            let group = vec![
                increments(&counter, b"k/a", 1),
                increments(&counter, b"k/b", 2),
                increments(&other, b"k/a", 1),
            ];
            assert_eq!(store.commit(group).unwrap(), [Committed::Applied; 3]);
            store.apply(&mut store.writer.lock()).unwrap();
            // Logged, not applied: a crash now leaves it to the replay.
            let again = vec![increments(&counter, b"k/a", 3)];
            store.commit(again).unwrap();
            assert_eq!(store.get("counter", b"k/a").unwrap(), Some(b"2".to_vec()));
        }
        let store = open(dir.path());
        assert_eq!(store.get("counter", b"k/a").unwrap(), Some(b"2".to_vec()));
        let left = Journal::find(&dir.path().join("commits")).unwrap();
        assert_eq!(
            left.replay(|_| Ok(())).unwrap(),
            (0, 0),
            "the replay started the journal anew"
        );
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
    fn the_last_marker_is_read_once_then_raised_by_commits() {
        let dir = tempfile::tempdir().unwrap();
        let at = |segment| Some(Location { segment, offset: 0 });
        {
            let store = open(dir.path());
            let counter = state(&store, "counter");
            let group = vec![
                increments(&counter, b"k/a", 5),
                increments(&counter, b"k/b", 2),
            ];
            store.commit(group).unwrap();
            // Known only from `applied` (a commit raises what was read).
            assert_eq!(store.last_marked("counter", "ch").unwrap(), at(5));
            store.commit(vec![increments(&counter, b"k/a", 7)]).unwrap();
            assert_eq!(store.last_marked("counter", "ch").unwrap(), at(7));
            store.commit(vec![increments(&counter, b"k/a", 6)]).unwrap();
            assert_eq!(
                store.last_marked("counter", "ch").unwrap(),
                at(7),
                "an earlier place delivered again does not lower it"
            );
        }
        let store = open(dir.path());
        assert_eq!(store.last_marked("counter", "ch").unwrap(), at(7));
        assert_eq!(store.last_marked("counter", "other").unwrap(), None);
        assert_eq!(store.last_marked("another", "ch").unwrap(), None);
    }

    #[test]
    fn a_scan_sees_values_not_yet_applied_over_the_partition() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let plugin = state(&store, "p");
        let mut call = CallState::default();
        for key in [&b"s/a"[..], b"s/b", b"s/c", b"t/x"] {
            call.set(&plugin, 0, key, b"old").unwrap();
        }
        let first = call.finish().commit(&plugin, &[0], |_| None).unwrap().0;
        store.commit(vec![first]).unwrap();
        store.apply(&mut store.writer.lock()).unwrap();
        let mut call = CallState::default();
        call.set(&plugin, 0, b"s/b", b"new").unwrap();
        call.delete(&plugin, 0, b"s/a").unwrap();
        call.set(&plugin, 0, b"s/d", b"added").unwrap();
        let second = call.finish().commit(&plugin, &[0], |_| None).unwrap().0;
        store.commit(vec![second]).unwrap();
        let entries = |pairs: &[(&str, &str)]| -> Entries {
            pairs
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect()
        };
        assert_eq!(
            store.scan("p", b"s/", 2).unwrap(),
            entries(&[("s/b", "new"), ("s/c", "old")])
        );
        assert_eq!(
            store.scan("p", b"s/", 10).unwrap(),
            entries(&[("s/b", "new"), ("s/c", "old"), ("s/d", "added")])
        );
        assert_eq!(store.totals("p").unwrap(), Totals { bytes: 26, keys: 4 });
    }

    #[test]
    fn concurrent_increments_of_one_key_conflict_and_none_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let plugin = state(&store, "c");
        // Two calls read the counter at 0 before either commits: in one
        // group, and in two.
        let first = increments(&plugin, b"n", 1);
        let second = increments(&plugin, b"n", 2);
        assert_eq!(
            store.commit(vec![first, second]).unwrap(),
            [Committed::Applied, Committed::Conflict]
        );
        let late = increments(&plugin, b"n", 3);
        let later = increments(&plugin, b"n", 4);
        store.commit(vec![late]).unwrap();
        assert_eq!(store.commit(vec![later]).unwrap(), [Committed::Conflict]);
        assert_eq!(store.get("c", b"n").unwrap(), Some(b"2".to_vec()));
        assert!(
            !store.was_applied("c", &marker(2, 2)).unwrap(),
            "the conflicting message is not marked"
        );
        // Handled again, it sees the others' writes.
        let retried = increments(&plugin, b"n", 2);
        assert_eq!(store.commit(vec![retried]).unwrap(), [Committed::Applied]);
        assert_eq!(store.get("c", b"n").unwrap(), Some(b"3".to_vec()));
    }

    #[test]
    fn a_scan_conflicts_with_a_change_under_its_prefix_even_once_applied() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let plugin = state(&store, "w");
        let mut scanner = CallState::default();
        scanner.scan(&plugin, 0, b"sum/", 10).unwrap();
        scanner.set(&plugin, 0, b"total", b"0").unwrap();
        store
            .commit(vec![increments(&plugin, b"sum/1", 1)])
            .unwrap();
        store.apply(&mut store.writer.lock()).unwrap();
        let commit = scanner.finish().commit(&plugin, &[0], |_| None).unwrap().0;
        assert_eq!(store.commit(vec![commit]).unwrap(), [Committed::Conflict]);
    }

    #[test]
    fn records_an_earlier_version_left_in_its_log_are_replayed_once() {
        let dir = tempfile::tempdir().unwrap();
        {
            let keyspace = Config::new(dir.path()).open().unwrap();
            let log = keyspace
                .open_partition("log", PartitionCreateOptions::default())
                .unwrap();
            // plugin "old", one change: k = 7 (the earlier format).
            let mut record = vec![3, 0];
            record.extend_from_slice(b"old");
            record.extend_from_slice(&1u32.to_le_bytes());
            record.extend_from_slice(&[1, 0, b'k', 1, 1, 0, 0, 0, b'7']);
            log.insert(0u64.to_be_bytes(), record).unwrap();
            keyspace.persist(PersistMode::SyncAll).unwrap();
        }
        let store = open(dir.path());
        assert_eq!(store.get("old", b"k").unwrap(), Some(b"7".to_vec()));
        drop(store);
        let store = open(dir.path());
        assert_eq!(store.get("old", b"k").unwrap(), Some(b"7".to_vec()));
        let log = store
            .keyspace
            .open_partition("log", PartitionCreateOptions::default())
            .unwrap();
        assert_eq!(log.iter().count(), 0, "emptied");
    }

    #[test]
    fn clearing_a_plugin_leaves_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let (gone, kept) = (state(&store, "gone"), state(&store, "kept"));
        let group = vec![increments(&gone, b"k", 1), increments(&kept, b"k", 1)];
        store.commit(group).unwrap();
        store.clear("gone").unwrap();
        assert_eq!(store.get("gone", b"k").unwrap(), None);
        assert_eq!(store.totals("gone").unwrap(), Totals::default());
        assert!(!store.was_applied("gone", &marker(1, 1)).unwrap());
        assert_eq!(store.get("kept", b"k").unwrap(), Some(b"1".to_vec()));
        drop((gone, kept, store));
        let store = open(dir.path());
        assert_eq!(store.get("gone", b"k").unwrap(), None);
        assert_eq!(store.totals("kept").unwrap(), Totals { bytes: 2, keys: 1 });
    }
}
