//! What the owner of a queue waits for, outside its locks: a write (and,
//! in durable mode, its fsync), a read, or other disk work. Each is
//! answered by the queue's worker through a one-shot channel.

use std::io;

use tokio::sync::oneshot;

use crate::checkpoint::Location;
use crate::record::StoredMessage;
use crate::sync::SyncTicket;

/// The worker went away without answering (the runtime is shutting down).
fn worker_gone() -> io::Error {
    io::Error::other("the disk queue's worker stopped before answering")
}

/// One append: done once written, and in durable mode once fsynced.
#[derive(Debug)]
#[must_use = "a publish is acknowledged only once its write is done"]
pub struct PendingWrite(pub(crate) PendingWork<Option<SyncTicket>>);

impl PendingWrite {
    pub async fn wait(self) -> io::Result<()> {
        match self.0.wait().await? {
            Some(ticket) => ticket.wait().await,
            None => Ok(()),
        }
    }
}

/// Everything one publish waits for (it may reach several channels).
#[derive(Debug, Default)]
#[must_use = "a publish is acknowledged only once its writes are done"]
pub struct PendingSync(Vec<PendingWrite>);

impl PendingSync {
    /// Nothing to wait for: the publish is done.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub async fn wait(self) -> io::Result<()> {
        let mut first_error = None;
        for write in self.0 {
            if let Err(e) = write.wait().await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Extend<PendingWrite> for PendingSync {
    fn extend<I: IntoIterator<Item = PendingWrite>>(&mut self, writes: I) {
        self.0.extend(writes);
    }
}

impl Extend<PendingSync> for PendingSync {
    fn extend<I: IntoIterator<Item = PendingSync>>(&mut self, more: I) {
        for pending in more {
            self.0.extend(pending.0);
        }
    }
}

/// Records read from a queue, in order, for its owner to take into memory.
#[derive(Debug)]
pub struct ReadBatch {
    /// The queue's generation when the read was asked for: a batch from
    /// before a clear is stale and must be dropped.
    pub generation: u64,
    pub records: Vec<(StoredMessage, Location)>,
}

/// A read the worker is doing.
#[derive(Debug)]
pub struct PendingRead(pub(crate) PendingWork<ReadBatch>);

impl PendingRead {
    /// The batch; an empty, stale one if the worker went away.
    pub async fn wait(self) -> ReadBatch {
        self.0.wait().await.unwrap_or(ReadBatch {
            generation: u64::MAX,
            records: Vec::new(),
        })
    }
}

/// Other disk work (sync, clear, write-back) and its result.
#[derive(Debug)]
pub struct PendingWork<T>(pub(crate) oneshot::Receiver<io::Result<T>>);

impl<T> PendingWork<T> {
    pub async fn wait(self) -> io::Result<T> {
        self.0.await.map_err(|_| worker_gone())?
    }

    /// Work that needs no worker: its result now.
    pub fn ready(result: io::Result<T>) -> PendingWork<T> {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(result);
        PendingWork(rx)
    }
}
