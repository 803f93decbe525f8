//! A real `wasq-lookupd` on OS-chosen loopback ports.

use std::net::SocketAddr;
use std::process::Command;

use crate::daemon::{Daemon, binary};
use crate::http::Http;
use crate::node::Node;

pub struct Lookupd {
    daemon: Daemon,
    pub tcp: SocketAddr,
    pub http: SocketAddr,
}

impl Lookupd {
    /// The `wasq-lookupd` binary: `$WASQ_LOOKUPD_BIN`, or the one Cargo
    /// built beside the running test.
    pub fn binary() -> std::path::PathBuf {
        binary("wasq-lookupd", "WASQ_LOOKUPD_BIN")
    }

    /// Starts wasq-lookupd with extra flags and waits until it is ready.
    pub fn start(args: &[&str]) -> Lookupd {
        let mut all = vec![
            "--tcp-address",
            "127.0.0.1:0",
            "--http-address",
            "127.0.0.1:0",
        ];
        all.extend_from_slice(args);
        let daemon = Daemon::start(Command::new(Lookupd::binary()), &all)
            .unwrap_or_else(|e| panic!("wasq-lookupd: {e:#}"));
        Lookupd {
            tcp: daemon.address("tcp").expect("a tcp listener"),
            http: daemon.address("http").expect("an http listener"),
            daemon,
        }
    }

    /// What it has logged so far.
    pub fn log(&self) -> Vec<String> {
        self.daemon.log()
    }

    pub fn http(&self) -> Http {
        Http::new(self.http)
    }

    /// A protocol V1 connection that has sent the magic.
    pub fn node(&self) -> Node {
        Node::connect(self.tcp)
    }
}
