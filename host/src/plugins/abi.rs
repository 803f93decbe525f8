//! The host side of guest-sdk/ABI.md, version 1: the message layout written
//! into guest memory, the outcome read back, and the import status codes.

use std::time::Duration;

use crate::broker::message::Message;

pub const ABI_VERSION: i32 = 1;
pub const HEADER_SIZE: usize = 48;

/// Names of the exports and of the import module.
pub const EXPORT_MEMORY: &str = "memory";
pub const EXPORT_VERSION: &str = "wasq_abi_version";
pub const EXPORT_ALLOC: &str = "wasq_alloc";
pub const EXPORT_HANDLE: &str = "wasq_handle";
pub const EXPORT_INIT: &str = "wasq_init";
pub const EXPORT_REACTOR_INIT: &str = "_initialize";
pub const EXPORT_COMMAND_START: &str = "_start";
pub const IMPORT_MODULE: &str = "wasq";

/// Statuses of the `publish`, `publish_deferred` and `log` imports.
pub mod status {
    pub const OK: i32 = 0;
    pub const FORBIDDEN: i32 = 1;
    pub const INVALID_TOPIC: i32 = 2;
    pub const INVALID_BODY: i32 = 3;
    pub const INVALID_DELAY: i32 = 4;
    pub const BAD_POINTER: i32 = 5;
    pub const UNAVAILABLE: i32 = 6;
}

/// What a handler decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Retry after the host's backoff delay for this attempt.
    Retry,
    RetryAfter(Duration),
    Fatal,
}

impl Outcome {
    /// Decodes `wasq_handle`'s result; `Err` carries the raw value of an
    /// unknown code (treated as a retry by the caller).
    pub fn decode(value: i64) -> Result<Outcome, i64> {
        let code = value as u32;
        let argument = (value >> 32) as u32;
        match code {
            0 => Ok(Outcome::Success),
            1 => Ok(Outcome::Retry),
            2 => Ok(Outcome::RetryAfter(Duration::from_millis(u64::from(
                argument,
            )))),
            3 => Ok(Outcome::Fatal),
            _ => Err(value),
        }
    }
}

/// Length of a message in the v1 layout.
pub fn encoded_len(message: &Message, topic: &str, channel: &str) -> usize {
    HEADER_SIZE + topic.len() + channel.len() + message.body.len()
}

/// Writes the v1 layout of `message` into `out` (which is `encoded_len` long).
pub fn encode_into(out: &mut [u8], message: &Message, topic: &str, channel: &str) {
    out[0..4].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
    out[4..6].copy_from_slice(&message.attempts.to_le_bytes());
    out[6..8].fill(0);
    out[8..16].copy_from_slice(&message.timestamp.to_le_bytes());
    out[16..32].copy_from_slice(&message.id.0);
    out[32..36].copy_from_slice(&(topic.len() as u32).to_le_bytes());
    out[36..40].copy_from_slice(&(channel.len() as u32).to_le_bytes());
    out[40..44].copy_from_slice(&(message.body.len() as u32).to_le_bytes());
    out[44..48].fill(0);
    let mut at = HEADER_SIZE;
    for part in [topic.as_bytes(), channel.as_bytes(), &message.body[..]] {
        out[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::message::MessageId;
    use bytes::Bytes;

    #[test]
    fn outcomes_decode() {
        assert_eq!(Outcome::decode(0), Ok(Outcome::Success));
        assert_eq!(Outcome::decode(1), Ok(Outcome::Retry));
        assert_eq!(Outcome::decode(3), Ok(Outcome::Fatal));
        assert_eq!(
            Outcome::decode((500 << 32) | 2),
            Ok(Outcome::RetryAfter(Duration::from_millis(500)))
        );
        assert_eq!(Outcome::decode(7), Err(7));
        assert_eq!(Outcome::decode(-1), Err(-1));
    }

    #[test]
    fn layout_matches_the_document() {
        let mut m = Message::new(MessageId(*b"0123456789abcdef"), Bytes::from_static(b"body"));
        m.attempts = 2;
        m.timestamp = 7;
        let len = encoded_len(&m, "t", "ch");
        let mut out = vec![0xAA; len];
        encode_into(&mut out, &m, "t", "ch");
        assert_eq!(len, 48 + 1 + 2 + 4);
        assert_eq!(&out[0..4], &48u32.to_le_bytes());
        assert_eq!(&out[4..6], &2u16.to_le_bytes());
        assert_eq!(&out[8..16], &7i64.to_le_bytes());
        assert_eq!(&out[16..32], b"0123456789abcdef");
        assert_eq!(&out[32..44], &[1, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0]);
        assert_eq!(&out[48..], b"tchbody");
    }
}
