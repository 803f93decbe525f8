//! One plugin's part of the store: its partition on disk, its keys in
//! memory (hot.rs) over it, and its committed totals. Handed to the
//! plugin's calls once, so a read goes straight to it without a lookup by
//! name.

use std::sync::Arc;

use fjall::PartitionHandle;
use parking_lot::{Mutex, MutexGuard};

use super::hot::{HotKeys, key_hash};
use super::limits::{Entries, StateBytes, StateError, Totals};
use super::overlay::overlay;

pub struct PluginStore {
    pub name: Arc<str>,
    partition: PartitionHandle,
    hot: Mutex<HotKeys>,
    totals: Mutex<Totals>,
}

impl std::fmt::Debug for PluginStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginStore")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

pub(super) fn io(error: impl std::fmt::Display) -> StateError {
    StateError::Io(error.to_string())
}

impl PluginStore {
    pub(super) fn new(name: &str, partition: PartitionHandle, totals: Totals) -> PluginStore {
        PluginStore {
            name: name.into(),
            partition,
            hot: Mutex::new(HotKeys::default()),
            totals: Mutex::new(totals),
        }
    }

    /// The committed value of `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<StateBytes>, StateError> {
        self.get_hashed(key_hash(key), key)
    }

    /// [`PluginStore::get`] of a key whose [`key_hash`] is known.
    pub fn get_hashed(&self, hash: u64, key: &[u8]) -> Result<Option<StateBytes>, StateError> {
        let generation = {
            let hot = self.hot.lock();
            if let Some(value) = hot.get(hash, key) {
                return Ok(value);
            }
            hot.generation()
        };
        let value = self
            .partition
            .get(key)
            .map_err(io)?
            .map(|v| StateBytes::from_slice(&v));
        let copy = value.as_deref().map(StateBytes::from_slice);
        self.hot.lock().fill(hash, key, copy, generation);
        Ok(value)
    }

    /// Up to `limit` committed entries whose keys start with `prefix`, in
    /// key order.
    pub fn scan(&self, prefix: &[u8], limit: usize) -> Result<Entries, StateError> {
        let dirty = self.hot.lock().dirty_under(prefix);
        let newer: Vec<(&[u8], Option<&[u8]>)> = dirty
            .iter()
            .map(|(key, value)| (key.as_slice(), value.as_deref()))
            .collect();
        overlay(&newer, limit, |asked| {
            self.partition
                .prefix(prefix)
                .take(asked)
                .map(|entry| entry.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(io))
                .collect()
        })
    }

    /// The committed totals.
    pub fn totals(&self) -> Totals {
        *self.totals.lock()
    }

    pub(super) fn set_totals(&self, totals: Totals) {
        *self.totals.lock() = totals;
    }

    pub(super) fn hot(&self) -> MutexGuard<'_, HotKeys> {
        self.hot.lock()
    }

    pub(super) fn partition(&self) -> &PartitionHandle {
        &self.partition
    }
}
