//! `wasq-bench`: measures a broker the way nsq's bench tools do, over real
//! sockets and protocol V2.
//!
//! - `mpub`: several connections publish batches (MPUB) and wait for each OK.
//! - `pub`: one connection publishes one message per round trip.
//! - `sub`: consumers with a large RDY drain a prepared backlog and FIN all.
//!
//! `wasq-bench plugin` compares a trivial Wasm plugin with an external
//! tokio-nsq consumer instead (see `plugin.rs`); `wasq-bench reload` times
//! hot reloads (see `reload.rs`).
//!
//! By default it starts `target/release/wasqd` on ephemeral ports. With
//! `--compare ADDR` it runs the same workload against a second broker (for
//! example a real nsqd) in the same run and prints the ratio, since this
//! machine is too noisy for numbers taken at different times.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

mod plugin;
mod reload;

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
    /// messages per phase
    #[arg(long, default_value_t = 500_000)]
    messages: usize,
    /// message body size in bytes
    #[arg(long, default_value_t = 200)]
    size: usize,
    /// messages per MPUB
    #[arg(long, default_value_t = 200)]
    batch: usize,
    /// publishing connections for mpub
    #[arg(long, default_value_t = 4)]
    publishers: usize,
    /// consuming connections for sub
    #[arg(long, default_value_t = 4)]
    consumers: usize,
    /// messages for the one-at-a-time pub phase
    #[arg(long, default_value_t = 20_000)]
    pub_messages: usize,
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
    /// hot-reload latency: final write of a module file to the first message handled by it
    Reload {
        /// reloads to time
        #[arg(long, default_value_t = 30)]
        rounds: usize,
    },
}

struct Results {
    mpub: f64,
    publish: f64,
    sub: f64,
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
    let mut spawned = None;
    let target = match args.target {
        Some(addr) => addr,
        None => {
            let (child, addr, _) = spawn_wasqd(&[])?;
            spawned = Some(child);
            addr
        }
    };
    println!(
        "workload: {} messages of {} B; MPUB batches of {} on {} connections; {} consumers; {} single PUBs",
        args.messages, args.size, args.batch, args.publishers, args.consumers, args.pub_messages
    );
    let ours = run_all(&args, target, "wasqd").await?;
    if let Some(other) = args.compare {
        let theirs = run_all(&args, other, "compare").await?;
        println!("\nratio wasqd / compare:");
        println!(
            "  mpub {:.2}x  pub {:.2}x  sub {:.2}x",
            ours.mpub / theirs.mpub,
            ours.publish / theirs.publish,
            ours.sub / theirs.sub
        );
    }
    if let Some(mut child) = spawned {
        let _ = child.kill();
        let _ = child.wait();
    }
    Ok(())
}

async fn run_all(args: &Args, addr: SocketAddr, label: &str) -> anyhow::Result<Results> {
    let run = Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id());
    let mpub_topic = format!("bench_mpub_{run}");
    let sub_topic = format!("bench_sub_{run}");
    let pub_topic = format!("bench_pub_{run}");

    let mpub = mpub_phase(args, addr, &mpub_topic).await?;
    println!(
        "{label}: mpub {:>10.0} msg/s  ({:.1} MB/s)",
        mpub,
        mpub * args.size as f64 / 1e6
    );

    let publish = pub_phase(args, addr, &pub_topic).await?;
    println!(
        "{label}: pub  {:>10.0} msg/s  (one round trip each)",
        publish
    );

    // The SUB phase drains a backlog published into an existing channel.
    let mut setup = Conn::connect(addr).await?;
    setup
        .send(format!("SUB {sub_topic} bench\n").as_bytes())
        .await?;
    setup.expect_ok().await?;
    drop(setup);
    mpub_phase(args, addr, &sub_topic).await?;
    let sub = sub_phase(args, addr, &sub_topic).await?;
    println!("{label}: sub  {:>10.0} msg/s", sub);
    Ok(Results { mpub, publish, sub })
}

async fn mpub_phase(args: &Args, addr: SocketAddr, topic: &str) -> anyhow::Result<f64> {
    let per_conn = args.messages / args.publishers;
    let body = vec![b'x'; args.size];
    let mut frame = Vec::new();
    frame.extend_from_slice(format!("MPUB {topic}\n").as_bytes());
    let payload_len = 4 + args.batch * (4 + args.size);
    frame.extend_from_slice(&(payload_len as u32).to_be_bytes());
    frame.extend_from_slice(&(args.batch as u32).to_be_bytes());
    for _ in 0..args.batch {
        frame.extend_from_slice(&(args.size as u32).to_be_bytes());
        frame.extend_from_slice(&body);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    let batch = args.batch;
    for _ in 0..args.publishers {
        let frame = frame.clone();
        let batches = per_conn.div_ceil(batch);
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(addr).await?;
            for _ in 0..batches {
                conn.send(&frame).await?;
                conn.expect_ok().await?;
            }
            anyhow::Ok(batches * batch)
        }));
    }
    let mut sent = 0;
    for task in tasks {
        sent += task.await??;
    }
    Ok(sent as f64 / start.elapsed().as_secs_f64())
}

async fn pub_phase(args: &Args, addr: SocketAddr, topic: &str) -> anyhow::Result<f64> {
    let mut frame = format!("PUB {topic}\n").into_bytes();
    frame.extend_from_slice(&(args.size as u32).to_be_bytes());
    frame.extend(std::iter::repeat_n(b'x', args.size));
    let mut conn = Conn::connect(addr).await?;
    let start = Instant::now();
    for _ in 0..args.pub_messages {
        conn.send(&frame).await?;
        conn.expect_ok().await?;
    }
    Ok(args.pub_messages as f64 / start.elapsed().as_secs_f64())
}

async fn sub_phase(args: &Args, addr: SocketAddr, topic: &str) -> anyhow::Result<f64> {
    let total =
        args.publishers * (args.messages / args.publishers).div_ceil(args.batch) * args.batch;
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.consumers {
        let topic = topic.to_string();
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(addr).await?;
            conn.send(format!("SUB {topic} bench\nRDY 2500\n").as_bytes())
                .await?;
            conn.expect_ok().await?;
            let mut fins = Vec::with_capacity(64 * 1024);
            loop {
                if counter.load(std::sync::atomic::Ordering::Relaxed) >= total {
                    return anyhow::Ok(());
                }
                let frame =
                    tokio::time::timeout(Duration::from_millis(500), conn.read_frame()).await;
                let Ok(frame) = frame else { continue };
                let (frame_type, data) = frame?;
                if frame_type == 2 {
                    fins.extend_from_slice(b"FIN ");
                    fins.extend_from_slice(&data[10..26]);
                    fins.push(b'\n');
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                } else if data == b"_heartbeat_" {
                    fins.extend_from_slice(b"NOP\n");
                }
                if !conn.has_buffered_frame() && !fins.is_empty() {
                    conn.send(&fins).await?;
                    fins.clear();
                }
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// A minimal V2 connection: magic sent, buffered reads.
struct Conn {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Conn {
    async fn connect(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        let mut conn = Conn {
            reader: BufReader::with_capacity(256 * 1024, read),
            writer: write,
        };
        conn.send(b"  V2").await?;
        Ok(conn)
    }

    async fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.writer.write_all(bytes).await?;
        Ok(())
    }

    async fn read_frame(&mut self) -> anyhow::Result<(u32, Vec<u8>)> {
        let size = self.reader.read_u32().await? as usize;
        let frame_type = self.reader.read_u32().await?;
        let mut data = vec![0u8; size - 4];
        self.reader.read_exact(&mut data).await?;
        Ok((frame_type, data))
    }

    /// FINs the message whose frame data (timestamp, attempts, id, body) is given.
    async fn finish(&mut self, message: &[u8]) -> anyhow::Result<()> {
        let mut fin = b"FIN ".to_vec();
        fin.extend_from_slice(&message[10..26]);
        fin.push(b'\n');
        self.send(&fin).await
    }

    fn has_buffered_frame(&self) -> bool {
        let buffered = self.reader.buffer();
        buffered.len() >= 4
            && buffered.len() >= 4 + u32::from_be_bytes(buffered[..4].try_into().unwrap()) as usize
    }

    async fn expect_ok(&mut self) -> anyhow::Result<()> {
        loop {
            let (frame_type, data) = self.read_frame().await?;
            match (frame_type, data.as_slice()) {
                (0, b"OK") => return Ok(()),
                (0, b"_heartbeat_") => self.send(b"NOP\n").await?,
                _ => bail!(
                    "unexpected frame {frame_type}: {}",
                    String::from_utf8_lossy(&data)
                ),
            }
        }
    }
}

/// Starts the release wasqd on ephemeral loopback ports and reads its TCP
/// and HTTP addresses from its start-up log.
fn spawn_wasqd(extra: &[&str]) -> anyhow::Result<(Child, SocketAddr, SocketAddr)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let binary = root.join("target/release/wasqd");
    if !binary.exists() {
        bail!(
            "{} not found: run `cargo build --release -p wasq-host` first",
            binary.display()
        );
    }
    let mut child = Command::new(&binary)
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
        .stderr(Stdio::piped())
        .spawn()
        .context("spawn wasqd")?;
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
    Ok((child, tcp.unwrap(), http.unwrap()))
}
