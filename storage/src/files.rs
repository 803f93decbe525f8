//! The files of a disk queue and how they are named, in `--data-path`, for
//! a queue named `NAME` (a topic, or `TOPIC:CHANNEL`): segments
//! `NAME.wasq.000001.dat`, … and the read checkpoint `NAME.wasq.meta.json`.
//! Also the atomic replace every small file here is written with.

use std::collections::{BTreeMap, BTreeSet};
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

    /// Segment numbers on disk, ascending. Reads the whole data
    /// directory: only for a queue whose files were not listed at
    /// start-up ([`scan_queues`]), never once per queue of many.
    pub fn list_segments(&self) -> Vec<u64> {
        let prefix = format!("{}.wasq.", self.name);
        let mut numbers: Vec<u64> = fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let file_name = entry.file_name();
                segment_number(file_name.to_str()?.strip_prefix(&prefix)?)
            })
            .collect();
        numbers.sort_unstable();
        numbers
    }

    /// Deletes the queue's checkpoint and the given segments (those the
    /// queue knows it has: deleting never lists the directory, so
    /// deleting many queues costs no more per queue than deleting one).
    pub fn delete(&self, segments: impl IntoIterator<Item = u64>) {
        for segment in segments {
            remove_file_logged(&self.segment(segment));
        }
        remove_file_logged(&self.checkpoint());
    }
}

/// Every queue with files in `dir` and its segment numbers, ascending
/// (none for a queue with only a checkpoint), from one listing of the
/// directory: start-up reads it once for all queues, where listing it per
/// queue would cost the square of their number.
pub fn scan_queues(dir: &Path) -> BTreeMap<String, Vec<u64>> {
    let mut queues: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let file_name = entry.file_name();
        let Some((name, rest)) = file_name.to_str().and_then(|f| f.rsplit_once(".wasq.")) else {
            continue;
        };
        let segment = segment_number(rest);
        if segment.is_none() && rest != "meta.json" {
            continue;
        }
        let segments = queues.entry(name.to_string()).or_default();
        segments.extend(segment);
    }
    for segments in queues.values_mut() {
        segments.sort_unstable();
    }
    queues
}

/// The number in a segment file's name after `NAME.wasq.` (`000001.dat`).
fn segment_number(rest: &str) -> Option<u64> {
    rest.strip_suffix(".dat")
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))?
        .parse()
        .ok()
}

/// Names of the queues with files in `dir`.
pub fn queue_names(dir: &Path) -> BTreeSet<String> {
    scan_queues(dir).into_keys().collect()
}

/// Makes everything written to the filesystem holding `dir` durable, in
/// one call (`syncfs`; `sync` where there is none): what a clean shutdown
/// does once after writing every queue's messages and checkpoint.
pub fn sync_filesystem(dir: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let dir = fs::File::open(dir)?;
        rustix::fs::syncfs(&dir)?;
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        rustix::fs::sync();
    }
    Ok(())
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
    replace(path, contents, true)
}

/// [`atomic_write`] without the fsyncs, for a clean shutdown that syncs
/// the whole filesystem once afterwards ([`sync_filesystem`]) instead of
/// three times per file. Until then a crash may leave the file empty on a
/// filesystem that does not order a rename after the data it replaces;
/// for a checkpoint that means reading from the queue's first segment
/// again (delivered again, never lost).
pub fn replace_unsynced(path: &Path, contents: &[u8]) -> io::Result<()> {
    replace(path, contents, false)
}

fn replace(path: &Path, contents: &[u8], durable: bool) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    {
        let mut file = fs::File::create(&temporary)?;
        file.write_all(contents)?;
        if durable {
            file.sync_data()?;
        }
    }
    fs::rename(&temporary, path)?;
    if !durable {
        return Ok(());
    }
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
        let scanned = scan_queues(dir.path());
        assert_eq!(scanned["a"], [1, 3]);
        assert_eq!(scanned["b"], Vec::<u64>::new());
        assert_eq!(scanned["t:c"], [2]);
        QueueFiles::new(dir.path(), "a").delete([1, 3]);
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
