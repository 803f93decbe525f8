//! `wasq-bench versus --nsqd PATH`: every row of the performance table
//! (bench/README.md) against wasqd and against a real nsqd, in one run.
//!
//! Each round of each row starts fresh brokers (so no row inherits another's
//! queues or memory), measures wasqd and its baseline one after the other,
//! alternating which goes first, and the median of the `--rounds` rounds'
//! ratios is the row's ratio. The baseline is nsqd, except for the plugin row that compares
//! with a tokio-nsq consumer on the same wasqd. Besides the table, each
//! row prints one `BENCH {json}` line for scripts.

mod broker;
mod broker_rows;
mod figure;
mod measure;
mod plugin_rows;
mod rows;
mod spinners;
mod summary;
mod tool_rows;

use std::path::PathBuf;

use anyhow::Context;

use crate::workload::Workload;
use figure::both_figures;
use measure::{measure, measure_ok_server};
use rows::{ROWS, Row};
use spinners::Spinners;
use summary::{Summary, format_value, times_better};

#[derive(clap::Args, Debug, Clone)]
pub struct VersusArgs {
    /// the nsqd binary to compare with (built from NSQ's source; see bench/README.md)
    #[arg(long)]
    pub nsqd: PathBuf,
    /// rounds per row (the median of per-round ratios is reported)
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// NSQ's bench_writer (built from NSQ v1.3.0's source); default: beside --nsqd
    #[arg(long)]
    pub bench_writer: Option<PathBuf>,
    /// NSQ's bench_reader; default: beside --nsqd
    #[arg(long)]
    pub bench_reader: Option<PathBuf>,
    /// ApacheBench (Debian's apache2-utils)
    #[arg(long, default_value = "ab")]
    pub ab: PathBuf,
    /// how long bench_writer and ab run per figure (bench_reader: half of
    /// it, so that the backlog bench_writer left lasts)
    #[arg(long, default_value_t = 5)]
    pub tool_seconds: u64,
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
pub(super) const SINGLE_ROUND_TRIPS: usize = 20_000;

/// Tries per round when the host keeps stealing more than `--max-steal`.
const STEAL_TRIES: usize = 3;

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
                "  round {}: {}  ratio {:.2}x{}",
                round + 1,
                both_figures(a, row.baseline, b),
                times_better(row.better, a.value, b.value),
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
    println!(
        "\n| row | wasqd | baseline | ratio | target | met | do-nothing server | its ratio | wasqd of it | max steal |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
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
