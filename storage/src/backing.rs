//! The queue interface the broker keeps its overflow behind, as nsqd's
//! `BackendQueue`: each topic and channel owns one. A durable topic or
//! channel gets a [`crate::DiskBacking`]; an `#ephemeral` one a
//! [`DiscardQueue`] (nsqd's dummy backend): it lives in memory only, and
//! what overflows memory is dropped.
//!
//! Every method returns at once, so the owner may call it under its own
//! lock: work that touches files is done elsewhere, and what it yields is
//! a pending value to wait for after the lock is released.

use std::fmt;

use wasq_wire::Message;

use crate::checkpoint::Location;
use crate::pending::{PendingRead, PendingWork, PendingWrite, ReadBatch};

/// Where a topic's or channel's messages beyond memory go.
pub trait BackingQueue: fmt::Debug + Send {
    /// Appends messages, all due at `due_unix_nanos` if deferred, behind
    /// everything appended before. Counted in [`BackingQueue::depth`] at
    /// once; the pending write completes once they are written (and, in
    /// durable mode, fsynced): answer the publisher only then. `None`:
    /// nothing to wait for (nothing was kept).
    fn append(&mut self, messages: &[Message], due_unix_nanos: Option<i64>)
    -> Option<PendingWrite>;

    /// Reads up to `max` messages in order (after every append asked for
    /// before); `None` if there is nothing to read. Each message read stays
    /// outstanding (the checkpoint does not pass it) until
    /// [`BackingQueue::finish`], and counts in the depth until the owner
    /// takes the batch with [`BackingQueue::delivered`].
    fn read(&mut self, max: usize) -> Option<PendingRead>;

    /// The owner took a read batch into memory; false if the batch is
    /// stale (the queue was cleared since) and must be dropped.
    fn delivered(&mut self, batch: &ReadBatch) -> bool;

    /// A message read from here was finished or moved elsewhere.
    fn finish(&mut self, location: &Location);

    /// Messages held and not yet taken by the owner.
    fn depth(&self) -> u64;

    /// Nothing waits here: new messages may go to memory ahead of it.
    fn is_empty(&self) -> bool;

    /// Makes what was written durable (fsync) and saves the read
    /// checkpoint (every `--sync-timeout`).
    fn sync(&mut self) -> PendingWork<()>;

    /// The read checkpoint last saved durably: a crash never redelivers a
    /// message read before it. `None` when nothing is kept on disk.
    fn saved_checkpoint(&self) -> Option<Location>;

    /// Clean shutdown: keeps every message the owner still holds in memory
    /// (each with its due time, if deferred), forgets `forget` (the
    /// locations of those it had read from here), and makes it all
    /// durable. Returns how many were kept.
    fn write_back(
        &mut self,
        messages: Vec<(Message, Option<i64>)>,
        forget: Vec<Location>,
    ) -> PendingWork<usize>;

    /// Start-up: puts back the messages the queue held in memory at the
    /// last clean shutdown (from `wasqd.held.dat`), each with its due time,
    /// behind everything appended before; counted in the depth at once.
    /// Not fsynced: the broker syncs the filesystem once for every queue.
    fn put_back(&mut self, messages: Vec<(Message, Option<i64>)>) -> PendingWork<()>;

    /// Drops every message, with any files (/empty, delete). Reads asked
    /// for before are stale from now on.
    fn clear(&mut self) -> PendingWork<()>;

    /// Completes once everything asked of the queue so far is done (a
    /// restored queue's recovery scan, a clear).
    fn settled(&mut self) -> PendingWork<()>;
}

/// The backing of an ephemeral topic or channel: nothing is kept beyond
/// memory, as nsqd's dummy backend queue.
#[derive(Debug, Default)]
pub struct DiscardQueue;

impl BackingQueue for DiscardQueue {
    fn append(&mut self, _: &[Message], _: Option<i64>) -> Option<PendingWrite> {
        None
    }

    fn read(&mut self, _: usize) -> Option<PendingRead> {
        None
    }

    fn delivered(&mut self, _: &ReadBatch) -> bool {
        true
    }

    fn finish(&mut self, _: &Location) {}

    fn saved_checkpoint(&self) -> Option<Location> {
        None
    }

    fn depth(&self) -> u64 {
        0
    }

    fn is_empty(&self) -> bool {
        true
    }

    fn sync(&mut self) -> PendingWork<()> {
        PendingWork::ready(Ok(()))
    }

    fn write_back(
        &mut self,
        _: Vec<(Message, Option<i64>)>,
        _: Vec<Location>,
    ) -> PendingWork<usize> {
        PendingWork::ready(Ok(0))
    }

    fn put_back(&mut self, _: Vec<(Message, Option<i64>)>) -> PendingWork<()> {
        PendingWork::ready(Ok(()))
    }

    fn clear(&mut self) -> PendingWork<()> {
        PendingWork::ready(Ok(()))
    }

    fn settled(&mut self) -> PendingWork<()> {
        PendingWork::ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use wasq_wire::MessageId;

    #[tokio::test]
    async fn a_discard_queue_keeps_nothing() {
        let mut queue: Box<dyn BackingQueue> = Box::new(DiscardQueue);
        let message = Message::new(MessageId(*b"0000000000000001"), Bytes::from_static(b"x"));
        assert!(queue.append(&[message], None).is_none());
        assert!(queue.is_empty());
        assert!(queue.read(10).is_none());
        assert_eq!(
            queue
                .write_back(Vec::new(), Vec::new())
                .wait()
                .await
                .unwrap(),
            0
        );
    }
}
