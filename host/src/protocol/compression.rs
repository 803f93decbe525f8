//! Snappy and deflate on a V2 connection, negotiated in IDENTIFY.
//!
//! nsqd wraps the connection in Go's stream readers and writers; here the
//! connection keeps reading into and writing from its own buffers, and a
//! [`Compression`] turns what came off the socket into plain bytes and a
//! flush's plain bytes into what goes on the socket. Each flush ends the
//! compressed data so far (deflate's sync flush; snappy's chunks are
//! whole), so the client can decode every frame as soon as it arrives, as
//! nsqd's `Flush` does.
//!
//! Formats as nsqd speaks them: snappy's framing format (stream identifier,
//! then compressed or uncompressed chunks with masked CRC-32C) and raw
//! deflate (RFC 1951, no zlib header).

use std::collections::VecDeque;
use std::io::{self, Read, Write};

use bytes::BytesMut;

/// The longest snappy chunk the decoder accepts (a 64 KiB block at its
/// worst compression, plus its checksum): a longer one is refused from its
/// header, before it is buffered.
const MAX_SNAPPY_CHUNK: usize = 4 + 32 + 65536 + 65536 / 6;

/// The highest deflate level (as Go's `compress/flate`).
pub const MAX_DEFLATE_LEVEL: u32 = 9;

pub enum Compression {
    Snappy {
        encoder: Box<snap::write::FrameEncoder<Vec<u8>>>,
        decoder: Box<snap::read::FrameDecoder<WholeChunks>>,
        /// Received bytes not yet forming a whole chunk.
        partial: Vec<u8>,
    },
    Deflate {
        encoder: flate2::write::DeflateEncoder<Vec<u8>>,
        decoder: flate2::write::DeflateDecoder<Vec<u8>>,
    },
}

impl Compression {
    pub fn snappy() -> Compression {
        Compression::Snappy {
            encoder: Box::new(snap::write::FrameEncoder::new(Vec::new())),
            decoder: Box::new(snap::read::FrameDecoder::new(WholeChunks::default())),
            partial: Vec::new(),
        }
    }

    /// `level` 1..=9, already clamped to `--max-deflate-level`.
    pub fn deflate(level: u32) -> Compression {
        Compression::Deflate {
            encoder: flate2::write::DeflateEncoder::new(
                Vec::new(),
                flate2::Compression::new(level.min(MAX_DEFLATE_LEVEL)),
            ),
            decoder: flate2::write::DeflateDecoder::new(Vec::new()),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Compression::Snappy { .. } => "snappy",
            Compression::Deflate { .. } => "deflate",
        }
    }

    /// Compresses `plain` and ends the compressed data so far, returning
    /// the bytes to send. Valid until the next call.
    pub fn compress(&mut self, plain: &[u8]) -> io::Result<&[u8]> {
        match self {
            Compression::Snappy { encoder, .. } => {
                encoder.get_mut().clear();
                encoder.write_all(plain)?;
                encoder.flush()?;
                Ok(encoder.get_ref())
            }
            Compression::Deflate { encoder, .. } => {
                encoder.get_mut().clear();
                encoder.write_all(plain)?;
                encoder.flush()?;
                Ok(encoder.get_ref())
            }
        }
    }

    /// Decompresses what arrived, appending the plain bytes to `out`. Data
    /// that ends mid-chunk (snappy) or mid-block (deflate) is kept until
    /// the rest arrives. A corrupt stream is an error.
    pub fn decompress(&mut self, received: &[u8], out: &mut BytesMut) -> io::Result<()> {
        match self {
            Compression::Snappy {
                decoder, partial, ..
            } => {
                partial.extend_from_slice(received);
                let whole = whole_chunks_len(partial)?;
                if whole == 0 {
                    return Ok(());
                }
                decoder.get_mut().ready.extend(partial.drain(..whole));
                let mut block = [0u8; 8192];
                loop {
                    let n = decoder.read(&mut block)?;
                    if n == 0 {
                        return Ok(());
                    }
                    out.extend_from_slice(&block[..n]);
                }
            }
            Compression::Deflate { decoder, .. } => {
                decoder.write_all(received)?;
                decoder.flush()?;
                out.extend_from_slice(decoder.get_ref());
                decoder.get_mut().clear();
                Ok(())
            }
        }
    }
}

/// The length of the whole snappy chunks at the front of `data`.
fn whole_chunks_len(data: &[u8]) -> io::Result<usize> {
    let mut at = 0;
    while data.len() - at >= 4 {
        let header = &data[at..at + 4];
        let len =
            usize::from(header[1]) | usize::from(header[2]) << 8 | usize::from(header[3]) << 16;
        if len > MAX_SNAPPY_CHUNK {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("snappy chunk of {len} bytes exceeds the format's maximum"),
            ));
        }
        if data.len() - at - 4 < len {
            break;
        }
        at += 4 + len;
    }
    Ok(at)
}

/// The snappy decoder's input: only whole chunks are put in, so the
/// decoder never stops inside one, and an empty feed reads as the end of
/// the stream so far (the decoder resumes when more is put in).
#[derive(Default)]
pub struct WholeChunks {
    ready: VecDeque<u8>,
}

impl Read for WholeChunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.ready.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compresses with one side and decompresses with a fresh peer,
    /// delivering the compressed bytes in pieces of every size.
    fn round_trip(make: fn() -> Compression, messages: &[&[u8]]) {
        let mut sender = make();
        let mut wire = Vec::new();
        for m in messages {
            wire.extend_from_slice(sender.compress(m).unwrap());
        }
        let expected: Vec<u8> = messages.concat();
        for piece in [1, 2, 3, 7, 64, 4096, wire.len().max(1)] {
            let mut receiver = make();
            let mut out = BytesMut::new();
            for part in wire.chunks(piece) {
                receiver.decompress(part, &mut out).unwrap();
            }
            assert_eq!(&out[..], &expected[..], "pieces of {piece}");
        }
    }

    #[test]
    fn snappy_round_trips_across_chunk_boundaries() {
        let big = vec![b'x'; 200_000];
        let noise: Vec<u8> = (0..70_000u32)
            .map(|i| i.wrapping_mul(2654435761) as u8)
            .collect();
        round_trip(Compression::snappy, &[b"OK", &big, b"", &noise, b"tail"]);
    }

    #[test]
    fn deflate_round_trips_across_block_boundaries() {
        let big = vec![b'y'; 200_000];
        let noise: Vec<u8> = (0..70_000u32)
            .map(|i| i.wrapping_mul(2654435761) as u8)
            .collect();
        round_trip(|| Compression::deflate(6), &[b"OK", &big, &noise, b"tail"]);
    }

    #[test]
    fn every_flush_is_decodable_on_its_own() {
        for make in [Compression::snappy as fn() -> Compression, || {
            Compression::deflate(1)
        }] {
            let mut sender = make();
            let mut receiver = make();
            for text in [&b"first frame"[..], b"second", b"third frame"] {
                let wire = sender.compress(text).unwrap().to_vec();
                let mut out = BytesMut::new();
                receiver.decompress(&wire, &mut out).unwrap();
                assert_eq!(&out[..], text);
            }
        }
    }

    #[test]
    fn corrupt_input_is_an_error() {
        let mut snappy = Compression::snappy();
        let mut out = BytesMut::new();
        // A data chunk before the stream identifier.
        assert!(
            snappy
                .decompress(&[0x01, 5, 0, 0, 1, 2, 3, 4, 5], &mut out)
                .is_err()
        );
        let mut oversized = Compression::snappy();
        assert!(
            oversized
                .decompress(&[0x00, 0xff, 0xff, 0xff], &mut out)
                .is_err()
        );
        let mut deflate = Compression::deflate(6);
        assert!(deflate.decompress(&[0xff; 64], &mut out).is_err());
    }
}
