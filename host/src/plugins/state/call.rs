//! One handler call's view of its plugin's state: the store, under the
//! writes the call's messages made, before they commit with the
//! messages' FINs (or are dropped with a retry, a dead-letter or a trap).
//!
//! A single call has one message; a batch call (`wasq_handle_batch`) has
//! many. Each key the call touches has one slot holding its value as the
//! call sees it: what the store had when the call first looked, or the
//! call's latest write. Every write also leaves an undo record (the
//! message, the value it replaced), so a read costs one hash lookup at any
//! message of a batch, and a message that fails has its writes undone as
//! soon as its outcome is seen, before the next message reads them. The
//! commit hands the slots over as they are: each written one carries the
//! last write of a message that succeeded.
//!
//! A message's writes are attributed to the message under way, the first
//! of the batch without an outcome, which only moves on; so the undo
//! records are in message order and a failed message's are the last ones.
//!
//! Every write is checked against the plugin's limits as it is made, with
//! the plugin's committed totals plus what this call adds, so a guest
//! learns at the write that went over, not at the commit. A counter is
//! kept as decimal text ("42").

use super::PluginState;
use super::commit::{Commit, Marker, Touched};
use super::hot::{key_hash, same_key};
use super::limits::{Entries, StateBytes, StateError, TotalsDelta, parse_counter};
use super::overlay::overlay;

/// The most entries one scan returns.
pub const MAX_SCAN: usize = 10_000;

/// What a write replaced, to undo it if its message fails.
#[derive(Debug)]
struct Undo {
    /// The message's index in the call.
    message: usize,
    slot: usize,
    /// The slot's value before the write, and whether that was a write.
    previous: Option<StateBytes>,
    previous_written: bool,
}

#[derive(Debug, Default)]
pub struct CallState {
    /// The store's commit sequence number when the call first looked,
    /// and the call's number (see [`Commit::call`]).
    started: Option<(u64, u64)>,
    /// The slots by key (indices into `slots`, hashed by their key).
    keys: hashbrown::HashTable<usize>,
    /// Every key touched, in the order first touched.
    slots: Vec<Touched>,
    /// Every live write, in order.
    undo: Vec<Undo>,
    prefixes: Vec<Vec<u8>>,
    /// What the live writes change in the plugin's totals.
    delta: TotalsDelta,
    /// The last call's slots and writes: room made at once for the next
    /// (a batch call's thousands, without growing step by step).
    last_sizes: (usize, usize),
}

/// What a finished call leaves to commit.
#[derive(Debug, Default)]
pub struct CallWrites {
    snapshot: u64,
    call: u64,
    slots: Vec<Touched>,
    undo: Vec<Undo>,
    prefixes: Vec<Vec<u8>>,
    delta: TotalsDelta,
}

impl CallWrites {
    /// The commit of the writes of the messages at `successes` (indices,
    /// ascending), with a marker (`marker_of`) for each that wrote, and
    /// those messages; `None` if they wrote nothing (a message that only
    /// read needs no commit: handling it again changes nothing committed).
    pub fn commit(
        mut self,
        state: &PluginState,
        successes: &[usize],
        marker_of: impl Fn(usize) -> Option<Marker>,
    ) -> Option<(Commit, Vec<usize>)> {
        let mut succeeded = vec![false; successes.last().map_or(0, |&last| last + 1)];
        for &index in successes {
            succeeded[index] = true;
        }
        // The last messages' outcomes were not seen during the call: the
        // writes of those that did not succeed are the last ones.
        let failed = |message: usize| succeeded.get(message) != Some(&true);
        undo_last(&mut self.slots, &mut self.undo, &mut self.delta, failed);
        // In message order: each writer once.
        let mut writers: Vec<usize> = Vec::new();
        for undo in &self.undo {
            if writers.last() != Some(&undo.message) {
                writers.push(undo.message);
            }
        }
        if writers.is_empty() {
            return None;
        }
        let markers = writers
            .iter()
            .filter_map(|&index| marker_of(index))
            .collect();
        let commit = Commit {
            plugin: state.plugin.clone(),
            keys: self.slots,
            prefixes: self.prefixes,
            markers,
            delta: self.delta,
            snapshot: self.snapshot,
            call: self.call,
        };
        Some((commit, writers))
    }
}

/// Undoes the last writes, as long as their message is one of `undone`:
/// puts back what each replaced in `slots`, and takes it out of `delta`.
fn undo_last(
    slots: &mut [Touched],
    undo: &mut Vec<Undo>,
    delta: &mut TotalsDelta,
    undone: impl Fn(usize) -> bool,
) {
    while let Some(last) = undo.pop_if(|last| undone(last.message)) {
        let slot = &mut slots[last.slot];
        let change = TotalsDelta::replacing(
            slot.key.len(),
            slot.value.as_deref(),
            last.previous.as_deref(),
        );
        *delta = delta.plus(change);
        slot.value = last.previous;
        slot.written = last.previous_written;
    }
}

impl CallState {
    /// Undoes message `index`'s writes (its outcome was a failure). They
    /// are the last ones: no later message has written yet.
    pub fn discard(&mut self, index: usize) {
        debug_assert!(
            self.undo.last().is_none_or(|last| last.message <= index),
            "a later message wrote first"
        );
        let this = |message: usize| message == index;
        undo_last(&mut self.slots, &mut self.undo, &mut self.delta, this);
    }

    /// Drops whatever a call left (one that ended without a commit),
    /// keeping the room made for it.
    pub fn clear(&mut self) {
        drop(self.finish());
    }

    /// Ends the call: what it wrote, for the commit. The state is empty
    /// again for the next call.
    pub fn finish(&mut self) -> CallWrites {
        if self.started.is_some() {
            self.last_sizes = (self.slots.len(), self.undo.len());
        }
        let (snapshot, call) = self.started.take().unwrap_or_default();
        // The table keeps its room for the next call.
        self.keys.clear();
        CallWrites {
            snapshot,
            call,
            slots: std::mem::take(&mut self.slots),
            undo: std::mem::take(&mut self.undo),
            prefixes: std::mem::take(&mut self.prefixes),
            delta: std::mem::take(&mut self.delta),
        }
    }

    pub fn get(
        &mut self,
        state: &PluginState,
        _index: usize,
        key: &[u8],
    ) -> Result<Option<StateBytes>, StateError> {
        state.limits.check_key(key)?;
        let slot = self.slot(state, key)?;
        Ok(self.value_of(slot).map(StateBytes::from_slice))
    }

    pub fn set(
        &mut self,
        state: &PluginState,
        index: usize,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), StateError> {
        state.limits.check_key(key)?;
        state.limits.check_value(value)?;
        let slot = self.slot(state, key)?;
        self.write(state, index, slot, Some(StateBytes::from_slice(value)))
    }

    /// Deletes `key`; true if it had a value. Never over a limit.
    pub fn delete(
        &mut self,
        state: &PluginState,
        index: usize,
        key: &[u8],
    ) -> Result<bool, StateError> {
        state.limits.check_key(key)?;
        let slot = self.slot(state, key)?;
        let had = self.value_of(slot).is_some();
        self.write(state, index, slot, None)?;
        Ok(had)
    }

    /// Adds `by` to the counter at `key` (absent: 0) and returns the new
    /// value; the value must be a decimal i64 ([`StateError::NotANumber`]
    /// otherwise) and the sum must not overflow.
    pub fn increment(
        &mut self,
        state: &PluginState,
        index: usize,
        key: &[u8],
        by: i64,
    ) -> Result<i64, StateError> {
        state.limits.check_key(key)?;
        let slot = self.slot(state, key)?;
        let current = self.value_of(slot).map_or(Ok(0), parse_counter)?;
        let new = current.checked_add(by).ok_or(StateError::NotANumber)?;
        let text = StateBytes::from_slice(itoa::Buffer::new().format(new).as_bytes());
        self.write(state, index, slot, Some(text))?;
        Ok(new)
    }

    /// Up to `limit` (at most [`MAX_SCAN`]) entries under `prefix`, in
    /// key order, as this call sees them.
    pub fn scan(
        &mut self,
        state: &PluginState,
        _index: usize,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Entries, StateError> {
        let limit = limit.min(MAX_SCAN);
        self.begin(state);
        if !self.prefixes.iter().any(|p| p == prefix) {
            self.prefixes.push(prefix.to_vec());
        }
        let mut written: Vec<(&[u8], Option<&[u8]>)> = self
            .slots
            .iter()
            .filter(|slot| slot.written && slot.key.starts_with(prefix))
            .map(|slot| (&*slot.key, slot.value.as_deref()))
            .collect();
        written.sort_unstable_by_key(|&(key, _)| key);
        overlay(&written, limit, |asked| state.plugin.scan(prefix, asked))
    }

    /// Starts the call's snapshot at its first use of the state.
    fn begin(&mut self, state: &PluginState) {
        if self.started.is_none() {
            self.started = Some((state.store.snapshot(), state.store.new_call()));
            self.slots.reserve(self.last_sizes.0);
            self.undo.reserve(self.last_sizes.1);
        }
    }

    /// `key`'s slot, made (with the committed value) at the first look.
    fn slot(&mut self, state: &PluginState, key: &[u8]) -> Result<usize, StateError> {
        let hash = key_hash(key);
        let slots = &self.slots;
        if let Some(&slot) = self
            .keys
            .find(hash, |&slot| same_key(&slots[slot].key, key))
        {
            return Ok(slot);
        }
        self.begin(state);
        let value = state.plugin.get_hashed(hash, key)?;
        let slot = self.slots.len();
        self.slots.push(Touched {
            key: StateBytes::from_slice(key),
            hash,
            value,
            written: false,
        });
        let slots = &self.slots;
        self.keys
            .insert_unique(hash, slot, |&slot| slots[slot].hash);
        Ok(slot)
    }

    /// The value of `slot` as the call sees it now.
    fn value_of(&self, slot: usize) -> Option<&[u8]> {
        self.slots[slot].value.as_deref()
    }

    /// Records message `index`'s write of `value` (`None`: deleting) at
    /// `slot` if the plugin's total stays within its limit.
    fn write(
        &mut self,
        state: &PluginState,
        index: usize,
        slot: usize,
        value: Option<StateBytes>,
    ) -> Result<(), StateError> {
        let key_len = self.slots[slot].key.len();
        let added = TotalsDelta::replacing(key_len, self.value_of(slot), value.as_deref());
        let delta = self.delta.plus(added);
        if added.bytes > 0 {
            state
                .limits
                .check_total(delta.applied_to(state.plugin.totals()))?;
        }
        self.delta = delta;
        let current = &mut self.slots[slot];
        self.undo.push(Undo {
            message: index,
            slot,
            previous: std::mem::replace(&mut current.value, value),
            previous_written: std::mem::replace(&mut current.written, true),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::plugins::state::commit::Touched;
    use crate::plugins::state::limits::{StateLimits, Totals};
    use crate::plugins::state::store::StateStore;

    fn state(dir: &std::path::Path, max_total_bytes: u64) -> PluginState {
        let store = Arc::new(StateStore::open(dir, false, Duration::from_secs(1)).unwrap());
        let limits = StateLimits {
            max_key_bytes: 8,
            max_value_bytes: 32,
            max_total_bytes,
        };
        PluginState::detached(&store, "p", limits)
    }

    fn changes(commit: &Commit) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let mut changes: Vec<_> = commit
            .changes()
            .map(|(key, value)| (key.to_vec(), value.map(<[u8]>::to_vec)))
            .collect();
        changes.sort();
        changes
    }

    #[test]
    fn a_batch_reads_earlier_writes_and_commits_only_its_successes() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path(), 1 << 20);
        let mut call = CallState::default();
        assert_eq!(call.increment(&state, 0, b"n", 1), Ok(1));
        call.set(&state, 0, b"a", b"zero").unwrap();
        assert_eq!(call.increment(&state, 1, b"n", 1), Ok(2), "sees message 0");
        call.set(&state, 1, b"b", b"one").unwrap();
        // Message 1 failed: undone before message 2 reads.
        call.discard(1);
        assert_eq!(call.get(&state, 2, b"b").unwrap(), None);
        assert_eq!(call.increment(&state, 2, b"n", 10), Ok(11));
        assert!(call.delete(&state, 2, b"a").unwrap());
        // Message 3 wrote and read; its outcome (a failure) came late.
        call.set(&state, 3, b"c", b"three").unwrap();
        let writes = call.finish();
        let (commit, writers) = writes.commit(&state, &[0, 2], |_| None).unwrap();
        assert_eq!(writers, [0, 2]);
        assert_eq!(
            changes(&commit),
            [(b"a".to_vec(), None), (b"n".to_vec(), Some(b"11".to_vec()))]
        );
        assert_eq!(
            commit.delta,
            TotalsDelta { bytes: 3, keys: 1 },
            "n=11 added; a added and deleted"
        );
        let looked: Vec<&[u8]> = commit.keys.iter().map(|t: &Touched| &*t.key).collect();
        assert_eq!(
            looked.len(),
            4,
            "every key looked at is checked: {looked:?}"
        );
    }

    #[test]
    fn only_messages_that_wrote_commit_and_a_call_of_readers_commits_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path(), 1 << 20);
        let mut call = CallState::default();
        call.get(&state, 0, b"k").unwrap();
        call.set(&state, 1, b"k", b"v").unwrap();
        let (commit, writers) = call
            .finish()
            .commit(&state, &[0, 1], |index| {
                Some(Marker {
                    channel: "c".into(),
                    location: wasq_storage::Location {
                        segment: index as u64,
                        offset: 0,
                    },
                    id: crate::broker::message::MessageId([index as u8; 16]),
                })
            })
            .unwrap();
        assert_eq!(writers, [1]);
        assert_eq!(commit.markers.len(), 1, "a marker for the writer only");
        let mut readers = CallState::default();
        readers.get(&state, 0, b"k").unwrap();
        assert!(readers.finish().commit(&state, &[0], |_| None).is_none());
        let mut failed = CallState::default();
        failed.set(&state, 0, b"k", b"v").unwrap();
        assert!(failed.finish().commit(&state, &[], |_| None).is_none());
    }

    #[test]
    fn limits_refuse_the_write_that_goes_over_and_keep_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path(), 12);
        let mut call = CallState::default();
        assert_eq!(
            call.set(&state, 0, b"toolongkey", b""),
            Err(StateError::KeyTooLarge)
        );
        assert_eq!(call.set(&state, 0, b"", b"v"), Err(StateError::EmptyKey));
        assert_eq!(
            call.set(&state, 0, b"k", &[0; 33]),
            Err(StateError::ValueTooLarge)
        );
        call.set(&state, 0, b"k", &[0; 9]).unwrap();
        assert_eq!(
            call.set(&state, 0, b"j", &[0; 2]),
            Err(StateError::OverLimit),
            "10 + 3 over the limit of 12"
        );
        call.set(&state, 0, b"k", &[0; 1]).unwrap();
        call.set(&state, 0, b"j", &[0; 2]).unwrap();
        let (commit, _) = call.finish().commit(&state, &[0], |_| None).unwrap();
        assert_eq!(changes(&commit).len(), 2, "the refused writes left nothing");
        assert_eq!(
            commit.delta.applied_to(Totals::default()),
            Totals { bytes: 5, keys: 2 }
        );
    }

    #[test]
    fn increments_count_in_decimal_text_and_refuse_other_values() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path(), 1 << 20);
        let mut call = CallState::default();
        assert_eq!(call.increment(&state, 0, b"n", 5), Ok(5));
        assert_eq!(call.increment(&state, 0, b"n", -7), Ok(-2));
        assert_eq!(
            call.get(&state, 0, b"n").unwrap().as_deref(),
            Some(&b"-2"[..])
        );
        call.set(&state, 0, b"t", b"forty").unwrap();
        assert_eq!(
            call.increment(&state, 0, b"t", 1),
            Err(StateError::NotANumber)
        );
        call.set(&state, 0, b"x", i64::MAX.to_string().as_bytes())
            .unwrap();
        assert_eq!(
            call.increment(&state, 0, b"x", 1),
            Err(StateError::NotANumber),
            "overflow"
        );
    }

    #[test]
    fn a_scan_merges_the_calls_writes_with_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path(), 1 << 20);
        let mut seed = CallState::default();
        for (key, value) in [(b"p/a", b"1"), (b"p/b", b"2"), (b"p/c", b"3")] {
            seed.set(&state, 0, key, value).unwrap();
        }
        let (commit, _) = seed.finish().commit(&state, &[0], |_| None).unwrap();
        state.store.commit(vec![commit]).unwrap();
        let mut call = CallState::default();
        call.set(&state, 0, b"p/b", b"new").unwrap();
        call.set(&state, 0, b"q/x", b"other").unwrap();
        call.delete(&state, 0, b"p/c").unwrap();
        assert_eq!(
            call.scan(&state, 0, b"p/", 2).unwrap(),
            vec![
                (b"p/a".to_vec(), b"1".to_vec()),
                (b"p/b".to_vec(), b"new".to_vec())
            ]
        );
        assert_eq!(call.scan(&state, 0, b"p/", 10).unwrap().len(), 2);
    }
}
