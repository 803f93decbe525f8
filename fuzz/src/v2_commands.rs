//! The V2 command parser (every command, MPUB bodies streamed in) on
//! arbitrary bytes arriving in arbitrary pieces: it may refuse, never panic,
//! and a complete MPUB's messages must add up to its body.

use bytes::BytesMut;
use wasq_host::protocol::command::{Command, Limits, Open, Parser};

/// One input, as the fuzzer and the replay test give it.
pub fn run(data: &[u8]) {
    let Some((&piece, input)) = data.split_first() else {
        return;
    };
    let piece = usize::from(piece).max(1);
    let limits = Limits {
        max_msg_size: 512,
        max_body_size: 4096,
        max_req_timeout_ms: 3_600_000,
    };
    let mut parser = Parser::new(limits);
    let mut buf = BytesMut::new();
    for chunk in input.chunks(piece) {
        buf.extend_from_slice(chunk);
        loop {
            match parser.parse(&mut buf, &Open) {
                Ok(Some(Command::Mpub { bodies, .. })) => {
                    assert!(!bodies.is_empty());
                    assert!(bodies.iter().all(|b| !b.is_empty() && b.len() <= 512));
                }
                Ok(Some(Command::Pub { body, .. })) | Ok(Some(Command::Dpub { body, .. })) => {
                    assert!(!body.is_empty() && body.len() <= 512);
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    assert!(e.fatal);
                    return;
                }
            }
        }
    }
}
