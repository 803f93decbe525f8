//! `wasq-bench component-reload`: how long a new version of a JavaScript
//! or Python plugin, never compiled before, takes to go live under traffic.
//!
//! wasqd runs the language's `uppercase` while a publisher keeps `words`
//! busy (a message about every millisecond) and a consumer finishes its
//! outputs. Each round renames a new version into place: the same
//! component with a custom section naming the round, so its hash (the
//! compiled-artifact cache's key) was never seen, as after an edit and a
//! rebuild. Timed from the rename until GET /plugins shows the new hash
//! (the version is live: its instances take the next messages), and on
//! until its optimized code has taken over (a large component goes live
//! with baseline code first). Each round waits for that before the next.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::plugin::{plugin, wait_for_plugin};
use crate::reload::keep_busy;
use crate::spawn_wasqd_with_plugins;
use wasq_testkit::async_client::AsyncClient;
use wasq_testkit::guest_dir;
use wasq_wire::{FrameType, command};

#[derive(clap::Args, Debug, Clone)]
pub struct ComponentReloadArgs {
    /// the plugin's language: js or python
    #[arg(long, default_value = "js")]
    language: String,
    /// new versions to time
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

/// How often GET /plugins is asked while a version compiles.
const POLL: Duration = Duration::from_millis(20);

pub async fn run(args: ComponentReloadArgs) -> anyhow::Result<()> {
    let language = args.language.as_str();
    let source = guest_dir(language).join("uppercase.wasm");
    let component = std::fs::read(&source)
        .with_context(|| format!("{}: run scripts/build-guests first", source.display()))?;
    let work = tempfile::tempdir()?;
    let plugins = work.path().join("plugins");
    std::fs::create_dir(&plugins)?;
    let target = plugins.join("upper.wasm");
    std::fs::write(&target, &component)?;
    let output = format!("words.upper.{language}");
    std::fs::write(
        plugins.join("upper.toml"),
        format!(
            "topic = \"words\"\nchannel = \"upper\"\nconcurrency = 2\npublish = [\"{output}\"]\n"
        ),
    )?;
    let data = work.path().join("data");
    let broker =
        spawn_wasqd_with_plugins(&plugins, &["--data-path", data.to_str().context("path")?])?;
    let (tcp, http) = (broker.tcp, broker.http);
    let publisher = tokio::spawn(keep_busy(tcp));
    let consumer = tokio::spawn(finish_all(tcp, output));

    println!("{language} component, a new version renamed into place under traffic");
    println!(
        "{:>6} {:>10} {:>10} {:>14}",
        "round", "live, ms", "load_ms", "optimized, ms"
    );
    let mut live = Vec::new();
    for round in 0..args.rounds {
        let old_hash = plugin(&http, "upper")?["module_hash"].clone();
        let staging = plugins.join(".upper.wasm.staging");
        std::fs::write(&staging, with_round(&component, round))?;
        let written = Instant::now();
        std::fs::rename(&staging, &target)?;
        let status = wait_for_plugin(&http, "upper", POLL, "the new version live", |status| {
            status["module_hash"] != old_hash
        })
        .await?;
        let live_ms = written.elapsed().as_secs_f64() * 1e3;
        wait_for_plugin(&http, "upper", POLL, "optimized code", |status| {
            status["load"]["compiler"] != "baseline"
        })
        .await?;
        let optimized_ms = written.elapsed().as_secs_f64() * 1e3;
        let load_ms = &status["load"]["load_ms"];
        println!("{round:>6} {live_ms:>10.0} {load_ms:>10} {optimized_ms:>14.0}");
        println!(
            "BENCH component_reload language={language} round={round} live_ms={live_ms:.0} load_ms={load_ms} compiler={} optimized_ms={optimized_ms:.0}",
            status["load"]["compiler"]
        );
        live.push(live_ms);
    }
    publisher.abort();
    consumer.abort();
    drop(broker);
    live.sort_by(f64::total_cmp);
    if let Some(median) = live.get(live.len() / 2) {
        println!(
            "median time to live: {median:.0} ms over {} rounds",
            live.len()
        );
    }
    Ok(())
}

/// `component` with a custom section naming `round` appended: the same
/// code under a hash never seen.
fn with_round(component: &[u8], round: usize) -> Vec<u8> {
    let name = b"wasq-bench-round";
    let stamp = format!(
        "{round} {}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(stamp.as_bytes());
    let mut bytes = component.to_vec();
    bytes.push(0); // a custom section
    bytes.push(u8::try_from(payload.len()).expect("a short section"));
    bytes.extend_from_slice(&payload);
    bytes
}

/// Finishes every output the plugin publishes.
async fn finish_all(tcp: SocketAddr, topic: String) -> anyhow::Result<()> {
    let mut consumer = AsyncClient::connect(tcp).await?;
    let mut subscribe = command::encode(|out| command::sub(out, &topic, "bench"));
    command::rdy(&mut subscribe, 2500);
    consumer.send(&subscribe).await?;
    consumer.expect_ok().await?;
    loop {
        let frame = consumer.read_frame().await?;
        if frame.frame_type == FrameType::Message {
            consumer.finish(&frame.message()?).await?;
        } else if frame.is_heartbeat() {
            consumer.send(&command::encode(command::nop)).await?;
        }
    }
}
