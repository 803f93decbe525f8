//! An append-only, segmented queue of messages on disk: the part of a topic
//! or channel beyond `--mem-queue-size` (all of it when that is 0).
//!
//! Files, in `--data-path`, for a queue named `NAME` (a topic, or
//! `TOPIC:CHANNEL`): segments `NAME.wasq.000001.dat`, ... of at most
//! `--max-bytes-per-file` bytes, and `NAME.wasq.meta.json`, the checkpoint
//! of where reading resumes after a restart.
//!
//! Reading hands out each message with its [`Location`]. The checkpoint is
//! the earliest location still *outstanding* (read but not yet finished by
//! a consumer), so a crash redelivers what was in flight instead of
//! losing it; segments wholly before the checkpoint are deleted once it is
//! saved. After a restart appends go to a fresh segment, and the old ones
//! are only read, so a damaged tail is never written after.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use serde::{Deserialize, Serialize};

use super::due_to_unix_nanos;
use super::record::{self, RECORD_HEADER_LEN, RecordError, StoredMessage};
use super::sync::{SyncState, SyncTicket};
use wasq_wire::Message;

/// Where a record starts: its segment and byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Location {
    pub segment: u64,
    pub offset: u64,
}

impl Location {
    /// The first record of `segment`.
    pub fn start_of(segment: u64) -> Location {
        Location { segment, offset: 0 }
    }
}

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

/// The read-side cursor: the next record to hand out.
#[derive(Debug)]
struct ReadCursor {
    at: Location,
    /// Records already read from the cursor's segment.
    read_in_segment: u64,
    file: Option<BufReader<File>>,
}

impl ReadCursor {
    /// A cursor at `at`, nothing read from its segment yet.
    fn at(at: Location) -> ReadCursor {
        ReadCursor {
            at,
            read_in_segment: 0,
            file: None,
        }
    }

    /// A cursor at the start of `segment`.
    fn start_of(segment: u64) -> ReadCursor {
        ReadCursor::at(Location::start_of(segment))
    }
}

/// The segment receiving appends.
#[derive(Debug)]
struct WriteSegment {
    number: u64,
    file: Arc<File>,
    len: u64,
}

#[derive(Debug)]
pub struct DiskQueue {
    name: String,
    settings: Arc<DiskSettings>,
    /// Unfinished segments from the read cursor's on, with the number of
    /// readable records in each (counted from where reading starts in it).
    segments: BTreeMap<u64, u64>,
    /// Segments read to the end, deleted once the checkpoint passes them.
    consumed: Vec<u64>,
    write: Option<WriteSegment>,
    next_segment: u64,
    read: ReadCursor,
    depth: u64,
    outstanding: BTreeSet<Location>,
    saved_checkpoint: Option<Location>,
    sync: Arc<SyncState>,
    unsynced_messages: u64,
}

/// The checkpoint file's contents.
#[derive(Debug, Serialize, Deserialize)]
struct Checkpoint {
    read_segment: u64,
    read_offset: u64,
}

impl DiskQueue {
    /// Opens the queue `name`, recovering whatever its files hold. Damaged
    /// records and unreadable files are logged (naming the file) and
    /// skipped; opening itself never fails.
    pub fn open(name: &str, settings: Arc<DiskSettings>) -> DiskQueue {
        let segments_on_disk = list_segments(&settings.dir, name);
        let checkpoint_path = checkpoint_path(&settings.dir, name);
        let first = segments_on_disk.first().copied().unwrap_or(1);
        let start = match read_checkpoint(&checkpoint_path) {
            Ok(Some(c)) if segments_on_disk.contains(&c.read_segment) => Location {
                segment: c.read_segment,
                offset: c.read_offset,
            },
            Ok(Some(c)) if c.read_segment > first => {
                // Its segment was consumed and deleted; nothing before the
                // next one is unread.
                let next = segments_on_disk
                    .iter()
                    .copied()
                    .find(|&s| s > c.read_segment)
                    .unwrap_or(c.read_segment);
                Location::start_of(next)
            }
            Ok(_) => Location::start_of(first),
            Err(e) => {
                tracing::error!(file = %checkpoint_path.display(), error = %e,
                    "DISKQUEUE: unreadable checkpoint; reading the queue from its first segment (messages may be delivered again)");
                Location::start_of(first)
            }
        };
        let mut segments = BTreeMap::new();
        let mut depth = 0;
        let last = segments_on_disk.last().copied();
        for &number in &segments_on_disk {
            let path = segment_path(&settings.dir, name, number);
            if number < start.segment {
                remove_file_logged(&path);
                continue;
            }
            let from = if number == start.segment {
                start.offset
            } else {
                0
            };
            let records = scan_segment(&path, from, settings.max_payload, Some(number) == last);
            depth += records;
            segments.insert(number, records);
        }
        let next_segment = last.map_or(start.segment.max(1), |l| l + 1);
        DiskQueue {
            name: name.to_string(),
            settings,
            segments,
            consumed: Vec::new(),
            write: None,
            next_segment,
            read: ReadCursor::at(start),
            depth,
            outstanding: BTreeSet::new(),
            saved_checkpoint: Some(start),
            sync: Arc::new(SyncState::default()),
            unsynced_messages: 0,
        }
    }

    /// Messages on disk not yet read.
    pub fn depth(&self) -> u64 {
        self.depth
    }

    pub fn is_empty(&self) -> bool {
        self.depth == 0
    }

    pub fn sync_state(&self) -> Arc<SyncState> {
        self.sync.clone()
    }

    /// Appends messages, one write per segment they land in (a batch that
    /// would pass `--max-bytes-per-file` continues in a new segment).
    /// Returns a ticket to wait on when
    /// `--sync-every` is 1 (the caller answers only after the fsync);
    /// otherwise a background fsync starts every `sync-every` messages.
    pub fn append(
        &mut self,
        messages: &[Message],
        due_unix_nanos: Option<i64>,
    ) -> io::Result<Option<SyncTicket>> {
        if messages.is_empty() {
            return Ok(None);
        }
        let mut seq = 0;
        let mut rest = messages;
        while !rest.is_empty() {
            // As many records as fit in the current segment (at least one,
            // so a record bigger than a whole segment still goes in).
            let room = self.room_in_segment();
            let mut len = 0;
            let fit = rest
                .iter()
                .take_while(|m| {
                    len += record::record_len(m) as u64;
                    len <= room
                })
                .count()
                .max(1);
            let (chunk, after) = rest.split_at(fit);
            seq = self.write_chunk(chunk, due_unix_nanos)?;
            rest = after;
        }
        self.unsynced_messages += messages.len() as u64;
        if self.settings.sync_every <= 1 {
            self.unsynced_messages = 0;
            return Ok(Some(self.sync.ticket(seq)));
        }
        if self.unsynced_messages >= self.settings.sync_every {
            self.unsynced_messages = 0;
            let state = self.sync.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let name = self.name.clone();
                runtime.spawn(async move {
                    if let Err(e) = state.sync_to(seq).await {
                        tracing::error!(queue = %name, error = %e, "DISKQUEUE: fsync failed");
                    }
                });
            }
        }
        Ok(None)
    }

    /// Bytes the current segment can still take; a full one is rolled
    /// over first, so there is always room for at least one record.
    fn room_in_segment(&self) -> u64 {
        match &self.write {
            Some(w) if w.len < self.settings.max_bytes_per_file => {
                self.settings.max_bytes_per_file - w.len
            }
            _ => self.settings.max_bytes_per_file,
        }
    }

    /// Writes records to the current segment in one write; returns the
    /// append's number for [`SyncState::sync_to`].
    fn write_chunk(
        &mut self,
        messages: &[Message],
        due_unix_nanos: Option<i64>,
    ) -> io::Result<u64> {
        let mut buffer = Vec::with_capacity(messages.iter().map(record::record_len).sum::<usize>());
        for message in messages {
            record::encode(message, due_unix_nanos, &mut buffer);
        }
        let segment = self.segment_for(buffer.len() as u64)?;
        if let Err(e) = (&*segment.file).write_all(&buffer) {
            // Cut off whatever part was written so the next append starts
            // on a record boundary; if even that fails, start a new segment.
            if segment.file.set_len(segment.len).is_err() {
                self.write = None;
            }
            return Err(e);
        }
        segment.len += buffer.len() as u64;
        let (number, file) = (segment.number, segment.file.clone());
        let seq = self.sync.appended(&file);
        *self.segments.entry(number).or_insert(0) += messages.len() as u64;
        self.depth += messages.len() as u64;
        Ok(seq)
    }

    /// The segment to append `len` bytes to, rolling over to a new one
    /// when the current one would grow past `--max-bytes-per-file`.
    fn segment_for(&mut self, len: u64) -> io::Result<&mut WriteSegment> {
        let full = self
            .write
            .as_ref()
            .is_none_or(|w| w.len > 0 && w.len + len > self.settings.max_bytes_per_file);
        if full {
            if let Some(old) = self.write.take() {
                // Earlier appends' tickets are answered by fsyncing the
                // current segment, so the old one must be on disk first.
                let written = self.sync.written();
                match old.file.sync_data() {
                    Ok(()) => self.sync.mark_synced_through(written),
                    Err(e) => {
                        tracing::error!(file = %self.segment_path(old.number).display(), error = %e, "DISKQUEUE: fsync failed")
                    }
                }
            }
            let number = self.next_segment;
            let path = self.segment_path(number);
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            let len = file.metadata()?.len();
            self.next_segment += 1;
            self.segments.entry(number).or_insert(0);
            self.write = Some(WriteSegment {
                number,
                file: Arc::new(file),
                len,
            });
        }
        Ok(self
            .write
            .as_mut()
            .expect("a write segment was just ensured"))
    }

    /// Reads up to `max` messages in order, each marked outstanding until
    /// [`DiskQueue::finish`]. Damaged records end their segment (logged).
    pub fn read(&mut self, max: usize) -> Vec<(StoredMessage, Location)> {
        let mut out = Vec::with_capacity(max.min(self.depth as usize));
        while out.len() < max && self.depth > 0 {
            let segment = self.read.at.segment;
            let available = self.segments.get(&segment).copied().unwrap_or(0);
            if self.read.read_in_segment >= available {
                if self.write.as_ref().is_some_and(|w| w.number == segment) {
                    break;
                }
                self.advance_segment();
                continue;
            }
            match self.read_one() {
                Ok((stored, location)) => {
                    self.outstanding.insert(location);
                    out.push((stored, location));
                }
                Err(e) => {
                    let path = self.segment_path(segment);
                    tracing::error!(file = %path.display(), offset = self.read.at.offset, error = %e,
                        "DISKQUEUE: cannot read a record; skipping the rest of the file");
                    let lost = available - self.read.read_in_segment;
                    self.depth -= lost.min(self.depth);
                    self.segments.insert(segment, self.read.read_in_segment);
                    if self.write.as_ref().is_some_and(|w| w.number == segment) {
                        // Never append after damage: the next write starts a new file.
                        self.write = None;
                    }
                    self.advance_segment();
                }
            }
        }
        out
    }

    fn read_one(&mut self) -> Result<(StoredMessage, Location), ReadError> {
        let location = self.read.at;
        if self.read.file.is_none() {
            let mut file = File::open(self.segment_path(location.segment))?;
            file.seek(SeekFrom::Start(location.offset))?;
            self.read.file = Some(BufReader::with_capacity(64 * 1024, file));
        }
        let reader = self.read.file.as_mut().expect("opened above");
        let (stored, len) = read_record(reader, self.settings.max_payload)?;
        self.read.at.offset += len;
        self.read.read_in_segment += 1;
        self.depth -= 1;
        Ok((stored, location))
    }

    fn advance_segment(&mut self) {
        let done = self.read.at.segment;
        self.segments.remove(&done);
        self.consumed.push(done);
        let next = self
            .segments
            .keys()
            .next()
            .copied()
            .unwrap_or(self.next_segment);
        self.read = ReadCursor::start_of(next);
    }

    /// A message read from this queue was finished (or moved elsewhere).
    pub fn finish(&mut self, location: &Location) {
        self.outstanding.remove(location);
    }

    /// Where reading would resume after a crash now.
    pub fn checkpoint(&self) -> Location {
        self.outstanding.first().copied().unwrap_or(self.read.at)
    }

    /// Forgets outstanding messages: the caller has written them again
    /// (clean shutdown), so a restart must not deliver the old copies.
    fn forget_outstanding(&mut self) {
        self.outstanding.clear();
    }

    /// Saves the checkpoint if it moved (write, fsync, rename) and deletes
    /// the segments wholly before it.
    pub fn save_checkpoint(&mut self) -> io::Result<()> {
        let checkpoint = self.checkpoint();
        if self.saved_checkpoint == Some(checkpoint) && self.consumed.is_empty() {
            return Ok(());
        }
        let contents = serde_json::to_vec(&Checkpoint {
            read_segment: checkpoint.segment,
            read_offset: checkpoint.offset,
        })
        .map_err(io::Error::other)?;
        super::atomic_write(&checkpoint_path(&self.settings.dir, &self.name), &contents)?;
        self.saved_checkpoint = Some(checkpoint);
        let (delete, keep): (Vec<u64>, Vec<u64>) = self.consumed.iter().partition(|&&s| {
            s < checkpoint.segment && self.write.as_ref().is_none_or(|w| w.number != s)
        });
        for segment in delete {
            remove_file_logged(&self.segment_path(segment));
        }
        self.consumed = keep;
        Ok(())
    }

    /// Clean shutdown: appends every message the queue's owner holds in
    /// memory (with its due time, if deferred), forgets what was read and
    /// not finished (it is among them), fsyncs and saves the checkpoint, so
    /// a restart finds each message exactly once. Returns how many.
    pub fn write_back(
        &mut self,
        messages: impl IntoIterator<Item = (Message, Option<Instant>)>,
    ) -> io::Result<usize> {
        let mut written = 0;
        // Consecutive messages with the same due time go in one append.
        let mut run: Vec<Message> = Vec::new();
        let mut run_due = None;
        for (message, due) in messages {
            if due != run_due && !run.is_empty() {
                written += run.len();
                self.append(&std::mem::take(&mut run), run_due.map(due_to_unix_nanos))?;
            }
            run_due = due;
            run.push(message);
        }
        written += run.len();
        self.append(&run, run_due.map(due_to_unix_nanos))?;
        self.forget_outstanding();
        self.flush()?;
        Ok(written)
    }

    /// Fsyncs what was written and saves the checkpoint (periodic flush
    /// and shutdown).
    pub fn flush(&mut self) -> io::Result<()> {
        self.sync.sync_now()?;
        self.unsynced_messages = 0;
        self.save_checkpoint()
    }

    /// Deletes every file of the queue and starts it empty (/empty).
    pub fn clear(&mut self) {
        self.write = None;
        self.read = ReadCursor::start_of(self.next_segment);
        self.delete_files();
        self.segments.clear();
        self.consumed.clear();
        self.outstanding.clear();
        self.depth = 0;
        self.saved_checkpoint = None;
        self.sync = Arc::new(SyncState::default());
    }

    /// Deletes every file of the queue.
    fn delete_files(&self) {
        for segment in list_segments(&self.settings.dir, &self.name) {
            remove_file_logged(&self.segment_path(segment));
        }
        let checkpoint = checkpoint_path(&self.settings.dir, &self.name);
        if checkpoint.exists() {
            remove_file_logged(&checkpoint);
        }
    }

    fn segment_path(&self, number: u64) -> PathBuf {
        segment_path(&self.settings.dir, &self.name, number)
    }
}

#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// Reads one record; returns it and its length on disk.
fn read_record(
    reader: &mut impl Read,
    max_payload: u64,
) -> Result<(StoredMessage, u64), ReadError> {
    let mut header = [0u8; RECORD_HEADER_LEN];
    read_exactly(reader, &mut header)?;
    let (len, crc) = record::decode_header(&header, max_payload)?;
    let mut payload = BytesMut::zeroed(len);
    read_exactly(reader, &mut payload)?;
    let stored = record::decode_payload(payload.freeze(), crc)?;
    Ok((stored, (RECORD_HEADER_LEN + len) as u64))
}

/// `read_exact`, reporting a short file as a truncated record.
fn read_exactly(reader: &mut impl Read, buf: &mut [u8]) -> Result<(), ReadError> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => {
                return Err(RecordError::Truncated {
                    needed: buf.len(),
                    available: filled,
                }
                .into());
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Counts the good records of a segment from `from` on. A bad record at
/// the end of the newest segment is a torn write from a crash; anywhere
/// else it is damage. Either way the records after it are not read.
fn scan_segment(path: &Path, from: u64, max_payload: u64, newest: bool) -> u64 {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "DISKQUEUE: cannot open a segment; its messages are skipped");
            return 0;
        }
    };
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    if let Err(e) = reader.seek(SeekFrom::Start(from)) {
        tracing::error!(file = %path.display(), error = %e, "DISKQUEUE: cannot read a segment; its messages are skipped");
        return 0;
    }
    let mut offset = from;
    let mut records = 0;
    while offset < size {
        match read_record(&mut reader, max_payload) {
            Ok((_, len)) => {
                offset += len;
                records += 1;
            }
            Err(ReadError::Record(e)) if newest => {
                tracing::warn!(file = %path.display(), offset, bytes = size - offset, error = %e,
                    "DISKQUEUE: torn record at the end of the newest segment (a write cut short by a crash); it was never acknowledged and is skipped");
                break;
            }
            Err(e) => {
                tracing::error!(file = %path.display(), offset, error = %e,
                    "DISKQUEUE: corrupt segment; the records after this offset are skipped");
                break;
            }
        }
    }
    records
}

fn segment_path(dir: &Path, name: &str, number: u64) -> PathBuf {
    dir.join(format!("{name}.wasq.{number:06}.dat"))
}

fn checkpoint_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.wasq.meta.json"))
}

fn read_checkpoint(path: &Path) -> io::Result<Option<Checkpoint>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Segment numbers of queue `name` in `dir`, ascending.
fn list_segments(dir: &Path, name: &str) -> Vec<u64> {
    let prefix = format!("{name}.wasq.");
    let mut numbers: Vec<u64> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let file_name = entry.file_name();
            let number = file_name
                .to_str()?
                .strip_prefix(&prefix)?
                .strip_suffix(".dat")?;
            number
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| number.parse().ok())
                .flatten()
        })
        .collect();
    numbers.sort_unstable();
    numbers
}

/// Names of the queues with files in `dir` (for restoring topics and
/// channels that were created after the last metadata save).
pub fn queue_names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let file_name = entry.file_name().to_str()?.to_string();
            let (name, rest) = file_name.rsplit_once(".wasq.")?;
            let is_queue_file = rest == "meta.json"
                || rest
                    .strip_suffix(".dat")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            is_queue_file.then(|| name.to_string())
        })
        .collect()
}

fn remove_file_logged(path: &Path) {
    if let Err(e) = fs::remove_file(path)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::error!(file = %path.display(), error = %e, "DISKQUEUE: cannot delete a file");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
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

    #[test]
    fn reads_back_in_order_across_segments_and_deletes_consumed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut queue = DiskQueue::open("t", settings(dir.path(), 100));
        for n in 0..10 {
            queue.append(&[message(n)], None).unwrap();
        }
        assert_eq!(queue.depth(), 10);
        assert!(list_segments(dir.path(), "t").len() >= 5);
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
        assert_eq!(list_segments(dir.path(), "t").len(), 1);
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
        let path = segment_path(dir.path(), "t", 1);
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
        let first = segment_path(dir.path(), "t", 1);
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
        assert!(queue_names(dir.path()).is_empty());
        queue.append(&[message(1)], None).unwrap();
        assert_eq!(bodies(&queue.read(10)), ["body 1"]);
    }

    #[test]
    fn queue_names_are_read_from_file_names() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a", "a.wasq.1", "t:c"] {
            DiskQueue::open(name, settings(dir.path(), 1 << 20))
                .append(&[message(0)], None)
                .unwrap();
        }
        fs::write(dir.path().join("other.txt"), "x").unwrap();
        assert_eq!(
            queue_names(dir.path()).into_iter().collect::<Vec<_>>(),
            ["a", "a.wasq.1", "t:c"]
        );
        assert_eq!(list_segments(dir.path(), "a"), [1]);
    }
}
