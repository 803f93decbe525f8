//! One handler call's view of its plugin's state: the store, under the
//! writes of the call's messages.
//!
//! A single call has one message; a batch call (`wasq_handle_batch`) has
//! many, and each message's writes are kept apart (a layer per message),
//! so each commits or is discarded with its own outcome. A message reads
//! the store under the writes of the batch's earlier messages (those that
//! failed were discarded as soon as their outcome was seen) and its own.
//! The earlier layers are merged into one view as the call moves on, so a
//! read costs the same at the thousandth message of a batch as at the
//! first.

use super::PluginState;
use super::limits::{Entries, StateError, Totals};
use super::pending::PendingWrites;
use super::store::{Commit, Marker};

/// The most entries one scan returns.
pub const MAX_SCAN: usize = 10_000;

#[derive(Debug, Default)]
pub struct CallState {
    /// The writes of each message of the call, by its index in the call.
    layers: Vec<PendingWrites>,
    /// The store's commit sequence number when the call first looked,
    /// and the call's number (see [`super::store::Commit::call`]).
    started: Option<(u64, u64)>,
    /// The writes of layers `..merged`, the later over the earlier.
    below: PendingWrites,
    merged: usize,
}

/// What a finished call leaves to commit: its snapshot and number, and
/// each message's writes, by index.
#[derive(Debug, Default)]
pub struct CallWrites {
    pub snapshot: u64,
    pub call: u64,
    pub layers: Vec<PendingWrites>,
}

impl CallWrites {
    /// The commits of the messages that succeeded, each with its marker:
    /// `(index, marker)` in order. Messages that wrote nothing commit
    /// nothing (and need no marker: handling one again changes nothing
    /// that was committed).
    pub fn commits(
        self,
        plugin: &std::sync::Arc<str>,
        successes: impl IntoIterator<Item = (usize, Option<Marker>)>,
    ) -> Vec<(usize, Commit)> {
        let mut layers: Vec<Option<PendingWrites>> = self.layers.into_iter().map(Some).collect();
        successes
            .into_iter()
            .filter_map(|(index, marker)| {
                let writes = layers.get_mut(index)?.take()?;
                (!writes.is_empty()).then(|| {
                    (
                        index,
                        Commit {
                            plugin: plugin.clone(),
                            writes,
                            marker,
                            snapshot: self.snapshot,
                            call: self.call,
                        },
                    )
                })
            })
            .collect()
    }
}

impl CallState {
    /// Drops message `index`'s writes (its outcome was a failure).
    pub fn discard(&mut self, index: usize) {
        if let Some(layer) = self.layers.get_mut(index) {
            *layer = PendingWrites::default();
            if index < self.merged {
                // Already in the merged view (not the way calls go): merge
                // again from the start.
                self.below = PendingWrites::default();
                self.merged = 0;
            }
        }
    }

    /// Ends the call: what it wrote, for the commit. The state is empty
    /// again for the next call.
    pub fn finish(&mut self) -> CallWrites {
        let (snapshot, call) = self.started.take().unwrap_or_default();
        self.below = PendingWrites::default();
        self.merged = 0;
        CallWrites {
            snapshot,
            call,
            layers: std::mem::take(&mut self.layers),
        }
    }

    /// Message `index`'s own writes, with the layers below it merged
    /// into [`CallState::below`]; starts the call's snapshot at its first
    /// use.
    fn own(&mut self, state: &PluginState, index: usize) -> &mut PendingWrites {
        self.started
            .get_or_insert_with(|| (state.store.snapshot(), state.store.new_call()));
        if self.layers.len() <= index {
            self.layers.resize_with(index + 1, PendingWrites::default);
        }
        while self.merged < index {
            self.below.absorb(&self.layers[self.merged]);
            self.merged += 1;
        }
        &mut self.layers[index]
    }

    pub fn get(
        &mut self,
        state: &PluginState,
        index: usize,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StateError> {
        state.limits.check_key(key)?;
        self.own(state, index);
        let (own, below) = (&mut self.layers[index], &self.below);
        own.get(key, |key| read_below(state, below, key))
    }

    pub fn set(
        &mut self,
        state: &PluginState,
        index: usize,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), StateError> {
        self.own(state, index);
        let totals = self.totals_below(state)?;
        let (own, below) = (&mut self.layers[index], &self.below);
        own.set(key, value.to_vec(), &state.limits, totals, |key| {
            read_below(state, below, key)
        })
    }

    pub fn delete(
        &mut self,
        state: &PluginState,
        index: usize,
        key: &[u8],
    ) -> Result<bool, StateError> {
        self.own(state, index);
        let (own, below) = (&mut self.layers[index], &self.below);
        own.delete(key, &state.limits, |key| read_below(state, below, key))
    }

    pub fn increment(
        &mut self,
        state: &PluginState,
        index: usize,
        key: &[u8],
        by: i64,
    ) -> Result<i64, StateError> {
        self.own(state, index);
        let totals = self.totals_below(state)?;
        let (own, below) = (&mut self.layers[index], &self.below);
        own.increment(key, by, &state.limits, totals, |key| {
            read_below(state, below, key)
        })
    }

    /// Up to `limit` (at most [`MAX_SCAN`]) entries under `prefix`.
    pub fn scan(
        &mut self,
        state: &PluginState,
        index: usize,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Entries, StateError> {
        let limit = limit.min(MAX_SCAN);
        self.own(state, index);
        let (own, below) = (&mut self.layers[index], &self.below);
        own.scan(prefix, limit, |prefix, limit| {
            scan_below(state, below, prefix, limit)
        })
    }

    /// The plugin's committed totals with the earlier messages' writes.
    fn totals_below(&self, state: &PluginState) -> Result<Totals, StateError> {
        Ok(self
            .below
            .delta()
            .applied_to(state.store.totals(&state.name)?))
    }
}

/// `key` as the store holds it under the merged earlier writes.
fn read_below(
    state: &PluginState,
    below: &PendingWrites,
    key: &[u8],
) -> Result<Option<Vec<u8>>, StateError> {
    match below.written(key) {
        Some(written) => Ok(written.map(<[u8]>::to_vec)),
        None => state.store.get(&state.name, key),
    }
}

/// Up to `limit` entries under `prefix` as the store holds them under the
/// merged earlier writes.
fn scan_below(
    state: &PluginState,
    below: &PendingWrites,
    prefix: &[u8],
    limit: usize,
) -> Result<Entries, StateError> {
    below.view(prefix, limit, |prefix, limit| {
        state.store.scan(&state.name, prefix, limit)
    })
}
