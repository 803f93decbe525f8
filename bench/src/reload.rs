//! `wasq-bench reload`: hot-reload latency, from the final write of a
//! plugin's module file to the first message handled by the new version.
//!
//! wasqd runs with `uppercase` from examples; a publisher keeps `words`
//! busy and a consumer reads `words.upper`. Each round writes the other
//! version (uppercase ⇄ prefixed, whose output starts with `v2:`) in place
//! and times until an output of the new version arrives. The first round
//! compiles `prefixed`; later ones find both versions in the compiled-module
//! cache (uppercase was compiled at start).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::spawn_wasqd_with_plugins;
use wasq_testkit::async_client::AsyncClient;
use wasq_wire::{FrameType, command};

pub async fn run(rounds: usize) -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let release = root.join("examples/target/wasm32-wasip1/release");
    let (original, variant) = (
        release.join("uppercase.wasm"),
        release.join("prefixed.wasm"),
    );
    if !original.exists() || !variant.exists() {
        bail!(
            "example modules not found in {}: run scripts/build-plugins first",
            release.display()
        );
    }
    let versions = [std::fs::read(&original)?, std::fs::read(&variant)?];
    let work = tempfile::tempdir()?;
    let plugins = work.path().join("plugins");
    std::fs::create_dir(&plugins)?;
    let target = plugins.join("uppercase.wasm");
    std::fs::write(&target, &versions[0])?;
    std::fs::write(
        plugins.join("uppercase.toml"),
        "topic = \"words\"\nchannel = \"upper\"\nconcurrency = 2\npublish = [\"words.upper\"]\n",
    )?;
    let broker = spawn_wasqd_with_plugins(
        &plugins,
        &["--data-path", work.path().to_str().context("path")?],
    )?;
    let tcp = broker.tcp;

    let publisher = tokio::spawn(keep_busy(tcp));
    let mut consumer = AsyncClient::connect(tcp).await?;
    let mut subscribe = command::encode(|out| command::sub(out, "words.upper", "bench"));
    command::rdy(&mut subscribe, 2500);
    consumer.send(&subscribe).await?;
    consumer.expect_ok().await?;

    let mut latencies = Vec::new();
    for round in 0..rounds {
        let next = (round + 1) % 2;
        let expect_prefix = next == 1;
        std::fs::write(&target, &versions[next])?;
        let written = Instant::now();
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), consumer.read_frame())
                .await
                .context("no output")??;
            if frame.frame_type != FrameType::Message {
                if frame.is_heartbeat() {
                    consumer.send(&command::encode(command::nop)).await?;
                }
                continue;
            }
            let message = frame.message()?;
            consumer.finish(&message).await?;
            if message.body.starts_with(b"v2:") == expect_prefix {
                break;
            }
        }
        latencies.push(written.elapsed());
        // Let the old version's last outputs drain before the next round.
        tokio::time::sleep(Duration::from_millis(300)).await;
        drain(&mut consumer).await?;
    }
    publisher.abort();
    drop(broker);

    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    let compiled = latencies.first().map(ms).unwrap_or(0.0);
    let mut cached: Vec<f64> = latencies.iter().skip(1).map(ms).collect();
    cached.sort_by(f64::total_cmp);
    println!(
        "reload latency, final write -> first message handled by the new version ({rounds} rounds)"
    );
    println!("  first (compiled):     {compiled:.0} ms");
    if !cached.is_empty() {
        println!(
            "  cached:               p50 {:.0} ms, max {:.0} ms, min {:.0} ms",
            cached[cached.len() / 2],
            cached[cached.len() - 1],
            cached[0]
        );
    }
    Ok(())
}

/// FINs the outputs that arrive for 150 ms (the old version's last ones),
/// so they cannot be taken for the next version's.
async fn drain(consumer: &mut AsyncClient) -> anyhow::Result<()> {
    let until = tokio::time::Instant::now() + Duration::from_millis(150);
    while let Ok(frame) = tokio::time::timeout_at(until, consumer.read_frame()).await {
        let frame = frame?;
        if frame.frame_type == FrameType::Message {
            consumer.finish(&frame.message()?).await?;
        }
    }
    Ok(())
}

/// Keeps `words` busy: publishes a message about every millisecond.
pub(crate) async fn keep_busy(tcp: std::net::SocketAddr) -> anyhow::Result<()> {
    let mut conn = AsyncClient::connect(tcp).await?;
    let frame = command::encode(|out| command::publish(out, "words", b"ping"));
    loop {
        conn.send(&frame).await?;
        conn.expect_ok().await?;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
