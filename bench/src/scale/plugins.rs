//! The plugin part: many copies of the trivial example plugin, loaded at
//! start-up and again at a restart.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use wasq_testkit::memory::resident_bytes;

use super::broker::{Broker, Running, get_json, time_get};
use super::{Figure, per_item, poll_until, seconds, total};

/// The plugin part at one size (see the module doc).
pub(super) async fn plugins(count: usize) -> anyhow::Result<Vec<Figure>> {
    let module = std::fs::read(trivial_module()?)?;
    let work = tempfile::tempdir()?;
    let dir = work.path().join("plugins");
    std::fs::create_dir(&dir)?;
    let data = work.path().join("data");
    std::fs::create_dir(&data)?;
    let baseline = {
        let (running, _) = Broker::Wasqd.start(&data, &[])?;
        let rss = resident_bytes(running.pid())?;
        running.stop()?;
        rss
    };
    for n in 0..count {
        std::fs::write(dir.join(format!("p{n}.wasm")), &module)?;
        std::fs::write(
            dir.join(format!("p{n}.toml")),
            format!("topic = \"scale.p{n}\"\nconcurrency = 1\n"),
        )?;
    }
    let plugins_dir = ["--plugins-dir", dir.to_str().context("plugins dir")?];
    let started = Instant::now();
    let (running, until_ping) = Broker::Wasqd.start(&data, &plugins_dir)?;
    let until_loaded = until_plugins_loaded(&running, count, started)?;
    let rss = resident_bytes(running.pid())?.saturating_sub(baseline);
    let stats = time_get(running.http(), "/stats?format=json")?;
    let listing = time_get(running.http(), "/plugins")?;
    let stop = running.stop()?;
    let restarted = Instant::now();
    let (running, _) = Broker::Wasqd.start(&data, &plugins_dir)?;
    let reloaded = until_plugins_loaded(&running, count, restarted)?;
    running.stop()?;
    Ok(vec![
        total("start_ping", seconds(until_ping), "s"),
        total("start_loaded", seconds(until_loaded), "s"),
        per_item("rss_per_plugin", rss as f64 / count as f64 / 1024.0, "KiB"),
        total("stats", seconds(stats) * 1e3, "ms"),
        total("plugins", seconds(listing) * 1e3, "ms"),
        total("stop", seconds(stop), "s"),
        total("restart_loaded", seconds(reloaded), "s"),
    ])
}

/// The trivial example plugin that `scripts/build-plugins` builds.
fn trivial_module() -> anyhow::Result<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/target/wasm32-wasip1/release/trivial.wasm");
    if !path.exists() {
        bail!(
            "{} not found: run scripts/build-plugins first",
            path.display()
        );
    }
    Ok(path)
}

/// Waits until `/plugins` lists `count` plugins, every one running.
fn until_plugins_loaded(
    running: &Running,
    count: usize,
    since: Instant,
) -> anyhow::Result<Duration> {
    poll_until(since, || {
        let listing = get_json(running.http(), "/plugins")?;
        let plugins = listing["plugins"].as_array().cloned().unwrap_or_default();
        if let Some(failed) = plugins.iter().find(|p| p["state"] == "failed") {
            bail!("a plugin failed to load: {failed}");
        }
        let running_count = plugins.iter().filter(|p| p["state"] == "running").count();
        Ok((running_count < count).then(|| format!("{running_count} of {count} plugins running")))
    })
}
