//! Registration with nsqlookupd (ours, embedded or standalone, or NSQ's):
//! the part of nsqd that `lookup.go` is.
//!
//! One task per lookupd address keeps a TCP V1 connection: IDENTIFY, then
//! REGISTER for every topic and channel, then REGISTER/UNREGISTER as they
//! come and go, and a PING every 15 s. A lost connection (a lookupd
//! restart) is retried, and everything is registered again on reconnect.
//! The set of addresses follows `--lookupd-tcp-address` and
//! `PUT /config/nsqlookupd_tcp_addresses`. On shutdown, or when a lookupd
//! leaves the configuration, the connection is closed, which unregisters
//! everything at once (as nsqd does).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::broker::{Broker, BrokerEvent, TopicChannels};
use crate::config::{NSQ_VERSION, hostname};

/// nsqd pings each lookupd this often.
pub const PING_INTERVAL: Duration = Duration::from_secs(15);
/// Wait before reconnecting to a lookupd that went away.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest response taken from a lookupd (a JSON IDENTIFY answer is tiny).
const MAX_RESPONSE_SIZE: u32 = 1 << 20;
/// How often the configured address list is compared with the running peers.
const CONFIG_POLL: Duration = Duration::from_millis(500);
/// Commands written before their answers are read. A lookupd answers a
/// connection's commands in order, so registering 100 000 topics and
/// channels takes a couple of hundred round trips, not 100 000.
const PIPELINE: usize = 512;

/// Keeps one registration task per configured lookupd, plus `always` (the
/// embedded lookupd), until `shutdown`.
pub fn start(
    broker: Arc<Broker>,
    always: Vec<String>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut peers: HashMap<String, (CancellationToken, tokio::task::JoinHandle<()>)> =
            HashMap::new();
        loop {
            let mut wanted = always.clone();
            wanted.extend(broker.settings.read().lookupd_tcp_addresses.iter().cloned());
            for address in &wanted {
                if !peers.contains_key(address) {
                    let stop = CancellationToken::new();
                    let task =
                        tokio::spawn(run_peer(broker.clone(), address.clone(), stop.clone()));
                    peers.insert(address.clone(), (stop, task));
                }
            }
            peers.retain(|address, (stop, _)| {
                let keep = wanted.contains(address);
                if !keep {
                    tracing::info!(lookupd = %address, "LOOKUP: removed from the configuration");
                    stop.cancel();
                }
                keep
            });
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(CONFIG_POLL) => {}
            }
        }
        for (_, (stop, task)) in peers {
            stop.cancel();
            let _ = tokio::time::timeout(IO_TIMEOUT, task).await;
        }
    })
}

/// Registers with one lookupd for as long as it is configured.
async fn run_peer(broker: Arc<Broker>, address: String, stop: CancellationToken) {
    loop {
        // `session` watches `stop` itself: it returns `Ok` once stopped.
        match session(&broker, &address, &stop).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(lookupd = %address, "LOOKUP: {e:#}; retrying in {RECONNECT_DELAY:?}")
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(RECONNECT_DELAY) => {}
        }
    }
}

/// One connection, until it fails (`Err`) or is stopped (`Ok`, the
/// connection closed).
async fn session(broker: &Broker, address: &str, stop: &CancellationToken) -> anyhow::Result<()> {
    tokio::select! {
        biased;
        // Closing the connection unregisters everything at once: a lookupd
        // drops a node's registrations when it leaves (nsqd sends nothing
        // either), where an UNREGISTER per topic would cost an nsqlookupd a
        // scan of its whole table each. Whatever the connection was doing,
        // even registering 100 000 topics, stops here.
        _ = stop.cancelled() => Ok(()),
        result = registered(broker, address) => result,
    }
}

/// The connection's work until it fails: identify, register everything,
/// follow changes, ping.
async fn registered(broker: &Broker, address: &str) -> anyhow::Result<()> {
    // Subscribe before the snapshot so no change falls between them.
    let mut events = broker.events();
    let mut conn = LookupConn::connect(address).await?;
    let addresses = broker.listen_addresses();
    let identity = json!({
        "version": NSQ_VERSION,
        "tcp_port": broker.options.broadcast_port(broker.options.broadcast_tcp_port, addresses.tcp),
        "http_port": broker.options.broadcast_port(broker.options.broadcast_http_port, addresses.http),
        "hostname": hostname(),
        "broadcast_address": broker.options.broadcast_address(),
    });
    let response = conn.identify(identity.to_string().as_bytes()).await?;
    tracing::info!(lookupd = %address, "LOOKUP: connected ({})", String::from_utf8_lossy(&response));
    register_all(&mut conn, broker).await?;
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
    loop {
        // Decide first, act after: the connection is borrowed by one branch.
        let action = tokio::select! {
            _ = ping.tick() => Action::Ping,
            event = events.recv() => Action::Event(event),
            closed = conn.closed() => Action::Closed(closed),
        };
        match action {
            Action::Ping => conn.command("PING").await?,
            Action::Closed(error) => return Err(error),
            Action::Event(event) => match event {
                Ok(event) => {
                    // Every change already waiting goes in the same
                    // pipeline, so a burst of creations keeps up instead
                    // of falling behind into a full registration.
                    let mut lines = vec![command_for(&event)];
                    while lines.len() < PIPELINE
                        && let Ok(event) = events.try_recv()
                    {
                        lines.push(command_for(&event));
                    }
                    conn.commands(&lines).await?
                }
                // Missed changes: registering everything again is always right.
                Err(RecvError::Lagged(_)) => register_all(&mut conn, broker).await?,
                Err(RecvError::Closed) => return Ok(()),
            },
        }
    }
}

enum Action {
    Ping,
    Event(Result<BrokerEvent, RecvError>),
    Closed(anyhow::Error),
}

/// The lookupd command that tells of `event`.
fn command_for(event: &BrokerEvent) -> String {
    match event {
        BrokerEvent::TopicCreated(topic) => format!("REGISTER {topic}"),
        BrokerEvent::ChannelCreated(topic, channel) => format!("REGISTER {topic} {channel}"),
        BrokerEvent::ChannelDeleted(topic, channel) => format!("UNREGISTER {topic} {channel}"),
        BrokerEvent::TopicDeleted(topic) => format!("UNREGISTER {topic}"),
    }
}

async fn register_all(conn: &mut LookupConn, broker: &Broker) -> anyhow::Result<()> {
    let mut lines = Vec::new();
    for TopicChannels { topic, channels } in broker.topology() {
        lines.push(format!("REGISTER {topic}"));
        lines.extend(channels.iter().map(|c| format!("REGISTER {topic} {c}")));
    }
    for chunk in lines.chunks(PIPELINE) {
        conn.commands(chunk).await?;
    }
    Ok(())
}

/// A protocol V1 connection: request, then `[u32 size][data]` response.
struct LookupConn {
    stream: BufReader<TcpStream>,
    address: String,
}

impl LookupConn {
    async fn connect(address: &str) -> anyhow::Result<LookupConn> {
        let stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(address))
            .await
            .map_err(|_| anyhow::anyhow!("connect to {address} timed out"))??;
        let mut conn = LookupConn {
            stream: BufReader::new(stream),
            address: address.to_string(),
        };
        conn.write(wasq_wire::MAGIC_V1).await?;
        Ok(conn)
    }

    async fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        tokio::time::timeout(IO_TIMEOUT, self.stream.get_mut().write_all(bytes))
            .await
            .map_err(|_| anyhow::anyhow!("write to {} timed out", self.address))??;
        Ok(())
    }

    async fn read_response(&mut self) -> anyhow::Result<Vec<u8>> {
        let read = async {
            Ok(wasq_wire::lookup::read_response_async(&mut self.stream, MAX_RESPONSE_SIZE).await?)
        };
        tokio::time::timeout(IO_TIMEOUT, read)
            .await
            .map_err(|_| anyhow::anyhow!("no response from {}", self.address))?
    }

    /// Resolves when the lookupd closes the connection (it never speaks
    /// unasked), so a restarted lookupd is noticed at once, not at the next PING.
    async fn closed(&mut self) -> anyhow::Error {
        match self.stream.fill_buf().await {
            Ok([]) => anyhow::anyhow!("{} closed the connection", self.address),
            Ok(_) => anyhow::anyhow!("{} sent data nobody asked for", self.address),
            Err(e) => anyhow::anyhow!("{}: {e}", self.address),
        }
    }

    async fn identify(&mut self, body: &[u8]) -> anyhow::Result<Vec<u8>> {
        let frame = wasq_wire::command::encode(|out| wasq_wire::command::identify(out, body));
        self.write(&frame).await?;
        let response = self.read_response().await?;
        anyhow::ensure!(
            response.starts_with(b"{"),
            "IDENTIFY refused: {}",
            String::from_utf8_lossy(&response)
        );
        Ok(response)
    }

    async fn command(&mut self, line: &str) -> anyhow::Result<()> {
        self.commands(&[line]).await
    }

    /// Sends `lines` in one write, then reads their answers in order; each
    /// must be `OK`.
    async fn commands(&mut self, lines: &[impl AsRef<str>]) -> anyhow::Result<()> {
        let mut batch = String::new();
        for line in lines {
            batch.push_str(line.as_ref());
            batch.push('\n');
        }
        self.write(batch.as_bytes()).await?;
        for line in lines {
            let line = line.as_ref();
            let response = self.read_response().await?;
            anyhow::ensure!(
                response == b"OK",
                "{line}: {}",
                String::from_utf8_lossy(&response)
            );
            tracing::debug!(lookupd = %self.address, "LOOKUP: {line}");
        }
        Ok(())
    }
}
