//! The disk queue's record decoder on arbitrary (damaged) bytes: it may
//! refuse, never panic or over-allocate; what it accepts encodes back to
//! the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasq_storage::record;

fuzz_target!(|data: &[u8]| {
    if let Ok((stored, used)) = record::decode(data, 1 << 20) {
        let mut again = Vec::new();
        record::encode(&stored.message, stored.due_unix_nanos, &mut again);
        assert_eq!(&again[..], &data[..used]);
    }
});
