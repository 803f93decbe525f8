//! `wasq-bench scale`: what grows with the number of topics, connections
//! and plugins, and by how much.
//!
//! - topics: for each size (1k, 10k and 50k by default) a fresh broker
//!   with its data in a temporary directory gets that many topics, each
//!   with one channel, every `--message-every`th with one queued 100-byte
//!   message, created over HTTP as an operator's scripts would. Measured:
//!   the create rate, the resident memory per topic, one `/stats` (JSON),
//!   a clean stop (SIGTERM to exit), and a restart on the same data until
//!   `/ping` answers and until every message is back in its channel.
//! - consumers: idle TCP consumers (SUB, RDY 1) connected at once: the
//!   connect rate, memory per connection, `/stats` with them listed, and a
//!   clean stop with them connected.
//! - plugins: that many copies of the trivial example plugin, each on its
//!   own topic: time until `/ping`, until every one is loaded, memory per
//!   plugin, `/stats`, a clean stop, and a restart (modules compiled once
//!   are in the cache by then) until every one is loaded again.
//!
//! With `--nsqd PATH`, a real nsqd does the same topic and consumer work in
//! the same run (it has no plugins). Every figure is printed per size with
//! its growth from the size before: for a total (a time) linear growth is
//! the size ratio, for a per-item figure (memory per topic) it is 1. A
//! `BENCH` line per size and broker carries the same for scripts. This
//! measures; it asserts nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wasq_testkit::Wasqd;
use wasq_testkit::memory::resident_bytes;

use crate::http_load::KeepAlive;
use crate::nsqd::Nsqd;

#[derive(clap::Args, Debug, Clone)]
pub struct ScaleArgs {
    /// topic counts to measure, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,50000")]
    pub topics: Vec<usize>,
    /// every Nth topic gets one queued message (1: every topic)
    #[arg(long, default_value_t = 1)]
    pub message_every: usize,
    /// idle consumer counts to measure, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    pub consumers: Vec<usize>,
    /// plugin counts to measure, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "20,200")]
    pub plugins: Vec<usize>,
    /// a real nsqd to measure beside wasqd (built from NSQ's source)
    #[arg(long)]
    pub nsqd: Option<PathBuf>,
    /// measure nsqd only up to this many topics or consumers (its topic
    /// creation slows as topics grow: 130 topics/s at 10 000 here)
    #[arg(long, default_value_t = 10_000)]
    pub nsqd_up_to: usize,
    /// only these parts: topics, consumers, plugins
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "topics,consumers,plugins"
    )]
    pub parts: Vec<String>,
}

/// Body of each queued message.
const BODY_SIZE: usize = 100;
/// HTTP connections creating topics side by side.
const CREATORS: usize = 4;
/// How long a restart may take to bring every message back.
const RESTORE_LIMIT: Duration = Duration::from_secs(600);
/// How long a broker may take to exit on SIGTERM.
const STOP_LIMIT: Duration = Duration::from_secs(600);

pub async fn run(args: ScaleArgs) -> anyhow::Result<()> {
    wasq_nsq::open_files::raise_limit();
    let brokers: Vec<Broker> = std::iter::once(Broker::Wasqd)
        .chain(args.nsqd.clone().map(Broker::Nsqd))
        .collect();
    if args.parts.iter().any(|p| p == "topics") {
        let mut table = Table::new("topics");
        for &size in &args.topics {
            for broker in brokers.iter().filter(|b| b.measures(size, args.nsqd_up_to)) {
                let figures = topics(broker, size, args.message_every).await?;
                table.add(broker.label(), size, figures);
            }
        }
        table.print();
    }
    if args.parts.iter().any(|p| p == "consumers") {
        let mut table = Table::new("consumers");
        for &size in &args.consumers {
            for broker in brokers.iter().filter(|b| b.measures(size, args.nsqd_up_to)) {
                let figures = consumers(broker, size).await?;
                table.add(broker.label(), size, figures);
            }
        }
        table.print();
    }
    if args.parts.iter().any(|p| p == "plugins") {
        let mut table = Table::new("plugins");
        for &size in &args.plugins {
            table.add("wasqd", size, plugins(size).await?);
        }
        table.print();
    }
    Ok(())
}

/// A broker under measurement.
#[derive(Debug, Clone)]
enum Broker {
    Wasqd,
    Nsqd(PathBuf),
}

impl Broker {
    /// Whether it is measured at `size` (nsqd only up to `nsqd_up_to`).
    fn measures(&self, size: usize, nsqd_up_to: usize) -> bool {
        matches!(self, Broker::Wasqd) || size <= nsqd_up_to
    }

    fn label(&self) -> &'static str {
        match self {
            Broker::Wasqd => "wasqd",
            Broker::Nsqd(_) => "nsqd",
        }
    }

    /// Starts it on `data` and returns it with the time until `/ping`
    /// answered.
    fn start(&self, data: &Path, extra: &[&str]) -> anyhow::Result<(Running, Duration)> {
        let started = Instant::now();
        let running = match self {
            Broker::Wasqd => {
                let mut args = vec!["--data-path", data.to_str().context("data path")?];
                args.extend_from_slice(extra);
                // Ready once its listeners serve: /ping answers from then on.
                let wasqd = Wasqd::try_start(&args)?;
                Running::Wasqd(wasqd)
            }
            Broker::Nsqd(binary) => Running::Nsqd(Nsqd::start_in(binary, data, extra)?),
        };
        let until_ping = started.elapsed();
        running.ping()?;
        Ok((running, until_ping))
    }
}

enum Running {
    Wasqd(Wasqd),
    Nsqd(Nsqd),
}

impl Running {
    fn http(&self) -> SocketAddr {
        match self {
            Running::Wasqd(w) => w.http,
            Running::Nsqd(n) => n.http,
        }
    }

    fn tcp(&self) -> SocketAddr {
        match self {
            Running::Wasqd(w) => w.tcp,
            Running::Nsqd(n) => n.tcp,
        }
    }

    fn pid(&self) -> u32 {
        match self {
            Running::Wasqd(w) => w.pid(),
            Running::Nsqd(n) => n.pid(),
        }
    }

    fn ping(&self) -> anyhow::Result<()> {
        let (status, _) = get(self.http(), "/ping")?;
        anyhow::ensure!(status == 200, "/ping answered {status}");
        Ok(())
    }

    /// SIGTERM, then the time until the process exited.
    fn stop(self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        match self {
            Running::Wasqd(w) => {
                let status = w.terminate_within(STOP_LIMIT)?;
                anyhow::ensure!(status.success(), "wasqd exited with {status}");
            }
            Running::Nsqd(n) => n.terminate_within(STOP_LIMIT)?,
        }
        Ok(started.elapsed())
    }
}

/// One figure of one run: its name, value and unit, and whether it is a
/// total (grows with the size when linear) or per item (stays flat).
#[derive(Debug, Clone)]
struct Figure {
    name: &'static str,
    value: f64,
    unit: &'static str,
    per_item: bool,
}

fn total(name: &'static str, value: f64, unit: &'static str) -> Figure {
    Figure {
        name,
        value,
        unit,
        per_item: false,
    }
}

fn per_item(name: &'static str, value: f64, unit: &'static str) -> Figure {
    Figure {
        name,
        value,
        unit,
        per_item: true,
    }
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The topic part at one size (see the module doc).
async fn topics(
    broker: &Broker,
    count: usize,
    message_every: usize,
) -> anyhow::Result<Vec<Figure>> {
    let data = tempfile::tempdir()?;
    let (running, _) = broker.start(data.path(), &[])?;
    let before = resident_bytes(running.pid())?;
    let started = Instant::now();
    let expected = create_topics(running.http(), count, message_every).await?;
    let create = started.elapsed();
    let rss = resident_bytes(running.pid())?.saturating_sub(before);
    let stats = time_get(running.http(), "/stats?format=json")?;
    let stop = running.stop()?;

    let restarted = Instant::now();
    let (running, until_ping) = broker.start(data.path(), &[])?;
    let until_restored = until_every_message(&running, expected, restarted)?;
    let second_stop = running.stop()?;
    let figures = vec![
        per_item("create", count as f64 / seconds(create), "topics/s"),
        per_item("rss_per_topic", rss as f64 / count as f64 / 1024.0, "KiB"),
        total("stats", seconds(stats) * 1e3, "ms"),
        total("stop", seconds(stop), "s"),
        total("restart_ping", seconds(until_ping), "s"),
        total("restart_restored", seconds(until_restored), "s"),
        total("stop_after_restart", seconds(second_stop), "s"),
    ];
    Ok(figures)
}

/// Creates `count` topics with a channel each over HTTP (a few keep-alive
/// connections side by side), publishing one message to every
/// `message_every`th; returns how many messages were published.
async fn create_topics(
    http: SocketAddr,
    count: usize,
    message_every: usize,
) -> anyhow::Result<usize> {
    let every = message_every.max(1);
    let mut tasks = Vec::new();
    for creator in 0..CREATORS {
        tasks.push(tokio::spawn(async move {
            let mut connection = KeepAlive::connect(http).await?;
            let mut published = 0;
            for n in (creator..count).step_by(CREATORS) {
                let topic = format!("scale.{n}");
                connection
                    .round_trip(&post(&format!("/topic/create?topic={topic}"), b""))
                    .await?;
                connection
                    .round_trip(&post(
                        &format!("/channel/create?topic={topic}&channel=c"),
                        b"",
                    ))
                    .await?;
                if n % every == 0 {
                    connection
                        .round_trip(&post(&format!("/pub?topic={topic}"), &[b'x'; BODY_SIZE]))
                        .await?;
                    published += 1;
                }
            }
            anyhow::Ok(published)
        }));
    }
    let mut published = 0;
    for task in tasks {
        published += task.await??;
    }
    Ok(published)
}

/// Waits until the channels hold `expected` messages (for wasqd, first
/// until `/stats` says the recovery is done, asking about one small topic
/// so the polling costs neither side much); returns the time since `since`.
fn until_every_message(
    running: &Running,
    expected: usize,
    since: Instant,
) -> anyhow::Result<Duration> {
    loop {
        let stats = get_json(running.http(), "/stats?format=json&topic=scale.0")?;
        if stats.get("restore").is_none_or(|r| r["done"] == true) {
            break;
        }
        if since.elapsed() > RESTORE_LIMIT {
            bail!("queues still being recovered after {RESTORE_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    loop {
        let stats = get_json(running.http(), "/stats?format=json&include_clients=false")?;
        let queued: u64 = stats["topics"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|t| t["channels"].as_array().into_iter().flatten())
            .map(|c| c["depth"].as_u64().unwrap_or(0))
            .sum();
        if queued >= expected as u64 {
            return Ok(since.elapsed());
        }
        if since.elapsed() > RESTORE_LIMIT {
            bail!("{queued} of {expected} messages back after {RESTORE_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The consumer part at one size (see the module doc).
async fn consumers(broker: &Broker, count: usize) -> anyhow::Result<Vec<Figure>> {
    let data = tempfile::tempdir()?;
    let (running, _) = broker.start(data.path(), &[])?;
    for path in [
        "/topic/create?topic=scale",
        "/channel/create?topic=scale&channel=c",
    ] {
        let (status, _) = post_once(running.http(), path)?;
        anyhow::ensure!(status == 200, "{path} answered {status}");
    }
    let before = resident_bytes(running.pid())?;
    let started = Instant::now();
    let connections = connect_consumers(running.tcp(), count).await?;
    let connect = started.elapsed();
    let rss = resident_bytes(running.pid())?.saturating_sub(before);
    let stats = time_get(running.http(), "/stats?format=json")?;
    let stop = running.stop()?;
    drop(connections);
    Ok(vec![
        per_item("connect", count as f64 / seconds(connect), "conns/s"),
        per_item(
            "rss_per_connection",
            rss as f64 / count as f64 / 1024.0,
            "KiB",
        ),
        total("stats", seconds(stats) * 1e3, "ms"),
        total("stop", seconds(stop), "s"),
    ])
}

/// Connects `count` consumers of `scale/c`, each subscribed with RDY 1,
/// at most a few hundred handshakes at a time.
async fn connect_consumers(tcp: SocketAddr, count: usize) -> anyhow::Result<Vec<TcpStream>> {
    let mut hello = wasq_wire::MAGIC_V2.to_vec();
    hello.extend(wasq_wire::command::encode(|out| {
        wasq_wire::command::sub(out, "scale", "c")
    }));
    wasq_wire::command::rdy(&mut hello, 1);
    let mut connections = Vec::with_capacity(count);
    for wave in (0..count).collect::<Vec<_>>().chunks(256) {
        let mut tasks = Vec::new();
        for _ in wave {
            let hello = hello.clone();
            tasks.push(tokio::spawn(async move {
                let mut stream = TcpStream::connect(tcp).await?;
                stream.write_all(&hello).await?;
                // The SUB's OK: size, frame type, "OK".
                let mut ok = [0u8; 10];
                stream.read_exact(&mut ok).await?;
                anyhow::ensure!(&ok[8..] == b"OK", "SUB answered {ok:?}");
                anyhow::Ok(stream)
            }));
        }
        for task in tasks {
            connections.push(task.await??);
        }
    }
    Ok(connections)
}

/// The plugin part at one size (see the module doc).
async fn plugins(count: usize) -> anyhow::Result<Vec<Figure>> {
    let module = std::fs::read(trivial_module()?)?;
    let work = tempfile::tempdir()?;
    let dir = work.path().join("plugins");
    std::fs::create_dir(&dir)?;
    let data = work.path().join("data");
    std::fs::create_dir(&data)?;
    let baseline = {
        let (running, _) = Broker::Wasqd.start(&data, &[])?;
        let rss = resident_bytes(running.pid())?;
        running.stop()?;
        rss
    };
    for n in 0..count {
        std::fs::write(dir.join(format!("p{n}.wasm")), &module)?;
        std::fs::write(
            dir.join(format!("p{n}.toml")),
            format!("topic = \"scale.p{n}\"\nconcurrency = 1\n"),
        )?;
    }
    let plugins_dir = ["--plugins-dir", dir.to_str().context("plugins dir")?];
    let started = Instant::now();
    let (running, until_ping) = Broker::Wasqd.start(&data, &plugins_dir)?;
    let until_loaded = until_plugins_loaded(&running, count, started)?;
    let rss = resident_bytes(running.pid())?.saturating_sub(baseline);
    let stats = time_get(running.http(), "/stats?format=json")?;
    let listing = time_get(running.http(), "/plugins")?;
    let stop = running.stop()?;
    let restarted = Instant::now();
    let (running, _) = Broker::Wasqd.start(&data, &plugins_dir)?;
    let reloaded = until_plugins_loaded(&running, count, restarted)?;
    running.stop()?;
    Ok(vec![
        total("start_ping", seconds(until_ping), "s"),
        total("start_loaded", seconds(until_loaded), "s"),
        per_item("rss_per_plugin", rss as f64 / count as f64 / 1024.0, "KiB"),
        total("stats", seconds(stats) * 1e3, "ms"),
        total("plugins", seconds(listing) * 1e3, "ms"),
        total("stop", seconds(stop), "s"),
        total("restart_loaded", seconds(reloaded), "s"),
    ])
}

/// The trivial example plugin that `scripts/build-plugins` builds.
fn trivial_module() -> anyhow::Result<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/target/wasm32-wasip1/release/trivial.wasm");
    if !path.exists() {
        bail!(
            "{} not found: run scripts/build-plugins first",
            path.display()
        );
    }
    Ok(path)
}

/// Waits until `/plugins` lists `count` plugins, every one running.
fn until_plugins_loaded(
    running: &Running,
    count: usize,
    since: Instant,
) -> anyhow::Result<Duration> {
    loop {
        let listing = get_json(running.http(), "/plugins")?;
        let plugins = listing["plugins"].as_array().cloned().unwrap_or_default();
        if let Some(failed) = plugins.iter().find(|p| p["state"] == "failed") {
            bail!("a plugin failed to load: {failed}");
        }
        let running_count = plugins.iter().filter(|p| p["state"] == "running").count();
        if running_count >= count {
            return Ok(since.elapsed());
        }
        if since.elapsed() > RESTORE_LIMIT {
            bail!("{running_count} of {count} plugins running after {RESTORE_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The time one GET takes, its whole answer read.
fn time_get(http: SocketAddr, path: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let (status, _) = get(http, path)?;
    anyhow::ensure!(status == 200, "{path} answered {status}");
    Ok(started.elapsed())
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// A GET that must answer 200 with JSON.
fn get_json(http: SocketAddr, path: &str) -> anyhow::Result<Value> {
    let (status, body) = get(http, path)?;
    anyhow::ensure!(status == 200, "{path} answered {status}");
    Ok(serde_json::from_str(&body)?)
}

fn get(http: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut response = agent().get(&format!("http://{http}{path}")).call()?;
    let body = response
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()?;
    Ok((response.status().as_u16(), body))
}

fn post_once(http: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut response = agent()
        .post(&format!("http://{http}{path}"))
        .send(&[][..])?;
    let body = response.body_mut().read_to_string()?;
    Ok((response.status().as_u16(), body))
}

fn post(path: &str, body: &[u8]) -> Vec<u8> {
    crate::http_load::post(path, body)
}

/// Figures by broker and size, printed with their growth between sizes.
struct Table {
    part: &'static str,
    rows: Vec<(&'static str, usize, Vec<Figure>)>,
}

impl Table {
    fn new(part: &'static str) -> Table {
        Table {
            part,
            rows: Vec::new(),
        }
    }

    fn add(&mut self, broker: &'static str, size: usize, figures: Vec<Figure>) {
        let json: serde_json::Map<String, Value> = figures
            .iter()
            .map(|f| {
                (
                    f.name.to_string(),
                    Value::from((f.value * 1000.0).round() / 1000.0),
                )
            })
            .collect();
        println!(
            "BENCH scale part={} broker={broker} size={size} {}",
            self.part,
            Value::Object(json)
        );
        self.rows.push((broker, size, figures));
    }

    fn print(&self) {
        println!(
            "\n{} — figure per size (growth from the size before; linear: a total grows with the size, a per-item figure stays at 1.0x)",
            self.part
        );
        let mut brokers: Vec<&str> = Vec::new();
        for (broker, _, _) in &self.rows {
            if !brokers.contains(broker) {
                brokers.push(broker);
            }
        }
        for broker in brokers {
            let rows: Vec<_> = self.rows.iter().filter(|r| r.0 == broker).collect();
            println!("\n  {broker}");
            let Some((_, _, first)) = rows.first() else {
                continue;
            };
            for (i, figure) in first.iter().enumerate() {
                let mut line = format!("    {:<20}", format!("{} ({})", figure.name, figure.unit));
                let mut previous: Option<(usize, f64)> = None;
                for (_, size, figures) in &rows {
                    let value = figures[i].value;
                    line.push_str(&format!("  {size:>6}: {value:>10.3}"));
                    if let Some((last_size, last)) = previous
                        && last > 0.0
                    {
                        let kind = if figure.per_item {
                            1.0
                        } else {
                            *size as f64 / last_size as f64
                        };
                        line.push_str(&format!(" ({:.1}x, linear {:.1}x)", value / last, kind));
                    }
                    previous = Some((*size, value));
                }
                println!("{line}");
            }
        }
    }
}
