//! A message as nsqd defines it: a 16-byte id, a nanosecond timestamp, an
//! attempts counter and a body.
//!
//! The body is a `Bytes`, so every channel's copy of a message shares one
//! allocation; only the 26-byte header is per channel.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::storage::Location;

/// Length of a message id on the wire.
pub const MESSAGE_ID_LEN: usize = 16;

/// Header bytes before the body in a message frame: timestamp, attempts, id.
pub const MESSAGE_HEADER_LEN: usize = 8 + 2 + MESSAGE_ID_LEN;

/// A message id: 16 bytes, opaque to clients, hex digits when we make it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub [u8; MESSAGE_ID_LEN]);

impl MessageId {
    /// Takes an id from the wire; nsqd accepts any 16 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<MessageId> {
        <[u8; MESSAGE_ID_LEN]>::try_from(bytes).ok().map(MessageId)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({self})")
    }
}

#[derive(Clone, Debug)]
pub struct Message {
    pub id: MessageId,
    /// Nanoseconds since the Unix epoch at publish time.
    pub timestamp: i64,
    /// Deliveries so far; incremented as the message is sent to a consumer.
    pub attempts: u16,
    pub body: Bytes,
    /// Where this copy sits in its queue's disk file while it is read but
    /// not finished; the disk checkpoint does not pass it.
    pub disk: Option<Location>,
}

impl Message {
    pub fn new(id: MessageId, body: Bytes) -> Message {
        Message {
            id,
            timestamp: now_nanos(),
            attempts: 0,
            body,
            disk: None,
        }
    }

    /// Length of the message's encoding in a frame (header + body).
    pub fn encoded_len(&self) -> usize {
        MESSAGE_HEADER_LEN + self.body.len()
    }

    /// Appends nsqd's message encoding: timestamp, attempts, id, body.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.attempts.to_be_bytes());
        out.extend_from_slice(&self.id.0);
        out.extend_from_slice(&self.body);
    }
}

/// Nanoseconds since the Unix epoch.
pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
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
    fn ids_are_unique_hex() {
        let ids = IdGenerator::default();
        let a = ids.next_id();
        let b = ids.next_id();
        assert_ne!(a, b);
        assert!(a.0.iter().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn encoding_matches_nsqd_layout() {
        let mut m = Message::new(MessageId(*b"0123456789abcdef"), Bytes::from_static(b"hi"));
        m.timestamp = 0x0102030405060708;
        m.attempts = 3;
        let mut out = Vec::new();
        m.encode_into(&mut out);
        assert_eq!(out.len(), m.encoded_len());
        assert_eq!(&out[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&out[8..10], &[0, 3]);
        assert_eq!(&out[10..26], b"0123456789abcdef");
        assert_eq!(&out[26..], b"hi");
    }
}
