//! The store's commit journal: an append-only file that each group of
//! commits is written to as one record (record.rs), with one `write` (and
//! in durable mode one `fdatasync`), before its messages' FINs. Only the
//! journal is written per group: the values reach fjall's partitions
//! later, many groups at once, when the store applies them (store.rs);
//! then the journal starts a new file and the old one is deleted.
//!
//! Each record is framed as `length: u32 LE`, `crc32: u32 LE` of the
//! record, then the record, so that opening the store can tell a record
//! cut short by a crash (or damaged on disk) from a whole one: the file is
//! read up to the first record that is not whole. A crash between the
//! start of a new file and the deletion of the old one leaves both;
//! replaying both is harmless, as records hold values, not differences.
//!
//! Files are `commits/NNNNNNNNNNNNNNNNNNNN.journal` (a number growing by
//! one per file) in the store's directory, which fjall shares: it only
//! reads its own `journals` and `partitions` there.
//!
//! Before the journal, a group was an fjall batch of a `log` partition
//! value: the same write to the OS, plus a copy into fjall's memtable, its
//! journal's framing, and a deletion later. That cost a counter about 60
//! ns per message (bench/README.md, "Plugin state").

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::limits::StateError;
use super::plugin_store::io;

/// Bytes before each record: its length and checksum.
const HEADER: usize = 8;

const SUFFIX: &str = ".journal";

pub struct Journal {
    dir: PathBuf,
    file: File,
    number: u64,
    /// Bytes in the current file.
    bytes: u64,
    /// The record being built ([`Journal::record`]), after room for its
    /// header; kept across groups.
    buffer: Vec<u8>,
    /// fdatasync each record (durable mode).
    durable: bool,
    /// In the default mode: when the file was last fdatasynced, and
    /// whether a record was written since ([`Journal::sync_due`]).
    synced_at: Instant,
    unsynced: bool,
    /// A write failed and could not be taken back: nothing more is
    /// appended to this file (a record after a partial one would never be
    /// read), until the next file.
    broken: bool,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("number", &self.number)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

/// What opening the journal found: its files, oldest first.
#[derive(Debug, Default)]
pub struct Found {
    files: Vec<(u64, PathBuf)>,
}

impl Found {
    /// Reads each file's whole records in order, calling `apply` per
    /// record. Returns how many records there were, and how many files
    /// ended in a record that was not whole (cut short by a crash).
    pub fn replay(
        &self,
        mut apply: impl FnMut(&[u8]) -> Result<(), StateError>,
    ) -> Result<(usize, usize), StateError> {
        let (mut records, mut torn) = (0, 0);
        for (_, path) in &self.files {
            let bytes = std::fs::read(path).map_err(io)?;
            let (whole, cut) = whole_records(&bytes);
            for record in whole {
                apply(record)?;
                records += 1;
            }
            torn += usize::from(cut);
        }
        Ok((records, torn))
    }
}

/// The whole records of a journal file's `bytes`, in order, up to the
/// first that is not, and whether one was not (a torn or damaged tail).
pub fn whole_records(bytes: &[u8]) -> (Vec<&[u8]>, bool) {
    let (mut records, mut rest) = (Vec::new(), bytes);
    while let Some((record, after)) = whole_record(rest) {
        records.push(record);
        rest = after;
    }
    (records, !rest.is_empty())
}

/// The first record of `bytes` and what follows it, if it is whole.
fn whole_record(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let header = bytes.get(..HEADER)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    let record = bytes.get(HEADER..HEADER.checked_add(len)?)?;
    (crc32fast::hash(record) == crc).then(|| (record, &bytes[HEADER + len..]))
}

fn file_name(number: u64) -> String {
    format!("{number:020}{SUFFIX}")
}

impl Journal {
    /// The journal files in `dir` (none if it does not exist).
    pub fn find(dir: &Path) -> Result<Found, StateError> {
        let mut files = Vec::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::default()),
            Err(e) => return Err(io(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io)?;
            let name = entry.file_name();
            let number = name
                .to_str()
                .and_then(|name| name.strip_suffix(SUFFIX))
                .and_then(|number| number.parse::<u64>().ok());
            if let Some(number) = number {
                files.push((number, entry.path()));
            }
        }
        files.sort_unstable();
        Ok(Found { files })
    }

    /// Starts a new file after `found` (whose records are applied, and
    /// durably so), and deletes `found`'s files.
    pub fn start(dir: &Path, found: Found, durable: bool) -> Result<Journal, StateError> {
        if !dir.is_dir() {
            std::fs::create_dir_all(dir).map_err(io)?;
            if let Some(parent) = dir.parent().filter(|_| durable) {
                sync_dir(parent)?;
            }
        }
        let number = found.files.last().map_or(0, |(number, _)| number + 1);
        let file = create(dir, number, durable)?;
        let journal = Journal {
            dir: dir.to_path_buf(),
            file,
            number,
            bytes: 0,
            buffer: vec![0; HEADER],
            durable,
            synced_at: Instant::now(),
            unsynced: false,
            broken: false,
        };
        for (_, path) in found.files {
            std::fs::remove_file(path).map_err(io)?;
        }
        Ok(journal)
    }

    /// The record being built: empty, for [`super::record`]'s `put_*`.
    pub fn record(&mut self) -> &mut Vec<u8> {
        self.buffer.truncate(HEADER);
        &mut self.buffer
    }

    /// Appends the record built, written to the OS (and fdatasynced in
    /// durable mode) before it returns. On an error nothing of it counts:
    /// the file is cut back to before it.
    pub fn append(&mut self) -> Result<(), StateError> {
        if self.broken {
            return Err(StateError::Io(
                "the plugin state journal could not be written; waiting for the next file".into(),
            ));
        }
        let len = u32::try_from(self.buffer.len() - HEADER)
            .map_err(|_| StateError::Io("a group of state commits over 4 GiB".into()))?;
        let crc = crc32fast::hash(&self.buffer[HEADER..]);
        self.buffer[..4].copy_from_slice(&len.to_le_bytes());
        self.buffer[4..HEADER].copy_from_slice(&crc.to_le_bytes());
        let written = self.file.write_all(&self.buffer).and_then(|()| {
            if self.durable {
                self.file.sync_data()
            } else {
                Ok(())
            }
        });
        match written {
            Ok(()) => {
                self.bytes += self.buffer.len() as u64;
                self.unsynced = !self.durable;
                Ok(())
            }
            Err(error) => {
                // Without the cut, the records after a partial one would
                // not be read.
                if self.file.set_len(self.bytes).is_err() {
                    self.broken = true;
                }
                Err(io(error))
            }
        }
    }

    /// Bytes in the current file: what a crash now would make the next
    /// start replay.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// In the default mode, once `every` has passed since the last sync
    /// and records were written since: a handle to the current file, to
    /// fdatasync it without holding the journal.
    pub fn sync_due(&mut self, every: Duration) -> Option<Result<File, StateError>> {
        if self.durable || !self.unsynced || self.synced_at.elapsed() < every {
            return None;
        }
        self.synced_at = Instant::now();
        self.unsynced = false;
        Some(self.file.try_clone().map_err(io))
    }

    /// Everything in the journal has been applied (durably in durable
    /// mode): starts the next file and deletes the current one.
    pub fn rotate(&mut self) -> Result<(), StateError> {
        let next = create(&self.dir, self.number + 1, self.durable)?;
        let old = self.dir.join(file_name(self.number));
        self.file = next;
        self.number += 1;
        self.bytes = 0;
        self.broken = false;
        std::fs::remove_file(old).map_err(io)
    }
}

/// Creates journal file `number` in `dir`; in durable mode its directory
/// entry is fsynced too, or the records fdatasynced into it could be lost
/// with the entry in a power loss.
fn create(dir: &Path, number: u64, durable: bool) -> Result<File, StateError> {
    let file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(dir.join(file_name(number)))
        .map_err(io)?;
    if durable {
        sync_dir(dir)?;
    }
    Ok(file)
}

/// fsyncs directory `dir`: the entries made in it survive a power loss.
fn sync_dir(dir: &Path) -> Result<(), StateError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(journal: &mut Journal, bytes: &[u8]) {
        journal.record().extend_from_slice(bytes);
        journal.append().unwrap();
    }

    fn replayed(dir: &Path) -> (Vec<Vec<u8>>, usize) {
        let mut records = Vec::new();
        let (count, torn) = Journal::find(dir)
            .unwrap()
            .replay(|record| {
                records.push(record.to_vec());
                Ok(())
            })
            .unwrap();
        assert_eq!(count, records.len());
        (records, torn)
    }

    #[test]
    fn records_replay_in_order_up_to_a_torn_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::start(dir.path(), Found::default(), true).unwrap();
        append(&mut journal, b"first");
        append(&mut journal, b"second");
        let whole = journal.bytes();
        append(&mut journal, b"third, cut short");
        drop(journal);
        let path = dir.path().join(file_name(0));
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(whole + 10).unwrap();
        assert_eq!(
            replayed(dir.path()),
            (vec![b"first".to_vec(), b"second".to_vec()], 1)
        );

        // A damaged byte in a record: read up to it.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER + 1] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(replayed(dir.path()), (Vec::new(), 1));
    }

    #[test]
    fn the_default_modes_sync_is_due_only_after_a_record_and_its_period() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::start(dir.path(), Found::default(), false).unwrap();
        assert!(
            journal.sync_due(Duration::ZERO).is_none(),
            "nothing written"
        );
        append(&mut journal, b"a");
        assert!(
            journal.sync_due(Duration::from_secs(3600)).is_none(),
            "too soon"
        );
        journal
            .sync_due(Duration::ZERO)
            .unwrap()
            .unwrap()
            .sync_data()
            .unwrap();
        assert!(journal.sync_due(Duration::ZERO).is_none(), "synced since");
        let durable = tempfile::tempdir().unwrap();
        let mut journal = Journal::start(durable.path(), Found::default(), true).unwrap();
        append(&mut journal, b"a");
        assert!(
            journal.sync_due(Duration::ZERO).is_none(),
            "each record synced"
        );
    }

    #[test]
    fn a_new_start_continues_the_numbers_and_deletes_what_was_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::start(dir.path(), Found::default(), false).unwrap();
        append(&mut journal, b"a");
        journal.rotate().unwrap();
        assert_eq!(journal.bytes(), 0);
        append(&mut journal, b"b");
        drop(journal);
        assert_eq!(
            replayed(dir.path()),
            (vec![b"b".to_vec()], 0),
            "file 0 deleted"
        );
        let found = Journal::find(dir.path()).unwrap();
        let mut journal = Journal::start(dir.path(), found, false).unwrap();
        assert_eq!(journal.number, 2);
        assert_eq!(replayed(dir.path()), (Vec::new(), 0));
        append(&mut journal, b"c");
        // A crash between a new file and the deletion of the old one.
        std::fs::write(dir.path().join(file_name(1)), b"").unwrap();
        assert_eq!(replayed(dir.path()), (vec![b"c".to_vec()], 0));
        assert_eq!(
            Journal::find(&dir.path().join("none")).unwrap().files.len(),
            0
        );
    }
}
