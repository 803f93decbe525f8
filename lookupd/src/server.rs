//! Start-up and shutdown of a lookupd, standalone or embedded in wasqd.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::LookupdOptions;
use crate::registry::Registry;
use crate::{http, protocol};

/// Where the listeners really are (port 0 in the options: chosen by the OS).
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    pub tcp: SocketAddr,
    pub http: SocketAddr,
}

/// The shared state of a running lookupd.
#[derive(Debug)]
pub struct Lookupd {
    pub registry: Registry,
    pub addresses: Addresses,
    pub broadcast_address: String,
    pub inactive_producer_timeout: Duration,
    pub tombstone_lifetime: Duration,
}

pub struct Running {
    pub lookupd: Arc<Lookupd>,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

pub async fn start(options: &LookupdOptions) -> anyhow::Result<Running> {
    let listeners = wasq_nsq::listen::bind(options.tcp_address, options.http_address).await?;
    let addresses = Addresses {
        tcp: listeners.tcp_address,
        http: listeners.http_address,
    };
    let (tcp, http_listener) = (listeners.tcp, listeners.http);
    let lookupd = Arc::new(Lookupd {
        registry: Registry::default(),
        addresses,
        broadcast_address: options.broadcast_address(),
        inactive_producer_timeout: options.inactive_producer_timeout,
        tombstone_lifetime: options.tombstone_lifetime,
    });
    let shutdown = CancellationToken::new();
    tracing::info!("LOOKUPD: TCP listening on {}", addresses.tcp);
    tracing::info!("LOOKUPD: HTTP listening on {}", addresses.http);
    let tcp_task = tokio::spawn(protocol::serve(tcp, lookupd.clone(), shutdown.clone()));
    let router = http::router(lookupd.clone());
    let http_shutdown = shutdown.clone();
    let http_task = tokio::spawn(async move {
        let serve = axum::serve(http_listener, router)
            .with_graceful_shutdown(http_shutdown.cancelled_owned());
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "LOOKUPD HTTP server failed");
        }
    });
    if let Some(path) = &options.ready_file {
        let listening = wasq_nsq::ready::Listening::from([
            ("tcp".to_string(), addresses.tcp),
            ("http".to_string(), addresses.http),
        ]);
        wasq_nsq::ready::write(path, &listening)
            .with_context(|| format!("cannot write --ready-file {}", path.display()))?;
    }
    Ok(Running {
        lookupd,
        shutdown,
        tasks: vec![tcp_task, http_task],
    })
}

impl Running {
    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}
