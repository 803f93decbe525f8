//! A blocking client of lookupd's protocol V1: what an nsqd node sends to
//! register (IDENTIFY, REGISTER, UNREGISTER, PING).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use wasq_wire::{command, lookup};

pub struct Node {
    pub stream: TcpStream,
}

impl Node {
    /// Connects and sends the V1 magic.
    pub fn connect(addr: SocketAddr) -> Node {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut node = Node { stream };
        node.send(wasq_wire::MAGIC_V1);
        node
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Reads one response.
    pub fn read(&mut self) -> Vec<u8> {
        lookup::read_response(&mut self.stream).expect("a response")
    }

    /// Sends IDENTIFY with a JSON body and returns the response.
    pub fn identify(&mut self, json: &str) -> Vec<u8> {
        self.send(&command::encode(|out| {
            command::identify(out, json.as_bytes())
        }));
        self.read()
    }

    /// Sends a command line and returns the response as text.
    pub fn command(&mut self, line: &str) -> String {
        self.send(&command::encode(|out| command::line(out, line)));
        String::from_utf8(self.read()).expect("a text response")
    }

    /// Sends bytes, expects `expected` and the connection closed after it.
    pub fn expect_fatal(&mut self, bytes: &[u8], expected: &str) {
        self.send(bytes);
        assert_eq!(String::from_utf8(self.read()).unwrap(), expected);
        let mut rest = Vec::new();
        let _ = self.stream.read_to_end(&mut rest);
        assert!(rest.is_empty(), "not closed after a fatal error");
    }
}
