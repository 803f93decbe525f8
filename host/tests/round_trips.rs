//! Property tests of every encode/decode pair the broker relies on: client
//! commands as the wire crate writes them and the broker parses them (in
//! any split of the byte stream), message frames, disk records, and the
//! snappy and deflate streams.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use wasq_host::protocol::command::{Command, Limits, Open, Parser, Verb};
use wasq_host::protocol::compression::Compression;
use wasq_storage::record;
use wasq_wire::{Message, MessageId, command, frame};

const LIMITS: Limits = Limits {
    max_msg_size: 4096,
    max_body_size: 65536,
    max_req_timeout_ms: 3_600_000,
};

fn topic() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.-]{1,64}"
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 1..300)
}

fn id() -> impl Strategy<Value = [u8; 16]> {
    prop::array::uniform16(prop::sample::select(b"0123456789abcdef".to_vec()))
}

/// A command, how the wire crate writes it, and what the parser must make of it.
fn command() -> impl Strategy<Value = (Vec<u8>, Command)> {
    prop_oneof![
        (topic(), body()).prop_map(|(t, b)| (
            command::encode(|out| command::publish(out, &t, &b)),
            Command::Pub {
                topic: t,
                body: Bytes::from(b)
            }
        )),
        (topic(), prop::collection::vec(body(), 1..20)).prop_map(|(t, bodies)| (
            command::encode(|out| command::mpub(out, &t, &bodies)),
            Command::Mpub {
                topic: t,
                bodies: bodies.into_iter().map(Bytes::from).collect()
            }
        )),
        (topic(), 0..=3_600_000u64, body()).prop_map(|(t, d, b)| (
            command::encode(|out| command::dpub(out, &t, d, &b)),
            Command::Dpub {
                topic: t,
                defer_ms: d as i64,
                body: Bytes::from(b)
            }
        )),
        (0..=2500u64).prop_map(|n| (
            command::encode(|out| command::rdy(out, n)),
            Command::Line(Verb::Rdy, vec![Bytes::from(n.to_string())])
        )),
        id().prop_map(|id| (
            command::encode(|out| command::fin(out, &id)),
            Command::Line(Verb::Fin, vec![Bytes::copy_from_slice(&id)])
        )),
        (id(), 0..100_000u64).prop_map(|(id, t)| (
            command::encode(|out| command::req(out, &id, t)),
            Command::Line(
                Verb::Req,
                vec![Bytes::copy_from_slice(&id), Bytes::from(t.to_string())]
            )
        )),
        Just((
            command::encode(command::nop),
            Command::Line(Verb::Nop, vec![])
        )),
        prop::collection::vec(any::<u8>(), 1..200).prop_map(|secret| (
            command::encode(|out| command::auth(out, &secret)),
            Command::Auth(Bytes::from(secret))
        )),
    ]
}

proptest! {
    #[test]
    fn commands_parse_back_in_any_split(
        commands in prop::collection::vec(command(), 1..12),
        piece in 1usize..64,
    ) {
        let wire: Vec<u8> = commands.iter().flat_map(|(bytes, _)| bytes.clone()).collect();
        let mut parser = Parser::new(LIMITS);
        let mut buf = BytesMut::new();
        let mut parsed = Vec::new();
        for chunk in wire.chunks(piece) {
            buf.extend_from_slice(chunk);
            while let Some(command) = parser.parse(&mut buf, &Open).unwrap() {
                parsed.push(command);
            }
        }
        prop_assert!(buf.is_empty());
        let expected: Vec<Command> = commands.into_iter().map(|(_, c)| c).collect();
        prop_assert_eq!(parsed, expected);
    }

    #[test]
    fn message_frames_decode_to_the_message(
        id in id(), timestamp in any::<i64>(), attempts in any::<u16>(), body in prop::collection::vec(any::<u8>(), 0..2000),
    ) {
        let message = Message { id: MessageId(id), timestamp, attempts, body: Bytes::from(body) };
        let mut out = Vec::new();
        frame::write_message(&mut out, &message);
        let mut buf = BytesMut::from(&out[..]);
        let frame = frame::parse(&mut buf).unwrap().expect("a whole frame");
        prop_assert!(buf.is_empty());
        prop_assert_eq!(frame.message().unwrap(), message);
    }

    #[test]
    fn disk_records_decode_to_the_message(
        id in id(), timestamp in any::<i64>(), attempts in any::<u16>(),
        body in prop::collection::vec(any::<u8>(), 0..2000),
        due in prop::option::of(any::<i64>().prop_filter("0 means not deferred", |d| *d != 0)),
    ) {
        let message = Message { id: MessageId(id), timestamp, attempts, body: Bytes::from(body) };
        let mut out = Vec::new();
        record::encode(&message, due, &mut out);
        out.extend_from_slice(b"next record");
        let (stored, used) = record::decode(&out, 1 << 20).unwrap();
        prop_assert_eq!(used, out.len() - b"next record".len());
        prop_assert_eq!(stored.message, message);
        prop_assert_eq!(stored.due_unix_nanos, due);
    }

    #[test]
    fn compressed_streams_decode_to_what_was_written(
        writes in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..5000), 1..8),
        deflate in any::<bool>(), level in 1u32..=9, piece in 1usize..4096,
    ) {
        let make = || if deflate { Compression::deflate(level) } else { Compression::snappy() };
        let (mut writer, mut reader) = (make(), make());
        let mut wire = Vec::new();
        for write in &writes {
            wire.extend_from_slice(writer.compress(write).unwrap());
        }
        let mut plain = BytesMut::new();
        for chunk in wire.chunks(piece) {
            reader.decompress(chunk, &mut plain).unwrap();
        }
        prop_assert_eq!(&plain[..], &writes.concat()[..]);
    }
}
