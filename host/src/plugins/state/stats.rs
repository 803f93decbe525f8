//! What a plugin's state did, for GET /plugins, /metrics and statsd (its
//! size and key count come from the store itself).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::limits::StateError;

/// The kinds of refusal, in the order `refused` counts them.
pub const REFUSALS: [&str; 6] = [
    "empty_key",
    "key_too_large",
    "value_too_large",
    "over_limit",
    "not_a_number",
    "io",
];

#[derive(Debug, Default)]
pub struct StateStats {
    /// Messages whose writes committed.
    pub committed: AtomicU64,
    /// Commits refused because another instance changed what the call
    /// read; the message was handled again.
    pub conflicts: AtomicU64,
    /// Messages delivered again after their writes had committed, finished
    /// without calling the handler.
    pub replayed: AtomicU64,
    /// Operations refused, by kind ([`REFUSALS`]).
    refused: [AtomicU64; REFUSALS.len()],
}

/// The counters as reported.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StateCountersView {
    pub committed: u64,
    pub conflicts: u64,
    pub replayed: u64,
    pub refused: BTreeMap<String, u64>,
}

impl StateStats {
    /// Counts a refused operation.
    pub fn refused(&self, error: &StateError) {
        if let Some(at) = REFUSALS.iter().position(|kind| *kind == error.kind()) {
            self.refused[at].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn view(&self) -> StateCountersView {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StateCountersView {
            committed: load(&self.committed),
            conflicts: load(&self.conflicts),
            replayed: load(&self.replayed),
            refused: REFUSALS
                .iter()
                .zip(&self.refused)
                .map(|(kind, count)| (kind.to_string(), load(count)))
                .collect(),
        }
    }
}
