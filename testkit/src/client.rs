//! A protocol V2 client on a blocking socket, for byte-exact checks: it
//! sends whatever bytes a test gives it (well-formed or not) and reads
//! frames with the wire crate's reader.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use wasq_wire::frame::{self, FrameType};
use wasq_wire::{Message, command};

/// How long a read waits before the test fails (a busy machine).
const READ_TIMEOUT: Duration = Duration::from_secs(10);

pub struct RawClient {
    pub stream: TcpStream,
}

impl RawClient {
    /// Connects without sending anything (to test the magic itself).
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        RawClient { stream }
    }

    /// Connects and sends the V2 magic.
    pub fn connect_v2(addr: SocketAddr) -> RawClient {
        let mut client = RawClient::connect(addr);
        client.send(wasq_wire::MAGIC_V2);
        client
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Sends a command line (with or without its `\n`) and a
    /// length-prefixed body.
    pub fn send_with_body(&mut self, line: &str, body: &[u8]) {
        let line = line.strip_suffix('\n').unwrap_or(line);
        self.send(&command::encode(|out| command::with_body(out, line, body)));
    }

    pub fn identify(&mut self, json: &str) -> (FrameType, Vec<u8>) {
        self.send(&command::encode(|out| {
            command::identify(out, json.as_bytes())
        }));
        self.read_frame()
    }

    /// SUB, expecting OK, then RDY.
    pub fn subscribe(&mut self, topic: &str, channel: &str, rdy: u32) {
        self.send(&command::encode(|out| command::sub(out, topic, channel)));
        assert_eq!(self.read_frame(), ok(), "SUB {topic} {channel}");
        self.send(&command::encode(|out| command::rdy(out, rdy.into())));
    }

    /// PUB, expecting OK.
    pub fn publish(&mut self, topic: &str, body: &[u8]) {
        self.send(&command::encode(|out| command::publish(out, topic, body)));
        assert_eq!(self.read_frame(), ok(), "PUB {topic}");
    }

    /// MPUB, expecting OK.
    pub fn mpub<B: AsRef<[u8]>>(&mut self, topic: &str, bodies: &[B]) {
        self.send(&command::encode(|out| command::mpub(out, topic, bodies)));
        assert_eq!(self.read_frame(), ok(), "MPUB {topic}");
    }

    /// Sends a command and returns the first response or error that is not
    /// a heartbeat, as text; `None` if the connection failed (a publisher
    /// racing a shutdown or a crash reports, it does not panic).
    pub fn try_command(&mut self, bytes: &[u8]) -> Option<String> {
        self.stream.write_all(bytes).ok()?;
        loop {
            let frame = frame::read(&mut self.stream).ok()?;
            if !frame.is_heartbeat() {
                return Some(frame.text());
            }
        }
    }

    pub fn finish(&mut self, message: &Message) {
        self.send(&command::encode(|out| command::fin(out, &message.id.0)));
    }

    pub fn touch(&mut self, message: &Message) {
        self.send(&command::encode(|out| command::touch(out, &message.id.0)));
    }

    /// Reads one frame, skipping heartbeats.
    pub fn read_frame(&mut self) -> (FrameType, Vec<u8>) {
        loop {
            let frame = self.read_any_frame();
            if frame != (FrameType::Response, frame::HEARTBEAT.to_vec()) {
                return frame;
            }
        }
    }

    /// Reads one frame, heartbeats included.
    pub fn read_any_frame(&mut self) -> (FrameType, Vec<u8>) {
        let frame = frame::read(&mut self.stream).expect("a frame");
        (frame.frame_type, frame.data.to_vec())
    }

    pub fn read_message(&mut self) -> Message {
        let (frame_type, data) = self.read_frame();
        assert_eq!(
            frame_type,
            FrameType::Message,
            "expected a message, got {:?}",
            String::from_utf8_lossy(&data)
        );
        Message::decode(&data.into()).expect("a well-formed message")
    }

    /// The next message, skipping responses; `None` if nothing but
    /// responses came for `idle`, or the connection closed.
    pub fn next_message(&mut self, idle: Duration) -> Option<Message> {
        self.stream.set_read_timeout(Some(idle)).unwrap();
        let message = loop {
            match frame::read(&mut self.stream) {
                Ok(frame) if frame.frame_type == FrameType::Message => break frame.message().ok(),
                Ok(_) => continue,
                Err(_) => break None,
            }
        };
        self.stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        message
    }

    /// Reads an error frame and expects the server to close afterwards.
    pub fn expect_fatal(&mut self, expected: &str) {
        let (frame_type, data) = self.read_frame();
        assert_eq!(
            (frame_type, String::from_utf8_lossy(&data).into_owned()),
            (FrameType::Error, expected.to_string())
        );
        self.expect_closed();
    }

    pub fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        let read = self.stream.read_to_end(&mut rest);
        assert!(
            read.is_ok() || rest.is_empty(),
            "expected close, got {read:?}"
        );
        assert!(rest.is_empty(), "unexpected bytes before close: {rest:?}");
    }

    /// Reads (and drops) frames until the server closes the connection;
    /// `false` if it was still open after `limit`.
    pub fn closed_within(&mut self, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        let closed = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break false;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            match frame::read(&mut self.stream) {
                Ok(_) => continue,
                Err(e) => {
                    break !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    );
                }
            }
        };
        self.stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        closed
    }

    /// True if nothing arrives (but heartbeats) within `wait`.
    pub fn is_silent_for(&mut self, wait: Duration) -> bool {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let silent = match frame::read(&mut self.stream) {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                true
            }
            Err(e) => panic!("read failed: {e}"),
            Ok(frame) => frame.is_heartbeat(),
        };
        self.stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        silent
    }
}

/// The frame a successful command gets.
pub fn ok() -> (FrameType, Vec<u8>) {
    (FrameType::Response, frame::OK.to_vec())
}
