//! Where the store keeps things in its fjall keyspace (store.rs): each
//! plugin's partition, the key of a message's marker, and how a plugin's
//! totals are written. One place for the store and its replay.

use fjall::{Keyspace, PartitionCreateOptions, PartitionHandle};
use wasq_storage::Location;

use super::limits::{StateError, Totals};
use super::plugin_store::io;

/// A plugin partition's memtable before it is flushed. Applies write each
/// changed key once a second (store.rs), so a smaller table than fjall's
/// default keeps flushes short.
const MEMTABLE_BYTES: u32 = 4 << 20;

/// Plugin `name`'s partition (`state.NAME`), made on first use.
pub(super) fn plugin_partition(
    keyspace: &Keyspace,
    name: &str,
) -> Result<PartitionHandle, StateError> {
    let partition_name = format!("state.{name}");
    if partition_name.len() > 255 || !crate::plugins::files::is_plugin_name(name) {
        return Err(StateError::Io(format!("{name:?}: no state for this name")));
    }
    keyspace
        .open_partition(
            &partition_name,
            PartitionCreateOptions::default().max_memtable_size(MEMTABLE_BYTES),
        )
        .map_err(io)
}

/// A plugin's totals as the `meta` partition keeps them: bytes, then
/// keys, u64 little-endian each.
pub(super) fn encode_totals(totals: Totals) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&totals.bytes.to_le_bytes());
    out[8..].copy_from_slice(&totals.keys.to_le_bytes());
    out
}

/// [`encode_totals`] read back (missing words: 0).
pub(super) fn decode_totals(bytes: &[u8]) -> Totals {
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
pub(super) fn markers_of(plugin: &str, channel: Option<&str>) -> Vec<u8> {
    let mut key = Vec::with_capacity(plugin.len() + 2 + 64 + 16);
    key.extend_from_slice(plugin.as_bytes());
    key.push(0);
    if let Some(channel) = channel {
        key.extend_from_slice(channel.as_bytes());
        key.push(0);
    }
    key
}

/// The marker key of the message at `at` in `channel`, for `plugin`.
pub(super) fn marker_key(plugin: &str, channel: &str, at: Location) -> Vec<u8> {
    let mut key = markers_of(plugin, Some(channel));
    key.extend_from_slice(&at.segment.to_be_bytes());
    key.extend_from_slice(&at.offset.to_be_bytes());
    key
}

/// The location at the end of a marker key (`marker_key`'s last 16
/// bytes); `None` if the key is too short to hold one.
pub(super) fn marker_location(key: &[u8]) -> Option<Location> {
    let at = key.len().checked_sub(16)?;
    let word = |from: usize| u64::from_be_bytes(key[from..from + 8].try_into().unwrap_or_default());
    Some(Location {
        segment: word(at),
        offset: word(at + 8),
    })
}
