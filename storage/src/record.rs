//! The on-disk form of one queued message.
//!
//! A record is `len: u32 LE`, `crc32: u32 LE` of the payload, then the
//! payload: id (16 bytes), timestamp (i64 LE, ns), attempts (u16 LE), due
//! time (i64 LE, Unix ns, 0 when not deferred) and the body. The length
//! and checksum let recovery tell a record cut short by a crash (a torn
//! tail) or damaged on disk from a good one.

use bytes::Bytes;

use wasq_wire::message::{MESSAGE_ID_LEN, Message, MessageId};

/// Bytes before the payload: length and checksum.
pub const RECORD_HEADER_LEN: usize = 8;

/// Payload bytes before the body.
pub const PAYLOAD_FIXED_LEN: usize = MESSAGE_ID_LEN + 8 + 2 + 8;

/// A message read back from disk, with its due time if it was deferred.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub message: Message,
    /// Unix nanoseconds at which a deferred message becomes ready.
    pub due_unix_nanos: Option<i64>,
}

/// Why bytes are not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record cut short ({available} of {needed} bytes)")]
    Truncated { needed: usize, available: usize },
    #[error("record length {0} is impossible")]
    BadLength(u32),
    #[error("record checksum mismatch")]
    BadChecksum,
}

/// Encoded size of a message's record.
pub fn record_len(message: &Message) -> usize {
    RECORD_HEADER_LEN + PAYLOAD_FIXED_LEN + message.body.len()
}

/// Appends a message's record to `out`.
pub fn encode(message: &Message, due_unix_nanos: Option<i64>, out: &mut Vec<u8>) {
    let start = out.len();
    let payload_len = (PAYLOAD_FIXED_LEN + message.body.len()) as u32;
    out.extend_from_slice(&payload_len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&message.id.0);
    out.extend_from_slice(&message.timestamp.to_le_bytes());
    out.extend_from_slice(&message.attempts.to_le_bytes());
    out.extend_from_slice(&due_unix_nanos.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&message.body);
    let crc = crc32fast::hash(&out[start + RECORD_HEADER_LEN..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Reads the header of a record: the payload length and checksum.
pub fn decode_header(
    header: &[u8; RECORD_HEADER_LEN],
    max_payload: u64,
) -> Result<(usize, u32), RecordError> {
    let len = u32::from_le_bytes(header[..4].try_into().unwrap_or_default());
    let crc = u32::from_le_bytes(header[4..].try_into().unwrap_or_default());
    if (len as usize) < PAYLOAD_FIXED_LEN || u64::from(len) > max_payload {
        return Err(RecordError::BadLength(len));
    }
    Ok((len as usize, crc))
}

/// Checks a payload, read as its fixed part and its body, against its
/// checksum and decodes it.
///
/// The body comes in a buffer of its own, exactly its size, which becomes
/// the message's body: a message read back from disk holds nothing of the
/// record around it (no read buffer, no record header).
pub fn decode_payload(
    fixed: &[u8; PAYLOAD_FIXED_LEN],
    body: Vec<u8>,
    crc: u32,
) -> Result<StoredMessage, RecordError> {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(fixed);
    hasher.update(&body);
    if hasher.finalize() != crc {
        return Err(RecordError::BadChecksum);
    }
    let (id, rest) = fixed.split_at(MESSAGE_ID_LEN);
    let (timestamp, rest) = rest.split_at(8);
    let (attempts, due) = rest.split_at(2);
    let id = MessageId::from_slice(id).ok_or(RecordError::BadChecksum)?;
    let timestamp = i64::from_le_bytes(timestamp.try_into().unwrap_or_default());
    let attempts = u16::from_le_bytes(attempts.try_into().unwrap_or_default());
    let due = i64::from_le_bytes(due.try_into().unwrap_or_default());
    Ok(StoredMessage {
        message: Message {
            id,
            timestamp,
            attempts,
            body: Bytes::from(body),
        },
        due_unix_nanos: (due != 0).then_some(due),
    })
}

/// Decodes one whole record from the front of `bytes` (recovery scans and
/// tests); returns it and the bytes it used.
pub fn decode(bytes: &[u8], max_payload: u64) -> Result<(StoredMessage, usize), RecordError> {
    let Some(header) = bytes.first_chunk::<RECORD_HEADER_LEN>() else {
        return Err(RecordError::Truncated {
            needed: RECORD_HEADER_LEN,
            available: bytes.len(),
        });
    };
    let (len, crc) = decode_header(header, max_payload)?;
    let end = RECORD_HEADER_LEN + len;
    if bytes.len() < end {
        return Err(RecordError::Truncated {
            needed: end,
            available: bytes.len(),
        });
    }
    let (fixed, body) = bytes[RECORD_HEADER_LEN..end].split_at(PAYLOAD_FIXED_LEN);
    let fixed = fixed.try_into().expect("the fixed part's length");
    Ok((decode_payload(fixed, body.to_vec(), crc)?, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        let mut m = Message::new(
            MessageId(*b"0123456789abcdef"),
            Bytes::from_static(b"hello"),
        );
        m.attempts = 2;
        m
    }

    #[test]
    fn round_trips_with_and_without_due_time() {
        let original = message();
        for due in [None, Some(1_700_000_000_000_000_000)] {
            let mut out = Vec::new();
            encode(&original, due, &mut out);
            assert_eq!(out.len(), record_len(&original));
            let (stored, used) = decode(&out, 1 << 20).unwrap();
            assert_eq!(used, out.len());
            assert_eq!(stored.message.id, original.id);
            assert_eq!(stored.message.timestamp, original.timestamp);
            assert_eq!(stored.message.attempts, 2);
            assert_eq!(stored.message.body, Bytes::from_static(b"hello"));
            assert_eq!(stored.due_unix_nanos, due);
        }
    }

    #[test]
    fn a_cut_record_is_truncated_not_misread() {
        let mut out = Vec::new();
        encode(&message(), None, &mut out);
        for cut in 0..out.len() {
            assert!(matches!(
                decode(&out[..cut], 1 << 20),
                Err(RecordError::Truncated { .. })
            ));
        }
    }

    #[test]
    fn flipped_bits_fail_the_checksum() {
        let mut out = Vec::new();
        encode(&message(), None, &mut out);
        let last = out.len() - 1;
        out[last] ^= 1;
        assert_eq!(decode(&out, 1 << 20).err(), Some(RecordError::BadChecksum));
    }

    #[test]
    fn zeroed_space_is_not_a_record() {
        assert_eq!(
            decode(&[0; 64], 1 << 20).err(),
            Some(RecordError::BadLength(0))
        );
    }
}
