//! The TCP connector under a plugin's HTTP client: it resolves the host
//! itself and connects only to addresses the allowlist lets the plugin
//! reach ([`AllowList::may_connect`]), so every new connection (the first
//! request, a redirect, a pooled connection replaced) is checked where the
//! address is known, not only where the name is.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::allowlist::{AllowList, Host, Scheme};

/// Why a connection was not made; found again in the client's error
/// chain to tell the guest which it was.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0} is not reachable under allowed_outbound_hosts")]
    NotAllowed(String),
    #[error("cannot resolve {host}: {error}")]
    Dns { host: String, error: std::io::Error },
    #[error("cannot connect to {address}: {error}")]
    Connect {
        address: SocketAddr,
        error: std::io::Error,
    },
    #[error("not an http or https URL with a host: {0}")]
    BadUrl(String),
}

#[derive(Clone)]
pub struct CheckedConnector {
    pub allow: Arc<AllowList>,
}

impl tower_service::Service<http::Uri> for CheckedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let allow = self.allow.clone();
        Box::pin(async move { connect(&allow, &uri).await.map(TokioIo::new) })
    }
}

async fn connect(allow: &AllowList, uri: &http::Uri) -> Result<TcpStream, ConnectError> {
    let bad_url = || ConnectError::BadUrl(uri.to_string());
    let scheme = uri
        .scheme_str()
        .and_then(Scheme::parse)
        .ok_or_else(bad_url)?;
    let host_text = uri.host().ok_or_else(bad_url)?;
    let host = Host::parse(host_text).ok_or_else(bad_url)?;
    let port = uri.port_u16().unwrap_or(scheme.default_port());
    let candidates: Vec<SocketAddr> = match &host {
        Host::Address(address) => vec![SocketAddr::new(*address, port)],
        Host::Name(name) => tokio::net::lookup_host((name.as_str(), port))
            .await
            .map_err(|error| ConnectError::Dns {
                host: name.clone(),
                error,
            })?
            .collect(),
    };
    let reachable: Vec<SocketAddr> = candidates
        .iter()
        .copied()
        .filter(|a| allow.may_connect(scheme, a.ip(), port))
        .collect();
    if reachable.is_empty() {
        let addresses: Vec<IpAddr> = candidates.iter().map(SocketAddr::ip).collect();
        return Err(ConnectError::NotAllowed(format!(
            "{host_text}:{port} (resolves to {addresses:?})"
        )));
    }
    let mut last = None;
    for address in reachable {
        match TcpStream::connect(address).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(error) => last = Some(ConnectError::Connect { address, error }),
        }
    }
    Err(last.expect("at least one address was tried"))
}
