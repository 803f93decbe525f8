//! `wasq-bench guests`: what one call of the trivial handler (FIN, nothing
//! else) costs in each kind of guest, in one wasqd in the same run: a core
//! module (Rust, ABI v1), a Rust component (the WIT world), a JavaScript
//! component (componentize-js) and a Python component (componentize-py).
//!
//! Each plugin has one instance (concurrency 1) and drains a backlog of its
//! own paused channel; the time from unpausing to its last FIN, divided by
//! the messages, is the per-message cost, broker included. Rounds alternate
//! the order, and the median is reported, since this machine is noisy.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::plugin::{post, publish_backlog};
use crate::spawn_wasqd;

pub struct GuestsArgs {
    pub messages: usize,
    pub size: usize,
    pub rounds: usize,
}

/// (plugin name, where scripts/build-plugins or build-guests leaves it)
const GUESTS: [(&str, &str); 4] = [
    (
        "core_module",
        "examples/target/wasm32-wasip1/release/trivial.wasm",
    ),
    (
        "rust_component",
        "examples/target/guests/rust-component/trivial.wasm",
    ),
    ("javascript", "examples/target/guests/js/trivial.wasm"),
    ("python", "examples/target/guests/python/trivial.wasm"),
];

pub async fn run(args: GuestsArgs) -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let plugins = tempfile::tempdir()?;
    for (name, file) in GUESTS {
        let module = root.join(file);
        if !module.exists() {
            bail!(
                "{} not found: run scripts/build-plugins and scripts/build-guests first",
                module.display()
            );
        }
        std::fs::copy(&module, plugins.path().join(format!("{name}.wasm")))?;
        std::fs::write(
            plugins.path().join(format!("{name}.toml")),
            format!(
                "topic = \"bench_{name}\"\nchannel = \"p\"\nconcurrency = 1\nmax_in_flight = 2500\n"
            ),
        )?;
    }
    let plugins_dir = plugins
        .path()
        .to_str()
        .context("temp dir path")?
        .to_string();
    let broker = spawn_wasqd(&[
        "--plugins-dir",
        &plugins_dir,
        "--mem-queue-size",
        "100000000",
    ])?;
    let (tcp, http) = (broker.tcp, broker.http);
    let loading = Instant::now();
    wait_until_loaded(&http).await?;
    println!(
        "workload: {} messages of {} B per guest, one instance each, {} rounds; plugins compiled in {:.1} s",
        args.messages,
        args.size,
        args.rounds,
        loading.elapsed().as_secs_f64()
    );

    let mut costs: Vec<Vec<f64>> = vec![Vec::new(); GUESTS.len()];
    for round in 0..args.rounds {
        let mut order: Vec<usize> = (0..GUESTS.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for index in order {
            let name = GUESTS[index].0;
            let topic = format!("bench_{name}");
            post(&http, &format!("/channel/pause?topic={topic}&channel=p"))?;
            let before = finished(&http, name)?;
            publish_backlog(tcp, &topic, args.messages, args.size).await?;
            let start = Instant::now();
            post(&http, &format!("/channel/unpause?topic={topic}&channel=p"))?;
            while finished(&http, name)? < before + args.messages as u64 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let micros = start.elapsed().as_secs_f64() * 1e6 / args.messages as f64;
            costs[index].push(micros);
        }
    }
    let medians: Vec<f64> = costs.iter_mut().map(|c| median(c)).collect();
    println!(
        "{:<16} {:>12} {:>12} {:>10}",
        "guest", "µs/message", "msg/s", "vs core"
    );
    for ((name, _), cost) in GUESTS.iter().zip(&medians) {
        println!(
            "{name:<16} {cost:>12.2} {:>12.0} {:>9.1}x",
            1e6 / cost,
            cost / medians[0]
        );
    }
    for ((name, _), cost) in GUESTS.iter().zip(&medians) {
        println!(
            "BENCH guests guest={name} us_per_message={cost:.3} rounds={}",
            args.rounds
        );
    }
    drop(broker);
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

async fn wait_until_loaded(http: &SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let status = plugins(http)?;
        let states: Vec<&str> = status["plugins"]
            .as_array()
            .map(|all| all.iter().filter_map(|p| p["state"].as_str()).collect())
            .unwrap_or_default();
        if states.len() == GUESTS.len() && states.iter().all(|s| *s == "running") {
            return Ok(());
        }
        if states.contains(&"failed") || Instant::now() > deadline {
            bail!("plugins did not load: {status}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn plugins(http: &SocketAddr) -> anyhow::Result<serde_json::Value> {
    let body = ureq::get(&format!("http://{http}/plugins"))
        .call()?
        .body_mut()
        .read_to_string()?;
    Ok(serde_json::from_str(&body)?)
}

fn finished(http: &SocketAddr, name: &str) -> anyhow::Result<u64> {
    let status = plugins(http)?;
    Ok(status["plugins"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["name"] == name))
        .and_then(|p| p["counters"]["finished"].as_u64())
        .unwrap_or(0))
}
