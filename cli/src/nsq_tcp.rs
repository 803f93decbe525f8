//! A small blocking NSQ client for `wasq pub` and `wasq tail`: protocol V2
//! over TCP (IDENTIFY, PUB/MPUB, SUB, RDY, FIN, NOP for heartbeats) with
//! the wire crate's encoders, and lookupd's HTTP `/lookup` and `/nodes`.

use std::io::{BufReader, Write};
use std::net::TcpStream;

use serde_json::json;
use wasq_wire::frame::{self, Frame, FrameType};
use wasq_wire::{Message, command};

pub struct Connection {
    address: String,
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Connection {
    /// Connects to an nsqd (or wasqd) TCP address and identifies.
    pub fn open(address: &str) -> Result<Connection, String> {
        let at = |e: std::io::Error| format!("{address}: {e}");
        let stream = TcpStream::connect(address).map_err(at)?;
        stream.set_nodelay(true).map_err(at)?;
        let reader = BufReader::new(stream.try_clone().map_err(at)?);
        let mut connection = Connection {
            address: address.to_string(),
            writer: stream,
            reader,
        };
        let hostname = std::env::var("HOSTNAME").unwrap_or_else(|_| "wasq".into());
        let identify = json!({
            "client_id": hostname,
            "hostname": hostname,
            "user_agent": concat!("wasq/", env!("CARGO_PKG_VERSION")),
            "feature_negotiation": false,
        });
        connection.send(wasq_wire::MAGIC_V2)?;
        connection.send(&command::encode(|out| {
            command::identify(out, identify.to_string().as_bytes())
        }))?;
        connection.expect_ok("IDENTIFY")?;
        Ok(connection)
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.writer
            .write_all(bytes)
            .map_err(|e| format!("{}: {e}", self.address))
    }

    /// The next frame that is not a heartbeat (answered with NOP).
    fn frame(&mut self) -> Result<Frame, String> {
        loop {
            let frame = frame::read(&mut self.reader)
                .map_err(|e| format!("{}: connection lost: {e}", self.address))?;
            if frame.is_heartbeat() {
                self.send(&command::encode(command::nop))?;
                continue;
            }
            if frame.frame_type == FrameType::Error {
                return Err(format!("{}: {}", self.address, frame.text()));
            }
            return Ok(frame);
        }
    }

    fn expect_ok(&mut self, what: &str) -> Result<(), String> {
        let frame = self.frame()?;
        if frame.is_ok() {
            Ok(())
        } else {
            Err(format!(
                "{}: {what} answered {:?}",
                self.address,
                frame.text()
            ))
        }
    }

    /// Publishes `bodies` to `topic` in one MPUB (PUB for one) and waits for OK.
    pub fn publish(&mut self, topic: &str, bodies: &[Vec<u8>]) -> Result<(), String> {
        match bodies {
            [] => return Ok(()),
            [body] => self.send(&command::encode(|out| command::publish(out, topic, body)))?,
            many => self.send(&command::encode(|out| command::mpub(out, topic, many)))?,
        }
        self.expect_ok("PUB")
    }

    /// Subscribes to `topic`/`channel` and asks for `ready` messages at a time.
    pub fn subscribe(&mut self, topic: &str, channel: &str, ready: u64) -> Result<(), String> {
        self.send(&command::encode(|out| command::sub(out, topic, channel)))?;
        self.expect_ok("SUB")?;
        self.send(&command::encode(|out| command::rdy(out, ready)))
    }

    /// The next message (heartbeats answered on the way).
    pub fn next_message(&mut self) -> Result<Message, String> {
        let frame = self.frame()?;
        if frame.frame_type != FrameType::Message {
            return Err(format!("{}: unexpected {:?}", self.address, frame.text()));
        }
        frame
            .message()
            .map_err(|e| format!("{}: bad message frame: {e}", self.address))
    }

    pub fn finish(&mut self, message: &Message) -> Result<(), String> {
        self.send(&command::encode(|out| command::fin(out, &message.id.0)))
    }
}

/// Asks lookupds where to reach nsqd nodes: those with `topic` when given
/// and any has it, else every node they know. Addresses as `host:tcp_port`.
pub fn lookup(lookupds: &[String], topic: Option<&str>) -> Result<Vec<String>, String> {
    Ok(wasq_host::lookupd_nodes::producers(lookupds, topic)?
        .into_iter()
        .map(|p| format!("{}:{}", p.broadcast_address, p.tcp_port))
        .collect())
}
