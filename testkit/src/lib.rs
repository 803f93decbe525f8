//! Test support for Wasq, shared by every Rust test and the load tool, so
//! there is one way to start a daemon and one client of each protocol.
//!
//! - [`daemon`]: a real `wasqd` or `wasq-lookupd` process on OS-chosen
//!   loopback ports, found through its `--ready-file` (never by scraping a
//!   log line), killed when dropped or when the test process goes away
//! - [`wasqd`] and [`lookupd`]: those two daemons, with their addresses
//! - [`client`]: a blocking protocol V2 client for byte-exact checks
//! - [`async_client`]: a Tokio protocol V2 client for load
//! - [`node`]: a blocking lookupd protocol V1 client (what an nsqd node sends)
//! - [`http`]: HTTP calls that return any status, and /stats and /plugins readers
//! - [`plugins`]: plugin directories built from the example modules and WAT
//! - [`certs`]: fresh TLS certificates (CA, server, client) as PEM files
//! - [`auth_server`]: a small auth server speaking nsqd's auth protocol
//! - [`http_sink`]: an HTTP(S) endpoint for plugins' outbound requests,
//!   recording them and answering as told (errors, slowly, never)
//! - [`memory`]: a process's resident set, and each route by which a
//!   message comes to be held in a broker's memory
//!
//! Frames and commands come from `wasq-wire`, the crate the broker uses
//! too; the third-party clients in the tests (tokio-nsq, pynsq, nsqjs)
//! keep our client and our server from agreeing on a mistake.

pub mod async_client;
pub mod auth_server;
pub mod certs;
pub mod client;
pub mod daemon;
pub mod http;
pub mod http_sink;
pub mod lookupd;
pub mod memory;
pub mod node;
pub mod plugins;
pub mod wasqd;

use std::time::{Duration, Instant};

pub use client::RawClient;
pub use http::Http;
pub use http_sink::{Answer, HttpSink, Recorded};
pub use lookupd::Lookupd;
pub use plugins::{
    PLUGINS_LOADED_TIMEOUT, PluginDir, assert_guests_built, guest_build_problem, guest_dir,
    wat_plugin,
};
pub use wasq_wire::{FrameType, Message, MessageId};
pub use wasqd::Wasqd;

/// Polls `check` until it holds or `timeout` passes; true if it held.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
