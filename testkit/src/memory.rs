//! What a queued message costs in memory: a process's resident set, read
//! from `/proc`, and every route by which a message can come to be held in
//! a broker's memory, each measured on a fresh `wasqd`.
//!
//! Shared by the memory tests (a bound per route) and `wasq-bench memory`
//! (the table in bench/README.md), so both measure the same thing.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use wasq_wire::command;

use crate::client::ok;
use crate::plugins::PluginDir;
use crate::{Http, RawClient, Wasqd, eventually};

/// The resident set size of process `pid`, in bytes (`VmRSS`).
pub fn resident_bytes(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .with_context(|| format!("no VmRSS in {path}"))?;
    let kib: u64 = line
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .with_context(|| format!("VmRSS in {path}: {line:?}"))?;
    Ok(kib * 1024)
}

/// Messages sent per connection or per request where a route uses many:
/// few enough that a body kept as a slice would hold most of a buffer.
const PER_BATCH: usize = 10;

/// How long a route may take to reach its queued state (a busy machine).
const SETTLE: Duration = Duration::from_secs(120);

/// A way for a message to end up held in a broker's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// PUBs pipelined on one connection, 100 outstanding.
    TcpPipelined,
    /// PUBs on one connection, one round trip each.
    TcpRoundTrip,
    /// PUBs on short connections, 10 each.
    TcpConnections,
    /// One MPUB of 10 per short connection.
    TcpMpub,
    /// DPUBs (deferred an hour) on short connections, 10 each.
    TcpDpub,
    /// HTTP /pub on one keep-alive connection.
    HttpPub,
    /// HTTP /pub, a new connection per request.
    HttpPubConnections,
    /// HTTP /mpub, 10 lines per request, one keep-alive connection.
    HttpMpub,
    /// HTTP /mpub?binary=true, 10 per request, one keep-alive connection.
    HttpMpubBinary,
    /// Published by a plugin (the `uppercase` example) for each message it
    /// consumed.
    PluginPublish,
    /// Dead-lettered by a plugin that fails every message, which came in
    /// over short TCP connections.
    DeadLetter,
    /// Delivered, and REQ'd as delivered with an hour's delay (deferred in
    /// the channel).
    Requeue,
    /// Queued in a channel's memory (TCP PUB), then held in flight by
    /// consumers that do not finish them: the common case.
    InFlight,
    /// Written to disk (`--mem-queue-size 0`), read back for consumers that
    /// hold them in flight.
    DiskReadBack,
    /// Queued in memory, written to disk at a clean stop, restored by the
    /// next start and read back for consumers that hold them in flight.
    Restored,
}

impl Route {
    pub const ALL: [Route; 15] = [
        Route::TcpPipelined,
        Route::TcpRoundTrip,
        Route::TcpConnections,
        Route::TcpMpub,
        Route::TcpDpub,
        Route::HttpPub,
        Route::HttpPubConnections,
        Route::HttpMpub,
        Route::HttpMpubBinary,
        Route::PluginPublish,
        Route::DeadLetter,
        Route::Requeue,
        Route::InFlight,
        Route::DiskReadBack,
        Route::Restored,
    ];

    /// One line for a table.
    pub fn describe(self) -> &'static str {
        match self {
            Route::TcpPipelined => "TCP PUB, pipelined on one connection",
            Route::TcpRoundTrip => "TCP PUB, one round trip each",
            Route::TcpConnections => "TCP PUB, 10 per new connection",
            Route::TcpMpub => "TCP MPUB of 10, one per new connection",
            Route::TcpDpub => "TCP DPUB (1 h), 10 per new connection",
            Route::HttpPub => "HTTP /pub, one keep-alive connection",
            Route::HttpPubConnections => "HTTP /pub, a new connection each",
            Route::HttpMpub => "HTTP /mpub text, 10 per request",
            Route::HttpMpubBinary => "HTTP /mpub binary, 10 per request",
            Route::PluginPublish => "plugin publish (uppercase example)",
            Route::DeadLetter => "dead-lettered by a plugin",
            Route::Requeue => "REQ with delay as delivered (deferred)",
            Route::InFlight => "queued in memory, in flight",
            Route::DiskReadBack => "read back from disk, in flight",
            Route::Restored => "restored at start-up, in flight",
        }
    }

    /// Starts a fresh wasqd, queues `count` messages of `size` bytes by this
    /// route (after a warm-up of the same route on another topic), and
    /// returns the broker's resident set before and after.
    pub fn measure(self, count: usize, size: usize) -> anyhow::Result<Growth> {
        match self {
            Route::PluginPublish => through_plugin(count, size, false),
            Route::DeadLetter => through_plugin(count, size, true),
            Route::Requeue => requeued(count, size),
            Route::InFlight => in_flight(count, size),
            Route::DiskReadBack => read_back(count, size),
            Route::Restored => restored(count, size),
            publish => {
                let broker = Wasqd::try_start(&["--no-embedded-lookupd"])?;
                publish.publish(&broker, "warmup", count / 50, size)?;
                let before = broker.resident_bytes()?;
                publish.publish(&broker, "queued", count, size)?;
                wait_for(&broker, "queued topic depth", || {
                    topic_depth(&broker.http(), "queued") >= count as u64
                })?;
                Ok(Growth::new(before, broker.resident_bytes()?, count))
            }
        }
    }

    /// Publishes by one of the client routes (TCP or HTTP).
    fn publish(self, broker: &Wasqd, topic: &str, count: usize, size: usize) -> anyhow::Result<()> {
        let bodies = |from: usize, n: usize| -> Vec<Vec<u8>> {
            (from..from + n).map(|i| body(i, size)).collect()
        };
        let batches = (0..count).step_by(PER_BATCH).map(|from| {
            let n = PER_BATCH.min(count - from);
            bodies(from, n)
        });
        match self {
            Route::TcpPipelined => {
                let mut client = broker.raw();
                for window in (0..count).step_by(100) {
                    let window = bodies(window, 100.min(count - window));
                    let mut frames = Vec::new();
                    for body in &window {
                        command::publish(&mut frames, topic, body);
                    }
                    client.send(&frames);
                    for _ in &window {
                        expect_ok(&mut client, "PUB")?;
                    }
                }
            }
            Route::TcpRoundTrip => {
                let mut client = broker.raw();
                for body in bodies(0, count) {
                    client.publish(topic, &body);
                }
            }
            Route::TcpConnections | Route::TcpDpub => {
                for batch in batches {
                    let mut frames = Vec::new();
                    for body in &batch {
                        match self {
                            Route::TcpDpub => command::dpub(&mut frames, topic, 3_600_000, body),
                            _ => command::publish(&mut frames, topic, body),
                        }
                    }
                    let mut client = broker.raw();
                    client.send(&frames);
                    for _ in &batch {
                        expect_ok(&mut client, "PUB")?;
                    }
                }
            }
            Route::TcpMpub => {
                for batch in batches {
                    broker.raw().mpub(topic, &batch);
                }
            }
            Route::HttpPub => {
                let agent = keep_alive();
                for body in bodies(0, count) {
                    post(&agent, broker.http, &format!("/pub?topic={topic}"), &body)?;
                }
            }
            Route::HttpPubConnections => {
                for body in bodies(0, count) {
                    post(
                        &keep_alive(),
                        broker.http,
                        &format!("/pub?topic={topic}"),
                        &body,
                    )?;
                }
            }
            Route::HttpMpub | Route::HttpMpubBinary => {
                let agent = keep_alive();
                for batch in batches {
                    let (query, request) = if self == Route::HttpMpubBinary {
                        ("&binary=true", command::mpub_body(&batch))
                    } else {
                        ("", batch.join(&b'\n'))
                    };
                    post(
                        &agent,
                        broker.http,
                        &format!("/mpub?topic={topic}{query}"),
                        &request,
                    )?;
                }
            }
            other => bail!("{other:?} is not a publishing route"),
        }
        Ok(())
    }
}

/// A broker's resident set before and after queueing `count` messages.
#[derive(Clone, Copy, Debug)]
pub struct Growth {
    pub before: u64,
    pub after: u64,
    pub count: usize,
}

impl Growth {
    fn new(before: u64, after: u64, count: usize) -> Growth {
        Growth {
            before,
            after,
            count,
        }
    }

    /// Growth in bytes (0 if the set shrank).
    pub fn bytes(&self) -> u64 {
        self.after.saturating_sub(self.before)
    }

    /// Growth per queued message, in bytes.
    pub fn per_message(&self) -> f64 {
        self.bytes() as f64 / self.count.max(1) as f64
    }
}

impl Wasqd {
    /// The broker process's resident set size, in bytes.
    pub fn resident_bytes(&self) -> anyhow::Result<u64> {
        resident_bytes(self.pid())
    }
}

/// Message `i`'s body: `size` bytes that differ from message to message.
pub fn body(i: usize, size: usize) -> Vec<u8> {
    let mut body = format!("{i:010} ").into_bytes();
    body.resize(size.max(body.len()), b'x');
    body.truncate(size);
    body
}

fn expect_ok(client: &mut RawClient, what: &str) -> anyhow::Result<()> {
    let frame = client.read_frame();
    if frame != ok() {
        bail!("{what}: {}", String::from_utf8_lossy(&frame.1));
    }
    Ok(())
}

/// An HTTP client that keeps its connection open between requests.
fn keep_alive() -> ureq::Agent {
    ureq::Agent::new_with_defaults()
}

fn post(agent: &ureq::Agent, http: SocketAddr, path: &str, body: &[u8]) -> anyhow::Result<()> {
    agent
        .post(&format!("http://{http}{path}"))
        .send(body)
        .with_context(|| format!("POST {path}"))?;
    Ok(())
}

/// A topic's depth (memory and disk), 0 if it does not exist.
fn topic_depth(http: &Http, topic: &str) -> u64 {
    let stats = http.stats();
    stats["topics"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["topic_name"] == topic))
        .map_or(0, |t| t["depth"].as_u64().unwrap_or(0))
}

/// A channel's statistic (`in_flight_count`, `deferred_count` …), 0 if absent.
fn channel_count(http: &Http, topic: &str, channel: &str, field: &str) -> u64 {
    http.channel_stats(topic, channel)
        .map_or(0, |c| c[field].as_u64().unwrap_or(0))
}

fn wait_for(broker: &Wasqd, what: &str, check: impl FnMut() -> bool) -> anyhow::Result<()> {
    if !eventually(SETTLE, check) {
        bail!(
            "{what} not reached within {SETTLE:?}: {}",
            broker.http().stats()
        );
    }
    Ok(())
}

/// A plugin consumes `count` messages published over short TCP
/// connections: `uppercase` publishes each to `words.upper`, or a plugin
/// that answers fatal dead-letters each to `dead`.
fn through_plugin(count: usize, size: usize, dead_letter: bool) -> anyhow::Result<Growth> {
    let plugins = PluginDir::default();
    let output = if dead_letter {
        plugins.wat(
            "fails",
            &crate::wat_plugin("", "(i64.const 3)"),
            "topic = \"words\"\nchannel = \"fails\"\ndead_letter_topic = \"dead\"\n",
        );
        "dead"
    } else {
        plugins.example(
            "uppercase",
            "uppercase",
            "topic = \"words\"\nchannel = \"upper\"\npublish = [\"words.upper\"]\n",
        );
        "words.upper"
    };
    let broker = plugins.start_with(&["--no-embedded-lookupd"]);
    let http = broker.http();
    let warmup = count / 50;
    Route::TcpConnections.publish(&broker, "words", warmup, size)?;
    wait_for(&broker, "warm-up output", || {
        topic_depth(&http, output) >= warmup as u64
    })?;
    let before = broker.resident_bytes()?;
    Route::TcpConnections.publish(&broker, "words", count, size)?;
    wait_for(&broker, "plugin output", || {
        topic_depth(&http, output) >= (warmup + count) as u64
    })?;
    Ok(Growth::new(before, broker.resident_bytes()?, count))
}

/// Consumers that take `count` messages of `topic/c` in flight without
/// finishing them (RDY 2500 each, nsqd's --max-rdy-count).
fn hold_in_flight(broker: &Wasqd, topic: &str, count: usize) -> anyhow::Result<Vec<RawClient>> {
    let consumers = (0..count.div_ceil(2500))
        .map(|_| broker.consumer(topic, "c", 2500))
        .collect();
    let http = broker.http();
    wait_for(broker, "messages in flight", || {
        channel_count(&http, topic, "c", "in_flight_count") >= count as u64
    })?;
    Ok(consumers)
}

/// Creates `topic` and its channel `c`, so that publishes reach the channel.
fn create_channel(broker: &Wasqd, topic: &str) -> anyhow::Result<()> {
    let http = broker.http();
    for path in [
        format!("/topic/create?topic={topic}"),
        format!("/channel/create?topic={topic}&channel=c"),
    ] {
        let (status, body) = http.post(&path, b"");
        if status != 200 {
            bail!("{path}: {status} {body}");
        }
    }
    Ok(())
}

/// A consumer (RDY 100) REQs every message it receives with an hour's
/// delay, as it receives it, until all are deferred in the channel. (Held
/// in flight all at once first, they would also cost what the in-flight
/// routes below measure.)
fn requeued(count: usize, size: usize) -> anyhow::Result<Growth> {
    let broker = Wasqd::try_start(&["--no-embedded-lookupd"])?;
    Route::TcpPipelined.publish(&broker, "warmup", count / 50, size)?;
    create_channel(&broker, "queued")?;
    let before = broker.resident_bytes()?;
    Route::TcpPipelined.publish(&broker, "queued", count, size)?;
    let mut consumer = broker.consumer("queued", "c", 100);
    for _ in 0..count {
        let message = consumer
            .next_message(SETTLE)
            .context("a message to requeue")?;
        consumer.send(&command::encode(|out| {
            command::req(out, &message.id.0, 3_600_000)
        }));
    }
    let http = broker.http();
    wait_for(&broker, "deferred messages", || {
        channel_count(&http, "queued", "c", "deferred_count") >= count as u64
    })?;
    Ok(Growth::new(before, broker.resident_bytes()?, count))
}

/// Queued in the channel's memory; consumers then hold it all in flight.
fn in_flight(count: usize, size: usize) -> anyhow::Result<Growth> {
    held_in_flight(count, size, &[])
}

/// Everything goes to disk first; consumers then hold it all in flight.
fn read_back(count: usize, size: usize) -> anyhow::Result<Growth> {
    held_in_flight(count, size, &["--mem-queue-size", "0"])
}

/// Published to a channel of a wasqd started with `flags`, then all held
/// in flight by consumers (after a warm-up of the same on another topic).
fn held_in_flight(count: usize, size: usize, flags: &[&str]) -> anyhow::Result<Growth> {
    let mut args = vec!["--no-embedded-lookupd"];
    args.extend_from_slice(flags);
    let broker = Wasqd::try_start(&args)?;
    create_channel(&broker, "warmup")?;
    Route::TcpPipelined.publish(&broker, "warmup", count / 50, size)?;
    let _warm = hold_in_flight(&broker, "warmup", count / 50)?;
    create_channel(&broker, "queued")?;
    let before = broker.resident_bytes()?;
    Route::TcpPipelined.publish(&broker, "queued", count, size)?;
    let _consumers = hold_in_flight(&broker, "queued", count)?;
    Ok(Growth::new(before, broker.resident_bytes()?, count))
}

/// Queued in a channel's memory, saved by a clean stop, then restored by a
/// new wasqd on the same data path and held in flight by consumers. The
/// new wasqd reads part of the backlog back as it starts, so the growth is
/// measured from the first one's resident set before it was given the
/// messages (the same build with the same flags).
fn restored(count: usize, size: usize) -> anyhow::Result<Growth> {
    let data = tempfile::tempdir()?;
    let data_path = data.path().to_str().context("data path")?;
    let args = ["--no-embedded-lookupd", "--data-path", data_path];
    let first = Wasqd::try_start(&args)?;
    create_channel(&first, "queued")?;
    let before = first.resident_bytes()?;
    Route::TcpPipelined.publish(&first, "queued", count, size)?;
    let status = first.terminate();
    if !status.success() {
        bail!("wasqd did not stop cleanly: {status}");
    }
    let broker = Wasqd::try_start(&args)?;
    let _consumers = hold_in_flight(&broker, "queued", count)?;
    Ok(Growth::new(before, broker.resident_bytes()?, count))
}
