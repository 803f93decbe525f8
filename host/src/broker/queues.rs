//! How a topic or channel keeps its messages: up to a memory limit in
//! memory, the rest behind its backing queue (`wasq_storage`): a disk
//! queue for a durable one, nothing (dropped, as nsqd drops them) for an
//! ephemeral one.

use std::io;
use std::sync::Arc;

use parking_lot::Mutex;
use wasq_storage::{BackingQueue, DiscardQueue, DiskQueue, DiskSettings};

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

    /// Opens (and recovers) the backing of queue `name` (a topic, or
    /// `TOPIC:CHANNEL`): its disk queue, or a discarding one if it is
    /// ephemeral or the broker keeps no disk.
    pub fn open_backing(&self, name: &str, ephemeral: bool) -> Box<dyn BackingQueue> {
        match &self.disk {
            Some(settings) if !ephemeral => Box::new(DiskQueue::open(name, settings.clone())),
            _ => Box::new(DiscardQueue),
        }
    }
}

/// How many more messages a queue may keep in memory: none once anything
/// waits behind it, so new messages queue behind that and order holds.
pub fn memory_room(memory_limit: usize, in_memory: usize, backing: &dyn BackingQueue) -> usize {
    if backing.is_empty() {
        memory_limit.saturating_sub(in_memory)
    } else {
        0
    }
}

/// Fsyncs a queue's unsynced writes (without holding its owner's lock
/// across the fsync) and saves its read checkpoint; `backing` picks the
/// queue out of the topic's or channel's locked state.
pub async fn sync_queue<S>(
    state: &Mutex<S>,
    backing: fn(&mut S) -> &mut dyn BackingQueue,
) -> io::Result<()> {
    let sync = backing(&mut state.lock()).sync_state();
    let Some(sync) = sync else {
        return Ok(());
    };
    if sync.is_dirty() {
        sync.sync_to(sync.written()).await?;
    }
    backing(&mut state.lock()).save_checkpoint()
}
