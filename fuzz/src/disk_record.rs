//! The disk queue's record decoder on arbitrary (damaged) bytes: it may
//! refuse, never panic or over-allocate; what it accepts encodes back to
//! the same bytes.

use wasq_storage::record;

/// One input, as the fuzzer and the replay test give it.
pub fn run(data: &[u8]) {
    if let Ok((stored, used)) = record::decode(data, 1 << 20) {
        let mut again = Vec::new();
        record::encode(&stored.message, stored.due_unix_nanos, &mut again);
        assert_eq!(&again[..], &data[..used]);
    }
}
