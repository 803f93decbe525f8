//! NSQ TCP protocol V2: the listener, command parsing (`command`, with
//! Go's number and quoting rules in `go_text`), the connection loop and
//! one file per command family. Frames and message
//! encoding are the wire crate's (`wasq_wire`).

mod acknowledge;
pub mod authorize;
pub mod command;
pub mod compression;
pub mod connection;
pub mod error;
mod go_text;
pub mod identify;
mod publish;
mod subscribe;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::Broker;
use crate::security::Security;
use connection::Connection;

pub use wasq_wire::MAGIC_V2;
use wasq_wire::frame;

/// Accepts TCP clients until `shutdown`, then waits for them to finish.
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    security: Arc<Security>,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, remote)) => {
                let broker = broker.clone();
                let security = security.clone();
                let shutdown = shutdown.clone();
                tracker.spawn(handle(
                    stream,
                    remote.to_string(),
                    broker,
                    security,
                    shutdown,
                ));
            }
            Err(e) => {
                // Out of file descriptors and the like: keep serving the rest.
                tracing::error!(error = %e, "TCP: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tracker.close();
    tracker.wait().await;
}

async fn handle(
    mut stream: TcpStream,
    remote: String,
    broker: Arc<Broker>,
    security: Arc<Security>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let mut magic = [0u8; 4];
    let timeout = broker.options.client_timeout;
    let read = tokio::select! {
        _ = shutdown.cancelled() => return,
        read = tokio::time::timeout(timeout, stream.read_exact(&mut magic)) => read,
    };
    match read {
        Ok(Ok(_)) if &magic == MAGIC_V2 => {
            Connection::new(broker, security, stream, remote)
                .run(shutdown)
                .await
        }
        Ok(Ok(_)) => {
            tracing::warn!(client = %remote, magic = ?String::from_utf8_lossy(&magic), "TCP: bad protocol magic");
            let mut out = Vec::new();
            frame::write_frame(&mut out, frame::FrameType::Error, b"E_BAD_PROTOCOL");
            let _ = stream.write_all(&out).await;
            let _ = stream.shutdown().await;
        }
        Ok(Err(_)) | Err(_) => {
            tracing::debug!(client = %remote, "TCP: client left before sending magic")
        }
    }
}
