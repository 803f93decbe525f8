//! Opening the store after a crash: what the journal holds is applied to
//! fjall's partitions before the journal starts anew (store.rs), and what
//! an earlier version left in its `log` partition once.

use std::collections::HashMap;

use fjall::{Batch, Keyspace, PartitionHandle, PersistMode};

use super::journal::Found;
use super::layout::{encode_totals, marker_key, plugin_partition};
use super::limits::StateError;
use super::plugin_store::io;
use super::record::{Entry, read_legacy_record, read_record};

/// One replay: a batch of everything found, made durable at once.
struct Replay<'a> {
    keyspace: &'a Keyspace,
    batch: Batch,
    /// The plugins' partitions, opened once each.
    partitions: HashMap<String, PartitionHandle>,
    records: usize,
}

impl<'a> Replay<'a> {
    fn new(keyspace: &'a Keyspace) -> Replay<'a> {
        Replay {
            keyspace,
            batch: keyspace.batch(),
            partitions: HashMap::new(),
            records: 0,
        }
    }

    /// `key` of `plugin` set to `value` (`None`: deleted).
    fn change(&mut self, plugin: &str, key: &[u8], value: Option<&[u8]>) -> Result<(), StateError> {
        if !self.partitions.contains_key(plugin) {
            let partition = plugin_partition(self.keyspace, plugin)?;
            self.partitions.insert(plugin.to_owned(), partition);
        }
        let partition = &self.partitions[plugin];
        match value {
            Some(value) => self.batch.insert(partition, key, value),
            None => self.batch.remove(partition, key),
        }
        Ok(())
    }

    /// Commits and fsyncs the batch if anything was found in `place`.
    fn finish(self, place: &str) -> Result<(), StateError> {
        if self.records > 0 {
            self.batch.commit().map_err(io)?;
            self.keyspace.persist(PersistMode::SyncAll).map_err(io)?;
            tracing::info!(
                records = self.records,
                "STATE: replayed the commits {place}"
            );
        }
        Ok(())
    }
}

/// Applies what a crash left in the journal, durably (its files go when
/// the journal starts anew).
pub(super) fn replay_journal(
    keyspace: &Keyspace,
    meta: &PartitionHandle,
    applied: &PartitionHandle,
    found: &Found,
) -> Result<(), StateError> {
    let mut replay = Replay::new(keyspace);
    let (records, torn) = found.replay(|record| {
        read_record(record, |entry| {
            match entry {
                Entry::Change { plugin, key, value } => replay.change(plugin, key, value)?,
                Entry::Marker { plugin, marker } => {
                    let key = marker_key(plugin, &marker.channel, marker.location);
                    replay.batch.insert(applied, key, marker.id.0);
                }
                Entry::Totals { plugin, totals } => {
                    replay.batch.insert(meta, plugin, encode_totals(totals));
                }
            }
            Ok(())
        })
    })?;
    replay.records = records;
    replay.finish("a crash left in the journal")?;
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
    let mut replay = Replay::new(keyspace);
    for entry in log.iter() {
        let (number, record) = entry.map_err(io)?;
        read_legacy_record(&record, |plugin, key, value| {
            replay.change(plugin, key, value)
        })?;
        replay.batch.remove(log, number);
        replay.records += 1;
    }
    replay.finish("an earlier version left in its log")
}
