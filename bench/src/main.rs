//! `wasq-bench`: measures a broker the way nsq's bench tools do, over real
//! sockets and protocol V2.
//!
//! - `mpub`: several connections publish batches (MPUB) and wait for each OK.
//! - `pub`: one connection publishes one message per round trip.
//! - `sub`: consumers with a large RDY drain a prepared backlog and FIN all.
//!
//! `wasq-bench persistence` runs that workload on wasqd in memory,
//! spilling and durable (see `persistence.rs`); `wasq-bench plugin` compares a trivial Wasm plugin with an external
//! tokio-nsq consumer instead (see `plugin.rs`); `wasq-bench reload` times
//! hot reloads (see `reload.rs`); `wasq-bench guests` times the trivial
//! handler in each kind of guest (see `guests.rs`); `wasq-bench memory` measures the resident
//! memory of a queued message by every route it can arrive (see `memory.rs`);
//! `wasq-bench versus --nsqd PATH` runs every row of the performance table
//! against wasqd and a real nsqd with ratios (see `versus/`);
//! `wasq-bench scale` measures how start-up, shutdown, memory and `/stats`
//! grow with the number of topics, connections and plugins (see
//! `scale/`); `wasq-bench soak` runs a long mixed load and checks that
//! memory stays flat and nothing is lost (see `soak/`).
//!
//! By default it starts the `wasqd` built beside it (`target/release/wasqd`)
//! on ephemeral ports, through the shared test harness (`wasq-testkit`). With
//! `--compare ADDR` it runs the same workload against a second broker (for
//! example a real nsqd) in the same run and prints the ratio, since this
//! machine is too noisy for numbers taken at different times.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use wasq_testkit::Wasqd;

mod component_reload;
mod external_clients;
mod guests;
mod http_load;
mod memory;
mod nsqd;
mod ok_server;
mod persistence;
mod plugin;
mod reload;
mod scale;
mod soak;
mod spinning_client;
mod state_counter;
mod state_store;
mod steal;
mod thread_cpu;
mod versus;
mod webhook;
mod workload;

use workload::{Workload, run_all};

#[derive(Parser, Debug, Clone)]
#[command(about = "PUB/MPUB/SUB throughput of an NSQ broker over real sockets")]
struct Args {
    #[command(subcommand)]
    command: Option<Mode>,
    /// TCP address of the broker to measure; default: start target/release/wasqd
    #[arg(long)]
    target: Option<SocketAddr>,
    /// TCP address of a second broker measured in the same run (e.g. real nsqd)
    #[arg(long)]
    compare: Option<SocketAddr>,
    #[command(flatten)]
    workload: Workload,
}

#[derive(clap::Subcommand, Debug, Clone)]
enum Mode {
    /// trivial Wasm plugin versus an external tokio-nsq consumer of the same size backlog
    Plugin {
        /// messages to drain
        #[arg(long, default_value_t = 200_000)]
        messages: usize,
        /// body size in bytes
        #[arg(long, default_value_t = 200)]
        size: usize,
        /// RDY of both the plugin (max_in_flight) and the consumer
        #[arg(long, default_value_t = 2500)]
        rdy: u32,
        /// plugin instances (concurrency)
        #[arg(long, default_value_t = 2)]
        concurrency: usize,
    },
    /// per-message cost of the trivial handler as a core module, a Rust component, a JavaScript and a Python component
    Guests {
        /// messages per guest per round
        #[arg(long, default_value_t = 100_000)]
        messages: usize,
        /// body size in bytes
        #[arg(long, default_value_t = 200)]
        size: usize,
        /// rounds (the median is reported)
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// the broker workload on three wasqd set-ups in one run: in memory, spilling to disk, durable (--mem-queue-size 0 --sync-every 1)
    Persistence,
    /// resident memory per queued message, for every route a message can arrive by
    Memory {
        /// messages queued per route
        #[arg(long, default_value_t = 10_000)]
        messages: usize,
        /// body size in bytes
        #[arg(long, default_value_t = 200)]
        size: usize,
    },
    /// long mixed load (TCP and HTTP publishers, plugins with reloads, consumers, a channel backed up to disk) with resident memory sampled and every message accounted for
    Soak(soak::SoakArgs),
    /// every row of the performance table against wasqd and a real nsqd, with ratios and a BENCH json line per row
    Versus(versus::VersusArgs),
    /// what grows with the number of topics, idle consumers and plugins: create rate, memory, /stats, clean stop and restart per size, with the growth between sizes (and a real nsqd beside it with --nsqd)
    Scale(scale::ScaleArgs),
    /// a topic delivered to a local HTTP sink by the webhook plugin and by NSQ's nsq_to_http (with --nsqd and --nsq-to-http): messages/s, CPU and memory, the sink answering at once and after 20 ms
    Webhook(webhook::WebhookArgs),
    /// embedded stores for plugin state (redb, fjall): increments group-committed per FIN, open after kill -9, size on disk
    StateStore(state_store::StateStoreArgs),
    /// what plugin state costs: a counter plugin over 10 000 keys with state (default and durable mode) against the same plugin without state
    StateCounter(state_counter::StateCounterArgs),
    /// a new version of a JavaScript or Python plugin, never compiled before, renamed into place under traffic: time until it is live, and until its optimized code takes over
    ComponentReload(component_reload::ComponentReloadArgs),
    /// hot-reload latency: final write of a module file to the first message handled by it
    Reload {
        /// reloads to time
        #[arg(long, default_value_t = 30)]
        rounds: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Mode::Memory { messages, size }) = args.command {
        return tokio::task::spawn_blocking(move || memory::run(messages, size)).await?;
    }
    if let Some(Mode::Versus(versus)) = args.command.clone() {
        return versus::run(versus, &args.workload).await;
    }
    if let Some(Mode::Scale(scale)) = args.command.clone() {
        return scale::run(scale).await;
    }
    if let Some(Mode::Webhook(webhook)) = args.command.clone() {
        return webhook::run(webhook).await;
    }
    if let Some(Mode::ComponentReload(reload)) = args.command.clone() {
        return component_reload::run(reload).await;
    }
    if let Some(Mode::StateCounter(counter)) = args.command.clone() {
        return state_counter::run(counter).await;
    }
    if let Some(Mode::StateStore(state)) = args.command.clone() {
        return tokio::task::spawn_blocking(move || state_store::run(state)).await?;
    }
    if let Some(Mode::Soak(soak)) = args.command {
        return soak::run(soak).await;
    }
    if let Some(Mode::Reload { rounds }) = args.command {
        return reload::run(rounds).await;
    }
    if let Some(Mode::Plugin {
        messages,
        size,
        rdy,
        concurrency,
    }) = args.command
    {
        return plugin::run(plugin::PluginArgs {
            messages,
            size,
            rdy,
            concurrency,
        })
        .await;
    }
    if let Some(Mode::Guests {
        messages,
        size,
        rounds,
    }) = args.command
    {
        return guests::run(guests::GuestsArgs {
            messages,
            size,
            rounds,
        })
        .await;
    }
    if let Some(Mode::Persistence) = args.command {
        return persistence::run(&args.workload).await;
    }
    let mut spawned = None;
    let target = match args.target {
        Some(addr) => addr,
        None => {
            // In memory, like nsqd with a --mem-queue-size above the workload.
            let broker = spawn_wasqd(IN_MEMORY)?;
            let addr = broker.tcp;
            spawned = Some(broker);
            addr
        }
    };
    println!("workload: {}", args.workload.describe());
    let ours = run_all(&args.workload, target, "wasqd").await?;
    if let Some(other) = args.compare {
        let theirs = run_all(&args.workload, other, "compare").await?;
        println!("\nratio wasqd / compare:");
        println!(
            "  mpub {:.2}x  pub {:.2}x  sub {:.2}x",
            ours.mpub / theirs.mpub,
            ours.publish / theirs.publish,
            ours.sub / theirs.sub
        );
    }
    drop(spawned);
    Ok(())
}

/// Starts the wasqd built beside this tool (`target/release/wasqd` for
/// a release build) on ephemeral loopback ports, without the embedded
/// lookupd, with its data in a temporary directory unless `extra` names a
/// --data-path.
/// wasqd in memory: a `--mem-queue-size` above any backlog here.
const IN_MEMORY: &[&str] = &["--mem-queue-size", "100000000"];

/// Starts wasqd with the plugins in `dir` (and `extra` flags), and waits
/// until they are loaded and run optimized code: plugins load in the
/// background (a large component on baseline code first), and the bench
/// measures the code a plugin keeps.
fn spawn_wasqd_with_plugins(dir: &std::path::Path, extra: &[&str]) -> anyhow::Result<Wasqd> {
    let mut args = vec!["--plugins-dir", dir.to_str().context("plugins dir path")?];
    args.extend_from_slice(extra);
    let wasqd = spawn_wasqd(&args)?;
    tokio::task::block_in_place(|| {
        let http = wasqd.http();
        http.wait_for_plugins_loaded(wasq_testkit::PLUGINS_LOADED_TIMEOUT);
        http.wait_for_optimized_code(wasq_testkit::PLUGINS_LOADED_TIMEOUT);
    });
    Ok(wasqd)
}

fn spawn_wasqd(extra: &[&str]) -> anyhow::Result<Wasqd> {
    let mut args = vec!["--no-embedded-lookupd"];
    args.extend_from_slice(extra);
    Wasqd::try_start(&args)
}
