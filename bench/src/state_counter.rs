//! `wasq-bench state-counter`: what plugin state costs. The `tally` plugin
//! (a Rust core module) increments one of 10 000 counters per message;
//! the same module with `stateless = "true"` builds the same key and
//! touches no state. Each drains a backlog from a paused channel, rounds
//! alternating, in three set-ups:
//!
//! - stateless, in memory (the baseline);
//! - with state, default mode (commits written to the OS, fsynced every
//!   `--sync-timeout`), in memory;
//! - with state, durable mode (`--mem-queue-size 0 --sync-every 1`): every
//!   message on disk, every commit fsynced before its FINs (group commit).
//!
//! Reported per round and as medians, with the median of per-round ratios
//! to the baseline: throughput, and CPU time per message of the threads
//! that handle and commit (the plugin's workers, `wasm-N`, and the state
//! log's `state-commit`) and of all of wasqd's threads. The CPU figures
//! move by a few percent between rounds where throughput on this
//! two-core machine moves by ten.

use std::net::SocketAddr;

use crate::plugin::{drain_paused, plugins_dir};
use crate::{IN_MEMORY, spawn_wasqd_with_plugins};
use wasq_testkit::Wasqd;
use wasq_testkit::async_client::AsyncClient;
use wasq_wire::command;

#[derive(clap::Args, Debug, Clone)]
pub struct StateCounterArgs {
    /// messages per round and set-up
    #[arg(long, default_value_t = 200_000)]
    messages: usize,
    /// distinct keys (counters)
    #[arg(long, default_value_t = 10_000)]
    keys: usize,
    /// rounds (set-ups alternate within each)
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// plugin instances
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// the plugin's RDY
    #[arg(long, default_value_t = 2500)]
    rdy: u32,
}

/// One set-up: a wasqd running `tally` with a manifest and flags.
struct Setup {
    name: &'static str,
    broker: Wasqd,
    _plugins: tempfile::TempDir,
    _data: tempfile::TempDir,
}

const TOPIC: &str = "bench_state";

impl Setup {
    fn start(
        name: &'static str,
        args: &StateCounterArgs,
        state: bool,
        flags: &[&str],
    ) -> anyhow::Result<Setup> {
        let data = tempfile::tempdir()?;
        let grant = if state {
            "state = true\n"
        } else {
            "[config]\nstateless = \"true\"\n"
        };
        let plugins = plugins_dir(
            "tally",
            &format!(
                "topic = \"{TOPIC}\"\nchannel = \"p\"\nconcurrency = {}\nmax_in_flight = {}\n{grant}",
                args.concurrency, args.rdy
            ),
        )?;
        let mut all = vec!["--data-path", data.path().to_str().unwrap_or(".")];
        all.extend_from_slice(flags);
        let broker = spawn_wasqd_with_plugins(plugins.path(), &all)?;
        Ok(Setup {
            name,
            broker,
            _plugins: plugins,
            _data: data,
        })
    }

    /// How fast `tally` drains a backlog of `messages` (keys `k0`, `k1`,
    /// … in turn), published while its channel is paused.
    async fn drain(&self, messages: usize, keys: usize) -> anyhow::Result<Round> {
        let backlog = publish_keys(self.broker.tcp, messages, keys);
        let drained = drain_paused(&self.broker, "tally", TOPIC, messages, backlog).await?;
        let per_message = |nanos: u64| nanos as f64 / messages as f64;
        let handling = drained
            .thread_nanos
            .iter()
            .filter(|(name, _)| is_handling_thread(name))
            .map(|(_, nanos)| nanos)
            .sum();
        Ok(Round {
            per_second: drained.per_second,
            handling_ns: per_message(handling),
            all_ns: per_message(drained.thread_nanos.values().sum()),
        })
    }
}

/// One round of one set-up.
#[derive(Debug, Clone, Copy)]
struct Round {
    per_second: f64,
    /// CPU nanoseconds per message of the threads that handle and commit.
    handling_ns: f64,
    /// ... and of all of wasqd's threads.
    all_ns: f64,
}

/// A plugin worker (`wasm-0`, …; not the epoch ticker) or the state log's
/// thread.
fn is_handling_thread(name: &str) -> bool {
    (name.starts_with("wasm-") && name != "wasm-epoch") || name == "state-commit"
}

async fn publish_keys(tcp: SocketAddr, messages: usize, keys: usize) -> anyhow::Result<()> {
    let mut conn = AsyncClient::connect(tcp).await?;
    let bodies: Vec<String> = (0..messages).map(|i| format!("k{}", i % keys)).collect();
    for batch in bodies.chunks(500) {
        conn.send(&command::encode(|out| command::mpub(out, TOPIC, batch)))
            .await?;
        conn.expect_ok().await?;
    }
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

pub async fn run(args: StateCounterArgs) -> anyhow::Result<()> {
    println!(
        "workload: {} messages per round over {} keys, plugin concurrency {}, RDY {}, {} rounds",
        args.messages, args.keys, args.concurrency, args.rdy, args.rounds
    );
    let durable = ["--mem-queue-size", "0", "--sync-every", "1"];
    let setups = [
        Setup::start("stateless", &args, false, IN_MEMORY)?,
        Setup::start("state, default mode", &args, true, IN_MEMORY)?,
        Setup::start("state, durable mode", &args, true, &durable)?,
    ];
    let mut rounds: Vec<Vec<Round>> = vec![Vec::new(); setups.len()];
    for round in 1..=args.rounds {
        for (index, setup) in setups.iter().enumerate() {
            let measured = setup.drain(args.messages, args.keys).await?;
            println!(
                "round {round}: {:<22} {:>10.0} msg/s   CPU per message: {:>4.0} ns handling, {:>4.0} ns all threads",
                setup.name, measured.per_second, measured.handling_ns, measured.all_ns
            );
            rounds[index].push(measured);
        }
    }
    println!();
    let baseline = rounds[0].clone();
    for (setup, rounds) in setups.iter().zip(&rounds) {
        // Throughput against the baseline's; CPU per message the other way
        // round, so that both read "x the stateless plugin's speed".
        let ratio = |of: fn(&Round) -> f64, inverse: bool| {
            let mut ratios: Vec<f64> = rounds
                .iter()
                .zip(&baseline)
                .map(|(r, b)| {
                    if inverse {
                        of(b) / of(r)
                    } else {
                        of(r) / of(b)
                    }
                })
                .collect();
            median(&mut ratios)
        };
        let mut rates: Vec<f64> = rounds.iter().map(|r| r.per_second).collect();
        let mut handling: Vec<f64> = rounds.iter().map(|r| r.handling_ns).collect();
        println!(
            "{:<22} median {:>10.0} msg/s   {:.2}x the stateless plugin (median of per-round ratios); handling CPU {:.0} ns/msg: {:.2}x; all threads: {:.2}x",
            setup.name,
            median(&mut rates),
            ratio(|r| r.per_second, false),
            median(&mut handling),
            ratio(|r| r.handling_ns, true),
            ratio(|r| r.all_ns, true),
        );
    }
    for setup in &setups[1..] {
        let status = crate::plugin::plugin(&setup.broker.http, "tally")?;
        println!("{}: state_store {}", setup.name, status["state_store"]);
    }
    Ok(())
}
