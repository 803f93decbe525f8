//! An append-only, segmented queue of messages on disk: the part of a topic
//! or channel beyond `--mem-queue-size` (all of it when that is 0).
//!
//! It is put together from one-job parts: [`crate::files`] (naming),
//! [`crate::writer`] (appends and roll-over), [`crate::reader`] (the read
//! cursor), [`crate::recovery`] (the scan at open), [`crate::checkpoint`]
//! (where reading resumes) and [`crate::sync`] (group commit).
//!
//! Reading hands out each message with its [`Location`]. The checkpoint is
//! the earliest location still *outstanding* (read but not yet finished by
//! a consumer), so a crash redelivers what was in flight instead of
//! losing it; segments wholly before the checkpoint are deleted once it is
//! saved.
//!
//! Every method here does file I/O: callers run them where blocking is
//! allowed, never on an async worker thread while holding a lock.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use wasq_wire::Message;

use crate::checkpoint::{self, Location};
use crate::files::{QueueFiles, remove_file_logged};
use crate::progress::RecoveryProgress;
use crate::reader::ReadCursor;
use crate::record::{self, StoredMessage};
use crate::recovery::scan_segment;
use crate::sync::{SyncState, SyncTicket};
use crate::writer::SegmentWriter;

/// Settings shared by every disk queue of a broker.
#[derive(Debug, Clone)]
pub struct DiskSettings {
    pub dir: PathBuf,
    pub max_bytes_per_file: u64,
    /// Fsync after this many messages; 1 makes every publish wait for it.
    pub sync_every: u64,
    /// Largest record payload accepted when reading back.
    pub max_payload: u64,
}

/// Locations read but not yet finished, and the checkpoint last saved
/// durably. Shared (leaf locks, held for set operations only) so the
/// queue's owner can finish a message, or learn what a crash would
/// redeliver, without waiting for whatever file I/O the queue is doing.
#[derive(Debug, Clone, Default)]
pub struct Outstanding {
    locations: Arc<Mutex<BTreeSet<Location>>>,
    durable_checkpoint: Arc<Mutex<Option<Location>>>,
}

impl Outstanding {
    pub fn insert(&self, location: Location) {
        self.locations.lock().insert(location);
    }

    pub fn remove(&self, location: &Location) {
        self.locations.lock().remove(location);
    }

    fn first(&self) -> Option<Location> {
        self.locations.lock().first().copied()
    }

    fn clear(&self) {
        self.locations.lock().clear();
    }

    /// The checkpoint last saved and fsynced: a crash never redelivers a
    /// message before it.
    pub fn durable_checkpoint(&self) -> Option<Location> {
        *self.durable_checkpoint.lock()
    }

    fn set_durable_checkpoint(&self, at: Option<Location>) {
        *self.durable_checkpoint.lock() = at;
    }
}

#[derive(Debug)]
pub struct DiskQueue {
    files: QueueFiles,
    settings: Arc<DiskSettings>,
    /// Unfinished segments from the read cursor's on, with the number of
    /// readable records in each (counted from where reading starts in it).
    segments: BTreeMap<u64, u64>,
    /// Segments read to the end, deleted once the checkpoint passes them.
    consumed: Vec<u64>,
    writer: SegmentWriter,
    read: ReadCursor,
    depth: u64,
    outstanding: Outstanding,
    saved_checkpoint: Option<Location>,
    sync: Arc<SyncState>,
    unsynced_messages: u64,
    /// Files may exist: the queue was recovered from them, or has been
    /// written since it was made or cleared.
    may_have_files: bool,
}

impl DiskQueue {
    /// Opens the queue `name`, recovering whatever its files hold. Damaged
    /// records and unreadable files are logged (naming the file) and
    /// skipped; opening itself never fails.
    pub fn open(name: &str, settings: Arc<DiskSettings>) -> DiskQueue {
        DiskQueue::open_sharing(name, settings, Outstanding::default(), None)
    }

    /// A queue known to have no files (created in this run): no I/O.
    pub fn fresh(name: &str, settings: Arc<DiskSettings>, outstanding: Outstanding) -> DiskQueue {
        let files = QueueFiles::new(&settings.dir, name);
        let start = Location::start_of(1);
        DiskQueue::at(files, settings, outstanding, start, BTreeMap::new(), 1)
    }

    /// [`DiskQueue::open`], keeping the read-but-unfinished locations in
    /// `outstanding` (which the owner holds too). `listed`: the segments
    /// on disk if a scan of the directory already found them (start-up),
    /// else they are listed here.
    pub fn open_sharing(
        name: &str,
        settings: Arc<DiskSettings>,
        outstanding: Outstanding,
        listed: Option<Vec<u64>>,
    ) -> DiskQueue {
        let files = QueueFiles::new(&settings.dir, name);
        let segments_on_disk = listed.unwrap_or_else(|| files.list_segments());
        let start = checkpoint::resume_at(&files.checkpoint(), &segments_on_disk);
        let mut segments = BTreeMap::new();
        let last = segments_on_disk.last().copied();
        let from_of = |number: u64| {
            if number == start.segment {
                start.offset
            } else {
                0
            }
        };
        let to_scan: Vec<(u64, u64)> = segments_on_disk
            .iter()
            .filter(|&&number| number >= start.segment)
            .map(|&number| {
                let size = std::fs::metadata(files.segment(number)).map_or(0, |m| m.len());
                (number, size.saturating_sub(from_of(number)))
            })
            .collect();
        let (mut progress, line) = RecoveryProgress::start(
            name,
            to_scan.iter().map(|(_, bytes)| bytes).sum(),
            to_scan.len(),
            Instant::now(),
        );
        log_progress(line);
        for &number in &segments_on_disk {
            if number < start.segment {
                remove_file_logged(&files.segment(number));
            }
        }
        for (number, bytes) in to_scan {
            let path = files.segment(number);
            let records = scan_segment(
                &path,
                from_of(number),
                settings.max_payload,
                Some(number) == last,
            );
            segments.insert(number, records);
            log_progress(progress.segment_done(bytes, records, Instant::now()));
        }
        log_progress(progress.finish(Instant::now()));
        let next_segment = last.map_or(start.segment.max(1), |l| l + 1);
        let mut queue = DiskQueue::at(files, settings, outstanding, start, segments, next_segment);
        queue.may_have_files = true;
        queue
    }

    /// A queue reading from `start`, with `segments` (records per unread
    /// segment) on disk and appends going to `next_segment`.
    fn at(
        files: QueueFiles,
        settings: Arc<DiskSettings>,
        outstanding: Outstanding,
        start: Location,
        segments: BTreeMap<u64, u64>,
        next_segment: u64,
    ) -> DiskQueue {
        outstanding.set_durable_checkpoint(Some(start));
        DiskQueue {
            writer: SegmentWriter::new(next_segment, settings.max_bytes_per_file),
            files,
            settings,
            depth: segments.values().sum(),
            segments,
            consumed: Vec::new(),
            read: ReadCursor::at(start),
            outstanding,
            saved_checkpoint: Some(start),
            sync: Arc::new(SyncState::default()),
            unsynced_messages: 0,
            may_have_files: false,
        }
    }

    pub fn name(&self) -> &str {
        self.files.name()
    }

    /// Messages on disk not yet read.
    pub fn depth(&self) -> u64 {
        self.depth
    }

    pub fn is_empty(&self) -> bool {
        self.depth == 0
    }

    /// Whether files of this queue may exist (false for a queue made in
    /// this run and never written, or cleared since).
    pub fn may_have_files(&self) -> bool {
        self.may_have_files
    }

    pub fn sync_state(&self) -> Arc<SyncState> {
        self.sync.clone()
    }

    /// Appends messages, one write per segment they land in (a batch that
    /// would pass `--max-bytes-per-file` continues in a new segment).
    /// Returns a ticket to wait on when `--sync-every` is 1 (the caller
    /// answers only after the fsync); otherwise a background fsync starts
    /// every `sync-every` messages.
    pub fn append(
        &mut self,
        messages: &[Message],
        due_unix_nanos: Option<i64>,
    ) -> io::Result<Option<SyncTicket>> {
        let records: Vec<(&Message, Option<i64>)> =
            messages.iter().map(|m| (m, due_unix_nanos)).collect();
        self.append_each(&records)
    }

    /// [`DiskQueue::append`] for records with a due time each (several
    /// appends gathered into one write, a shutdown's write-back).
    pub fn append_each(
        &mut self,
        records: &[(&Message, Option<i64>)],
    ) -> io::Result<Option<SyncTicket>> {
        if records.is_empty() {
            return Ok(None);
        }
        self.may_have_files = true;
        let mut seq = 0;
        let mut rest = records;
        while !rest.is_empty() {
            // As many records as fit in the current segment (at least one,
            // so a record bigger than a whole segment still goes in).
            let room = self.writer.room_in_segment();
            let mut len = 0;
            let fit = rest
                .iter()
                .take_while(|(m, _)| {
                    len += record::record_len(m) as u64;
                    len <= room
                })
                .count()
                .max(1);
            let (chunk, after) = rest.split_at(fit);
            seq = self.write_chunk(chunk)?;
            rest = after;
        }
        self.unsynced_messages += records.len() as u64;
        if self.settings.sync_every <= 1 {
            self.unsynced_messages = 0;
            return Ok(Some(self.sync.ticket(seq)));
        }
        if self.unsynced_messages >= self.settings.sync_every {
            self.unsynced_messages = 0;
            let state = self.sync.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let name = self.name().to_string();
                runtime.spawn(async move {
                    if let Err(e) = state.sync_to(seq).await {
                        tracing::error!(queue = %name, error = %e, "DISKQUEUE: fsync failed");
                    }
                });
            }
        }
        Ok(None)
    }

    /// Start-up: writes messages a clean shutdown kept in `wasqd.held.dat`
    /// as a segment of their own, read after what the queue had, and
    /// closes it: thousands of queues put back at once keep no file open
    /// each. Nothing is fsynced; the caller syncs the filesystem once for
    /// all of them before deleting that file.
    pub fn put_back(&mut self, records: &[(&Message, Option<i64>)]) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.may_have_files = true;
        let mut buffer =
            Vec::with_capacity(records.iter().map(|(m, _)| record::record_len(m)).sum());
        for (message, due_unix_nanos) in records {
            record::encode(message, *due_unix_nanos, &mut buffer);
        }
        let number = self.writer.take_next_segment(&self.sync);
        std::fs::write(self.files.segment(number), &buffer)?;
        *self.segments.entry(number).or_insert(0) += records.len() as u64;
        self.depth += records.len() as u64;
        Ok(())
    }

    /// Writes records in one write; returns the append's number.
    fn write_chunk(&mut self, records: &[(&Message, Option<i64>)]) -> io::Result<u64> {
        let mut buffer =
            Vec::with_capacity(records.iter().map(|(m, _)| record::record_len(m)).sum());
        for (message, due_unix_nanos) in records {
            record::encode(message, *due_unix_nanos, &mut buffer);
        }
        let (segment, seq) = self.writer.write(&self.files, &buffer, &self.sync)?;
        *self.segments.entry(segment).or_insert(0) += records.len() as u64;
        self.depth += records.len() as u64;
        Ok(seq)
    }

    /// Reads up to `max` messages in order, each marked outstanding until
    /// [`DiskQueue::finish`]. Damaged records end their segment (logged).
    pub fn read(&mut self, max: usize) -> Vec<(StoredMessage, Location)> {
        let mut out = Vec::with_capacity(max.min(self.depth as usize));
        while out.len() < max && self.depth > 0 {
            let segment = self.read.segment();
            let available = self.segments.get(&segment).copied().unwrap_or(0);
            if self.read.read_in_segment() >= available {
                if self.writer.current_segment() == Some(segment) {
                    break;
                }
                self.advance_segment();
                continue;
            }
            match self.read.read_one(&self.files, self.settings.max_payload) {
                Ok((stored, location)) => {
                    self.depth -= 1;
                    self.outstanding.insert(location);
                    out.push((stored, location));
                }
                Err(e) => {
                    let path = self.files.segment(segment);
                    tracing::error!(file = %path.display(), offset = self.read.location().offset, error = %e,
                        "DISKQUEUE: cannot read a record; skipping the rest of the file");
                    let lost = available - self.read.read_in_segment();
                    self.depth -= lost.min(self.depth);
                    self.segments.insert(segment, self.read.read_in_segment());
                    // Never append after damage: the next write starts a new file.
                    self.writer.abandon(segment);
                    self.advance_segment();
                }
            }
        }
        out
    }

    fn advance_segment(&mut self) {
        let done = self.read.segment();
        self.segments.remove(&done);
        self.consumed.push(done);
        let next = self
            .segments
            .keys()
            .next()
            .copied()
            .unwrap_or(self.writer.next_segment());
        self.read = ReadCursor::start_of(next);
    }

    /// A message read from this queue was finished (or moved elsewhere).
    pub fn finish(&mut self, location: &Location) {
        self.outstanding.remove(location);
    }

    /// Where reading would resume after a crash now.
    pub fn checkpoint(&self) -> Location {
        self.outstanding.first().unwrap_or(self.read.location())
    }

    /// Saves the checkpoint if it moved (write, fsync, rename) and deletes
    /// the segments wholly before it.
    pub fn save_checkpoint(&mut self) -> io::Result<()> {
        self.save_checkpoint_as(true)
    }

    /// [`DiskQueue::save_checkpoint`], without the fsyncs unless `durable`.
    fn save_checkpoint_as(&mut self, durable: bool) -> io::Result<()> {
        let checkpoint = self.checkpoint();
        if self.saved_checkpoint == Some(checkpoint) && self.consumed.is_empty() {
            return Ok(());
        }
        checkpoint::write(&self.files.checkpoint(), checkpoint, durable)?;
        self.saved_checkpoint = Some(checkpoint);
        if durable {
            self.outstanding.set_durable_checkpoint(Some(checkpoint));
        }
        let writing = self.writer.current_segment();
        let (delete, keep): (Vec<u64>, Vec<u64>) = self
            .consumed
            .iter()
            .partition(|&&s| s < checkpoint.segment && writing != Some(s));
        for segment in delete {
            remove_file_logged(&self.files.segment(segment));
        }
        self.consumed = keep;
        Ok(())
    }

    /// Clean shutdown: appends every message the queue's owner holds in
    /// memory (with its due time, if deferred), forgets the locations of
    /// those it had read from here (`forget`: they are among them) and
    /// saves the checkpoint, so a restart finds each message exactly once.
    /// A message read but not handed to the owner stays outstanding, so a
    /// restart delivers it again. Returns how many were written.
    ///
    /// Nothing is fsynced here: the shutdown writes every queue back, then
    /// syncs the filesystem once ([`crate::DiskStore::sync_all`]), where an
    /// fsync of each segment and checkpoint cost 1 ms a queue (a minute
    /// and a half for 100 000 queues, one at a time).
    pub fn write_back(
        &mut self,
        messages: &[(Message, Option<i64>)],
        forget: &[Location],
    ) -> io::Result<usize> {
        let records: Vec<(&Message, Option<i64>)> =
            messages.iter().map(|(m, due)| (m, *due)).collect();
        self.append_each(&records)?;
        for location in forget {
            self.outstanding.remove(location);
        }
        self.save_checkpoint_as(false)?;
        Ok(messages.len())
    }

    /// Fsyncs what was written and saves the checkpoint (periodic flush
    /// and shutdown).
    pub fn flush(&mut self) -> io::Result<()> {
        self.sync.sync_now()?;
        self.unsynced_messages = 0;
        self.save_checkpoint()
    }

    /// Every segment this queue may have on disk: the unread ones, those
    /// read but not yet deleted, and the one being appended to (it exists
    /// even if its first write failed).
    fn known_segments(&self) -> BTreeSet<u64> {
        let mut known: BTreeSet<u64> = self.segments.keys().copied().collect();
        known.extend(self.consumed.iter().copied());
        known.extend(self.writer.current_segment());
        known
    }

    /// Deletes every file of the queue and starts it empty (/empty).
    pub fn clear(&mut self) {
        self.files.delete(self.known_segments());
        self.writer.reset();
        self.read = ReadCursor::start_of(self.writer.next_segment());
        self.segments.clear();
        self.consumed.clear();
        self.outstanding.clear();
        self.depth = 0;
        self.saved_checkpoint = None;
        self.outstanding.set_durable_checkpoint(None);
        self.sync = Arc::new(SyncState::default());
        self.may_have_files = false;
    }
}

/// Logs a recovery progress line, if one is due.
fn log_progress(line: Option<String>) {
    if let Some(line) = line {
        tracing::info!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::fs::{self, OpenOptions};
    use std::path::Path;
    use wasq_wire::MessageId;

    fn settings(dir: &Path, max_bytes_per_file: u64) -> Arc<DiskSettings> {
        Arc::new(DiskSettings {
            dir: dir.to_path_buf(),
            max_bytes_per_file,
            sync_every: 2500,
            max_payload: 1 << 20,
        })
    }

    fn message(n: u64) -> Message {
        let mut id = [b'0'; 16];
        id[8..].copy_from_slice(format!("{n:08}").as_bytes());
        Message::new(MessageId(id), Bytes::from(format!("body {n}")))
    }

    fn bodies(read: &[(StoredMessage, Location)]) -> Vec<String> {
        read.iter()
            .map(|(s, _)| String::from_utf8_lossy(&s.message.body).into_owned())
            .collect()
    }

    fn segments(dir: &Path, name: &str) -> Vec<u64> {
        QueueFiles::new(dir, name).list_segments()
    }

    #[test]
    fn reads_back_in_order_across_segments_and_deletes_consumed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut queue = DiskQueue::open("t", settings(dir.path(), 100));
        for n in 0..10 {
            queue.append(&[message(n)], None).unwrap();
        }
        assert_eq!(queue.depth(), 10);
        assert!(segments(dir.path(), "t").len() >= 5);
        let read = queue.read(100);
        assert_eq!(
            bodies(&read),
            (0..10).map(|n| format!("body {n}")).collect::<Vec<_>>()
        );
        for (_, location) in &read {
            queue.finish(location);
        }
        queue.flush().unwrap();
        // Only the segment still open for appending remains.
        assert_eq!(segments(dir.path(), "t").len(), 1);
    }

    #[test]
    fn a_restart_resumes_at_the_first_unfinished_message() {
        let dir = tempfile::tempdir().unwrap();
        let mut queue = DiskQueue::open("t:c", settings(dir.path(), 1 << 20));
        queue
            .append(&(0..5).map(message).collect::<Vec<_>>(), None)
            .unwrap();
        let read = queue.read(3);
        queue.finish(&read[0].1);
        queue.finish(&read[2].1);
        queue.flush().unwrap();
        drop(queue);
        let mut queue = DiskQueue::open("t:c", settings(dir.path(), 1 << 20));
        // body 1 was in flight: it comes again, and so does 2 (at least once).
        assert_eq!(queue.depth(), 4);
        assert_eq!(
            bodies(&queue.read(10)),
            ["body 1", "body 2", "body 3", "body 4"]
        );
        queue.append(&[message(5)], Some(42)).unwrap();
        let read = queue.read(10);
        assert_eq!(read[0].0.due_unix_nanos, Some(42));
    }

    #[test]
    fn a_torn_tail_is_skipped_and_writing_continues_in_a_new_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut queue = DiskQueue::open("t", settings(dir.path(), 1 << 20));
        queue.append(&[message(0), message(1)], None).unwrap();
        queue.flush().unwrap();
        drop(queue);
        let path = QueueFiles::new(dir.path(), "t").segment(1);
        let len = fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let mut queue = DiskQueue::open("t", settings(dir.path(), 1 << 20));
        assert_eq!(queue.depth(), 1);
        queue.append(&[message(2)], None).unwrap();
        assert_eq!(bodies(&queue.read(10)), ["body 0", "body 2"]);
    }

    #[test]
    fn damage_in_the_middle_skips_the_rest_of_that_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut queue = DiskQueue::open("t", settings(dir.path(), 120));
        for n in 0..6 {
            queue.append(&[message(n)], None).unwrap();
        }
        drop(queue);
        let first = QueueFiles::new(dir.path(), "t").segment(1);
        let mut bytes = fs::read(&first).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&first, bytes).unwrap();
        let mut queue = DiskQueue::open("t", settings(dir.path(), 120));
        let read = bodies(&queue.read(10));
        assert!(!read.contains(&"body 1".to_string()), "{read:?}");
        assert!(read.contains(&"body 5".to_string()), "{read:?}");
    }

    #[test]
    fn clear_deletes_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut queue = DiskQueue::open("t", settings(dir.path(), 1 << 20));
        queue.append(&[message(0)], None).unwrap();
        queue.flush().unwrap();
        queue.clear();
        assert_eq!(queue.depth(), 0);
        assert!(crate::files::queue_names(dir.path()).is_empty());
        queue.append(&[message(1)], None).unwrap();
        assert_eq!(bodies(&queue.read(10)), ["body 1"]);
    }

    #[test]
    fn put_back_writes_a_closed_segment_read_after_what_came_before() {
        let dir = tempfile::tempdir().unwrap();
        let mut queue = DiskQueue::open("t", settings(dir.path(), 1 << 20));
        queue.append(&[message(0)], None).unwrap();
        let held = [message(1), message(2)];
        queue
            .put_back(&[(&held[0], Some(9)), (&held[1], None)])
            .unwrap();
        // No segment stays open for appending: the next append starts one.
        assert_eq!(queue.writer.current_segment(), None);
        queue.append(&[message(3)], None).unwrap();
        assert_eq!(segments(dir.path(), "t").len(), 3);
        let read = queue.read(10);
        assert_eq!(bodies(&read), ["body 0", "body 1", "body 2", "body 3"]);
        assert_eq!(read[1].0.due_unix_nanos, Some(9));
        // And after a restart, from the files alone.
        drop(queue);
        let mut reopened = DiskQueue::open("t", settings(dir.path(), 1 << 20));
        assert_eq!(
            bodies(&reopened.read(10)),
            ["body 0", "body 1", "body 2", "body 3"]
        );
    }

    #[test]
    fn write_back_keeps_due_times_and_forgets_what_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut queue = DiskQueue::open("t", settings(dir.path(), 1 << 20));
        queue.append(&[message(0)], None).unwrap();
        let read = queue.read(1);
        // Shutdown: the read-but-unfinished message is written back with
        // the rest, so a restart finds each exactly once.
        let written = queue
            .write_back(
                &[
                    (read[0].0.message.clone(), None),
                    (message(1), Some(7)),
                    (message(2), Some(7)),
                ],
                &[read[0].1],
            )
            .unwrap();
        assert_eq!(written, 3);
        drop(queue);
        let mut queue = DiskQueue::open("t", settings(dir.path(), 1 << 20));
        let again = queue.read(10);
        assert_eq!(bodies(&again), ["body 0", "body 1", "body 2"]);
        assert_eq!(again[1].0.due_unix_nanos, Some(7));
    }
}
