//! One handler call's view of its plugin's state: the store, under the
//! writes of the call's messages.
//!
//! A single call has one message; a batch call (`wasq_handle_batch`) has
//! many, and each message's writes are kept apart (a layer per message),
//! so each commits or is discarded with its own outcome. A message reads
//! the store under the layers of the batch's earlier messages (those that
//! failed were discarded as soon as their outcome was seen) and its own.

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
        }
    }

    /// Ends the call: what it wrote, for the commit. The state is empty
    /// again for the next call.
    pub fn finish(&mut self) -> CallWrites {
        let (snapshot, call) = self.started.take().unwrap_or_default();
        CallWrites {
            snapshot,
            call,
            layers: std::mem::take(&mut self.layers),
        }
    }

    /// The layers below message `index` and its own, starting the call's
    /// snapshot at its first use.
    fn split(
        &mut self,
        state: &PluginState,
        index: usize,
    ) -> (&[PendingWrites], &mut PendingWrites) {
        self.started
            .get_or_insert_with(|| (state.store.snapshot(), state.store.new_call()));
        if self.layers.len() <= index {
            self.layers.resize_with(index + 1, PendingWrites::default);
        }
        let (below, rest) = self.layers.split_at_mut(index);
        (below, &mut rest[0])
    }

    pub fn get(
        &mut self,
        state: &PluginState,
        index: usize,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StateError> {
        state.limits.check_key(key)?;
        let (below, own) = self.split(state, index);
        own.get(key, |key| read_below(state, below, key))
    }

    pub fn set(
        &mut self,
        state: &PluginState,
        index: usize,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), StateError> {
        let totals = totals_below(state, &self.layers[..index.min(self.layers.len())])?;
        let (below, own) = self.split(state, index);
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
        let (below, own) = self.split(state, index);
        own.delete(key, &state.limits, |key| read_below(state, below, key))
    }

    pub fn increment(
        &mut self,
        state: &PluginState,
        index: usize,
        key: &[u8],
        by: i64,
    ) -> Result<i64, StateError> {
        let totals = totals_below(state, &self.layers[..index.min(self.layers.len())])?;
        let (below, own) = self.split(state, index);
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
        let (below, own) = self.split(state, index);
        own.scan(prefix, limit, |prefix, limit| {
            scan_below(state, below, prefix, limit)
        })
    }
}

/// `key` as the store holds it under `layers` (the newest layer last).
fn read_below(
    state: &PluginState,
    layers: &[PendingWrites],
    key: &[u8],
) -> Result<Option<Vec<u8>>, StateError> {
    for layer in layers.iter().rev() {
        if let Some(written) = layer.written(key) {
            return Ok(written.map(<[u8]>::to_vec));
        }
    }
    state.store.get(&state.name, key)
}

fn scan_below(
    state: &PluginState,
    layers: &[PendingWrites],
    prefix: &[u8],
    limit: usize,
) -> Result<Entries, StateError> {
    match layers.split_last() {
        None => state.store.scan(&state.name, prefix, limit),
        Some((top, rest)) => top.view(prefix, limit, |prefix, limit| {
            scan_below(state, rest, prefix, limit)
        }),
    }
}

/// The plugin's committed totals with `layers`' writes added.
fn totals_below(state: &PluginState, layers: &[PendingWrites]) -> Result<Totals, StateError> {
    let committed = state.store.totals(&state.name)?;
    Ok(layers
        .iter()
        .fold(committed, |totals, layer| layer.delta().applied_to(totals)))
}
