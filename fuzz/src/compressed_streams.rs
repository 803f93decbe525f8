//! The snappy and deflate stream readers on arbitrary input in arbitrary
//! pieces (refused or decoded, never a panic), and a round trip of the
//! same bytes through each writer and reader.

use bytes::BytesMut;
use wasq_host::protocol::compression::Compression;

/// One input, as the fuzzer and the replay test give it.
pub fn run(data: &[u8]) {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    let make = || {
        if control & 1 == 0 {
            Compression::snappy()
        } else {
            Compression::deflate(u32::from(control >> 4).clamp(1, 9))
        }
    };
    let piece = usize::from(control >> 1).max(1);

    let mut reader = make();
    let mut out = BytesMut::new();
    for chunk in input.chunks(piece) {
        if reader.decompress(chunk, &mut out).is_err() {
            break;
        }
    }

    let mut writer = make();
    let mut reader = make();
    let mut wire = Vec::new();
    for chunk in input.chunks(piece) {
        wire.extend_from_slice(writer.compress(chunk).unwrap());
    }
    let mut plain = BytesMut::new();
    for chunk in wire.chunks(piece + 3) {
        reader.decompress(chunk, &mut plain).unwrap();
    }
    assert_eq!(&plain[..], input);
}
