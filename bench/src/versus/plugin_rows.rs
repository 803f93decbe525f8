//! The plugin rows' set-up, and the latency rows: publish-to-FIN time of
//! the trivial plugin under a steady load.

use std::time::Duration;

use anyhow::Context;

use crate::plugin::{PluginArgs, TrivialPlugin};

/// Messages per second of the latency rows, and how long they publish.
const LATENCY_RATE: usize = 50_000;
const LATENCY_SECONDS: usize = 5;

/// The `quantile` of publish-to-FIN time (ms) of the trivial plugin's
/// channel while MPUBs of 50 arrive every millisecond for 5 s, read from
/// wasqd's own e2e processing latency (the clock starts when wasqd stamps
/// the message, and stops at the FIN).
pub(super) async fn plugin_latency(quantile: f64, size: usize) -> anyhow::Result<f64> {
    let q = quantile.to_string();
    let trivial =
        TrivialPlugin::start_with(&plugin_args(), &["--e2e-processing-latency-percentile", &q])?;
    let per_tick = LATENCY_RATE / 1000;
    let bodies = vec![vec![b'x'; size]; per_tick];
    let frame =
        wasq_wire::command::encode(|out| wasq_wire::command::mpub(out, "bench_plugin", &bodies));
    let mut conn = wasq_testkit::async_client::AsyncClient::connect(trivial.broker.tcp).await?;
    let mut ticks = tokio::time::interval(Duration::from_millis(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for _ in 0..LATENCY_SECONDS * 1000 {
        ticks.tick().await;
        conn.send(&frame).await?;
        conn.expect_ok().await?;
    }
    let http = trivial.broker.http;
    let total = (LATENCY_SECONDS * 1000 * per_tick) as u64;
    while crate::plugin::finished(&http, "trivial")? < total {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stats: serde_json::Value = serde_json::from_str(
        &ureq::get(&format!(
            "http://{http}/stats?format=json&topic=bench_plugin&channel=p"
        ))
        .call()?
        .body_mut()
        .read_to_string()?,
    )?;
    let latency = &stats["topics"][0]["channels"][0]["e2e_processing_latency"];
    let nanos = latency["percentiles"][0]["value"]
        .as_f64()
        .with_context(|| format!("no percentile in {latency}"))?;
    Ok(nanos / 1e6)
}

fn plugin_args() -> PluginArgs {
    PluginArgs {
        messages: 0,
        size: 0,
        rdy: 2500,
        concurrency: 2,
    }
}

pub(super) fn start_trivial() -> anyhow::Result<TrivialPlugin> {
    TrivialPlugin::start(&plugin_args())
}
