//! `wasq-bench soak`: long mixed load on one wasqd, its resident memory
//! sampled throughout and every acknowledged message accounted for.
//!
//! The broker runs two example plugins: `uppercase` (words → words.upper),
//! whose module is swapped for `prefixed` and back every `--reload-secs`,
//! and `flaky` (jobs → jobs.done; a body with "fail" in it is retried, then
//! dead-lettered to jobs.dead). The load:
//! - a TCP publisher (pipelined PUBs) and an HTTP publisher (text /mpub)
//!   share `--rate` messages a second between `words` and `jobs`; one job
//!   in [`books::FAIL_EVERY`] asks to fail;
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

mod books;
mod load;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::task::JoinHandle;
use wasq_testkit::Wasqd;
use wasq_testkit::memory::resident_bytes;

use books::{Books, Ledger};
use load::{consume, publish_http, publish_tcp, reload_every, subscribe};

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
    .map(|l| l.repeats())
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
