//! Binding a daemon's TCP and HTTP listeners, with errors that name the
//! address (a taken port is the usual reason a daemon cannot start).

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;

/// A daemon's two listeners and where they really are (a port of 0 is
/// chosen by the OS).
pub struct Listeners {
    pub tcp: TcpListener,
    pub http: TcpListener,
    pub tcp_address: SocketAddr,
    pub http_address: SocketAddr,
}

pub async fn bind(tcp: SocketAddr, http: SocketAddr) -> anyhow::Result<Listeners> {
    let tcp_listener = TcpListener::bind(tcp)
        .await
        .with_context(|| format!("failed to listen on TCP address {tcp}"))?;
    let http_listener = TcpListener::bind(http)
        .await
        .with_context(|| format!("failed to listen on HTTP address {http}"))?;
    Ok(Listeners {
        tcp_address: tcp_listener.local_addr()?,
        http_address: http_listener.local_addr()?,
        tcp: tcp_listener,
        http: http_listener,
    })
}
