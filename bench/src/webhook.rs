//! `wasq-bench webhook`: a topic delivered to a local HTTP sink, by a
//! webhook plugin in wasqd and by NSQ's own `nsq_to_http` reading a real
//! nsqd, in the same run on the same sink (testkit's, in this process).
//!
//! Each case queues a backlog on a paused channel, then unpauses it and
//! times until the sink has every message; it reports messages/s, the CPU
//! the broker (and `nsq_to_http`) used for them, and their resident
//! memory at the end. Cases: the sink answering at once and after 20 ms
//! at `nsq_to_http`'s default concurrency (`--n 100`, 200 in flight), and
//! the Rust webhook at concurrency 1000 against the 20 ms sink; the
//! JavaScript and Python webhooks at the first two settings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use wasq_testkit::{Answer, HttpSink, PluginDir, Wasqd, guest_dir};

use crate::nsqd::Nsqd;

#[derive(clap::Args, Debug, Clone)]
pub struct WebhookArgs {
    /// messages per case
    #[arg(long, default_value_t = 50_000)]
    pub messages: usize,
    /// body size in bytes
    #[arg(long, default_value_t = 200)]
    pub size: usize,
    /// a real nsqd (built from NSQ v1.3.0) for nsq_to_http to read
    #[arg(long)]
    pub nsqd: Option<PathBuf>,
    /// NSQ v1.3.0's nsq_to_http
    #[arg(long)]
    pub nsq_to_http: Option<PathBuf>,
    /// rounds of every case (the median is reported, and every round)
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// also the JavaScript and Python webhooks (from scripts/build-guests)
    #[arg(long)]
    pub components: bool,
    /// only the cases whose description contains this text
    #[arg(long)]
    pub only: Option<String>,
    /// instead: resident memory per idle and per waiting instance of the
    /// webhook in each language (Rust, JavaScript, Python), with this many
    /// instances of each
    #[arg(long)]
    pub instance_memory: Option<usize>,
}

/// What delivers the topic to the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deliverer {
    /// The webhook example as a plugin, in this language.
    Plugin(&'static str),
    NsqToHttp,
}

#[derive(Debug, Clone, Copy)]
struct Case {
    deliverer: Deliverer,
    sink_delay: Duration,
    /// Requests at once (the plugin's concurrency, nsq_to_http's `--n`).
    concurrency: usize,
    /// Messages in flight (max_in_flight, `--max-in-flight`).
    in_flight: usize,
}

/// One round of one case.
#[derive(Debug, Clone, Copy)]
struct Measured {
    rate: f64,
    cpu_seconds: f64,
    rss_mb: f64,
    /// CPU of this process meanwhile: the sink (and the bench's polling).
    sink_cpu_seconds: f64,
}

pub async fn run(args: WebhookArgs) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || run_blocking(&args)).await?
}

fn run_blocking(args: &WebhookArgs) -> anyhow::Result<()> {
    if let Some(instances) = args.instance_memory {
        return instance_memory(instances);
    }
    let mut cases = Vec::new();
    let mut deliverers = vec![Deliverer::Plugin("rust")];
    if args.nsqd.is_some() && args.nsq_to_http.is_some() {
        deliverers.push(Deliverer::NsqToHttp);
    }
    if args.components {
        deliverers.extend([Deliverer::Plugin("js"), Deliverer::Plugin("python")]);
    }
    for sink_delay in [Duration::ZERO, Duration::from_millis(20)] {
        for &deliverer in &deliverers {
            cases.push(Case {
                deliverer,
                sink_delay,
                concurrency: 100,
                in_flight: 200,
            });
        }
    }
    cases.push(Case {
        deliverer: Deliverer::Plugin("rust"),
        sink_delay: Duration::from_millis(20),
        concurrency: 1000,
        in_flight: 1000,
    });
    if let Some(only) = &args.only {
        cases.retain(|case| describe(case).contains(only.as_str()));
    }
    let mut results: Vec<Vec<Measured>> = vec![Vec::new(); cases.len()];
    for round in 1..=args.rounds {
        for (case, results) in cases.iter().zip(&mut results) {
            let measured = measure(case, args)
                .with_context(|| format!("{} (round {round})", describe(case)))?;
            println!(
                "round {round}: {:<48} {:>9.0} msg/s  cpu {:>6.2} s  rss {:>6.1} MB  (sink cpu {:.2} s)",
                describe(case),
                measured.rate,
                measured.cpu_seconds,
                measured.rss_mb,
                measured.sink_cpu_seconds
            );
            results.push(measured);
        }
    }
    println!();
    println!("| case | msg/s (median) | per round | CPU s | RSS MB | sink CPU s |");
    println!("|---|---|---|---|---|---|");
    for (case, results) in cases.iter().zip(&results) {
        let median = |f: fn(&Measured) -> f64| {
            let mut values: Vec<f64> = results.iter().map(f).collect();
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        let rounds: Vec<String> = results.iter().map(|m| format!("{:.0}", m.rate)).collect();
        println!(
            "| {} | {:.0} | {} | {:.2} | {:.1} | {:.2} |",
            describe(case),
            median(|m| m.rate),
            rounds.join(" / "),
            median(|m| m.cpu_seconds),
            median(|m| m.rss_mb),
            median(|m| m.sink_cpu_seconds)
        );
        println!(
            "BENCH {}",
            serde_json::json!({
                "bench": "webhook",
                "case": describe(case),
                "messages": args.messages,
                "rate_median": median(|m| m.rate),
                "rates": results.iter().map(|m| m.rate).collect::<Vec<_>>(),
                "cpu_seconds": median(|m| m.cpu_seconds),
                "rss_mb": median(|m| m.rss_mb),
            })
        );
    }
    // Ratios per round, against nsq_to_http in the same round.
    for sink_delay in [Duration::ZERO, Duration::from_millis(20)] {
        let of = |deliverer: Deliverer, concurrency: usize| {
            cases.iter().position(|c| {
                c.deliverer == deliverer
                    && c.sink_delay == sink_delay
                    && c.concurrency == concurrency
            })
        };
        let (Some(plugin), Some(baseline)) = (
            of(Deliverer::Plugin("rust"), 100),
            of(Deliverer::NsqToHttp, 100),
        ) else {
            continue;
        };
        let mut ratios: Vec<f64> = results[plugin]
            .iter()
            .zip(&results[baseline])
            .map(|(p, b)| p.rate / b.rate)
            .collect();
        ratios.sort_by(f64::total_cmp);
        println!(
            "Rust webhook / nsq_to_http, sink after {} ms: {:.2}x (median of per-round ratios {:?})",
            sink_delay.as_millis(),
            ratios[ratios.len() / 2],
            ratios
                .iter()
                .map(|r| (r * 100.0).round() / 100.0)
                .collect::<Vec<_>>()
        );
    }
    Ok(())
}

fn describe(case: &Case) -> String {
    let who = match case.deliverer {
        Deliverer::Plugin(language) => format!("{language} webhook"),
        Deliverer::NsqToHttp => "nsq_to_http".to_string(),
    };
    format!(
        "{who}, sink after {} ms, {} at once",
        case.sink_delay.as_millis(),
        case.concurrency
    )
}

fn measure(case: &Case, args: &WebhookArgs) -> anyhow::Result<Measured> {
    let sink = HttpSink::start();
    let delay = case.sink_delay;
    sink.answer_with(move |_| Answer::ok().after(delay));
    let bodies: Vec<Vec<u8>> = (0..args.messages)
        .map(|i| wasq_testkit::memory::body(i, args.size))
        .collect();
    match case.deliverer {
        Deliverer::Plugin(language) => {
            let plugins = PluginDir::default();
            let manifest = format!(
                "topic = \"hooks\"\nconcurrency = {c}\nmax_in_flight = {f}\nhttp_max_concurrent = {c}\n\
                 handler_deadline_ms = 30000\nallowed_outbound_hosts = [{origin:?}]\n[config]\nurl = {url:?}\n",
                c = case.concurrency,
                f = case.in_flight,
                origin = sink.origin(),
                url = sink.url("/hook"),
            );
            if language == "rust" {
                plugins.example("webhook", "hook", &manifest);
            } else {
                anyhow::ensure!(
                    guest_dir(language).join("webhook.wasm").exists(),
                    "no {language} webhook: run scripts/build-guests"
                );
                plugins.guest(language, "webhook", "hook", &manifest);
            }
            let dir = plugins.dir.path().to_str().context("plugins dir")?;
            let wasqd = Wasqd::try_start(&["--plugins-dir", dir])?;
            wasqd
                .http()
                .wait_for_plugins_loaded(Duration::from_secs(600));
            let pids = [wasqd.pid()];
            deliver(wasqd.http, &bodies, &sink, &pids, || Ok(()))
        }
        Deliverer::NsqToHttp => {
            let nsqd = Nsqd::start(args.nsqd.as_deref().context("--nsqd")?, &[])?;
            let mut to_http = None;
            let binary = args.nsq_to_http.clone().context("--nsq-to-http")?;
            let (tcp, url) = (nsqd.tcp, sink.url("/hook"));
            let (n, in_flight) = (case.concurrency, case.in_flight);
            let mut pids = vec![nsqd.pid()];
            let result = deliver(nsqd.http, &bodies, &sink, &pids.clone(), || {
                let child = start_nsq_to_http(&binary, tcp, &url, n, in_flight)?;
                pids.push(child.id());
                to_http = Some(ChildGuard(child));
                Ok(())
            });
            // CPU and memory of nsq_to_http too: measured inside `deliver`
            // only for the pids known before; add its own here.
            result.map(|mut m| {
                if let Some(child) = &to_http {
                    m.cpu_seconds += cpu_seconds(child.0.id()).unwrap_or(0.0);
                    m.rss_mb += rss_mb(child.0.id()).unwrap_or(0.0);
                }
                m
            })
        }
    }
}

/// Queues `bodies` on the paused channel `hooks/hook`, starts the
/// consumer (`start`: nsq_to_http; a plugin is already subscribed),
/// unpauses and waits until the sink got them all.
fn deliver(
    http: SocketAddr,
    bodies: &[Vec<u8>],
    sink: &HttpSink,
    pids: &[u32],
    start: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<Measured> {
    let http_client = wasq_testkit::Http::new(http);
    let channel = "hook";
    for path in [
        "/topic/create?topic=hooks".to_string(),
        format!("/channel/create?topic=hooks&channel={channel}"),
        format!("/channel/pause?topic=hooks&channel={channel}"),
    ] {
        let (status, body) = http_client.post(&path, b"");
        anyhow::ensure!(status == 200, "{path}: {status} {body}");
    }
    queue(&http_client, bodies)?;
    start()?;
    let cpu_before: f64 = pids.iter().map(|&p| cpu_seconds(p).unwrap_or(0.0)).sum();
    let sink_before = cpu_seconds(std::process::id()).unwrap_or(0.0);
    let started = Instant::now();
    let (status, body) = http_client.post(
        &format!("/channel/unpause?topic=hooks&channel={channel}"),
        b"",
    );
    anyhow::ensure!(status == 200, "unpause: {status} {body}");
    let expected = bodies.len() as u64;
    let deadline = started + Duration::from_secs(600);
    while sink.count() < expected {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {expected} delivered",
            sink.count()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let took = started.elapsed();
    let cpu_after: f64 = pids.iter().map(|&p| cpu_seconds(p).unwrap_or(0.0)).sum();
    let sink_cpu_seconds = cpu_seconds(std::process::id()).unwrap_or(0.0) - sink_before;
    Ok(Measured {
        rate: expected as f64 / took.as_secs_f64(),
        sink_cpu_seconds,
        cpu_seconds: cpu_after - cpu_before,
        rss_mb: pids.iter().map(|&p| rss_mb(p).unwrap_or(0.0)).sum(),
    })
}

fn start_nsq_to_http(
    binary: &Path,
    tcp: SocketAddr,
    url: &str,
    n: usize,
    in_flight: usize,
) -> anyhow::Result<Child> {
    Command::new(binary)
        .args([
            "--topic=hooks",
            "--channel=hook",
            &format!("--nsqd-tcp-address={tcp}"),
            &format!("--post={url}"),
            &format!("--n={n}"),
            &format!("--max-in-flight={in_flight}"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))
}

/// Kills the child when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// User and system CPU time of a process so far, from /proc/PID/stat.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), from field 3.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn rss_mb(pid: u32) -> Option<f64> {
    wasq_testkit::memory::resident_bytes(pid)
        .ok()
        .map(|b| b as f64 / 1e6)
}

/// Resident memory per instance, idle (after handling a message) and
/// waiting (suspended in a request the sink does not answer), over wasqd
/// with the plugin loaded and no instance yet.
fn instance_memory(instances: usize) -> anyhow::Result<()> {
    println!(
        "| webhook in | instances | wasqd before | per idle instance | per waiting instance |"
    );
    println!("|---|---|---|---|---|");
    for language in ["rust", "js", "python"] {
        let sink = HttpSink::start();
        let hang = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let hanging = hang.clone();
        sink.answer_with(move |_| {
            if hanging.load(std::sync::atomic::Ordering::SeqCst) {
                Answer::hang()
            } else {
                Answer::ok()
            }
        });
        let plugins = PluginDir::default();
        let manifest = format!(
            "topic = \"hooks\"\nconcurrency = {n}\nmax_in_flight = {n}\nhttp_max_concurrent = {n}\n\
             handler_deadline_ms = 600000\nallowed_outbound_hosts = [{origin:?}]\n[config]\nurl = {url:?}\n",
            n = instances,
            origin = sink.origin(),
            url = sink.url("/hook"),
        );
        if language == "rust" {
            plugins.example("webhook", "hook", &manifest);
        } else {
            plugins.guest(language, "webhook", "hook", &manifest);
        }
        let dir = plugins.dir.path().to_str().context("plugins dir")?;
        let wasqd = Wasqd::try_start(&["--plugins-dir", dir])?;
        let http = wasqd.http();
        http.wait_for_plugins_loaded(Duration::from_secs(600));
        let before = rss_mb(wasqd.pid()).context("rss")?;
        let bodies: Vec<Vec<u8>> = (0..instances)
            .map(|i| wasq_testkit::memory::body(i, 200))
            .collect();
        // Every instance handles one message: the backlog is there when
        // the channel opens, so each worker takes one.
        deliver(wasqd.http, &bodies, &sink, &[], || Ok(()))?;
        let live =
            |http: &wasq_testkit::Http| http.plugin("hook")["instances"].as_u64().unwrap_or(0);
        let idle = rss_mb(wasqd.pid()).context("rss")?;
        let idle_instances = live(&http);
        hang.store(true, std::sync::atomic::Ordering::SeqCst);
        let (status, _) = http.post("/channel/pause?topic=hooks&channel=hook", b"");
        anyhow::ensure!(status == 200);
        let more = bodies.len() as u64 * 2;
        let waiting = {
            let sent = deliver_without_waiting(wasqd.http, &bodies);
            sent?;
            let deadline = Instant::now() + Duration::from_secs(600);
            while sink.count() < more {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "only {} requests waiting",
                    sink.count() - more / 2
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            std::thread::sleep(Duration::from_millis(500));
            rss_mb(wasqd.pid()).context("rss")?
        };
        let per = |mb: f64| (mb - before) * 1000.0 / idle_instances.max(1) as f64;
        println!(
            "| {language} | {idle_instances} | {before:.1} MB | {:.0} KB | {:.0} KB |",
            per(idle),
            per(waiting)
        );
    }
    Ok(())
}

/// Publishes `bodies` to `hooks` and unpauses its channel, without waiting.
fn deliver_without_waiting(http: SocketAddr, bodies: &[Vec<u8>]) -> anyhow::Result<()> {
    let client = wasq_testkit::Http::new(http);
    queue(&client, bodies)?;
    let (status, _) = client.post("/channel/unpause?topic=hooks&channel=hook", b"");
    anyhow::ensure!(status == 200);
    Ok(())
}

/// Publishes `bodies` to `hooks`, a thousand per /mpub.
fn queue(client: &wasq_testkit::Http, bodies: &[Vec<u8>]) -> anyhow::Result<()> {
    for chunk in bodies.chunks(1000) {
        let (status, body) = client.mpub_binary("hooks", chunk);
        anyhow::ensure!(status == 200, "/mpub: {status} {body}");
    }
    Ok(())
}
