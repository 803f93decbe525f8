//! nsqlookupd's TCP protocol V1, which nsqd nodes use to register.
//!
//! After the magic `  V1`, commands are lines: `PING`, `IDENTIFY` (followed
//! by a 4-byte big-endian length and a JSON body), `REGISTER topic [channel]`
//! and `UNREGISTER topic [channel]`. Every response is `[u32 size][data]`.
//! Every error is fatal (the connection closes), as in nsqlookupd; when a
//! node's connection closes, everything it registered goes with it.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wasq_nsq::names::{is_ephemeral, is_valid_name};

use crate::NSQ_VERSION;
use crate::registry::{Category, Peer, PeerInfo, Registration};
use crate::server::Lookupd;

use wasq_wire::MAGIC_V1;

/// Longest command line or IDENTIFY body accepted.
const MAX_LINE: usize = 64 * 1024;
const MAX_IDENTIFY_BODY: i32 = 1024 * 1024;

/// A fatal protocol error: its text is sent, then the connection closes.
struct Fatal(String);

fn fatal(code: &str, description: impl std::fmt::Display) -> Fatal {
    Fatal(format!("{code} {description}"))
}

pub async fn serve(listener: TcpListener, lookupd: Arc<Lookupd>, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, remote)) => {
                let (lookupd, shutdown) = (lookupd.clone(), shutdown.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = handle(stream, remote.to_string(), &lookupd) => {}
                    }
                });
            }
            Err(e) => {
                tracing::error!(error = %e, "TCP: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves one node's connection until it closes. Generic over the
/// stream so the parser can be driven from memory (the fuzz target).
pub async fn handle<S>(stream: S, remote: String, lookupd: &Lookupd)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (read, mut write) = tokio::io::split(stream);
    let mut reader = BufReader::new(read);
    let mut magic = [0u8; 4];
    if reader.read_exact(&mut magic).await.is_err() {
        return;
    }
    if &magic != MAGIC_V1 {
        tracing::warn!(client = %remote, "TCP: bad protocol magic");
        let _ = send(&mut write, b"E_BAD_PROTOCOL").await;
        return;
    }
    tracing::info!(client = %remote, "TCP: new client (V1)");
    let mut peer: Option<Arc<Peer>> = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .await;
        match read {
            Ok(0) | Err(_) => break,
            Ok(_) if !line.ends_with(b"\n") && line.len() >= MAX_LINE => {
                let _ = send(&mut write, b"E_INVALID command line too long").await;
                break;
            }
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line).trim().to_string();
        let params: Vec<&str> = text.split(' ').collect();
        match execute(&params, &mut reader, &mut peer, &remote, lookupd).await {
            Ok(response) => {
                if send(&mut write, &response).await.is_err() {
                    break;
                }
            }
            Err(Fatal(error)) => {
                tracing::warn!(client = %remote, "{error}");
                let _ = send(&mut write, error.as_bytes()).await;
                break;
            }
        }
    }
    if let Some(peer) = peer {
        for registration in lookupd.registry.remove_peer(&peer.id) {
            tracing::info!(client = %remote, ?registration, "DB: UNREGISTER (client left)");
        }
    }
    tracing::info!(client = %remote, "TCP: client exited");
}

async fn send(write: &mut (impl AsyncWrite + Unpin), data: &[u8]) -> std::io::Result<()> {
    let mut frame = Vec::with_capacity(4 + data.len());
    wasq_wire::lookup::write_response(&mut frame, data);
    write.write_all(&frame).await
}

async fn execute(
    params: &[&str],
    reader: &mut BufReader<impl AsyncRead + Unpin>,
    peer: &mut Option<Arc<Peer>>,
    remote: &str,
    lookupd: &Lookupd,
) -> Result<Vec<u8>, Fatal> {
    match params[0] {
        "PING" => {
            if let Some(peer) = peer {
                let since = peer.touch();
                tracing::debug!(client = %remote, "pinged (last ping {since:?})");
            }
            Ok(b"OK".to_vec())
        }
        "IDENTIFY" => identify(reader, peer, remote, lookupd).await,
        "REGISTER" => {
            let peer = peer
                .as_ref()
                .ok_or_else(|| fatal("E_INVALID", "client must IDENTIFY"))?;
            let (topic, channel) = topic_and_channel("REGISTER", &params[1..])?;
            if let Some(channel) = channel
                && lookupd
                    .registry
                    .add_producer(Registration::channel(topic, channel), peer)
            {
                tracing::info!(client = %remote, topic, channel, "DB: REGISTER channel");
            }
            if lookupd
                .registry
                .add_producer(Registration::topic(topic), peer)
            {
                tracing::info!(client = %remote, topic, "DB: REGISTER topic");
            }
            Ok(b"OK".to_vec())
        }
        "UNREGISTER" => {
            let peer = peer
                .as_ref()
                .ok_or_else(|| fatal("E_INVALID", "client must IDENTIFY"))?;
            let (topic, channel) = topic_and_channel("UNREGISTER", &params[1..])?;
            unregister(lookupd, peer, topic, channel, remote);
            Ok(b"OK".to_vec())
        }
        other => Err(fatal("E_INVALID", format!("invalid command {other}"))),
    }
}

fn unregister(lookupd: &Lookupd, peer: &Peer, topic: &str, channel: Option<&str>, remote: &str) {
    let registry = &lookupd.registry;
    match channel {
        Some(channel) => {
            let registration = Registration::channel(topic, channel);
            let removal = registry.remove_producer(&registration, &peer.id);
            if removal.removed {
                tracing::info!(client = %remote, topic, channel, "DB: UNREGISTER channel");
            }
            if removal.remaining == 0 && is_ephemeral(channel) {
                registry.remove_registration(&registration);
            }
        }
        None => {
            // A topic goes with all of this node's channels of it.
            for registration in registry.find_registrations(Category::Channel, topic, "*") {
                registry.remove_producer(&registration, &peer.id);
            }
            let registration = Registration::topic(topic);
            let removal = registry.remove_producer(&registration, &peer.id);
            if removal.removed {
                tracing::info!(client = %remote, topic, "DB: UNREGISTER topic");
            }
            if removal.remaining == 0 && is_ephemeral(topic) {
                registry.remove_registration(&registration);
            }
        }
    }
}

fn topic_and_channel<'a>(
    command: &str,
    params: &[&'a str],
) -> Result<(&'a str, Option<&'a str>), Fatal> {
    let topic = *params.first().ok_or_else(|| {
        fatal(
            "E_INVALID",
            format!("{command} insufficient number of params"),
        )
    })?;
    let channel = params.get(1).copied().filter(|c| !c.is_empty());
    if !is_valid_name(topic) {
        return Err(fatal(
            "E_BAD_TOPIC",
            format!("{command} topic name '{topic}' is not valid"),
        ));
    }
    if let Some(channel) = channel
        && !is_valid_name(channel)
    {
        return Err(fatal(
            "E_BAD_CHANNEL",
            format!("{command} channel name '{channel}' is not valid"),
        ));
    }
    Ok((topic, channel))
}

async fn identify(
    reader: &mut BufReader<impl AsyncRead + Unpin>,
    peer: &mut Option<Arc<Peer>>,
    remote: &str,
    lookupd: &Lookupd,
) -> Result<Vec<u8>, Fatal> {
    if peer.is_some() {
        return Err(fatal("E_INVALID", "cannot IDENTIFY again"));
    }
    let len = reader
        .read_i32()
        .await
        .map_err(|_| fatal("E_BAD_BODY", "IDENTIFY failed to read body size"))?;
    if !(1..=MAX_IDENTIFY_BODY).contains(&len) {
        return Err(fatal("E_BAD_BODY", "IDENTIFY failed to read body size"));
    }
    let mut body = vec![0u8; len as usize];
    reader
        .read_exact(&mut body)
        .await
        .map_err(|_| fatal("E_BAD_BODY", "IDENTIFY failed to read body"))?;
    let mut info: PeerInfo = serde_json::from_slice(&body)
        .map_err(|_| fatal("E_BAD_BODY", "IDENTIFY failed to decode JSON body"))?;
    info.remote_address = remote.to_string();
    if info.broadcast_address.is_empty()
        || info.tcp_port == 0
        || info.http_port == 0
        || info.version.is_empty()
    {
        return Err(fatal("E_BAD_BODY", "IDENTIFY missing fields"));
    }
    tracing::info!(
        client = %remote,
        "CLIENT: IDENTIFY Address:{} TCP:{} HTTP:{} Version:{}",
        info.broadcast_address,
        info.tcp_port,
        info.http_port,
        info.version
    );
    let new_peer = Peer::new(remote.to_string(), info);
    lookupd
        .registry
        .add_producer(Registration::client(), &new_peer);
    *peer = Some(new_peer);
    // A Go map: keys in sorted order.
    let response = serde_json::json!({
        "broadcast_address": lookupd.broadcast_address,
        "hostname": gethostname::gethostname().to_string_lossy(),
        "http_port": lookupd.addresses.http.port(),
        "tcp_port": lookupd.addresses.tcp.port(),
        "version": NSQ_VERSION,
    });
    Ok(response.to_string().into_bytes())
}
