//! The write side of a disk queue: the segment receiving appends, and the
//! roll-over to a new one at `--max-bytes-per-file`.
//!
//! A segment is only ever appended to by the process that created it:
//! after a restart, appends go to a fresh segment, so a damaged tail is
//! never written after.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::sync::Arc;

use crate::files::QueueFiles;
use crate::sync::SyncState;

/// The segment receiving appends.
#[derive(Debug)]
struct WriteSegment {
    number: u64,
    file: Arc<File>,
    len: u64,
}

#[derive(Debug)]
pub struct SegmentWriter {
    current: Option<WriteSegment>,
    /// The number the next new segment gets.
    next_segment: u64,
    max_bytes_per_file: u64,
}

impl SegmentWriter {
    /// A writer whose first segment will be `next_segment`.
    pub fn new(next_segment: u64, max_bytes_per_file: u64) -> SegmentWriter {
        SegmentWriter {
            current: None,
            next_segment,
            max_bytes_per_file,
        }
    }

    /// The segment being appended to, if any.
    pub fn current_segment(&self) -> Option<u64> {
        self.current.as_ref().map(|w| w.number)
    }

    /// The number the next new segment gets (where reading waits when
    /// every segment was read).
    pub fn next_segment(&self) -> u64 {
        self.next_segment
    }

    /// Bytes the current segment can still take; a full one is rolled
    /// over first, so there is always room for at least one record.
    pub fn room_in_segment(&self) -> u64 {
        match &self.current {
            Some(w) if w.len < self.max_bytes_per_file => self.max_bytes_per_file - w.len,
            _ => self.max_bytes_per_file,
        }
    }

    /// Writes encoded records in one write to the current segment (rolling
    /// over first if they would not fit); returns the segment's number and
    /// the append's number for [`SyncState::sync_to`].
    pub fn write(
        &mut self,
        files: &QueueFiles,
        records: &[u8],
        sync: &SyncState,
    ) -> io::Result<(u64, u64)> {
        let segment = self.segment_for(files, records.len() as u64, sync)?;
        if let Err(e) = (&*segment.file).write_all(records) {
            // Cut off whatever part was written so the next append starts
            // on a record boundary; if even that fails, start a new segment.
            if segment.file.set_len(segment.len).is_err() {
                self.current = None;
            }
            return Err(e);
        }
        segment.len += records.len() as u64;
        let number = segment.number;
        let seq = sync.appended(&segment.file);
        Ok((number, seq))
    }

    /// Never append to `segment` again (damage was found in it).
    pub fn abandon(&mut self, segment: u64) {
        if self.current_segment() == Some(segment) {
            self.current = None;
        }
    }

    /// Forgets the current segment; the next append starts a new one.
    pub fn reset(&mut self) {
        self.current = None;
    }

    /// Stops appending to the current segment (its file stays with `sync`
    /// until fsynced) and hands out the next segment's number for a file
    /// the caller writes whole; appends continue in the one after.
    pub fn take_next_segment(&mut self, sync: &SyncState) -> u64 {
        if let Some(old) = self.current.take() {
            sync.retire(old.file);
        }
        let number = self.next_segment;
        self.next_segment += 1;
        number
    }

    /// The segment to append `len` bytes to, rolling over to a new one
    /// when the current one would grow past `--max-bytes-per-file`.
    fn segment_for(
        &mut self,
        files: &QueueFiles,
        len: u64,
        sync: &SyncState,
    ) -> io::Result<&mut WriteSegment> {
        let full = self
            .current
            .as_ref()
            .is_none_or(|w| w.len > 0 && w.len + len > self.max_bytes_per_file);
        if full {
            if let Some(old) = self.current.take() {
                // Earlier appends' tickets are answered by fsyncing the
                // current segment, so the old one must be on disk first.
                sync.retire(old.file);
            }
            let number = self.next_segment;
            let path = files.segment(number);
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            let len = file.metadata()?.len();
            self.next_segment += 1;
            self.current = Some(WriteSegment {
                number,
                file: Arc::new(file),
                len,
            });
        }
        Ok(self
            .current
            .as_mut()
            .expect("a write segment was just ensured"))
    }
}
