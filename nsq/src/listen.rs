//! Binding a daemon's TCP and HTTP listeners, with errors that name the
//! address (a taken port is the usual reason a daemon cannot start).
//!
//! The queue of connections waiting to be accepted is as long as the
//! system allows (`net.core.somaxconn`), as Go's listeners are for nsqd:
//! with the 128 that tokio's `bind` asks for, 10 000 consumers connecting
//! at once (a broker restarted under its clients) overflowed it, and every
//! dropped connection waited a second for its SYN to be sent again.

use std::io;
use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::{TcpListener, TcpSocket};

/// Asked of `listen`; the kernel caps it at `net.core.somaxconn`.
const BACKLOG: u32 = 65_535;

/// A listener on `address` with the longest accept queue the system
/// allows (and `SO_REUSEADDR`, as every listener of a daemon has).
pub fn listener(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(BACKLOG)
}

/// A daemon's two listeners and where they really are (a port of 0 is
/// chosen by the OS).
pub struct Listeners {
    pub tcp: TcpListener,
    pub http: TcpListener,
    pub tcp_address: SocketAddr,
    pub http_address: SocketAddr,
}

pub async fn bind(tcp: SocketAddr, http: SocketAddr) -> anyhow::Result<Listeners> {
    let tcp_listener =
        listener(tcp).with_context(|| format!("failed to listen on TCP address {tcp}"))?;
    let http_listener =
        listener(http).with_context(|| format!("failed to listen on HTTP address {http}"))?;
    Ok(Listeners {
        tcp_address: tcp_listener.local_addr()?,
        http_address: http_listener.local_addr()?,
        tcp: tcp_listener,
        http: http_listener,
    })
}
