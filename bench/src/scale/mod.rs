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

mod broker;
mod consumers;
mod plugins;
mod table;
mod topics;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use broker::Broker;
use table::Table;

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
pub(super) const BODY_SIZE: usize = 100;
/// HTTP connections creating topics side by side.
pub(super) const CREATORS: usize = 4;
/// How long a restart may take to bring every message back.
const RESTORE_LIMIT: Duration = Duration::from_secs(600);
/// How long a broker may take to exit on SIGTERM.
pub(super) const STOP_LIMIT: Duration = Duration::from_secs(600);

pub async fn run(args: ScaleArgs) -> anyhow::Result<()> {
    wasq_nsq::open_files::raise_limit();
    let brokers: Vec<Broker> = std::iter::once(Broker::Wasqd)
        .chain(args.nsqd.clone().map(Broker::Nsqd))
        .collect();
    if args.parts.iter().any(|p| p == "topics") {
        let mut table = Table::new("topics");
        for &size in &args.topics {
            for broker in brokers.iter().filter(|b| b.measures(size, args.nsqd_up_to)) {
                let figures = topics::topics(broker, size, args.message_every).await?;
                table.add(broker.label(), size, figures);
            }
        }
        table.print();
    }
    if args.parts.iter().any(|p| p == "consumers") {
        let mut table = Table::new("consumers");
        for &size in &args.consumers {
            for broker in brokers.iter().filter(|b| b.measures(size, args.nsqd_up_to)) {
                let figures = consumers::consumers(broker, size).await?;
                table.add(broker.label(), size, figures);
            }
        }
        table.print();
    }
    if args.parts.iter().any(|p| p == "plugins") {
        let mut table = Table::new("plugins");
        for &size in &args.plugins {
            table.add("wasqd", size, plugins::plugins(size).await?);
        }
        table.print();
    }
    Ok(())
}

/// One figure of one run: its name, value and unit, and whether it is a
/// total (grows with the size when linear) or per item (stays flat).
#[derive(Debug, Clone)]
pub(super) struct Figure {
    pub(super) name: &'static str,
    pub(super) value: f64,
    pub(super) unit: &'static str,
    pub(super) per_item: bool,
}

pub(super) fn total(name: &'static str, value: f64, unit: &'static str) -> Figure {
    Figure {
        name,
        value,
        unit,
        per_item: false,
    }
}

pub(super) fn per_item(name: &'static str, value: f64, unit: &'static str) -> Figure {
    Figure {
        name,
        value,
        unit,
        per_item: true,
    }
}

/// Asks `look` every 20 ms until it says done (`Ok(None)`); returns the
/// time since `since`. Once [`RESTORE_LIMIT`] has passed, the last thing
/// it said was still missing (`Ok(Some(missing))`) is the error.
pub(super) fn poll_until(
    since: Instant,
    mut look: impl FnMut() -> anyhow::Result<Option<String>>,
) -> anyhow::Result<Duration> {
    loop {
        let Some(missing) = look()? else {
            return Ok(since.elapsed());
        };
        if since.elapsed() > RESTORE_LIMIT {
            anyhow::bail!("{missing} after {RESTORE_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(super) fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}
