//! A message as nsqd defines it: a 16-byte id, a nanosecond timestamp, an
//! attempts counter and a body; and its encoding in a message frame:
//! `[timestamp i64][attempts u16][id 16 bytes][body]`, big-endian.
//!
//! The body is a `Bytes`, so every channel's copy of a message shares one
//! allocation; only the 26-byte header is per copy.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::WireError;

/// Length of a message id on the wire.
pub const MESSAGE_ID_LEN: usize = 16;

/// Header bytes before the body in a message frame: timestamp, attempts, id.
pub const MESSAGE_HEADER_LEN: usize = 8 + 2 + MESSAGE_ID_LEN;

/// A message id: 16 bytes, opaque to clients, hex digits when nsqd makes it.
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

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub id: MessageId,
    /// Nanoseconds since the Unix epoch at publish time.
    pub timestamp: i64,
    /// Deliveries so far; incremented as the message is sent to a consumer.
    pub attempts: u16,
    pub body: Bytes,
}

impl Message {
    /// A new message, stamped now, never delivered.
    pub fn new(id: MessageId, body: Bytes) -> Message {
        Message::published_at(id, now_nanos(), body)
    }

    /// A new message, never delivered, published at `timestamp`
    /// (nanoseconds since the Unix epoch): the messages of one publish
    /// share one reading of the clock.
    pub fn published_at(id: MessageId, timestamp: i64, body: Bytes) -> Message {
        Message {
            id,
            timestamp,
            attempts: 0,
            body,
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

    /// Decodes a message frame's data (what a consumer receives).
    pub fn decode(data: &Bytes) -> Result<Message, WireError> {
        if data.len() < MESSAGE_HEADER_LEN {
            return Err(WireError::MessageTooShort(data.len()));
        }
        let (timestamp, rest) = data.split_at(8);
        let (attempts, rest) = rest.split_at(2);
        let id = MessageId::from_slice(&rest[..MESSAGE_ID_LEN])
            .ok_or(WireError::MessageTooShort(data.len()))?;
        Ok(Message {
            id,
            timestamp: i64::from_be_bytes(timestamp.try_into().unwrap_or_default()),
            attempts: u16::from_be_bytes(attempts.try_into().unwrap_or_default()),
            body: data.slice(MESSAGE_HEADER_LEN..),
        })
    }
}

/// Nanoseconds since the Unix epoch (a message's timestamp).
pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_matches_nsqd_layout_and_decodes_back() {
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
        assert_eq!(Message::decode(&Bytes::from(out)).unwrap(), m);
    }

    #[test]
    fn a_short_message_is_an_error() {
        assert_eq!(
            Message::decode(&Bytes::from_static(&[0; 25])),
            Err(WireError::MessageTooShort(25))
        );
    }
}
