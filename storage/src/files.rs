//! The files of a disk queue and how they are named, in `--data-path`, for
//! a queue named `NAME` (a topic, or `TOPIC:CHANNEL`): segments
//! `NAME.wasq.000001.dat`, … and the read checkpoint `NAME.wasq.meta.json`.
//! Also the atomic replace every small file here is written with.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where one queue's files live and what they are called.
#[derive(Debug, Clone)]
pub struct QueueFiles {
    dir: PathBuf,
    name: String,
}

impl QueueFiles {
    pub fn new(dir: &Path, name: &str) -> QueueFiles {
        QueueFiles {
            dir: dir.to_path_buf(),
            name: name.to_string(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn segment(&self, number: u64) -> PathBuf {
        self.dir.join(format!("{}.wasq.{number:06}.dat", self.name))
    }

    pub fn checkpoint(&self) -> PathBuf {
        self.dir.join(format!("{}.wasq.meta.json", self.name))
    }

    /// Segment numbers on disk, ascending.
    pub fn list_segments(&self) -> Vec<u64> {
        let prefix = format!("{}.wasq.", self.name);
        let mut numbers: Vec<u64> = fs::read_dir(&self.dir)
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

    /// Deletes every file of the queue.
    pub fn delete_all(&self) {
        for segment in self.list_segments() {
            remove_file_logged(&self.segment(segment));
        }
        let checkpoint = self.checkpoint();
        if checkpoint.exists() {
            remove_file_logged(&checkpoint);
        }
    }
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

/// Deletes a file; a failure other than "already gone" is logged.
pub fn remove_file_logged(path: &Path) {
    if let Err(e) = fs::remove_file(path)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::error!(file = %path.display(), error = %e, "DISKQUEUE: cannot delete a file");
    }
}

/// Replaces `path` with `contents` so that a crash leaves either the old
/// or the new file, never a mix: write a temporary file, fsync, rename.
pub fn atomic_write(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    {
        let mut file = fs::File::create(&temporary)?;
        file.write_all(contents)?;
        file.sync_data()?;
    }
    fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent()
        && let Ok(dir) = fs::File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
    {
        // Makes the rename itself durable; not every filesystem allows it.
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_and_segments_are_read_from_file_names() {
        let dir = tempfile::tempdir().unwrap();
        for (name, number) in [("a", 1), ("a", 3), ("a.wasq.1", 1), ("t:c", 2)] {
            fs::write(QueueFiles::new(dir.path(), name).segment(number), b"").unwrap();
        }
        fs::write(dir.path().join("b.wasq.meta.json"), b"{}").unwrap();
        fs::write(dir.path().join("other.txt"), "x").unwrap();
        fs::write(dir.path().join("c.wasq.x.dat"), "x").unwrap();
        assert_eq!(
            queue_names(dir.path()).into_iter().collect::<Vec<_>>(),
            ["a", "a.wasq.1", "b", "t:c"]
        );
        assert_eq!(QueueFiles::new(dir.path(), "a").list_segments(), [1, 3]);
        QueueFiles::new(dir.path(), "a").delete_all();
        assert!(QueueFiles::new(dir.path(), "a").list_segments().is_empty());
    }

    #[test]
    fn atomic_write_replaces_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        atomic_write(&path, b"first").unwrap();
        atomic_write(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert!(!dir.path().join("f.tmp").exists());
    }
}
