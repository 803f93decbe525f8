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
//! to the baseline.

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

    /// Messages per second `tally` drains from a backlog of `messages`
    /// (keys `k0`, `k1`, … in turn), published while its channel is paused.
    async fn drain(&self, messages: usize, keys: usize) -> anyhow::Result<f64> {
        let backlog = publish_keys(self.broker.tcp, messages, keys);
        drain_paused(self.broker.http, "tally", TOPIC, messages, backlog).await
    }
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
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
    for round in 1..=args.rounds {
        for (index, setup) in setups.iter().enumerate() {
            let rate = setup.drain(args.messages, args.keys).await?;
            println!("round {round}: {:<22} {rate:>10.0} msg/s", setup.name);
            rates[index].push(rate);
        }
    }
    println!();
    let baseline = rates[0].clone();
    for (setup, rates) in setups.iter().zip(&rates) {
        let mut ratios: Vec<f64> = rates.iter().zip(&baseline).map(|(r, b)| r / b).collect();
        println!(
            "{:<22} median {:>10.0} msg/s   {:.2}x the stateless plugin (median of per-round ratios)",
            setup.name,
            median(&mut rates.clone()),
            median(&mut ratios)
        );
    }
    for setup in &setups[1..] {
        let status = crate::plugin::plugin(&setup.broker.http, "tally")?;
        println!("{}: state_store {}", setup.name, status["state_store"]);
    }
    Ok(())
}
