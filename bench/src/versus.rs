//! `wasq-bench versus --nsqd PATH`: every row of the performance table
//! (bench/README.md) against wasqd and against a real nsqd, in one run.
//!
//! Each round of each row starts fresh brokers (so no row inherits another's
//! queues or memory), measures wasqd and its baseline one after the other,
//! alternating which goes first, and the medians of `--rounds` rounds give
//! the ratio. The baseline is nsqd, except for the plugin row that compares
//! with a tokio-nsq consumer on the same wasqd. Besides the table, each
//! row prints one `BENCH {json}` line for scripts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::http_load;
use crate::nsqd::Nsqd;
use crate::ok_server::{OkServer, Protocol};
use crate::plugin::{PluginArgs, TrivialPlugin, tokio_nsq_drain, unique};
use crate::spinning_client;
use crate::steal;
use crate::workload::{PubWrites, Workload, mpub_phase, prepare_backlog, pub_phase, sub_phase};
use crate::{IN_MEMORY, spawn_wasqd};
use wasq_testkit::memory::resident_bytes;

#[derive(clap::Args, Debug, Clone)]
pub struct VersusArgs {
    /// the nsqd binary to compare with (built from NSQ's source; see bench/README.md)
    #[arg(long)]
    pub nsqd: PathBuf,
    /// rounds per row (the median is reported)
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// only these rows (ids as printed), comma-separated
    #[arg(long, value_delimiter = ',')]
    pub rows: Vec<String>,
    /// messages of the throughput rows
    #[arg(long, default_value_t = 500_000)]
    pub messages: usize,
    /// backlog the plugin rows drain, and messages queued by the memory row
    #[arg(long, default_value_t = 1_000_000)]
    pub backlog: usize,
    /// keep every CPU out of its idle state with a lowest-priority spinner
    /// per CPU (`nice -n 19 yes`), as a benchmark host with idle states off
    #[arg(long)]
    pub awake: bool,
    /// measure a round again (up to 3 tries in all) when the host stole more
    /// than this percentage of the CPU time during one of its figures;
    /// 100 keeps every round as it came
    #[arg(long, default_value_t = 10.0)]
    pub max_steal: f64,
}

/// Round trips of the single-connection PUB and /pub rows.
const SINGLE_ROUND_TRIPS: usize = 20_000;

/// Tries per round when the host keeps stealing more than `--max-steal`.
const STEAL_TRIES: usize = 3;

/// Lowest-priority busy loops, one per CPU, killed on drop.
///
/// On this kind of virtual machine a vCPU that goes idle takes tens of
/// microseconds to wake when a packet arrives for it; a request-response
/// over loopback pays that on both sides, and measures the hypervisor
/// rather than the broker (a server that only answers OK: 15-25k round
/// trips a second idle, up to 180k awake). Go's scheduler spins before it
/// sleeps, and wasqd does for quick clients, which hides part of it.
/// Spinners at nice 19 keep the vCPUs running and yield to any real work.
struct Spinners(Vec<std::process::Child>);

impl Spinners {
    fn start() -> anyhow::Result<Spinners> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let children = (0..cpus)
            .map(|_| {
                std::process::Command::new("nice")
                    .args(["-n", "19", "yes"])
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .context("cannot start `nice -n 19 yes`")
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Spinners(children))
    }
}

impl Drop for Spinners {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How wasqd and nsqd hold messages for a row.
#[derive(Clone, Copy)]
enum Setup {
    /// Everything in memory (`--mem-queue-size 100000000` for both).
    Memory,
    /// nsqd's default `--mem-queue-size 10000`: the rest goes to disk.
    Spilling,
}

/// What better means for a row's figure.
#[derive(Clone, Copy, PartialEq)]
enum Better {
    Higher,
    Lower,
}

struct Row {
    id: &'static str,
    what: &'static str,
    unit: &'static str,
    better: Better,
    /// What wasqd is compared with.
    baseline: &'static str,
    /// wasqd must beat the baseline by this factor (in the row's sense of better).
    ratio_target: Option<f64>,
    /// wasqd's own figure must reach this (at least, or at most when lower is better).
    absolute_target: Option<f64>,
}

/// A throughput row against nsqd, higher is better.
const fn throughput(id: &'static str, what: &'static str, ratio: f64) -> Row {
    Row {
        id,
        what,
        unit: "msg/s",
        better: Better::Higher,
        baseline: "nsqd",
        ratio_target: Some(ratio),
        absolute_target: None,
    }
}

/// A throughput row against nsqd shown for reference, with no target: the
/// same work as a judged row, measured with a client whose own costs bound
/// every server's figure (its `of do-nothing` column shows how closely).
const fn reference(id: &'static str, what: &'static str) -> Row {
    Row {
        ratio_target: None,
        ..throughput(id, what, f64::NAN)
    }
}

const ROWS: &[Row] = &[
    throughput(
        "tcp_mpub",
        "TCP publish, MPUB batches of 200, 4 connections",
        2.0,
    ),
    throughput(
        "tcp_sub",
        "TCP consume, RDY 2500, FIN each, 4 connections",
        2.0,
    ),
    throughput(
        "tcp_pub",
        "PUB round trip, one connection, one outstanding; the client polls its socket for the answer",
        1.5,
    ),
    reference(
        "tcp_pub_sleeping",
        "the same with a client that sleeps until the answer arrives (its vCPU's wake-up is in every figure)",
    ),
    throughput(
        "tcp_pub_pipelined",
        "PUB, 4 connections, 16 outstanding each; the PUBs that refill the window after one read go out in one write",
        2.0,
    ),
    reference(
        "tcp_pub_pipelined_write_each",
        "the same with a write per PUB (the client's own system calls bound every figure)",
    ),
    throughput(
        "http_pub",
        "HTTP /pub, one keep-alive connection; the client polls its socket for the answer",
        3.0,
    ),
    reference(
        "http_pub_sleeping",
        "the same with a client that sleeps until the answer arrives",
    ),
    throughput(
        "http_mpub",
        "HTTP /mpub, 200 per request, 4 connections",
        2.0,
    ),
    throughput(
        "spill_mpub",
        "spilling (--mem-queue-size 10000): MPUB 200, 4 connections",
        2.0,
    ),
    throughput(
        "spill_sub",
        "spilling (--mem-queue-size 10000): consume, 4 connections",
        2.0,
    ),
    Row {
        id: "plugin_drain",
        what: "trivial plugin (FIN only) draining the backlog vs nsqd consumers draining it",
        unit: "msg/s",
        better: Better::Higher,
        baseline: "nsqd",
        ratio_target: Some(5.0),
        absolute_target: Some(3_000_000.0),
    },
    Row {
        id: "plugin_vs_consumer",
        what: "trivial plugin vs a tokio-nsq consumer (max_in_flight 2500) on the same wasqd",
        unit: "msg/s",
        better: Better::Higher,
        baseline: "tokio-nsq on wasqd",
        ratio_target: Some(3.0),
        absolute_target: None,
    },
    Row {
        id: "plugin_latency_p99",
        what: "publish -> plugin FIN at 50k msg/s (MPUB of 50 every ms), p99 of wasqd's e2e processing latency",
        unit: "ms",
        better: Better::Lower,
        baseline: "none",
        ratio_target: None,
        absolute_target: Some(1.0),
    },
    Row {
        id: "plugin_latency_p999",
        what: "publish -> plugin FIN at 50k msg/s, p99.9",
        unit: "ms",
        better: Better::Lower,
        baseline: "none",
        ratio_target: None,
        absolute_target: Some(5.0),
    },
    Row {
        id: "queued_bytes",
        what: "resident memory per queued 200 B message, backlog in one channel",
        unit: "B/msg",
        better: Better::Lower,
        baseline: "nsqd",
        ratio_target: None,
        absolute_target: Some(400.0),
    },
    Row {
        id: "idle_rss",
        what: "resident memory of an idle broker",
        unit: "MB",
        better: Better::Lower,
        baseline: "nsqd",
        ratio_target: None,
        absolute_target: Some(30.0),
    },
];

pub async fn run(args: VersusArgs, workload: &Workload) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.nsqd.exists(),
        "{} not found (build nsqd 1.3.0 from NSQ's source: bench/README.md)",
        args.nsqd.display()
    );
    let rows: Vec<&Row> = ROWS
        .iter()
        .filter(|row| args.rows.is_empty() || args.rows.iter().any(|id| id == row.id))
        .collect();
    anyhow::ensure!(
        !rows.is_empty(),
        "no such rows; the rows are: {}",
        ROWS.iter().map(|r| r.id).collect::<Vec<_>>().join(", ")
    );
    println!(
        "wasqd {} versus {}, {} round(s) per row{}",
        wasq_testkit::Wasqd::binary().display(),
        args.nsqd.display(),
        args.rounds,
        if args.awake { ", CPUs kept awake" } else { "" }
    );
    let _spinners = if args.awake {
        Some(Spinners::start()?)
    } else {
        None
    };
    let mut results = Vec::new();
    for row in rows {
        println!("\n{} ({}): {}", row.id, row.unit, row.what);
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        let mut ok_servers = Vec::new();
        for round in 0..args.rounds {
            let mut tries = 0;
            let (a, b) = loop {
                tries += 1;
                let (a, b) = measure(row.id, &args, workload, round % 2 == 1)
                    .await
                    .with_context(|| format!("row {}, round {}", row.id, round + 1))?;
                let stolen = [a.steal, b.steal]
                    .into_iter()
                    .any(|s| s * 100.0 > args.max_steal);
                if !stolen || tries == STEAL_TRIES {
                    break (a, b);
                }
                println!(
                    "  round {} again: {}: more than {}% stolen",
                    round + 1,
                    both_figures(a, row.baseline, b),
                    args.max_steal
                );
            };
            let ok_server = measure_ok_server(row.id, &args, workload)
                .await
                .with_context(|| format!("row {}, round {}: OK server", row.id, round + 1))?;
            println!(
                "  round {}: {}{}",
                round + 1,
                both_figures(a, row.baseline, b),
                match ok_server {
                    Some(c) => format!("  do-nothing OK server {}", format_value(c)),
                    None => String::new(),
                }
            );
            ours.push(a);
            theirs.push(b);
            ok_servers.extend(ok_server);
        }
        let summary = Summary {
            row,
            ours: ours.iter().map(|f| f.value).collect(),
            theirs: theirs.iter().map(|f| f.value).collect(),
            steal: ours.iter().chain(&theirs).map(|f| f.steal).collect(),
            ok_servers,
            awake: args.awake,
        };
        println!("BENCH {}", summary.json());
        results.push(summary);
    }
    println!("\n| row | wasqd | baseline | ratio | target | met | of do-nothing | max steal |");
    println!("|---|---|---|---|---|---|---|---|");
    for summary in &results {
        println!("{}", summary.markdown());
    }
    let worst = results
        .iter()
        .map(Summary::max_steal)
        .filter(|s| !s.is_nan())
        .reduce(f64::max);
    if let Some(worst) = worst.filter(|&s| s >= NOISY_STEAL) {
        println!(
            "\nThe host took up to {:.0}% of this machine's CPU time during a figure (steal): \
             absolute figures are low and ratios noisy; measure again when it is quieter.",
            worst * 100.0
        );
    }
    Ok(())
}

/// Above this share of stolen CPU time a run is called noisy.
const NOISY_STEAL: f64 = 0.05;

/// One figure of a round, with the share of CPU time the host stole
/// while it was measured ([`steal`]).
#[derive(Clone, Copy)]
struct Figure {
    value: f64,
    steal: f64,
}

/// Measures one side of a round.
async fn figure(work: impl Future<Output = anyhow::Result<f64>>) -> anyhow::Result<Figure> {
    let (value, steal) = steal::measured(work).await;
    Ok(Figure {
        value: value?,
        steal,
    })
}

/// "wasqd 2.90M (steal 0%)  nsqd 976.4k (steal 1%)".
fn both_figures(ours: Figure, baseline: &str, theirs: Figure) -> String {
    format!(
        "wasqd {}{}  {} {}{}",
        format_value(ours.value),
        steal::describe(ours.steal),
        baseline,
        format_value(theirs.value),
        steal::describe(theirs.steal)
    )
}

/// No baseline for this row.
const NO_FIGURE: Figure = Figure {
    value: f64::NAN,
    steal: f64::NAN,
};

/// One round of a row: (wasqd's figure, the baseline's). `baseline_first`
/// alternates the order so neither side always runs on a cooler machine.
async fn measure(
    id: &str,
    args: &VersusArgs,
    workload: &Workload,
    baseline_first: bool,
) -> anyhow::Result<(Figure, Figure)> {
    if let Some(quantile) = match id {
        "plugin_latency_p99" => Some(0.99),
        "plugin_latency_p999" => Some(0.999),
        _ => None,
    } {
        let ours = figure(plugin_latency(quantile, workload.size)).await?;
        return Ok((ours, NO_FIGURE));
    }
    if id == "plugin_vs_consumer" {
        let trivial = start_trivial()?;
        let ours = || figure(trivial.drain(args.backlog, workload.size));
        let theirs = || {
            figure(tokio_nsq_drain(
                trivial.broker.tcp,
                args.backlog,
                workload.size,
                2500,
            ))
        };
        return if baseline_first {
            let theirs = theirs().await?;
            Ok((ours().await?, theirs))
        } else {
            let ours = ours().await?;
            Ok((ours, theirs().await?))
        };
    }
    let setup = match id {
        "spill_mpub" | "spill_sub" => Setup::Spilling,
        _ => Setup::Memory,
    };
    let mut figures = [NO_FIGURE; 2];
    let order = if baseline_first { [1, 0] } else { [0, 1] };
    for side in order {
        figures[side] = if side == 0 {
            if id == "plugin_drain" {
                let trivial = start_trivial()?;
                figure(trivial.drain(args.backlog, workload.size)).await?
            } else {
                let wasqd = spawn_wasqd(match setup {
                    Setup::Memory => IN_MEMORY,
                    Setup::Spilling => &[],
                })?;
                let broker = Broker {
                    tcp: wasqd.tcp,
                    http: wasqd.http,
                    pid: wasqd.pid(),
                };
                figure(broker_row(id, args, workload, &broker)).await?
            }
        } else {
            let nsqd = Nsqd::start(
                &args.nsqd,
                match setup {
                    Setup::Memory => &["--mem-queue-size=100000000"],
                    Setup::Spilling => &[],
                },
            )?;
            let broker = Broker {
                tcp: nsqd.tcp,
                http: nsqd.http,
                pid: nsqd.pid(),
            };
            let id = if id == "plugin_drain" {
                "backlog_sub"
            } else {
                id
            };
            figure(broker_row(id, args, workload, &broker)).await?
        };
    }
    Ok((figures[0], figures[1]))
}

/// The PUB and /pub rows measured against an [`OkServer`] (one that only
/// answers OK) with the same client, right after the brokers; `None` for
/// the other rows.
async fn measure_ok_server(
    id: &str,
    args: &VersusArgs,
    workload: &Workload,
) -> anyhow::Result<Option<f64>> {
    let protocol = match id {
        "tcp_pub" | "tcp_pub_sleeping" | "tcp_pub_pipelined" | "tcp_pub_pipelined_write_each" => {
            Protocol::NsqPub
        }
        "http_pub" | "http_pub_sleeping" => Protocol::Http,
        _ => return Ok(None),
    };
    let server = OkServer::start(protocol)?;
    let at = server.address;
    let broker = Broker {
        tcp: at,
        http: at,
        pid: std::process::id(),
    };
    Ok(Some(broker_row(id, args, workload, &broker).await?))
}

/// The single round trips of `tcp_pub` and `http_pub` with the client that
/// polls its socket, on a thread of their own.
async fn spinning(
    addr: SocketAddr,
    greeting: &'static [u8],
    request: Vec<u8>,
    answer_length: fn(&[u8]) -> anyhow::Result<Option<usize>>,
) -> anyhow::Result<f64> {
    tokio::task::spawn_blocking(move || {
        spinning_client::round_trips(addr, greeting, &request, SINGLE_ROUND_TRIPS, answer_length)
    })
    .await?
}

/// Where a broker under test listens, and its process.
struct Broker {
    tcp: SocketAddr,
    http: SocketAddr,
    pid: u32,
}

/// A row measured the same way on either broker.
async fn broker_row(
    id: &str,
    args: &VersusArgs,
    workload: &Workload,
    broker: &Broker,
) -> anyhow::Result<f64> {
    let topic = format!("bench_{id}_{}", unique());
    let messages = Workload {
        messages: args.messages,
        batch: 200,
        publishers: 4,
        consumers: 4,
        ..workload.clone()
    };
    let size = workload.size;
    match id {
        "tcp_mpub" | "spill_mpub" => mpub_phase(&messages, broker.tcp, &topic).await,
        "tcp_sub" | "spill_sub" => {
            prepare_backlog(&messages, broker.tcp, &topic).await?;
            sub_phase(&messages, broker.tcp, &topic).await
        }
        "backlog_sub" => {
            let backlog = Workload {
                messages: args.backlog,
                ..messages
            };
            prepare_backlog(&backlog, broker.tcp, &topic).await?;
            sub_phase(&backlog, broker.tcp, &topic).await
        }
        "tcp_pub" => {
            let request = wasq_wire::command::encode(|out| {
                wasq_wire::command::publish(out, &topic, &vec![b'x'; size])
            });
            spinning(broker.tcp, b"  V2", request, spinning_client::nsq_ok_length).await
        }
        "http_pub" => {
            let request = http_load::pub_request(&topic, size);
            spinning(broker.http, b"", request, http_load::complete_response).await
        }
        "tcp_pub_sleeping" => {
            let single = Workload {
                pub_messages: SINGLE_ROUND_TRIPS,
                pub_connections: 1,
                pub_window: 1,
                ..messages
            };
            pub_phase(&single, broker.tcp, &topic, PubWrites::PerRead).await
        }
        "tcp_pub_pipelined" | "tcp_pub_pipelined_write_each" => {
            let pipelined = Workload {
                pub_messages: 200_000,
                pub_connections: 4,
                pub_window: 16,
                ..messages
            };
            let writes = if id == "tcp_pub_pipelined" {
                PubWrites::PerRead
            } else {
                PubWrites::PerPub
            };
            pub_phase(&pipelined, broker.tcp, &topic, writes).await
        }
        "http_pub_sleeping" => {
            let request = http_load::pub_request(&topic, size);
            http_load::publish(broker.http, request, 1, 1, SINGLE_ROUND_TRIPS).await
        }
        "http_mpub" => {
            let request = http_load::mpub_request(&topic, size, 200);
            let per_connection = args.messages / (4 * 200);
            http_load::publish(broker.http, request, 200, 4, per_connection).await
        }
        "queued_bytes" => {
            let backlog = Workload {
                messages: args.backlog,
                ..messages
            };
            // The channel first, so the messages are queued in it.
            prepare_backlog(
                &Workload {
                    messages: 0,
                    ..backlog.clone()
                },
                broker.tcp,
                &topic,
            )
            .await?;
            let before = resident_bytes(broker.pid)?;
            mpub_phase(&backlog, broker.tcp, &topic).await?;
            let after = resident_bytes(broker.pid)?;
            Ok(after.saturating_sub(before) as f64 / args.backlog as f64)
        }
        "idle_rss" => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok(resident_bytes(broker.pid)? as f64 / 1e6)
        }
        other => anyhow::bail!("no row {other}"),
    }
}

/// Messages per second of the latency rows, and how long they publish.
const LATENCY_RATE: usize = 50_000;
const LATENCY_SECONDS: usize = 5;

/// The `quantile` of publish-to-FIN time (ms) of the trivial plugin's
/// channel while MPUBs of 50 arrive every millisecond for 5 s, read from
/// wasqd's own e2e processing latency (the clock starts when wasqd stamps
/// the message, and stops at the FIN).
async fn plugin_latency(quantile: f64, size: usize) -> anyhow::Result<f64> {
    let q = quantile.to_string();
    let trivial =
        TrivialPlugin::start_with(&plugin_args(), &["--e2e-processing-latency-percentile", &q])?;
    let per_tick = LATENCY_RATE / 1000;
    let bodies = vec![vec![b'x'; size]; per_tick];
    let frame =
        wasq_wire::command::encode(|out| wasq_wire::command::mpub(out, "bench_plugin", &bodies));
    let mut conn = wasq_testkit::async_client::AsyncClient::connect(trivial.broker.tcp).await?;
    let mut ticks = tokio::time::interval(Duration::from_millis(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for _ in 0..LATENCY_SECONDS * 1000 {
        ticks.tick().await;
        conn.send(&frame).await?;
        conn.expect_ok().await?;
    }
    let http = trivial.broker.http;
    let total = (LATENCY_SECONDS * 1000 * per_tick) as u64;
    while crate::plugin::finished(&http, "trivial")? < total {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stats: serde_json::Value = serde_json::from_str(
        &ureq::get(&format!(
            "http://{http}/stats?format=json&topic=bench_plugin&channel=p"
        ))
        .call()?
        .body_mut()
        .read_to_string()?,
    )?;
    let latency = &stats["topics"][0]["channels"][0]["e2e_processing_latency"];
    let nanos = latency["percentiles"][0]["value"]
        .as_f64()
        .with_context(|| format!("no percentile in {latency}"))?;
    Ok(nanos / 1e6)
}

fn plugin_args() -> PluginArgs {
    PluginArgs {
        messages: 0,
        size: 0,
        rdy: 2500,
        concurrency: 2,
    }
}

fn start_trivial() -> anyhow::Result<TrivialPlugin> {
    TrivialPlugin::start(&plugin_args())
}

/// A row's rounds and what they mean.
struct Summary {
    row: &'static Row,
    ours: Vec<f64>,
    theirs: Vec<f64>,
    /// The share of CPU time stolen by the host during each figure.
    steal: Vec<f64>,
    /// The PUB and /pub rows' [`OkServer`], one per round; empty for the others.
    ok_servers: Vec<f64>,
    /// Measured with the CPUs kept awake (`--awake`).
    awake: bool,
}

impl Summary {
    /// How many times better than the baseline wasqd is (medians).
    fn ratio(&self) -> f64 {
        let (ours, theirs) = (median(&self.ours), median(&self.theirs));
        match self.row.better {
            Better::Higher => ours / theirs,
            Better::Lower => theirs / ours,
        }
    }

    /// Whether the row met its targets; `None` for a reference row, which has none.
    fn met(&self) -> Option<bool> {
        if self.row.ratio_target.is_none() && self.row.absolute_target.is_none() {
            return None;
        }
        let ratio_met = self.row.ratio_target.is_none_or(|t| self.ratio() >= t);
        let absolute_met = self
            .row
            .absolute_target
            .is_none_or(|t| match self.row.better {
                Better::Higher => median(&self.ours) >= t,
                Better::Lower => median(&self.ours) <= t,
            });
        Some(ratio_met && absolute_met)
    }

    fn target(&self) -> String {
        let mut parts = Vec::new();
        if let Some(ratio) = self.row.ratio_target {
            parts.push(format!("≥ {ratio}x"));
        }
        if let Some(absolute) = self.row.absolute_target {
            let sign = if self.row.better == Better::Higher {
                "≥"
            } else {
                "≤"
            };
            parts.push(format!(
                "{sign} {} {}",
                format_value(absolute),
                self.row.unit
            ));
        }
        if parts.is_empty() {
            "— (reference)".to_string()
        } else {
            parts.join(", ")
        }
    }

    fn json(&self) -> String {
        serde_json::json!({
            "row": self.row.id,
            "unit": self.row.unit,
            "baseline": self.row.baseline,
            "wasqd": self.ours,
            "baseline_values": self.theirs,
            "wasqd_median": median(&self.ours),
            "baseline_median": median(&self.theirs),
            "ratio": self.ratio(),
            "ratio_target": self.row.ratio_target,
            "absolute_target": self.row.absolute_target,
            "met": self.met(),
            "ok_server": self.ok_servers,
            "ok_server_median": (!self.ok_servers.is_empty()).then(|| median(&self.ok_servers)),
            "share_of_ok_server": self.share_of_ok_server(),
            "awake": self.awake,
            "max_steal": self.max_steal(),
        })
        .to_string()
    }

    /// The largest share of CPU time stolen during one of the figures
    /// (`NaN` when unknown).
    fn max_steal(&self) -> f64 {
        self.steal
            .iter()
            .copied()
            .filter(|s| !s.is_nan())
            .reduce(f64::max)
            .unwrap_or(f64::NAN)
    }

    /// wasqd's median as a share of the do-nothing OK server's, for the
    /// rows that measure one: how much of what the client and the loopback
    /// allow wasqd reaches.
    fn share_of_ok_server(&self) -> Option<f64> {
        (!self.ok_servers.is_empty()).then(|| median(&self.ours) / median(&self.ok_servers))
    }

    fn markdown(&self) -> String {
        format!(
            "| {} | {} {} | {} {} | {} | {} | {} | {} | {} |",
            self.row.id,
            format_value(median(&self.ours)),
            self.row.unit,
            format_value(median(&self.theirs)),
            self.row.baseline,
            match self.ratio() {
                r if r.is_nan() => "—".to_string(),
                r => format!("{r:.2}x"),
            },
            self.target(),
            match self.met() {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "—",
            },
            match self.share_of_ok_server() {
                Some(share) => format!("{:.0}%", share * 100.0),
                None => "—".to_string(),
            },
            match self.max_steal() {
                s if s.is_nan() => "—".to_string(),
                s => format!("{:.0}%", s * 100.0),
            }
        )
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// 2 412 345 → "2.41M", 7 612 → "7.6k", 312.4 → "312".
fn format_value(value: f64) -> String {
    if value.is_nan() {
        "—".to_string()
    } else if value >= 1e6 {
        format!("{:.2}M", value / 1e6)
    } else if value >= 1e4 {
        format!("{:.1}k", value / 1e3)
    } else if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}
