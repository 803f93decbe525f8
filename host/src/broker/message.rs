//! The broker's messages: the wire crate's [`Message`] (id, timestamp,
//! attempts, body), and the ids this broker gives new ones.
//!
//! The body is a `Bytes`, so every channel's copy of a message shares one
//! allocation; only the 26-byte header is per channel.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

pub use wasq_wire::message::{MESSAGE_ID_LEN, Message, MessageId, now_nanos};

/// A published body in an allocation of its own, as the broker keeps it.
///
/// Bodies arrive as slices of larger buffers: a TCP connection's 16 KiB
/// read buffer (shared by every command pipelined into it), hyper's
/// 8–400 KiB read buffer, a whole MPUB or /mpub request. A slice keeps its
/// entire buffer alive for as long as the message lives, which for a
/// queued, deferred or dead-lettered message can be hours: a 200-byte
/// message that outlives the neighbours it arrived with would hold 4–16
/// KiB. So every body is copied out once, as it is published (the rule is
/// here, where every publish path meets: TCP, HTTP, plugins, dead letters).
/// The copy is one allocation and a memcpy of bytes that were just received,
/// less than receiving them cost; holding a large body as a slice would
/// save little, since its buffer was grown for it and could still be twice
/// its size.
pub fn owned_body(body: &[u8]) -> Bytes {
    Bytes::copy_from_slice(body)
}

/// A published body, becoming the broker's own ([`owned_body`]): slices of
/// a larger buffer are copied out; a `Vec` made for this one body (a
/// plugin's publish, read out of its memory) is kept as it is, so that
/// body is copied once, not twice.
pub trait IntoBody {
    fn into_body(self) -> Bytes;
}

impl<T: AsRef<[u8]> + ?Sized> IntoBody for &T {
    fn into_body(self) -> Bytes {
        owned_body(self.as_ref())
    }
}

impl IntoBody for Bytes {
    fn into_body(self) -> Bytes {
        owned_body(&self)
    }
}

impl IntoBody for Vec<u8> {
    fn into_body(self) -> Bytes {
        // A few spare bytes are kept; a buffer much larger than its body
        // is not (the same reason as `owned_body`).
        if self.capacity() - self.len() <= self.len() / 8 {
            Bytes::from(self)
        } else {
            owned_body(&self)
        }
    }
}

/// Makes unique message ids without a lock, laid out as nsqd's: a
/// timestamp in 2^20-nanosecond units since nsqd's epoch (42 bits), the
/// node id (`--node-id`, 10 bits) and a sequence (12 bits), written as 16
/// hex digits. Ids of two nodes with different node ids never collide.
///
/// nsqd takes a lock per id and fails a publish when more than 4096 ids
/// are asked for in one time unit. Here one atomic counter holds
/// timestamp and sequence together: a burst past 4096 borrows from the
/// next time unit instead of failing, and each time the sequence wraps the
/// counter is moved up to the clock if it fell behind. The counter only
/// grows, so ids stay unique (and increasing) within a run, and across
/// restarts unless a run borrowed further ahead than its restart took.
#[derive(Debug)]
pub struct IdGenerator {
    /// Timestamp << 12 | sequence.
    next: AtomicU64,
    node_id: u64,
}

/// nsqd's epoch: 2012-10-28 16:23:42 UTC in 2^20-nanosecond units.
const EPOCH_UNITS: u64 = 1_288_834_974_288;
const SEQUENCE_BITS: u32 = 12;
const NODE_ID_BITS: u32 = 10;

/// The two lowercase hex digits of every byte value. An id is written a
/// byte at a time from this table: a digit at a time cost 218 instructions
/// an id (78 now), 4.8 % of the broker's instructions for messages
/// published and consumed (callgrind, bench/README.md).
const HEX_PAIRS: [[u8; 2]; 256] = {
    let digits = b"0123456789abcdef";
    let mut pairs = [[0u8; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        pairs[byte] = [digits[byte >> 4], digits[byte & 0xf]];
        byte += 1;
    }
    pairs
};

/// Node ids must fit their 10 bits (nsqd: `[0,1024)`).
pub const MAX_NODE_ID: i64 = (1 << NODE_ID_BITS) - 1;

fn clock_slot() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    (nanos >> 20).saturating_sub(EPOCH_UNITS) << SEQUENCE_BITS
}

impl IdGenerator {
    pub fn new(node_id: u16) -> IdGenerator {
        IdGenerator {
            next: AtomicU64::new(clock_slot()),
            node_id: u64::from(node_id) & MAX_NODE_ID as u64,
        }
    }

    pub fn next_id(&self) -> MessageId {
        self.next_ids(1).next().expect("one id")
    }

    /// `count` ids for one publish, taken with one atomic step: publishers
    /// on several CPUs share the counter, and an MPUB of 200 would move
    /// its cache line between them 200 times.
    pub fn next_ids(&self, count: usize) -> impl Iterator<Item = MessageId> + '_ {
        let count = count as u64;
        let first = self.next.fetch_add(count, Ordering::Relaxed);
        let sequence_mask = (1 << SEQUENCE_BITS) - 1;
        // Ids that reach the end of a time unit's sequence move the
        // counter up to the clock if it fell behind.
        if count > 0 && (first & sequence_mask) + count > sequence_mask {
            self.next.fetch_max(clock_slot(), Ordering::Relaxed);
        }
        (0..count).map(move |i| self.id(first + i))
    }

    /// The id of counter value `n`.
    fn id(&self, n: u64) -> MessageId {
        let sequence_mask = (1 << SEQUENCE_BITS) - 1;
        let timestamp = n >> SEQUENCE_BITS;
        let value = (timestamp << (SEQUENCE_BITS + NODE_ID_BITS))
            | (self.node_id << SEQUENCE_BITS)
            | (n & sequence_mask);
        let mut id = [0u8; MESSAGE_ID_LEN];
        for (digits, byte) in id.chunks_exact_mut(2).zip(value.to_be_bytes()) {
            digits.copy_from_slice(&HEX_PAIRS[usize::from(byte)]);
        }
        MessageId(id)
    }
}

/// nsqd's default node id: the CRC-32 of the MD5 of the host name, mod 1024.
pub fn default_node_id(hostname: &str) -> i64 {
    use md5::Digest;
    let digest = md5::Md5::digest(hostname.as_bytes());
    i64::from(crc32fast::hash(&digest) % 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owned_body_does_not_keep_its_buffer() {
        let buffer = Bytes::from(vec![7u8; 16 * 1024]);
        let body = owned_body(&buffer[100..300]);
        assert_eq!(&body[..], &buffer[100..300]);
        // The buffer's only owner is `buffer`: the body holds none of it.
        assert!(buffer.is_unique());
    }

    #[test]
    fn a_vec_made_for_its_body_is_kept_and_a_roomy_one_copied() {
        let exact = vec![1u8; 200];
        let at = exact.as_ptr();
        assert_eq!(exact.into_body().as_ptr(), at);
        let mut roomy = Vec::with_capacity(4096);
        roomy.extend_from_slice(&[2u8; 200]);
        let at = roomy.as_ptr();
        let body = roomy.into_body();
        assert_ne!(body.as_ptr(), at);
        assert_eq!(&body[..], &[2u8; 200][..]);
    }

    #[test]
    fn ids_are_unique_hex() {
        let ids = IdGenerator::new(617);
        let a = ids.next_id();
        let b = ids.next_id();
        assert_ne!(a, b);
        assert!(a.0.iter().all(|c| c.is_ascii_hexdigit()));
    }

    fn value(id: MessageId) -> u64 {
        u64::from_str_radix(std::str::from_utf8(&id.0).unwrap(), 16).unwrap()
    }

    #[test]
    fn ids_carry_the_node_id_and_increase_through_bursts() {
        let ids = IdGenerator::new(0x2a5);
        let mut last = 0;
        for _ in 0..20_000 {
            let v = value(ids.next_id());
            assert_eq!((v >> 12) & 0x3ff, 0x2a5);
            assert!(v > last);
            last = v;
        }
        // The timestamp is nsqd's: within a second of the clock.
        let now_units = (now_nanos() as u64 >> 20) - EPOCH_UNITS;
        assert!((last >> 22).abs_diff(now_units) < 1000);
    }

    #[test]
    fn ids_taken_in_blocks_are_unique_and_increasing() {
        let ids = IdGenerator::new(3);
        let mut last = 0;
        // Blocks of 200 cross the 4096-id sequence many times.
        for _ in 0..100 {
            for id in ids.next_ids(200) {
                let v = value(id);
                assert!(v > last);
                last = v;
            }
        }
    }

    #[test]
    fn default_node_id_is_nsqds() {
        // nsqd v1.3.0 on a host named "vm" reports --node-id 617.
        assert_eq!(default_node_id("vm"), 617);
    }
}
