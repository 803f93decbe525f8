//! The broker workload, in the shape of nsq's `bench_writer` and
//! `bench_reader`: MPUB from several connections, single PUBs (one round
//! trip each) and SUB+FIN of a backlog, all over real sockets.

use std::net::SocketAddr;
use std::time::Instant;

use wasq_testkit::async_client::AsyncClient;
use wasq_wire::{FrameType, command};

#[derive(clap::Args, Debug, Clone)]
pub struct Workload {
    /// messages per phase
    #[arg(long, default_value_t = 500_000)]
    pub messages: usize,
    /// message body size in bytes
    #[arg(long, default_value_t = 200)]
    pub size: usize,
    /// messages per MPUB
    #[arg(long, default_value_t = 200)]
    pub batch: usize,
    /// publishing connections for mpub
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// consuming connections for sub
    #[arg(long, default_value_t = 4)]
    pub consumers: usize,
    /// messages for the one-at-a-time pub phase
    #[arg(long, default_value_t = 20_000)]
    pub pub_messages: usize,
    /// connections sharing the pub phase
    #[arg(long, default_value_t = 1)]
    pub pub_connections: usize,
    /// PUBs each pub connection keeps outstanding (1: wait for every OK
    /// before the next; more: pipelined, as go-nsq's PublishAsync does)
    #[arg(long, default_value_t = 1)]
    pub pub_window: usize,
}

/// Messages per second of each phase.
#[derive(Debug, Clone, Copy)]
pub struct Results {
    pub mpub: f64,
    pub publish: f64,
    pub sub: f64,
}

impl Workload {
    pub fn describe(&self) -> String {
        format!(
            "{} messages of {} B; MPUB batches of {} on {} connections; {} consumers; {} single PUBs on {} connection(s), {} outstanding each",
            self.messages,
            self.size,
            self.batch,
            self.publishers,
            self.consumers,
            self.pub_messages,
            self.pub_connections,
            self.pub_window
        )
    }
}

pub async fn run_all(args: &Workload, addr: SocketAddr, label: &str) -> anyhow::Result<Results> {
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

    let publish = pub_phase(args, addr, &pub_topic, PubWrites::PerRead).await?;
    println!(
        "{label}: pub  {:>10.0} msg/s  ({} connections, {} outstanding each)",
        publish, args.pub_connections, args.pub_window
    );

    prepare_backlog(args, addr, &sub_topic).await?;
    let sub = sub_phase(args, addr, &sub_topic).await?;
    println!("{label}: sub  {:>10.0} msg/s", sub);
    Ok(Results { mpub, publish, sub })
}

/// Publishes the SUB phase's backlog into the channel `bench` of `topic`
/// (created first, so it gets every message).
pub async fn prepare_backlog(args: &Workload, addr: SocketAddr, topic: &str) -> anyhow::Result<()> {
    let mut setup = AsyncClient::connect(addr).await?;
    setup
        .send(&command::encode(|out| command::sub(out, topic, "bench")))
        .await?;
    setup.expect_ok().await?;
    drop(setup);
    mpub_phase(args, addr, topic).await?;
    Ok(())
}

pub async fn mpub_phase(args: &Workload, addr: SocketAddr, topic: &str) -> anyhow::Result<f64> {
    let per_conn = args.messages / args.publishers;
    let bodies = vec![vec![b'x'; args.size]; args.batch];
    let frame = command::encode(|out| command::mpub(out, topic, &bodies));
    let start = Instant::now();
    let mut tasks = Vec::new();
    let batch = args.batch;
    for _ in 0..args.publishers {
        let frame = frame.clone();
        let batches = per_conn.div_ceil(batch);
        tasks.push(tokio::spawn(async move {
            let mut conn = AsyncClient::connect(addr).await?;
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

/// How a pipelining publisher writes the PUBs that refill its window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PubWrites {
    /// Every OK that one read brought in frees a slot; the PUBs that fill
    /// them go out in one write, as the consume phase's FINs do.
    PerRead,
    /// A write per PUB, as go-nsq's PublishAsync flushes each command. On
    /// a machine whose cores the client shares with the server, the
    /// client's own system calls then bound every server's figure.
    PerPub,
}

pub async fn pub_phase(
    args: &Workload,
    addr: SocketAddr,
    topic: &str,
    writes: PubWrites,
) -> anyhow::Result<f64> {
    let frame = command::encode(|out| command::publish(out, topic, &vec![b'x'; args.size]));
    let per_conn = args.pub_messages.div_ceil(args.pub_connections);
    let window = args.pub_window.max(1);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.pub_connections {
        let frame = frame.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = AsyncClient::connect(addr).await?;
            let refills = frame.repeat(window);
            let mut sent = window.min(per_conn);
            conn.send(&refills[..sent * frame.len()]).await?;
            let mut answered = 0;
            while answered < per_conn {
                let mut freed = 0;
                loop {
                    conn.expect_ok().await?;
                    freed += 1;
                    if writes == PubWrites::PerPub || !conn.has_buffered_frame() {
                        break;
                    }
                }
                answered += freed;
                let refill = freed.min(per_conn - sent);
                if refill > 0 {
                    conn.send(&refills[..refill * frame.len()]).await?;
                    sent += refill;
                }
            }
            anyhow::Ok(per_conn)
        }));
    }
    let mut sent = 0;
    for task in tasks {
        sent += task.await??;
    }
    Ok(sent as f64 / start.elapsed().as_secs_f64())
}

pub async fn sub_phase(args: &Workload, addr: SocketAddr, topic: &str) -> anyhow::Result<f64> {
    let total =
        args.publishers * (args.messages / args.publishers).div_ceil(args.batch) * args.batch;
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // Set once the last message arrived, so idle consumers stop at once
    // instead of polling (which would add their poll interval to the phase).
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let done_tx = std::sync::Arc::new(done_tx);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.consumers {
        let topic = topic.to_string();
        let counter = counter.clone();
        let (done_tx, mut done) = (done_tx.clone(), done_rx.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = AsyncClient::connect(addr).await?;
            let mut subscribe = command::encode(|out| command::sub(out, &topic, "bench"));
            command::rdy(&mut subscribe, 2500);
            conn.send(&subscribe).await?;
            conn.expect_ok().await?;
            let mut fins = Vec::with_capacity(64 * 1024);
            loop {
                if *done.borrow() {
                    return anyhow::Ok(());
                }
                let frame = tokio::select! {
                    frame = conn.read_frame() => frame?,
                    _ = done.changed() => return anyhow::Ok(()),
                };
                let mut last = false;
                if frame.frame_type == FrameType::Message {
                    command::fin(&mut fins, &frame.message()?.id.0);
                    let received = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    last = received >= total;
                } else if frame.is_heartbeat() {
                    command::nop(&mut fins);
                }
                if (last || !conn.has_buffered_frame()) && !fins.is_empty() {
                    conn.send(&fins).await?;
                    fins.clear();
                }
                if last {
                    done_tx.send_replace(true);
                    return anyhow::Ok(());
                }
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}
