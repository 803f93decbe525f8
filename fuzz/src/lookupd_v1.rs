//! wasq-lookupd's TCP protocol V1 (magic, PING, IDENTIFY with its JSON,
//! REGISTER, UNREGISTER) served from memory: any bytes, answered or
//! refused, never a panic.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wasq_lookupd::registry::Registry;
use wasq_lookupd::server::{Addresses, Lookupd};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

/// One input, as the fuzzer and the replay test give it.
pub fn run(data: &[u8]) {
    let lookupd = Arc::new(Lookupd {
        registry: Registry::default(),
        addresses: Addresses {
            tcp: "127.0.0.1:4160".parse().unwrap(),
            http: "127.0.0.1:4161".parse().unwrap(),
        },
        broadcast_address: "fuzz".into(),
        inactive_producer_timeout: Duration::from_secs(300),
        tombstone_lifetime: Duration::from_secs(45),
    });
    runtime().block_on(async {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (mut from_server, mut to_server) = tokio::io::split(client);
        let serve = wasq_lookupd::protocol::handle(server, "fuzz:1".into(), &lookupd);
        let send = async {
            let _ = to_server.write_all(data).await;
            let _ = to_server.shutdown().await;
        };
        let drain = async {
            let mut sink = Vec::new();
            let _ = from_server.read_to_end(&mut sink).await;
        };
        tokio::join!(serve, send, drain);
    });
}
