//! How a topic or channel keeps its messages: up to a memory limit in
//! memory, the rest behind its backing queue (`wasq_storage`): a disk
//! queue for a durable one, nothing (dropped, as nsqd drops them) for an
//! ephemeral one.

use std::sync::Arc;

use super::latency::LatencySettings;
use super::message::Message;
use wasq_storage::{BackingQueue, DiscardQueue, DiskStore, PendingWork};

/// An ephemeral queue never touches disk; with `--mem-queue-size=0` it
/// still holds this many messages so `nsq_tail` works in durable mode.
pub const EPHEMERAL_MIN_MEMORY: usize = 1000;

/// How a broker keeps its queues: how many messages each may hold in
/// memory and where the rest goes.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    pub mem_queue_size: usize,
    /// `None`: memory only (unit tests).
    pub disk: Option<Arc<DiskStore>>,
    /// End-to-end latency percentiles to keep per channel, if asked for.
    pub latency: Option<LatencySettings>,
}

impl QueueSettings {
    /// Unbounded memory, no disk.
    pub fn memory_only() -> QueueSettings {
        QueueSettings {
            mem_queue_size: usize::MAX,
            disk: None,
            latency: None,
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

    /// Opens the backing of queue `name` (a topic, or `TOPIC:CHANNEL`):
    /// its disk queue (recovered on its worker if it has files), or a
    /// discarding one if it is ephemeral or the broker keeps no disk.
    /// Returns at once.
    pub fn open_backing(&self, name: &str, ephemeral: bool) -> Box<dyn BackingQueue> {
        match &self.disk {
            Some(store) if !ephemeral => Box::new(store.open(name)),
            _ => Box::new(DiscardQueue),
        }
    }
}

/// The disk queue name of a channel (a topic's is its own name).
pub fn channel_queue_name(topic: &str, channel: &str) -> String {
    format!("{topic}:{channel}")
}

/// What a topic or channel held in memory at shutdown: the messages to
/// keep (in `wasqd.held.dat`; none for an ephemeral one, which drops them
/// as nsqd does), each with its due time if deferred, and its disk queue's
/// own write-back (forgetting what it had handed over, its checkpoint) to
/// wait for.
pub struct Held {
    pub messages: Vec<(Message, Option<i64>)>,
    pub written: PendingWork<usize>,
}

impl Held {
    /// Takes `messages` out for the held-messages file and tells `backing`
    /// to forget `forget`.
    pub fn take(
        backing: &mut dyn BackingQueue,
        ephemeral: bool,
        messages: Vec<(Message, Option<i64>)>,
        forget: Vec<wasq_storage::Location>,
    ) -> Held {
        Held {
            messages: if ephemeral { Vec::new() } else { messages },
            written: backing.write_back(Vec::new(), forget),
        }
    }
}

/// Messages read from `wasqd.held.dat`, as a queue's put-back takes them.
pub fn held_records(messages: Vec<wasq_storage::StoredMessage>) -> Vec<(Message, Option<i64>)> {
    messages
        .into_iter()
        .map(|stored| (stored.message, stored.due_unix_nanos))
        .collect()
}

/// How many more messages a queue may keep in memory: none once anything
/// waits beyond memory (`older_beyond`), so new messages queue behind it
/// and order holds.
pub fn memory_room(memory_limit: usize, in_memory: usize, older_beyond: bool) -> usize {
    if older_beyond {
        0
    } else {
        memory_limit.saturating_sub(in_memory)
    }
}

/// Disk work an operator's request waits for before it is answered: the
/// files of an emptied or deleted queue are gone once it completes.
#[derive(Debug, Default)]
#[must_use = "the files are gone only once this completes"]
pub struct Cleared(Vec<PendingWork<()>>);

impl Cleared {
    pub fn push(&mut self, work: PendingWork<()>) {
        self.0.push(work);
    }

    pub fn append(&mut self, mut other: Cleared) {
        self.0.append(&mut other.0);
    }

    /// Waits for every deletion; a failure is logged (the queue is empty
    /// either way).
    pub async fn wait(self) {
        for work in self.0 {
            if let Err(e) = work.wait().await {
                tracing::error!(error = %e, "STORAGE: cannot delete a queue's files");
            }
        }
    }
}
