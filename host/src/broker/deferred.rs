//! Messages waiting for a due time (DPUB, or REQ with a delay), in one
//! time-ordered heap per channel rather than a timer per message. Generic
//! over what is held, so a channel can keep a message's disk location with it.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Instant;

use super::spare_room::ReleaseSpare;

#[derive(Debug)]
struct Entry<T> {
    due: Instant,
    /// Insertion order, so messages due at the same instant keep FIFO order.
    seq: u64,
    message: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        self.due == other.due && self.seq == other.seq
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    /// Reversed, so the max-heap pops the earliest due time first.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .due
            .cmp(&self.due)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

#[derive(Debug)]
pub struct DeferredQueue<T> {
    heap: BinaryHeap<Entry<T>>,
    seq: u64,
}

impl<T> Default for DeferredQueue<T> {
    fn default() -> Self {
        DeferredQueue {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<T> DeferredQueue<T> {
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    pub fn push(&mut self, due: Instant, message: T) {
        self.seq += 1;
        self.heap.push(Entry {
            due,
            seq: self.seq,
            message,
        });
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|e| e.due)
    }

    /// Removes and returns, in due order, every message due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Vec<T> {
        let mut due = Vec::new();
        while self.heap.peek().is_some_and(|e| e.due <= now) {
            if let Some(entry) = self.heap.pop() {
                due.push(entry.message);
            }
        }
        self.heap.release_spare();
        due
    }

    pub fn clear(&mut self) {
        self.heap = BinaryHeap::new();
    }

    /// Removes every message with its due time, in due order (shutdown).
    pub fn drain(&mut self) -> Vec<(Instant, T)> {
        let mut all = Vec::with_capacity(self.heap.len());
        while let Some(entry) = self.heap.pop() {
            all.push((entry.due, entry.message));
        }
        self.heap = BinaryHeap::new();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::message::{Message, MessageId};
    use bytes::Bytes;
    use std::time::Duration;

    fn msg(tag: &'static [u8]) -> Message {
        Message::new(MessageId(*b"0000000000000000"), Bytes::from_static(tag))
    }

    #[test]
    fn pops_in_due_order_and_fifo_on_ties() {
        let t0 = Instant::now();
        let mut q = DeferredQueue::default();
        q.push(t0 + Duration::from_secs(2), msg(b"late"));
        q.push(t0 + Duration::from_secs(1), msg(b"first"));
        q.push(t0 + Duration::from_secs(1), msg(b"second"));
        assert_eq!(q.next_due(), Some(t0 + Duration::from_secs(1)));
        let due: Vec<_> = q
            .pop_due(t0 + Duration::from_secs(1))
            .into_iter()
            .map(|m| m.body)
            .collect();
        assert_eq!(
            due,
            vec![Bytes::from_static(b"first"), Bytes::from_static(b"second")]
        );
        assert_eq!(q.len(), 1);
        assert!(q.pop_due(t0).is_empty());
    }
}
