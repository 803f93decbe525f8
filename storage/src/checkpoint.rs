//! The read checkpoint, `NAME.wasq.meta.json`: where reading resumes after
//! a restart. It is the earliest location still *outstanding* (read but not
//! yet finished by a consumer), so a crash redelivers what was in flight
//! instead of losing it.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::files::{atomic_write, replace_unsynced};

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

/// The checkpoint file's contents.
#[derive(Debug, Serialize, Deserialize)]
struct Checkpoint {
    read_segment: u64,
    read_offset: u64,
}

/// Reads a checkpoint; `Ok(None)` if there is none.
pub fn read(path: &Path) -> io::Result<Option<Location>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice::<Checkpoint>(&bytes)
            .map(|c| {
                Some(Location {
                    segment: c.read_segment,
                    offset: c.read_offset,
                })
            })
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces the checkpoint (write, fsync, rename; only the rename when
/// not `durable`: a shutdown syncs the filesystem once afterwards).
pub fn write(path: &Path, at: Location, durable: bool) -> io::Result<()> {
    let contents = serde_json::to_vec(&Checkpoint {
        read_segment: at.segment,
        read_offset: at.offset,
    })
    .map_err(io::Error::other)?;
    if durable {
        atomic_write(path, &contents)
    } else {
        replace_unsynced(path, &contents)
    }
}

/// Where reading starts, given the saved checkpoint and the segments on
/// disk: at the checkpoint if its segment is there; past it if its segment
/// was consumed and deleted; else at the first segment. An unreadable
/// checkpoint is logged and reading starts at the first segment (messages
/// may be delivered again, none is lost).
pub fn resume_at(path: &Path, segments_on_disk: &[u64]) -> Location {
    let first = segments_on_disk.first().copied().unwrap_or(1);
    match read(path) {
        Ok(Some(c)) if segments_on_disk.contains(&c.segment) => c,
        Ok(Some(c)) if c.segment > first => {
            // Its segment was consumed and deleted; nothing before the
            // next one is unread.
            let next = segments_on_disk
                .iter()
                .copied()
                .find(|&s| s > c.segment)
                .unwrap_or(c.segment);
            Location::start_of(next)
        }
        Ok(_) => Location::start_of(first),
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e,
                "DISKQUEUE: unreadable checkpoint; reading the queue from its first segment (messages may be delivered again)");
            Location::start_of(first)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumes_at_past_or_before_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.wasq.meta.json");
        assert_eq!(resume_at(&path, &[2, 3]), Location::start_of(2));
        let at = Location {
            segment: 3,
            offset: 40,
        };
        write(&path, at, true).unwrap();
        assert_eq!(resume_at(&path, &[2, 3]), at);
        // Segment 3 consumed and deleted: resume at the next one.
        assert_eq!(resume_at(&path, &[1, 4, 5]), Location::start_of(4));
        std::fs::write(&path, b"{damaged").unwrap();
        assert_eq!(resume_at(&path, &[2, 3]), Location::start_of(2));
    }
}
