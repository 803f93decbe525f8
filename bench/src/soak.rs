//! `wasq-bench soak`: long mixed load on one wasqd, its resident memory
//! sampled throughout and every acknowledged message accounted for.
//!
//! The broker runs two example plugins: `uppercase` (words → words.upper),
//! whose module is swapped for `prefixed` and back every `--reload-secs`,
//! and `flaky` (jobs → jobs.done; a body with "fail" in it is retried, then
//! dead-lettered to jobs.dead). The load:
//! - a TCP publisher (pipelined PUBs) and an HTTP publisher (text /mpub)
//!   share `--rate` messages a second between `words` and `jobs`; one job
//!   in [`FAIL_EVERY`] asks to fail;
//! - an external consumer shares the plugin's channel `words/upper`;
//! - a slow consumer on `words/slow` takes a tenth of what arrives there,
//!   so that channel backs up to disk (`--mem-queue-size 1000`) and is read
//!   back from there all the time;
//! - checkers read words.upper and jobs.done; jobs.dead has no channel
//!   until the load ends, so its dead letters wait in the topic (in
//!   memory up to 1000, then on disk), as they would for an operator who
//!   looks at them later.
//!
//! After `--minutes` the publishers stop, the slow consumer speeds up and
//! the run waits until every acknowledged message reached every place it
//! must: each `words` message `words/slow`, and the external consumer or
//! words.upper; each job jobs.done, or jobs.dead if it asked to fail.
//! It exits non-zero on any loss, or if the resident set at the end of the
//! load is more than `--max-growth` percent above its value at the end of
//! the warm-up (each the median of three samples).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::task::JoinHandle;
use wasq_testkit::async_client::AsyncClient;
use wasq_testkit::memory::{body, resident_bytes};
use wasq_testkit::{FrameType, Wasqd};
use wasq_wire::command;

/// One job in this many asks to fail (and is dead-lettered).
const FAIL_EVERY: u64 = 5000;
/// Publishers send a batch every tick.
const TICK: Duration = Duration::from_millis(10);
/// The marker in a failing job's body.
const FAIL: &str = " fail ";

#[derive(clap::Args, Debug, Clone)]
pub struct SoakArgs {
    /// how long the load runs
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// messages published per second, all publishers together
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// body size in bytes
    #[arg(long, default_value_t = 200)]
    size: usize,
    /// seconds between two hot reloads of the uppercase plugin
    #[arg(long, default_value_t = 30)]
    reload_secs: u64,
    /// seconds between two samples of the broker's resident memory
    #[arg(long, default_value_t = 5)]
    sample_secs: u64,
    /// seconds of warm-up before the baseline is taken [default: a quarter of the run, at most 300]
    #[arg(long)]
    warmup_secs: Option<u64>,
    /// largest growth allowed after warm-up, in percent
    #[arg(long, default_value_t = 10.0)]
    max_growth: f64,
}

/// Which sequence numbers of one stream were marked, as a bitset.
#[derive(Default)]
struct Ledger {
    bits: Mutex<Vec<u64>>,
    unique: AtomicU64,
    repeats: AtomicU64,
}

impl Ledger {
    fn mark(&self, seq: u64) {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        let mut bits = self.bits.lock().expect("ledger lock");
        if bits.len() <= word {
            bits.resize(word + 1, 0);
        }
        if bits[word] & (1 << bit) == 0 {
            bits[word] |= 1 << bit;
            self.unique.fetch_add(1, Ordering::Relaxed);
        } else {
            self.repeats.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A copy of the bitset, to check many numbers against.
    fn snapshot(&self) -> Vec<u64> {
        self.bits.lock().expect("ledger lock").clone()
    }

    fn count(&self) -> u64 {
        self.unique.load(Ordering::Relaxed)
    }

    /// Every marked sequence number, ascending.
    fn marked(&self) -> impl Iterator<Item = u64> {
        let bits = self.snapshot();
        (0..bits.len() as u64 * 64).filter(move |&seq| has(&bits, seq))
    }
}

fn has(bits: &[u64], seq: u64) -> bool {
    bits.get((seq / 64) as usize)
        .is_some_and(|w| w & (1 << (seq % 64)) != 0)
}

/// Everything the run counts.
#[derive(Default)]
struct Books {
    words_next: AtomicU64,
    jobs_next: AtomicU64,
    words_acked: Ledger,
    jobs_acked: Ledger,
    /// `words` messages seen by the external consumer or in words.upper.
    words_upper: Ledger,
    words_slow: Ledger,
    jobs_done: Ledger,
    jobs_dead: Ledger,
}

impl Books {
    /// A new body for `topic`, with its sequence number.
    fn next(&self, topic: Topic, size: usize) -> (u64, Vec<u8>) {
        let seq = match topic {
            Topic::Words => self.words_next.fetch_add(1, Ordering::Relaxed),
            Topic::Jobs => self.jobs_next.fetch_add(1, Ordering::Relaxed),
        };
        let mut message = body(seq as usize, size);
        if topic == Topic::Jobs && seq % FAIL_EVERY == 0 {
            message[10..10 + FAIL.len()].copy_from_slice(FAIL.as_bytes());
        }
        (seq, message)
    }

    fn acked(&self, topic: Topic, seq: u64) {
        match topic {
            Topic::Words => self.words_acked.mark(seq),
            Topic::Jobs => self.jobs_acked.mark(seq),
        }
    }

    fn delivered(&self) -> u64 {
        [
            &self.words_upper,
            &self.words_slow,
            &self.jobs_done,
            &self.jobs_dead,
        ]
        .iter()
        .map(|l| l.count())
        .sum()
    }

    /// Acknowledged messages that have not yet reached every place they
    /// must: how many, and the first few.
    fn missing(&self) -> (usize, Vec<String>) {
        let mut count = 0;
        let mut examples = Vec::new();
        let mut note = |what: String| {
            count += 1;
            if examples.len() < 5 {
                examples.push(what);
            }
        };
        let (upper, slow) = (self.words_upper.snapshot(), self.words_slow.snapshot());
        for seq in self.words_acked.marked() {
            if !has(&upper, seq) {
                note(format!(
                    "words {seq}: neither in words/upper nor in words.upper"
                ));
            }
            if !has(&slow, seq) {
                note(format!("words {seq}: not in words/slow"));
            }
        }
        let (done, dead) = (self.jobs_done.snapshot(), self.jobs_dead.snapshot());
        for seq in self.jobs_acked.marked() {
            let (bits, place) = if seq % FAIL_EVERY == 0 {
                (&dead, "jobs.dead")
            } else {
                (&done, "jobs.done")
            };
            if !has(bits, seq) {
                note(format!("jobs {seq}: not in {place}"));
            }
        }
        (count, examples)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Topic {
    Words,
    Jobs,
}

impl Topic {
    fn name(self) -> &'static str {
        match self {
            Topic::Words => "words",
            Topic::Jobs => "jobs",
        }
    }
}

/// The sequence number at the start of a body (after `v2:` if the
/// `prefixed` version of the plugin wrote it).
fn sequence(body: &[u8]) -> Option<u64> {
    let body = body.strip_prefix(b"v2:").unwrap_or(body);
    std::str::from_utf8(body.get(..10)?).ok()?.parse().ok()
}

/// A resident-memory sample.
struct Sample {
    at: Duration,
    rss: u64,
}

pub async fn run(args: SoakArgs) -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let (broker, versions) = start_broker(work.path())?;
    let pid = broker.pid();
    let (tcp, http) = (broker.tcp, broker.http);
    let load = Duration::from_secs_f64(args.minutes * 60.0);
    let warmup = args
        .warmup_secs
        .map(Duration::from_secs)
        .unwrap_or_else(|| (load / 4).min(Duration::from_secs(300)));
    println!(
        "soak: {:.1} min at {} msg/s ({} B), uppercase reloaded every {} s, warm-up {} s, wasqd pid {pid} ({})",
        args.minutes,
        args.rate,
        args.size,
        args.reload_secs,
        warmup.as_secs(),
        Wasqd::binary().display()
    );

    let books = Arc::new(Books::default());
    let publishing = Arc::new(AtomicBool::new(true));
    let slow = Arc::new(AtomicBool::new(true));
    // A tenth of what `words` gets (half the rate), one message at a time.
    let slow_pause = Duration::from_secs_f64(20.0 / args.rate.max(1) as f64);
    let mut consumers: Vec<(String, JoinHandle<anyhow::Result<()>>)> = Vec::new();
    // Each consumer has subscribed (its channel exists) once this returns.
    let consumer = async |topic: &'static str,
                          channel: &'static str,
                          ledger: fn(&Books) -> &Ledger,
                          rdy: u64,
                          pace: Option<(Arc<AtomicBool>, Duration)>|
           -> anyhow::Result<(String, JoinHandle<anyhow::Result<()>>)> {
        let client = subscribe(tcp, topic, channel, rdy).await?;
        let books = books.clone();
        let task = tokio::spawn(consume(client, topic, channel, pace, move |seq| {
            ledger(&books).mark(seq)
        }));
        Ok((format!("{topic}/{channel}"), task))
    };
    consumers.push(consumer("words", "upper", |b| &b.words_upper, 100, None).await?);
    consumers.push(consumer("words.upper", "check", |b| &b.words_upper, 200, None).await?);
    let pace = Some((slow.clone(), slow_pause));
    consumers.push(consumer("words", "slow", |b| &b.words_slow, 1, pace).await?);
    consumers.push(consumer("jobs.done", "check", |b| &b.jobs_done, 200, None).await?);

    let share = (args.rate / 2).max(1);
    let tcp_publisher = tokio::spawn(publish_tcp(
        tcp,
        books.clone(),
        publishing.clone(),
        share,
        args.size,
    ));
    let http_publisher = {
        let (books, publishing, size) = (books.clone(), publishing.clone(), args.size);
        tokio::task::spawn_blocking(move || publish_http(http, &books, &publishing, share, size))
    };
    let swaps = Arc::new(AtomicU64::new(0));
    let reloader = tokio::spawn(reload_every(
        work.path().join("plugins/uppercase.wasm"),
        versions,
        Duration::from_secs(args.reload_secs),
        swaps.clone(),
    ));

    let start = Instant::now();
    let mut samples = Vec::new();
    let mut next_sample = start;
    while start.elapsed() < load {
        tokio::time::sleep_until(next_sample.into()).await;
        next_sample += Duration::from_secs(args.sample_secs.max(1));
        let rss = resident_bytes(pid)?;
        let at = start.elapsed();
        println!(
            "t={:>5.0}s  rss {:>6.1} MB  published {:>9}  delivered {:>9}  slow channel behind {:>8}",
            at.as_secs_f64(),
            rss as f64 / 1e6,
            books.words_acked.count() + books.jobs_acked.count(),
            books.delivered(),
            books
                .words_acked
                .count()
                .saturating_sub(books.words_slow.count()),
        );
        samples.push(Sample { at, rss });
        for (name, task) in &consumers {
            if task.is_finished() {
                bail!("the consumer of {name} stopped");
            }
        }
        if tcp_publisher.is_finished() || http_publisher.is_finished() {
            break;
        }
    }
    publishing.store(false, Ordering::Relaxed);
    let tcp_result = tcp_publisher.await?;
    let http_result = http_publisher.await?;
    reloader.abort();
    tcp_result.context("TCP publisher")?;
    http_result.context("HTTP publisher")?;

    // Drain: everything acknowledged must arrive where it belongs. The
    // dead letters waited in their topic all along, as they would for an
    // operator who looks at them later.
    slow.store(false, Ordering::Relaxed);
    consumers.push(consumer("jobs.dead", "check", |b| &b.jobs_dead, 200, None).await?);
    let drain_start = Instant::now();
    let drain_limit = Duration::from_secs(120) + load;
    let mut missing = books.missing();
    while missing.0 > 0 && drain_start.elapsed() < drain_limit {
        tokio::time::sleep(Duration::from_secs(1)).await;
        missing = books.missing();
    }
    for (_, task) in &consumers {
        task.abort();
    }
    let plugin = plugin_state(http);
    drop(broker);

    let published = books.words_acked.count() + books.jobs_acked.count();
    let repeats: u64 = [
        &books.words_upper,
        &books.words_slow,
        &books.jobs_done,
        &books.jobs_dead,
    ]
    .iter()
    .map(|l| l.repeats.load(Ordering::Relaxed))
    .sum();
    println!(
        "\npublished {published} (words {}, jobs {}); delivered {} (words/upper or words.upper {}, words/slow {}, jobs.done {}, jobs.dead {}), {repeats} delivered again; drained in {:.1} s; uppercase swapped {} times, at the end {plugin}",
        books.words_acked.count(),
        books.jobs_acked.count(),
        books.delivered(),
        books.words_upper.count(),
        books.words_slow.count(),
        books.jobs_done.count(),
        books.jobs_dead.count(),
        drain_start.elapsed().as_secs_f64(),
        swaps.load(Ordering::Relaxed),
    );
    let verdict = memory_verdict(&samples, warmup, args.max_growth);
    if missing.0 > 0 {
        bail!(
            "{} deliveries of acknowledged messages missing, for example: {}",
            missing.0,
            missing.1.join("; ")
        );
    }
    println!("lost: 0");
    verdict
}

/// Starts wasqd with `uppercase` and `flaky` in a plugins directory under
/// `work`, its data there too, and `--mem-queue-size 1000` so that a
/// backed-up channel reaches its disk queue at once. Returns the broker and
/// the two versions of the uppercase module (uppercase, prefixed).
fn start_broker(work: &Path) -> anyhow::Result<(Wasqd, [Vec<u8>; 2])> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let release = root.join("examples/target/wasm32-wasip1/release");
    let module = |name: &str| -> anyhow::Result<Vec<u8>> {
        let path = release.join(format!("{name}.wasm"));
        std::fs::read(&path)
            .with_context(|| format!("{}: run scripts/build-plugins first", path.display()))
    };
    let versions = [module("uppercase")?, module("prefixed")?];
    let plugins = work.join("plugins");
    std::fs::create_dir(&plugins)?;
    std::fs::write(plugins.join("uppercase.wasm"), &versions[0])?;
    std::fs::write(
        plugins.join("uppercase.toml"),
        "topic = \"words\"\nchannel = \"upper\"\nconcurrency = 2\npublish = [\"words.upper\"]\n",
    )?;
    std::fs::write(plugins.join("flaky.wasm"), module("flaky")?)?;
    std::fs::write(
        plugins.join("flaky.toml"),
        "topic = \"jobs\"\nchannel = \"flaky\"\nconcurrency = 2\nmax_attempts = 3\ndead_letter_topic = \"jobs.dead\"\n\
         backoff_min_ms = 10\nbackoff_max_ms = 200\npublish = [\"jobs.done\"]\n",
    )?;
    let data = work.join("data");
    std::fs::create_dir(&data)?;
    let broker = Wasqd::try_start(&[
        "--no-embedded-lookupd",
        "--plugins-dir",
        plugins.to_str().context("path")?,
        "--data-path",
        data.to_str().context("path")?,
        "--mem-queue-size",
        "1000",
    ])?;
    broker
        .http()
        .wait_for_plugins_loaded(wasq_testkit::PLUGINS_LOADED_TIMEOUT);
    Ok((broker, versions))
}

/// Compares the resident set at the end of the load with its value at the
/// end of the warm-up (medians of three samples each).
fn memory_verdict(samples: &[Sample], warmup: Duration, max_growth: f64) -> anyhow::Result<()> {
    let after: Vec<u64> = samples
        .iter()
        .filter(|s| s.at >= warmup)
        .map(|s| s.rss)
        .collect();
    if after.len() < 6 {
        bail!(
            "only {} samples after the {} s warm-up: run longer or sample more often",
            after.len(),
            warmup.as_secs()
        );
    }
    let median = |three: &[u64]| {
        let mut three = three.to_vec();
        three.sort_unstable();
        three[1]
    };
    let baseline = median(&after[..3]);
    let end = median(&after[after.len() - 3..]);
    let peak = after.iter().copied().max().unwrap_or(0);
    let growth = (end as f64 / baseline as f64 - 1.0) * 100.0;
    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "resident after warm-up {:.1} MB, at the end {:.1} MB ({growth:+.1}%, allowed +{max_growth:.0}%), peak {:.1} MB",
        mb(baseline),
        mb(end),
        mb(peak)
    );
    if growth > max_growth {
        bail!("resident memory grew {growth:.1}% after warm-up (allowed {max_growth:.0}%)");
    }
    Ok(())
}

/// Publishes `per_second` messages over one TCP connection, alternating
/// `words` and `jobs`, as pipelined PUBs: a tick's batch, then its OKs.
async fn publish_tcp(
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
fn publish_http(
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
async fn subscribe(
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
async fn consume(
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
async fn reload_every(
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

/// The uppercase plugin's state and its last reload, from /plugins.
fn plugin_state(http: SocketAddr) -> String {
    let status: serde_json::Value = ureq::get(&format!("http://{http}/plugins"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .and_then(|body| serde_json::from_str(&body).ok())
        .unwrap_or_default();
    let Some(plugin) = status["plugins"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["name"] == "uppercase"))
    else {
        return "not listed in /plugins".into();
    };
    format!(
        "{} (last reload: {})",
        plugin["state"],
        plugin["history"]
            .as_array()
            .and_then(|h| h.last())
            .map_or("none".to_string(), |r| r.to_string())
    )
}
