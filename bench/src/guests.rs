//! `wasq-bench guests`: what one call of the trivial handler (FIN, nothing
//! else) costs in each guest language, in one wasqd in the same run: core
//! modules (ABI v1) by hand in WAT (the reference: no allocator, no glue),
//! in Rust, C, Zig, Go and AssemblyScript, and components (the WIT world)
//! in Rust, JavaScript (componentize-js) and Python (componentize-py).
//!
//! Each plugin has one instance (concurrency 1) and drains a backlog of its
//! own paused channel; the time from unpausing to its last FIN, divided by
//! the messages, is the per-message cost, broker included. Rounds alternate
//! the order, and the median is reported, since this machine is noisy.
//!
//! Then the hot reload of a cached component: each plugin's file is
//! replaced by its language's `uppercase` (compiled, not timed; its
//! optimized code is waited for), then by its `trivial` again, whose
//! compiled artifact is in the cache: the time from that write until the
//! version is live (the watcher's settling time after a rename included)
//! and the host's own `load_ms` are reported.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::plugin::{finished, plugin, post, publish_backlog, wait_for_plugin};
use crate::{IN_MEMORY, spawn_wasqd_with_plugins};

pub struct GuestsArgs {
    pub messages: usize,
    pub size: usize,
    pub rounds: usize,
}

/// (plugin name, where scripts/build-plugins or build-guests leaves its
/// trivial handler, and its uppercase example)
const GUESTS: [(&str, &str, &str); 9] = [
    (
        "wat",
        "examples/target/guests/wat/trivial.wat",
        "examples/target/guests/wat/uppercase.wat",
    ),
    (
        "rust",
        "examples/target/wasm32-wasip1/release/trivial.wasm",
        "examples/target/wasm32-wasip1/release/uppercase.wasm",
    ),
    (
        "c",
        "examples/target/guests/c/trivial.wasm",
        "examples/target/guests/c/uppercase.wasm",
    ),
    (
        "zig",
        "examples/target/guests/zig/trivial.wasm",
        "examples/target/guests/zig/uppercase.wasm",
    ),
    (
        "go",
        "examples/target/guests/go/trivial.wasm",
        "examples/target/guests/go/uppercase.wasm",
    ),
    (
        "assemblyscript",
        "examples/target/guests/assemblyscript/trivial.wasm",
        "examples/target/guests/assemblyscript/uppercase.wasm",
    ),
    (
        "rust_component",
        "examples/target/guests/rust-component/trivial.wasm",
        "examples/target/guests/rust-component/uppercase.wasm",
    ),
    (
        "javascript",
        "examples/target/guests/js/trivial.wasm",
        "examples/target/guests/js/uppercase.wasm",
    ),
    (
        "python",
        "examples/target/guests/python/trivial.wasm",
        "examples/target/guests/python/uppercase.wasm",
    ),
];

pub async fn run(args: GuestsArgs) -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let plugins = tempfile::tempdir()?;
    for (name, trivial, uppercase) in GUESTS {
        for module in [trivial, uppercase].map(|file| root.join(file)) {
            if !module.exists() {
                bail!(
                    "{} not found: run scripts/build-plugins and scripts/build-guests first",
                    module.display()
                );
            }
        }
        std::fs::copy(
            root.join(trivial),
            plugins.path().join(module_file(name, trivial)),
        )?;
        std::fs::write(
            plugins.path().join(format!("{name}.toml")),
            format!(
                "topic = \"bench_{name}\"\nchannel = \"p\"\nconcurrency = 1\nmax_in_flight = 2500\n"
            ),
        )?;
    }
    let broker = spawn_wasqd_with_plugins(plugins.path(), IN_MEMORY)?;
    let (tcp, http) = (broker.tcp, broker.http);
    check_all_running(&http)?;
    println!(
        "workload: {} messages of {} B per guest, one instance each, {} rounds",
        args.messages, args.size, args.rounds,
    );
    println!("{:<16} {:>10} {:>14}", "guest", "file KB", "first load ms");
    for (name, trivial, _) in GUESTS {
        let status = plugin(&http, name)?;
        println!(
            "{name:<16} {:>10} {:>14}",
            std::fs::metadata(root.join(trivial))?.len() / 1000,
            status["load"]["load_ms"]
        );
    }

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
        "guest", "µs/message", "msg/s", "vs WAT"
    );
    for ((name, ..), cost) in GUESTS.iter().zip(&medians) {
        println!(
            "{name:<16} {cost:>12.2} {:>12.0} {:>9.1}x",
            1e6 / cost,
            cost / medians[0]
        );
    }
    for ((name, ..), cost) in GUESTS.iter().zip(&medians) {
        println!(
            "BENCH guests guest={name} us_per_message={cost:.3} rounds={}",
            args.rounds
        );
    }

    println!(
        "{:<16} {:>22} {:>10}",
        "guest", "cached reload, ms live", "load_ms"
    );
    for (name, trivial, uppercase) in GUESTS {
        let target = plugins.path().join(module_file(name, trivial));
        let trivial_hash = plugin(&http, name)?["module_hash"].clone();
        replace(&target, &std::fs::read(root.join(uppercase))?)?;
        wait_for_hash_change(&http, name, &trivial_hash).await?;
        wait_for_optimized_code(&http, name).await?;
        let uppercase_hash = plugin(&http, name)?["module_hash"].clone();
        let written = Instant::now();
        replace(&target, &std::fs::read(root.join(trivial))?)?;
        wait_for_hash_change(&http, name, &uppercase_hash).await?;
        let live_ms = written.elapsed().as_secs_f64() * 1e3;
        let status = plugin(&http, name)?;
        if status["load"]["from_cache"] != true {
            bail!("{name}: the reload did not come from the cache: {status}");
        }
        println!(
            "{name:<16} {live_ms:>22.0} {:>10}",
            status["load"]["load_ms"]
        );
        println!(
            "BENCH guests_reload guest={name} live_ms={live_ms:.0} load_ms={}",
            status["load"]["load_ms"]
        );
    }
    drop(broker);
    Ok(())
}

/// The plugin's module file: NAME.wasm, or NAME.wat for WebAssembly text.
fn module_file(name: &str, source: &str) -> String {
    let extension = if source.ends_with(".wat") {
        "wat"
    } else {
        "wasm"
    };
    format!("{name}.{extension}")
}

/// Writes a module elsewhere and renames it into place, as `mv` does.
fn replace(target: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    let staging = target.with_extension("staging");
    std::fs::write(&staging, bytes)?;
    std::fs::rename(&staging, target)?;
    Ok(())
}

/// Waits, polling every millisecond (what follows is timed), until
/// `name` runs another module than `old`.
async fn wait_for_hash_change(
    http: &SocketAddr,
    name: &str,
    old: &serde_json::Value,
) -> anyhow::Result<()> {
    let poll = Duration::from_millis(1);
    wait_for_plugin(http, name, poll, "a reload", |p| p["module_hash"] != *old).await?;
    Ok(())
}

/// Waits until `name` runs optimized code (a large component goes live
/// with baseline code first), so that its optimizing compile does not run
/// beside what is timed next.
async fn wait_for_optimized_code(http: &SocketAddr, name: &str) -> anyhow::Result<()> {
    let poll = Duration::from_millis(10);
    wait_for_plugin(http, name, poll, "optimized code", |p| {
        p["load"]["compiler"] != "baseline"
    })
    .await?;
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Every guest is `running` (spawning waited until none was loading).
fn check_all_running(http: &SocketAddr) -> anyhow::Result<()> {
    for (name, ..) in GUESTS {
        let status = plugin(http, name)?;
        if status["state"] != "running" {
            bail!("{name} did not load: {status}");
        }
    }
    Ok(())
}
