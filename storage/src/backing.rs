//! The queue interface the broker keeps its overflow behind, as nsqd's
//! `BackendQueue`: each topic and channel owns one. A durable topic or
//! channel gets a [`DiskQueue`]; an `#ephemeral` one a [`DiscardQueue`]
//! (nsqd's dummy backend): it lives in memory only, and what overflows
//! memory is dropped.

use std::fmt;
use std::io;
use std::sync::Arc;

use wasq_wire::Message;

use crate::checkpoint::Location;
use crate::disk_queue::DiskQueue;
use crate::record::StoredMessage;
use crate::sync::{SyncState, SyncTicket};

/// Where a topic's or channel's messages beyond memory go.
pub trait BackingQueue: fmt::Debug + Send {
    /// Appends messages, all due at `due_unix_nanos` if deferred. The
    /// ticket, if any, completes once they are on stable storage (durable
    /// mode): answer the publisher only then.
    fn append(
        &mut self,
        messages: &[Message],
        due_unix_nanos: Option<i64>,
    ) -> io::Result<Option<SyncTicket>>;

    /// Reads up to `max` messages in order; each stays outstanding (the
    /// checkpoint does not pass it) until [`BackingQueue::finish`].
    fn read(&mut self, max: usize) -> Vec<(StoredMessage, Location)>;

    /// A message read from here was finished or moved elsewhere.
    fn finish(&mut self, location: &Location);

    /// Messages held and not yet read.
    fn depth(&self) -> u64;

    fn is_empty(&self) -> bool {
        self.depth() == 0
    }

    /// What the periodic sync waits on (fsync), if this queue writes.
    fn sync_state(&self) -> Option<Arc<SyncState>>;

    /// Saves the read checkpoint if it moved, deleting consumed files.
    fn save_checkpoint(&mut self) -> io::Result<()>;

    /// Clean shutdown: keeps every message its owner still holds in memory
    /// (each with its due time, if deferred), forgets what was read and not
    /// finished (it is among them) and makes it all durable. Returns how
    /// many were kept.
    fn write_back(&mut self, messages: Vec<(Message, Option<i64>)>) -> io::Result<usize>;

    /// Drops every message, with any files (/empty, delete).
    fn clear(&mut self);
}

impl BackingQueue for DiskQueue {
    fn append(
        &mut self,
        messages: &[Message],
        due_unix_nanos: Option<i64>,
    ) -> io::Result<Option<SyncTicket>> {
        DiskQueue::append(self, messages, due_unix_nanos)
    }

    fn read(&mut self, max: usize) -> Vec<(StoredMessage, Location)> {
        DiskQueue::read(self, max)
    }

    fn finish(&mut self, location: &Location) {
        DiskQueue::finish(self, location)
    }

    fn depth(&self) -> u64 {
        DiskQueue::depth(self)
    }

    fn sync_state(&self) -> Option<Arc<SyncState>> {
        Some(DiskQueue::sync_state(self))
    }

    fn save_checkpoint(&mut self) -> io::Result<()> {
        DiskQueue::save_checkpoint(self)
    }

    fn write_back(&mut self, messages: Vec<(Message, Option<i64>)>) -> io::Result<usize> {
        DiskQueue::write_back(self, messages)
    }

    fn clear(&mut self) {
        DiskQueue::clear(self)
    }
}

/// The backing of an ephemeral topic or channel: nothing is kept beyond
/// memory, as nsqd's dummy backend queue.
#[derive(Debug, Default)]
pub struct DiscardQueue;

impl BackingQueue for DiscardQueue {
    fn append(&mut self, _: &[Message], _: Option<i64>) -> io::Result<Option<SyncTicket>> {
        Ok(None)
    }

    fn read(&mut self, _: usize) -> Vec<(StoredMessage, Location)> {
        Vec::new()
    }

    fn finish(&mut self, _: &Location) {}

    fn depth(&self) -> u64 {
        0
    }

    fn sync_state(&self) -> Option<Arc<SyncState>> {
        None
    }

    fn save_checkpoint(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn write_back(&mut self, _: Vec<(Message, Option<i64>)>) -> io::Result<usize> {
        Ok(0)
    }

    fn clear(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use wasq_wire::MessageId;

    #[test]
    fn a_discard_queue_keeps_nothing() {
        let mut queue: Box<dyn BackingQueue> = Box::new(DiscardQueue);
        let message = Message::new(MessageId(*b"0000000000000001"), Bytes::from_static(b"x"));
        assert!(queue.append(&[message], None).unwrap().is_none());
        assert!(queue.is_empty());
        assert!(queue.read(10).is_empty());
        assert!(queue.sync_state().is_none());
    }
}
