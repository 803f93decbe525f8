//! The soak's load: publishers over TCP and HTTP, the consumers, and the
//! plugin's periodic reload.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use wasq_testkit::FrameType;
use wasq_testkit::async_client::AsyncClient;
use wasq_wire::command;

use super::books::{Books, Topic, sequence};

/// Publishers send a batch every tick.
const TICK: Duration = Duration::from_millis(10);
/// Publishes `per_second` messages over one TCP connection, alternating
/// `words` and `jobs`, as pipelined PUBs: a tick's batch, then its OKs.
pub(super) async fn publish_tcp(
    tcp: SocketAddr,
    books: Arc<Books>,
    publishing: Arc<AtomicBool>,
    per_second: u64,
    size: usize,
) -> anyhow::Result<()> {
    let mut client = AsyncClient::connect(tcp).await?;
    let mut tick = tokio::time::interval(TICK);
    let per_tick = per_tick(per_second);
    while publishing.load(Ordering::Relaxed) {
        tick.tick().await;
        let mut frames = Vec::new();
        let mut sent = Vec::new();
        for i in 0..per_tick {
            let topic = if i % 2 == 0 {
                Topic::Words
            } else {
                Topic::Jobs
            };
            let (seq, body) = books.next(topic, size);
            command::publish(&mut frames, topic.name(), &body);
            sent.push((topic, seq));
        }
        client.send(&frames).await?;
        for (topic, seq) in sent {
            client.expect_ok().await?;
            books.acked(topic, seq);
        }
    }
    Ok(())
}

/// Publishes `per_second` messages over HTTP: each tick one text /mpub to
/// `words` and one to `jobs`, on one keep-alive connection.
pub(super) fn publish_http(
    http: SocketAddr,
    books: &Books,
    publishing: &AtomicBool,
    per_second: u64,
    size: usize,
) -> anyhow::Result<()> {
    let agent = ureq::Agent::new_with_defaults();
    let per_tick = per_tick(per_second);
    let mut next = Instant::now();
    while publishing.load(Ordering::Relaxed) {
        next += TICK;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        for topic in [Topic::Words, Topic::Jobs] {
            let batch: Vec<(u64, Vec<u8>)> = (0..per_tick.div_ceil(2))
                .map(|_| books.next(topic, size))
                .collect();
            let lines: Vec<&[u8]> = batch.iter().map(|(_, b)| b.as_slice()).collect();
            agent
                .post(&format!("http://{http}/mpub?topic={}", topic.name()))
                .send(lines.join(&b'\n'))
                .with_context(|| format!("/mpub to {}", topic.name()))?;
            for (seq, _) in batch {
                books.acked(topic, seq);
            }
        }
    }
    Ok(())
}

fn per_tick(per_second: u64) -> u64 {
    (per_second * TICK.as_millis() as u64 / 1000).max(1)
}

/// Subscribes to `topic/channel` with RDY `rdy`.
pub(super) async fn subscribe(
    tcp: SocketAddr,
    topic: &str,
    channel: &str,
    rdy: u64,
) -> anyhow::Result<AsyncClient> {
    let mut client = AsyncClient::connect(tcp).await?;
    client
        .send(&command::encode(|out| command::sub(out, topic, channel)))
        .await?;
    client.expect_ok().await?;
    client
        .send(&command::encode(|out| command::rdy(out, rdy)))
        .await?;
    Ok(client)
}

/// Consumes what a subscribed client receives, FINing every message and
/// reporting its sequence number; while `pace` says slow, one message at a
/// time (the client's RDY is 1) with a pause after each.
pub(super) async fn consume(
    mut client: AsyncClient,
    topic: &'static str,
    channel: &'static str,
    pace: Option<(Arc<AtomicBool>, Duration)>,
    seen: impl Fn(u64),
) -> anyhow::Result<()> {
    let mut fast = pace.is_none();
    let mut finishes = Vec::new();
    loop {
        let frame = client.read_frame().await?;
        match frame.frame_type {
            FrameType::Message => {
                let message = frame.message()?;
                let seq = sequence(&message.body).with_context(|| {
                    format!("{topic}/{channel}: a body without a sequence number")
                })?;
                seen(seq);
                command::fin(&mut finishes, &message.id.0);
            }
            FrameType::Response if frame.is_heartbeat() => command::nop(&mut finishes),
            FrameType::Response => {}
            FrameType::Error => bail!("{topic}/{channel}: {}", frame.text()),
        }
        if let Some((slow, pause)) = &pace
            && !fast
        {
            client.send(&finishes).await?;
            finishes.clear();
            if slow.load(Ordering::Relaxed) {
                tokio::time::sleep(*pause).await;
            } else {
                fast = true;
                client
                    .send(&command::encode(|out| command::rdy(out, 200)))
                    .await?;
            }
        }
        if !client.has_buffered_frame() && !finishes.is_empty() {
            client.send(&finishes).await?;
            finishes.clear();
        }
    }
}

/// Swaps the module file between the two versions every `every`.
pub(super) async fn reload_every(
    file: std::path::PathBuf,
    versions: [Vec<u8>; 2],
    every: Duration,
    swaps: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let mut next = 1;
    loop {
        tokio::time::sleep(every).await;
        tokio::fs::write(&file, &versions[next]).await?;
        swaps.fetch_add(1, Ordering::Relaxed);
        next = 1 - next;
    }
}
