//! One plugin's keys in memory: the working set that commits go to.
//!
//! A commit is written to the store's log (one record per group of
//! commits) and its values land here; they reach the plugin's partition
//! later, many commits at once, when the store applies its log
//! (store.rs). Until then a value is *dirty*: only here and in the log.
//! Keys read from the partition are kept here too, *clean*, so a hot key
//! costs a hash lookup; past [`MAX_CLEAN_BYTES`] the clean ones are
//! dropped and fill again.
//!
//! Each entry remembers the commit that last changed it (its sequence
//! number), which is the conflict check between a plugin's instances: a
//! call's commit is refused if another call changed what it read since it
//! first looked (a call commits once, so a change since is another's). So
//! every committed result is one a serial run could have produced: two
//! counters incremented at once never lose an increment.
//! Changes whose entries were dropped are no longer known: a call whose
//! snapshot is older than the drop conflicts (it cannot be shown not to).

use std::collections::BTreeSet;
use std::hash::BuildHasher;
use std::ops::Bound;
use std::sync::OnceLock;

use hashbrown::HashTable;

use super::limits::StateBytes;

/// Clean entries kept at most (keys, values and per-entry overhead).
const MAX_CLEAN_BYTES: usize = 64 << 20;
const ENTRY_OVERHEAD: usize = 64;

/// The hash of a key: one function for a call's keys and the plugin's
/// keys in memory, so a key's hash is computed once per call that touches
/// it. Seeded at random once per process (a guest cannot choose keys that
/// collide).
pub fn key_hash(key: &[u8]) -> u64 {
    static HASHER: OnceLock<foldhash::fast::FixedState> = OnceLock::new();
    HASHER
        .get_or_init(|| {
            let seed = std::collections::hash_map::RandomState::new().hash_one(0u8);
            foldhash::fast::FixedState::with_seed(seed)
        })
        .hash_one(key)
}

/// One key: a cache line (a read of a key the call has not seen is a
/// random access into thousands of these: one line, one miss).
#[derive(Debug)]
#[repr(align(64))]
struct Entry {
    key: StateBytes,
    /// The value (`None`: no value).
    value: Option<StateBytes>,
    /// The commit that last changed it (0 for a value read from the
    /// partition), and in its top bit whether it is dirty (not yet in the
    /// partition; its key is in `dirty`).
    seq_dirty: u64,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 64);

const DIRTY: u64 = 1 << 63;

impl Entry {
    fn size(&self) -> usize {
        size(&self.key, &self.value)
    }

    fn seq(&self) -> u64 {
        self.seq_dirty & !DIRTY
    }

    fn dirty(&self) -> bool {
        self.seq_dirty & DIRTY != 0
    }
}

/// Whether two keys are equal: most keys are a few bytes, compared here
/// without the call to `memcmp` a slice comparison makes (a lookup
/// compares at least once, and a handler looks up keys per message).
#[inline]
pub fn same_key(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.len() > 16 {
        return a == b;
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

fn rehash(entry: &Entry) -> u64 {
    key_hash(&entry.key)
}

/// Keys from `prefix` on, for a range of the dirty set.
fn from(prefix: &[u8]) -> (Bound<&[u8]>, Bound<&[u8]>) {
    (Bound::Included(prefix), Bound::Unbounded)
}

fn size(key: &[u8], value: &Option<StateBytes>) -> usize {
    key.len() + value.as_ref().map_or(0, |v| v.len()) + ENTRY_OVERHEAD
}

#[derive(Debug, Default)]
pub struct HotKeys {
    entries: HashTable<Entry>,
    /// Keys whose values are not yet in the partition, in key order (a
    /// scan merges them over the partition's).
    dirty: BTreeSet<StateBytes>,
    dirty_bytes: usize,
    clean_bytes: usize,
    /// Bumped whenever clean entries are dropped: a fill read before is
    /// not taken.
    generation: u64,
    /// Changes at or below this sequence number may have been dropped.
    forgotten_through: u64,
    /// The sequence number through which dirty values were applied: a
    /// change up to it is no longer in `dirty`.
    applied_through: u64,
}

impl HotKeys {
    fn entry(&self, hash: u64, key: &[u8]) -> Option<&Entry> {
        self.entries.find(hash, |entry| same_key(&entry.key, key))
    }

    /// The value of `key` (hashed: `hash`) if known here (`Some(None)`:
    /// it has none).
    pub fn get(&self, hash: u64, key: &[u8]) -> Option<Option<StateBytes>> {
        // Not `clone`: smallvec clones byte by byte.
        let copy = |value: &[u8]| StateBytes::from_slice(value);
        self.entry(hash, key)
            .map(|entry| entry.value.as_deref().map(copy))
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// A value read from the partition at `generation`: kept unless
    /// entries were dropped since or a commit put a newer one first.
    pub fn fill(&mut self, hash: u64, key: &[u8], value: Option<StateBytes>, generation: u64) {
        if generation != self.generation || self.entry(hash, key).is_some() {
            return;
        }
        let entry = Entry {
            key: StateBytes::from_slice(key),
            value,
            seq_dirty: 0,
        };
        self.clean_bytes += entry.size();
        self.entries.insert_unique(hash, entry, rehash);
        self.bound();
    }

    /// Whether a key of `keys` (hash, key) or one under `prefixes` may
    /// have changed after commit `snapshot`: what a call that looked at
    /// them then conflicts with.
    pub fn changed_since<'a>(
        &self,
        snapshot: u64,
        mut keys: impl Iterator<Item = (u64, &'a [u8])>,
        prefixes: &[Vec<u8>],
    ) -> bool {
        if snapshot < self.forgotten_through {
            return true;
        }
        let newer = |entry: &Entry| entry.seq() > snapshot;
        if keys.any(|(hash, key)| self.entry(hash, key).is_some_and(newer)) {
            return true;
        }
        prefixes.iter().any(|prefix| {
            let dirty = self
                .dirty_keys_under(prefix)
                .any(|key| self.entry(key_hash(key), key).is_some_and(newer));
            // Changes applied since the snapshot left `dirty`: look at
            // every entry (rare: only a scan spanning an apply).
            dirty
                || snapshot < self.applied_through
                    && self
                        .entries
                        .iter()
                        .any(|entry| entry.key.starts_with(prefix) && newer(entry))
        })
    }

    /// Takes commit `seq` setting `key` (hashed: `hash`) to `value`
    /// (`None`: deleting it): dirty until applied.
    pub fn commit(&mut self, hash: u64, key: StateBytes, value: Option<StateBytes>, seq: u64) {
        let added = size(&key, &value);
        match self.entries.find_mut(hash, |e| same_key(&e.key, &key)) {
            Some(entry) => {
                if entry.dirty() {
                    self.dirty_bytes -= entry.size();
                } else {
                    self.clean_bytes -= entry.size();
                    self.dirty.insert(key);
                }
                entry.value = value;
                entry.seq_dirty = seq | DIRTY;
            }
            None => {
                self.dirty.insert(StateBytes::from_slice(&key));
                let entry = Entry {
                    key,
                    value,
                    seq_dirty: seq | DIRTY,
                };
                self.entries.insert_unique(hash, entry, rehash);
            }
        }
        self.dirty_bytes += added;
    }

    pub fn dirty_bytes(&self) -> usize {
        self.dirty_bytes
    }

    /// The dirty keys and values, in key order: what an apply writes.
    pub fn dirty(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        self.dirty.iter().map(|key| (&**key, self.dirty_value(key)))
    }

    /// The dirty entries under `prefix`, in key order (`None`: deleted).
    pub fn dirty_under(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        self.dirty_keys_under(prefix)
            .map(|key| (key.to_vec(), self.dirty_value(key).map(<[u8]>::to_vec)))
            .collect()
    }

    /// The dirty keys under `prefix`, in key order.
    fn dirty_keys_under<'a>(&'a self, prefix: &'a [u8]) -> impl Iterator<Item = &'a StateBytes> {
        self.dirty
            .range::<[u8], _>(from(prefix))
            .take_while(move |key| key.starts_with(prefix))
    }

    /// The value of dirty `key` (`None`: deleted).
    fn dirty_value(&self, key: &[u8]) -> Option<&[u8]> {
        self.entry(key_hash(key), key)?.value.as_deref()
    }

    /// The dirty values are in the partition now (commits through `seq`).
    pub fn applied(&mut self, seq: u64) {
        for key in std::mem::take(&mut self.dirty) {
            let entry = self
                .entries
                .find_mut(key_hash(&key), |e| same_key(&e.key, &key));
            if let Some(entry) = entry {
                entry.seq_dirty &= !DIRTY;
            }
        }
        self.clean_bytes += std::mem::take(&mut self.dirty_bytes);
        self.applied_through = seq;
        self.bound();
    }

    /// Forgets everything (the plugin's state was deleted).
    pub fn forget(&mut self, seq: u64) {
        *self = HotKeys {
            generation: self.generation + 1,
            forgotten_through: seq,
            applied_through: seq,
            ..HotKeys::default()
        };
    }

    /// Drops the clean entries once they take more than their share.
    fn bound(&mut self) {
        if self.clean_bytes <= MAX_CLEAN_BYTES {
            return;
        }
        let mut forgotten = self.forgotten_through;
        self.entries.retain(|entry| {
            let keep = entry.dirty();
            if !keep {
                forgotten = forgotten.max(entry.seq());
            }
            keep
        });
        self.forgotten_through = forgotten;
        self.clean_bytes = 0;
        self.generation += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(value: &[u8]) -> Option<StateBytes> {
        Some(value.into())
    }

    fn changed(hot: &HotKeys, snapshot: u64, key: &[u8], prefixes: &[&[u8]]) -> bool {
        let prefixes: Vec<Vec<u8>> = prefixes.iter().map(|p| p.to_vec()).collect();
        hot.changed_since(snapshot, [(key_hash(key), key)].into_iter(), &prefixes)
    }

    #[test]
    fn a_change_after_the_snapshot_conflicts_by_key_and_by_prefix() {
        let mut hot = HotKeys::default();
        hot.commit(key_hash(b"sum/1"), b"sum/1"[..].into(), set(b"1"), 5);
        assert!(changed(&hot, 4, b"sum/1", &[]), "changed after snapshot 4");
        assert!(!changed(&hot, 5, b"sum/1", &[]), "seen by snapshot 5");
        assert!(!changed(&hot, 4, b"other", &[]));
        assert!(
            changed(&hot, 4, b"other", &[b"sum/"]),
            "dirty, under the prefix"
        );
        assert!(!changed(&hot, 4, b"other", &[b"timer/"]));
        hot.applied(5);
        assert!(
            changed(&hot, 4, b"other", &[b"sum/"]),
            "applied since the snapshot: found among the clean entries"
        );
        assert_eq!(
            hot.get(key_hash(b"sum/1"), b"sum/1"),
            Some(Some(b"1"[..].into()))
        );
    }

    #[test]
    fn dropping_clean_entries_keeps_dirty_ones_and_makes_older_snapshots_conflict() {
        let mut hot = HotKeys::default();
        hot.commit(key_hash(b"old"), b"old"[..].into(), set(b"1"), 5);
        hot.applied(5);
        hot.commit(key_hash(b"new"), b"new"[..].into(), set(b"2"), 6);
        let before = hot.generation();
        // One fill past the clean entries' share drops every clean entry.
        let big = StateBytes::from_vec(vec![0; MAX_CLEAN_BYTES]);
        hot.fill(key_hash(b"big"), b"big", Some(big), before);
        assert_eq!(hot.get(key_hash(b"old"), b"old"), None, "clean: dropped");
        assert_eq!(hot.get(key_hash(b"big"), b"big"), None, "clean: dropped");
        assert!(hot.get(key_hash(b"new"), b"new").is_some(), "dirty: kept");
        assert!(
            changed(&hot, 4, b"never", &[]),
            "older than what was dropped"
        );
        assert!(!changed(&hot, 5, b"never", &[]));
        hot.fill(key_hash(b"old"), b"old", Some(b"stale"[..].into()), before);
        assert_eq!(
            hot.get(key_hash(b"old"), b"old"),
            None,
            "a read from before the drop is not taken"
        );
    }
}
