//! The client of the single round-trip rows (`versus`'s `tcp_pub` and
//! `http_pub`) that never sleeps: it polls its non-blocking socket for the
//! answer.
//!
//! On this kind of virtual machine a thread that sleeps in the kernel
//! between a request and its answer costs the round trip a vCPU wake-up
//! (about 7 µs of a 27 µs HTTP /pub round trip to wasqd, bench/README.md).
//! A client that sleeps, as real publishers do (the `_sleeping` reference
//! rows), puts that wake-up into every server's figure; this one takes it
//! out, and with it the part of each row that no server can change. It
//! burns a whole CPU while it runs, so it is an instrument for the single
//! round trips only.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use anyhow::{Context, bail};
use wasq_wire::frame;

/// Round trips a second: `count` times `request`, each answer read whole
/// (`answer_length` says how long the first answer in its buffer is once
/// it is complete, and fails on an error answer) before the next request.
pub fn round_trips(
    addr: SocketAddr,
    greeting: &[u8],
    request: &[u8],
    count: usize,
    answer_length: impl Fn(&[u8]) -> anyhow::Result<Option<usize>>,
) -> anyhow::Result<f64> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    stream.set_nodelay(true)?;
    stream.write_all(greeting)?;
    stream.set_nonblocking(true)?;
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let start = Instant::now();
    for _ in 0..count {
        write_spinning(&mut stream, request)?;
        loop {
            if let Some(length) = answer_length(&buffer)? {
                buffer.drain(..length);
                break;
            }
            match stream.read(&mut chunk) {
                Ok(0) => bail!("the server closed the connection"),
                Ok(read) => buffer.extend_from_slice(&chunk[..read]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => std::hint::spin_loop(),
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(count as f64 / start.elapsed().as_secs_f64())
}

fn write_spinning(stream: &mut TcpStream, mut bytes: &[u8]) -> anyhow::Result<()> {
    while !bytes.is_empty() {
        match stream.write(bytes) {
            Ok(written) => bytes = &bytes[written..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The length of the first protocol V2 frame in `buffer` once it is
/// complete; an answer other than `OK` is an error.
pub fn nsq_ok_length(buffer: &[u8]) -> anyhow::Result<Option<usize>> {
    let Some(length) = frame::complete_frame_len(buffer) else {
        return Ok(None);
    };
    let frame = &buffer[4..length];
    if frame != b"\0\0\0\0OK" {
        bail!("not OK: {:?}", String::from_utf8_lossy(frame));
    }
    Ok(Some(length))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ok_frame_is_whole_only_with_all_its_bytes() {
        let ok = b"\0\0\0\x06\0\0\0\0OK";
        assert_eq!(nsq_ok_length(ok).unwrap(), Some(10));
        assert_eq!(
            nsq_ok_length(&[ok.as_slice(), ok].concat()).unwrap(),
            Some(10)
        );
        assert_eq!(nsq_ok_length(&ok[..9]).unwrap(), None);
        assert_eq!(nsq_ok_length(&ok[..3]).unwrap(), None);
        let error = b"\0\0\0\x0d\0\0\0\x01E_INVALID";
        assert!(nsq_ok_length(error).is_err());
    }
}
