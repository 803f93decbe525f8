//! A broker under test, as the rows see it.

use std::net::SocketAddr;

/// Where a broker under test (wasqd, nsqd or the do-nothing server)
/// listens, and its process.
pub(super) struct Broker {
    pub tcp: SocketAddr,
    pub http: SocketAddr,
    pub pid: u32,
}
