//! Giving back a collection's spare room once it is mostly empty.
//!
//! Rust's collections keep their capacity when elements leave, so a channel
//! that once held a burst of 10 000 messages ready, in flight or deferred
//! would keep room for 10 000 for the rest of its life: about 90–140 bytes
//! per slot, as much again as a small message's body. A collection under a
//! quarter full is shrunk to twice its length. Between two shrinks at least
//! half of the elements left, so the copying costs O(1) per removal, and a
//! queue that fills and empties in turn settles at one capacity instead of
//! reallocating back and forth.

use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};

/// Below this capacity the spare room is too small to be worth a copy.
const KEEP_CAPACITY: usize = 256;

/// The capacity to shrink to, if a collection this full should shrink.
pub fn shrunk_capacity(len: usize, capacity: usize) -> Option<usize> {
    (capacity > KEEP_CAPACITY && len < capacity / 4).then(|| (len * 2).max(KEEP_CAPACITY))
}

/// A collection that can give its spare room back (see the module doc).
pub trait ReleaseSpare {
    /// Shrinks the collection if it is under a quarter full.
    fn release_spare(&mut self);
}

impl<T> ReleaseSpare for VecDeque<T> {
    fn release_spare(&mut self) {
        if let Some(capacity) = shrunk_capacity(self.len(), self.capacity()) {
            self.shrink_to(capacity);
        }
    }
}

impl<K: Eq + Hash, V, S: BuildHasher> ReleaseSpare for HashMap<K, V, S> {
    fn release_spare(&mut self) {
        if let Some(capacity) = shrunk_capacity(self.len(), self.capacity()) {
            self.shrink_to(capacity);
        }
    }
}

impl<T: Ord> ReleaseSpare for BinaryHeap<T> {
    fn release_spare(&mut self) {
        if let Some(capacity) = shrunk_capacity(self.len(), self.capacity()) {
            self.shrink_to(capacity);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinks_only_large_and_mostly_empty_collections() {
        assert_eq!(shrunk_capacity(0, 128), None);
        assert_eq!(shrunk_capacity(0, 16_384), Some(KEEP_CAPACITY));
        assert_eq!(shrunk_capacity(4_095, 16_384), Some(8_190));
        assert_eq!(shrunk_capacity(4_096, 16_384), None);
    }

    #[test]
    fn a_drained_queue_gives_its_room_back() {
        let mut queue: VecDeque<u64> = (0..10_000).collect();
        while queue.len() > 10 {
            queue.pop_front();
            queue.release_spare();
        }
        assert!(
            queue.capacity() <= 2 * KEEP_CAPACITY,
            "{}",
            queue.capacity()
        );
    }

    #[test]
    fn shrinking_copies_a_bounded_amount_per_removal() {
        // Each shrink copies the elements left; over a whole drain that is
        // less than the number of elements that left.
        let mut map: HashMap<u64, u64> = (0..100_000).map(|i| (i, i)).collect();
        let mut copied = 0;
        for i in 0..100_000 {
            map.remove(&i);
            let before = map.capacity();
            map.release_spare();
            if map.capacity() != before {
                copied += map.len();
            }
        }
        assert!(copied < 100_000, "{copied}");
        assert!(map.capacity() <= 2 * KEEP_CAPACITY);
    }
}
