//! The host side of guest-sdk/ABI.md, version 1: the message layout written
//! into guest memory, the batch layout of the optional `wasq_handle_batch`,
//! the outcome read back, and the import status codes.

use std::time::Duration;

use crate::broker::message::Message;

pub const ABI_VERSION: i32 = 1;
pub const HEADER_SIZE: usize = 48;

/// Names of the exports and of the import module.
pub const EXPORT_MEMORY: &str = "memory";
pub const EXPORT_VERSION: &str = "wasq_abi_version";
pub const EXPORT_ALLOC: &str = "wasq_alloc";
pub const EXPORT_HANDLE: &str = "wasq_handle";
pub const EXPORT_HANDLE_BATCH: &str = "wasq_handle_batch";
pub const EXPORT_INIT: &str = "wasq_init";
pub const EXPORT_REACTOR_INIT: &str = "_initialize";
pub const EXPORT_COMMAND_START: &str = "_start";
pub const IMPORT_MODULE: &str = "wasq";

/// Every import of module `wasq`, in the order ABI.md lists them.
pub const IMPORTS: [&str; 11] = [
    "log",
    "publish",
    "publish_deferred",
    "config_get",
    "http_request",
    "http_response_read",
    "state_get",
    "state_set",
    "state_delete",
    "state_increment",
    "state_scan",
];

/// The record `http_request` writes: handle, status, headers_len, body_len (u32 each).
pub const HTTP_RESPONSE_RECORD: usize = 16;

/// Responses an instance may hold unread before `http_request` is `BUSY`.
pub const MAX_UNREAD_RESPONSES: usize = 16;

/// `http_request`'s response record (ABI.md, "Outbound HTTP").
pub fn http_response_record(
    handle: u32,
    status: u16,
    headers_len: usize,
    body_len: usize,
) -> [u8; HTTP_RESPONSE_RECORD] {
    let mut record = [0; HTTP_RESPONSE_RECORD];
    record[0..4].copy_from_slice(&handle.to_le_bytes());
    record[4..8].copy_from_slice(&u32::from(status).to_le_bytes());
    record[8..12].copy_from_slice(&(headers_len as u32).to_le_bytes());
    record[12..16].copy_from_slice(&(body_len as u32).to_le_bytes());
    record
}

/// Statuses of the `publish`, `publish_deferred` and `log` imports.
pub mod status {
    pub const OK: i32 = 0;
    pub const FORBIDDEN: i32 = 1;
    pub const INVALID_TOPIC: i32 = 2;
    pub const INVALID_BODY: i32 = 3;
    pub const INVALID_DELAY: i32 = 4;
    pub const BAD_POINTER: i32 = 5;
    pub const UNAVAILABLE: i32 = 6;
    pub const NOT_FOUND: i32 = 7;
    pub const NOT_ALLOWED: i32 = 8;
    pub const TIMEOUT: i32 = 9;
    pub const DNS: i32 = 10;
    pub const CONNECT: i32 = 11;
    pub const TOO_LARGE: i32 = 12;
    pub const INVALID_REQUEST: i32 = 13;
    pub const IO: i32 = 14;
    pub const BUSY: i32 = 15;
    pub const NO_STATE: i32 = 16;
    pub const INVALID_KEY: i32 = 17;
    pub const VALUE_TOO_LARGE: i32 = 18;
    pub const STATE_FULL: i32 = 19;
    pub const NOT_A_NUMBER: i32 = 20;
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

/// One entry of a batch's table: the outcome (i64, written by the guest),
/// the message's offset from the batch's start (u32) and its length (u32).
pub const BATCH_ENTRY_SIZE: usize = 16;

/// What an outcome slot holds until the guest has handled its message:
/// code 0xFFFF_FFFF, which no outcome has.
pub const NOT_HANDLED: i64 = -1;

/// A batch holds messages up to this many bytes in all (a message larger
/// than that goes alone): enough that the call itself costs next to
/// nothing per message, small enough for any guest's allocator.
pub const BATCH_MAX_BYTES: usize = 64 * 1024;

/// The messages of one `wasq_handle_batch` call: how many of `messages`
/// (from the first; at least one unless empty) and the batch's length.
pub fn batch_extent(messages: &[Message], topic: &str, channel: &str) -> (usize, usize) {
    let mut len = 0;
    for (count, message) in messages.iter().enumerate() {
        let more = BATCH_ENTRY_SIZE + encoded_len(message, topic, channel).next_multiple_of(8);
        if count > 0 && len + more > BATCH_MAX_BYTES {
            return (count, len);
        }
        len += more;
    }
    (messages.len(), len)
}

/// Writes a batch (`batch_extent`'s `len` long) into `out`: the table of
/// `messages.len()` entries, every outcome [`NOT_HANDLED`], then each
/// message in the v1 layout at an offset that is a multiple of 8.
pub fn encode_batch_into(out: &mut [u8], messages: &[Message], topic: &str, channel: &str) {
    let mut at = messages.len() * BATCH_ENTRY_SIZE;
    for (index, message) in messages.iter().enumerate() {
        let len = encoded_len(message, topic, channel);
        let entry = &mut out[index * BATCH_ENTRY_SIZE..][..BATCH_ENTRY_SIZE];
        entry[0..8].copy_from_slice(&NOT_HANDLED.to_le_bytes());
        entry[8..12].copy_from_slice(&(at as u32).to_le_bytes());
        entry[12..16].copy_from_slice(&(len as u32).to_le_bytes());
        encode_into(&mut out[at..at + len], message, topic, channel);
        at += len.next_multiple_of(8);
    }
}

/// The outcome slot of entry `index` in a batch at the start of `batch`.
pub fn batch_outcome(batch: &[u8], index: usize) -> i64 {
    let at = index * BATCH_ENTRY_SIZE;
    i64::from_le_bytes(batch[at..at + 8].try_into().expect("8 bytes"))
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

    #[test]
    fn a_batch_is_a_table_then_aligned_messages() {
        let messages = [b"body".as_slice(), b"second body"]
            .map(|body| Message::new(MessageId(*b"0123456789abcdef"), Bytes::from(body)));
        let (count, len) = batch_extent(&messages, "t", "ch");
        // 48 + 3 + 4 = 55 -> 56; 48 + 3 + 11 = 62 -> 64.
        assert_eq!((count, len), (2, 2 * 16 + 56 + 64));
        let mut out = vec![0xAA; len];
        encode_batch_into(&mut out, &messages, "t", "ch");
        for index in 0..2 {
            assert_eq!(batch_outcome(&out, index), NOT_HANDLED);
        }
        assert_eq!(&out[8..16], &[32, 0, 0, 0, 55, 0, 0, 0]);
        assert_eq!(&out[24..32], &[88, 0, 0, 0, 62, 0, 0, 0]);
        assert_eq!(&out[32 + 48..32 + 55], b"tchbody");
        assert_eq!(&out[88 + 48..88 + 62], b"tchsecond body");
    }

    #[test]
    fn a_batch_stops_at_its_size_but_always_takes_one() {
        let small = Message::new(MessageId([b'0'; 16]), Bytes::from(vec![1; 200]));
        let per_message = BATCH_ENTRY_SIZE + encoded_len(&small, "t", "c").next_multiple_of(8);
        let many = vec![small; 1000];
        let (count, len) = batch_extent(&many, "t", "c");
        assert_eq!(count, BATCH_MAX_BYTES / per_message);
        assert_eq!(len, count * per_message);

        let huge = Message::new(MessageId([b'0'; 16]), Bytes::from(vec![1; BATCH_MAX_BYTES]));
        assert_eq!(batch_extent(&[huge.clone(), huge], "t", "c").0, 1);
        assert_eq!(batch_extent(&[], "t", "c"), (0, 0));
    }
}
