//! The HTTPS listener (`--https-address`): the same API over TLS, and what
//! a handler learns about the connection it serves ([`Peer`]).
//!
//! It runs on threads of its own as plain HTTP does (one per CPU,
//! [`super::threads`]), and its connections look for a quick client's next
//! request the same way ([`QuickStream`]). Handshakes run in their own
//! tasks, so a client that stalls in one (or never finishes) holds up
//! nobody else's connection.

use std::net::SocketAddr;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use super::quick::{QuickListener, QuickStream};
use crate::protocol::transport::TLS_HANDSHAKE_TIMEOUT;

/// Connections whose TLS handshake is done, handed to axum in turn.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<QuickStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Handshakes with `acceptor` on the connections `inner` hands over
    /// (an HTTPS thread's share, [`super::threads`]) until `shutdown`.
    pub fn new(
        mut inner: QuickListener,
        acceptor: TlsAcceptor,
        shutdown: CancellationToken,
    ) -> TlsListener {
        let local = inner.address();
        let (sender, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, remote) = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    accepted = Listener::accept(&mut inner) => accepted,
                };
                let acceptor = acceptor.clone();
                let sender = sender.clone();
                tokio::spawn(async move {
                    let handshake = acceptor.accept(stream);
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
                        Ok(Ok(tls)) => {
                            let _ = sender.send((tls, remote)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::info!(client = %remote, error = %e, "HTTPS: TLS handshake failed")
                        }
                        Err(_) => {
                            tracing::info!(client = %remote, "HTTPS: TLS handshake timed out")
                        }
                    }
                });
            }
        });
        TlsListener { ready, local }
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<QuickStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept loop stopped (shutdown): wait for axum to stop too.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// The connection a request came over.
#[derive(Debug, Clone)]
pub struct Peer {
    pub address: SocketAddr,
    pub tls: bool,
    /// The subject common name of the client's certificate, if it sent one.
    pub common_name: Option<String>,
}

impl Connected<IncomingStream<'_, QuickListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, QuickListener>) -> Peer {
        Peer {
            address: *stream.remote_addr(),
            tls: false,
            common_name: None,
        }
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Peer {
        let common_name = stream
            .io()
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(crate::tls::common_name);
        Peer {
            address: *stream.remote_addr(),
            tls: true,
            common_name,
        }
    }
}
