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

/// Makes unique message ids without a lock.
///
/// An id is a 64-bit number written as 16 hex digits (nsqd's shape). The
/// counter starts at the start time in milliseconds shifted left by 20 bits,
/// so ids stay unique across restarts unless a run publishes more than a
/// million messages per millisecond of its uptime.
#[derive(Debug)]
pub struct IdGenerator {
    next: AtomicU64,
}

impl Default for IdGenerator {
    fn default() -> Self {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        IdGenerator {
            next: AtomicU64::new(millis << 20),
        }
    }
}

impl IdGenerator {
    pub fn next_id(&self) -> MessageId {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut id = [0u8; MESSAGE_ID_LEN];
        for (i, byte) in id.iter_mut().enumerate() {
            let nibble = ((n >> (60 - 4 * i)) & 0xf) as u8;
            *byte = b"0123456789abcdef"[nibble as usize];
        }
        MessageId(id)
    }
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
    fn ids_are_unique_hex() {
        let ids = IdGenerator::default();
        let a = ids.next_id();
        let b = ids.next_id();
        assert_ne!(a, b);
        assert!(a.0.iter().all(|c| c.is_ascii_hexdigit()));
    }
}
