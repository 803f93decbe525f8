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
//! hot reloads (see `reload.rs`).
//!
//! By default it starts `target/release/wasqd` on ephemeral ports. With
//! `--compare ADDR` it runs the same workload against a second broker (for
//! example a real nsqd) in the same run and prints the ratio, since this
//! machine is too noisy for numbers taken at different times.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};
use clap::Parser;

mod conn;
mod persistence;
mod plugin;
mod reload;
mod workload;

pub use conn::Conn;
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
        /// plugin instances (worker threads)
        #[arg(long, default_value_t = 2)]
        concurrency: usize,
    },
    /// the broker workload on three wasqd set-ups in one run: in memory, spilling to disk, durable (--mem-queue-size 0 --sync-every 1)
    Persistence,
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
    if let Some(Mode::Persistence) = args.command {
        return persistence::run(&args.workload).await;
    }
    let mut spawned = None;
    let target = match args.target {
        Some(addr) => addr,
        None => {
            // In memory, like nsqd with a --mem-queue-size above the workload.
            let broker = spawn_wasqd(&["--mem-queue-size", "100000000"])?;
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

/// A wasqd started by the bench; killed when dropped.
pub struct Spawned {
    child: Child,
    pub tcp: SocketAddr,
    pub http: SocketAddr,
    /// Its --data-path, unless the caller gave one.
    _data: Option<tempfile::TempDir>,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the release wasqd on ephemeral loopback ports, with its data in
/// a temporary directory unless `extra` names a --data-path, and reads its
/// TCP and HTTP addresses from its start-up log.
fn spawn_wasqd(extra: &[&str]) -> anyhow::Result<Spawned> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let binary = root.join("target/release/wasqd");
    if !binary.exists() {
        bail!(
            "{} not found: run `cargo build --release -p wasq-host` first",
            binary.display()
        );
    }
    let data = if extra.contains(&"--data-path") {
        None
    } else {
        Some(tempfile::tempdir().context("temporary --data-path")?)
    };
    let mut command = Command::new(&binary);
    command
        .args([
            "--tcp-address",
            "127.0.0.1:0",
            "--http-address",
            "127.0.0.1:0",
            "--exit-on-stdin-eof",
            "--no-embedded-lookupd",
        ])
        .args(extra)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(data) = &data {
        command.arg("--data-path").arg(data.path());
    }
    let mut child = command.spawn().context("spawn wasqd")?;
    let stderr = child.stderr.take().context("stderr")?;
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let (mut tcp, mut http) = (None, None);
    while tcp.is_none() || http.is_none() {
        let Some(line) = lines.next() else {
            bail!("wasqd exited before listening")
        };
        let line = line?;
        if let Some(addr) = line.split("TCP: listening on ").nth(1) {
            tcp = Some(addr.trim().parse()?);
        }
        if let Some(addr) = line.split("HTTP: listening on ").nth(1) {
            http = Some(addr.trim().parse()?);
        }
    }
    // Keep draining the log so wasqd never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Ok(Spawned {
        child,
        tcp: tcp.unwrap(),
        http: http.unwrap(),
        _data: data,
    })
}
