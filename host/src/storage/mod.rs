//! What survives a restart: disk queues for messages beyond
//! `--mem-queue-size` (or all of them in durable mode) and the metadata of
//! which topics and channels exist and which are paused.
//!
//! - [`record`]: one message on disk, with length and checksum
//! - [`disk_queue`]: segmented append-only queue with a read checkpoint
//! - [`sync`]: group commit for durable publishes
//! - [`metadata`]: `wasqd.dat`, nsqd's `nsqd.dat` in the same JSON shape
//! - [`background`]: periodic fsync and checkpoints, metadata saves

pub mod background;
pub mod disk_queue;
pub mod metadata;
pub mod record;
pub mod sync;

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasq_wire::message::now_nanos;

pub use disk_queue::{DiskQueue, DiskSettings, Location};
pub use sync::{PendingSync, SyncTicket};

/// Keeps `<data-path>/wasqd.lock` locked while the broker runs, so two
/// brokers never append to the same queue files (nsqd refuses a data path
/// in use too). The operating system drops the lock when the process ends,
/// however it ends.
#[derive(Debug)]
pub struct DataPathLock {
    _file: fs::File,
}

impl DataPathLock {
    pub fn acquire(dir: &Path) -> anyhow::Result<DataPathLock> {
        let path = dir.join("wasqd.lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(DataPathLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(anyhow::anyhow!(
                "--data-path {} is in use by another wasqd (it holds {})",
                dir.display(),
                path.display()
            )),
            Err(fs::TryLockError::Error(e)) => {
                Err(anyhow::anyhow!("cannot lock {}: {e}", path.display()))
            }
        }
    }
}

/// Replaces `path` with `contents` so that a crash leaves either the old
/// or the new file, never a mix: write a temporary file, fsync, rename.
pub fn atomic_write(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = std::path::PathBuf::from(temporary);
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

/// Fsyncs a queue's unsynced writes (without holding its lock across the
/// fsync) and saves its read checkpoint; `disk` picks the queue out of the
/// topic's or channel's locked state.
pub async fn sync_queue<S>(
    state: &parking_lot::Mutex<S>,
    disk: fn(&mut S) -> Option<&mut DiskQueue>,
) -> io::Result<()> {
    let sync = disk(&mut state.lock()).map(|d| d.sync_state());
    let Some(sync) = sync else {
        return Ok(());
    };
    if sync.is_dirty() {
        sync.sync_to(sync.written()).await?;
    }
    if let Some(disk) = disk(&mut state.lock()) {
        disk.save_checkpoint()?;
    }
    Ok(())
}

/// How many more messages a queue may keep in memory: none once anything
/// waits on its disk, so new messages queue behind it and order holds.
pub fn memory_room(memory_limit: usize, in_memory: usize, disk: Option<&DiskQueue>) -> usize {
    if disk.is_some_and(|d| !d.is_empty()) {
        0
    } else {
        memory_limit.saturating_sub(in_memory)
    }
}

/// An ephemeral queue never touches disk; with `--mem-queue-size=0` it
/// still holds this many messages so `nsq_tail` works in durable mode.
pub const EPHEMERAL_MIN_MEMORY: usize = 1000;

/// How a broker keeps its queues: how many messages each may hold in
/// memory and where the rest goes.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    pub mem_queue_size: usize,
    /// `None`: memory only (unit tests).
    pub disk: Option<Arc<DiskSettings>>,
}

impl QueueSettings {
    /// Unbounded memory, no disk.
    pub fn memory_only() -> QueueSettings {
        QueueSettings {
            mem_queue_size: usize::MAX,
            disk: None,
        }
    }

    /// Messages a queue keeps in memory before the rest goes to disk (or,
    /// for an ephemeral queue, is dropped as nsqd drops it).
    pub fn memory_limit(&self, ephemeral: bool) -> usize {
        if ephemeral && self.mem_queue_size == 0 {
            EPHEMERAL_MIN_MEMORY
        } else {
            self.mem_queue_size
        }
    }

    /// Opens the disk part of a queue; ephemeral queues have none.
    pub fn open_disk(&self, queue_name: &str, ephemeral: bool) -> Option<DiskQueue> {
        match &self.disk {
            Some(settings) if !ephemeral => Some(DiskQueue::open(queue_name, settings.clone())),
            _ => None,
        }
    }
}

/// A due time as Unix nanoseconds, for writing to disk.
pub fn due_to_unix_nanos(due: Instant) -> i64 {
    let now = Instant::now();
    let ahead = due.saturating_duration_since(now).as_nanos() as i64;
    now_nanos() + ahead
}

/// A due time read from disk; one in the past is due now.
pub fn due_from_unix_nanos(unix_nanos: i64) -> Instant {
    let ahead = unix_nanos.saturating_sub(now_nanos()).max(0);
    Instant::now() + Duration::from_nanos(ahead as u64)
}
