//! Opening the store after a crash: what the journal holds is applied to
//! fjall's partitions before the journal starts anew (store.rs), and what
//! an earlier version left in its `log` partition once.

use std::collections::HashMap;

use fjall::{Keyspace, PartitionHandle, PersistMode};

use super::journal::Found;
use super::limits::StateError;
use super::plugin_store::io;
use super::record::{Entry, read_legacy_record, read_record};
use super::store::{encode_totals, marker_key, plugin_partition};

/// Applies what a crash left in the journal, durably (its files go when
/// the journal starts anew).
pub(super) fn replay_journal(
    keyspace: &Keyspace,
    meta: &PartitionHandle,
    applied: &PartitionHandle,
    found: &Found,
) -> Result<(), StateError> {
    let mut batch = keyspace.batch();
    let mut partitions: HashMap<String, PartitionHandle> = HashMap::new();
    let (records, torn) = found.replay(|record| {
        read_record(record, |entry| {
            match entry {
                Entry::Change { plugin, key, value } => {
                    if !partitions.contains_key(plugin) {
                        let partition = plugin_partition(keyspace, plugin)?;
                        partitions.insert(plugin.to_owned(), partition);
                    }
                    let partition = &partitions[plugin];
                    match value {
                        Some(value) => batch.insert(partition, key, value),
                        None => batch.remove(partition, key),
                    }
                }
                Entry::Marker { plugin, marker } => {
                    let key = marker_key(plugin, &marker.channel, marker.location);
                    batch.insert(applied, key, marker.id.0);
                }
                Entry::Totals { plugin, totals } => {
                    batch.insert(meta, plugin, encode_totals(totals));
                }
            }
            Ok(())
        })
    })?;
    if records > 0 {
        batch.commit().map_err(io)?;
        keyspace.persist(PersistMode::SyncAll).map_err(io)?;
        tracing::info!(
            records,
            "STATE: replayed the commits a crash left in the journal"
        );
    }
    if torn > 0 {
        tracing::warn!(
            files = torn,
            "STATE: the journal ended in a record cut short by a crash; its messages had not been finished"
        );
    }
    Ok(())
}

/// Applies the records an earlier version left in the `log` partition,
/// and empties it.
pub(super) fn replay_legacy_log(
    keyspace: &Keyspace,
    log: &PartitionHandle,
) -> Result<(), StateError> {
    let mut batch = keyspace.batch();
    let mut partitions: HashMap<String, PartitionHandle> = HashMap::new();
    let mut records = 0;
    for entry in log.iter() {
        let (number, record) = entry.map_err(io)?;
        read_legacy_record(&record, |plugin, key, value| {
            if !partitions.contains_key(plugin) {
                partitions.insert(plugin.to_owned(), plugin_partition(keyspace, plugin)?);
            }
            let partition = &partitions[plugin];
            match value {
                Some(value) => batch.insert(partition, key, value),
                None => batch.remove(partition, key),
            }
            Ok(())
        })?;
        batch.remove(log, number);
        records += 1;
    }
    if records > 0 {
        batch.commit().map_err(io)?;
        keyspace.persist(PersistMode::SyncAll).map_err(io)?;
        tracing::info!(
            records,
            "STATE: replayed the commits an earlier version left in its log"
        );
    }
    Ok(())
}
