//! `wasqd.held.dat`: the messages every queue held in memory at a clean
//! shutdown, in one file.
//!
//! Writing them into each queue's own files cost a file creation per queue
//! (about 100 µs each on ext4, most of it waiting on the directory's lock),
//! so stopping a broker with 50 000 channels that each held a message took
//! ten seconds. One file takes one write and one fsync. At the next
//! start-up, in the background while the broker already serves, each
//! queue's messages become a segment of that queue's own (written and
//! closed, so no file stays open per queue), one sync of the filesystem
//! makes them all durable, and only then is this file deleted: a crash in
//! between finds the file again and puts them back again (delivered
//! again, never lost).
//!
//! Layout: the magic `WASQHELD`, a version (u32 LE), then per queue its
//! name (u16 LE length, UTF-8) and message count (u32 LE), followed by that
//! many records in the disk queues' format ([`crate::record`], each with
//! its checksum).

use std::io;
use std::path::{Path, PathBuf};

use wasq_wire::Message;

use crate::files::{atomic_write, remove_file_logged};
use crate::record::{self, StoredMessage};

pub const HELD_FILE: &str = "wasqd.held.dat";
const MAGIC: &[u8; 8] = b"WASQHELD";
const VERSION: u32 = 1;

/// One queue's held messages, each with its due time if deferred.
pub type HeldQueue = (String, Vec<(Message, Option<i64>)>);

/// One queue's messages as read back.
pub type ReadQueue = (String, Vec<StoredMessage>);

/// Where reading stopped early (the offset) and why.
type Damage = Option<(usize, String)>;

pub fn path(dir: &Path) -> PathBuf {
    dir.join(HELD_FILE)
}

/// Writes `queues` (those with messages) to the file, replacing it
/// atomically and durably.
pub fn write(dir: &Path, queues: &[HeldQueue]) -> io::Result<()> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    for (name, messages) in queues.iter().filter(|(_, m)| !m.is_empty()) {
        let name_len = u16::try_from(name.len()).map_err(io::Error::other)?;
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        let count = u32::try_from(messages.len()).map_err(io::Error::other)?;
        out.extend_from_slice(&count.to_le_bytes());
        for (message, due) in messages {
            record::encode(message, *due, &mut out);
        }
    }
    atomic_write(&path(dir), &out)
}

/// Reads the file; none is an empty list. Damage ends the reading (logged,
/// naming the file and the offset): what came before it is returned.
pub fn read(dir: &Path, max_payload: u64) -> io::Result<Vec<ReadQueue>> {
    let path = path(dir);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let (queues, damage) = parse(&bytes, max_payload);
    if let Some((offset, reason)) = damage {
        tracing::error!(file = %path.display(), offset, reason,
            "STORAGE: damaged file of messages held at shutdown; keeping what came before the damage");
    }
    Ok(queues)
}

/// Deletes the file (once its messages are durable in their queues).
pub fn remove(dir: &Path) {
    remove_file_logged(&path(dir));
}

/// The queues in `bytes`, and where and why reading stopped early.
fn parse(bytes: &[u8], max_payload: u64) -> (Vec<ReadQueue>, Damage) {
    let mut queues = Vec::new();
    let Some(rest) = bytes.strip_prefix(MAGIC.as_slice()) else {
        return (queues, Some((0, "not a held-messages file".into())));
    };
    let mut at = MAGIC.len();
    let Some(version) = rest.first_chunk::<4>().map(|v| u32::from_le_bytes(*v)) else {
        return (queues, Some((at, "cut short".into())));
    };
    if version != VERSION {
        return (queues, Some((at, format!("unknown version {version}"))));
    }
    at += 4;
    while at < bytes.len() {
        match parse_queue(&bytes[at..], max_payload) {
            Ok((queue, used)) => {
                queues.push(queue);
                at += used;
            }
            Err(reason) => return (queues, Some((at, reason))),
        }
    }
    (queues, None)
}

/// One queue's entry at the start of `bytes`, and its length.
fn parse_queue(
    bytes: &[u8],
    max_payload: u64,
) -> Result<((String, Vec<StoredMessage>), usize), String> {
    let cut = || "cut short".to_string();
    let name_len = usize::from(u16::from_le_bytes(
        *bytes.first_chunk::<2>().ok_or_else(cut)?,
    ));
    let name = bytes.get(2..2 + name_len).ok_or_else(cut)?;
    let name =
        std::str::from_utf8(name).map_err(|_| "a queue name that is not UTF-8".to_string())?;
    let mut at = 2 + name_len;
    let count = bytes.get(at..at + 4).ok_or_else(cut)?;
    let count = u32::from_le_bytes(count.try_into().expect("four bytes")) as usize;
    at += 4;
    let mut messages = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let (stored, used) =
            record::decode(&bytes[at..], max_payload).map_err(|e| format!("{name}: {e}"))?;
        messages.push(stored);
        at += used;
    }
    Ok(((name.to_string(), messages), at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use wasq_wire::MessageId;

    fn message(n: u8) -> Message {
        Message::new(MessageId([b'0' + n; 16]), Bytes::from(vec![b'a' + n; 3]))
    }

    #[test]
    fn queues_and_due_times_come_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path(), 1 << 20).unwrap().is_empty());
        let queues = vec![
            ("t".to_string(), vec![(message(0), None)]),
            ("empty".to_string(), Vec::new()),
            (
                "t:c".to_string(),
                vec![(message(1), Some(42)), (message(2), None)],
            ),
        ];
        write(dir.path(), &queues).unwrap();
        let back = read(dir.path(), 1 << 20).unwrap();
        let names: Vec<&str> = back.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["t", "t:c"]);
        assert_eq!(back[1].1[0].message.body, "bbb");
        assert_eq!(back[1].1[0].due_unix_nanos, Some(42));
        assert_eq!(back[1].1[1].due_unix_nanos, None);
        remove(dir.path());
        assert!(!path(dir.path()).exists());
    }

    #[test]
    fn damage_keeps_what_came_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let queues = vec![
            ("a".to_string(), vec![(message(0), None)]),
            ("b".to_string(), vec![(message(1), None)]),
        ];
        write(dir.path(), &queues).unwrap();
        let mut bytes = std::fs::read(path(dir.path())).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let (back, damage) = parse(&bytes, 1 << 20);
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].0, "a");
        assert!(damage.unwrap().1.starts_with("b: "));
        bytes.truncate(last - 5);
        assert_eq!(parse(&bytes, 1 << 20).0.len(), 1);
        assert_eq!(parse(b"nonsense", 1 << 20).0.len(), 0);
    }
}
