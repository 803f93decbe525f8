//! `wasq-bench plugin`: messages per second handled by a trivial plugin
//! (examples/trivial: FIN and nothing else) versus an external tokio-nsq
//! consumer that FINs every message, on the same broker in the same run.
//!
//! Both drain a prepared backlog of the same size with the same RDY, so the
//! ratio isolates the delivery path: in-broker Wasm versus TCP to a client.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio_nsq::{
    NSQChannel, NSQConfigShared, NSQConsumerConfig, NSQConsumerConfigSources, NSQTopic,
};

use crate::{IN_MEMORY, spawn_wasqd_with_plugins};
use wasq_testkit::async_client::AsyncClient;
use wasq_wire::command;

pub struct PluginArgs {
    pub messages: usize,
    pub size: usize,
    pub rdy: u32,
    pub concurrency: usize,
}

pub async fn run(args: PluginArgs) -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let module = root.join("examples/target/wasm32-wasip1/release/trivial.wasm");
    if !module.exists() {
        bail!(
            "{} not found: run scripts/build-plugins first",
            module.display()
        );
    }
    let plugins = tempfile::tempdir()?;
    std::fs::copy(&module, plugins.path().join("trivial.wasm"))?;
    std::fs::write(
        plugins.path().join("trivial.toml"),
        format!(
            "topic = \"bench_plugin\"\nchannel = \"p\"\nconcurrency = {}\nmax_in_flight = {}\n",
            args.concurrency, args.rdy
        ),
    )?;
    // In memory: this compares consumers, not disk reads.
    let broker = spawn_wasqd_with_plugins(plugins.path(), IN_MEMORY)?;
    let (tcp, http) = (broker.tcp, broker.http);
    println!(
        "workload: {} messages of {} B drained from a backlog; RDY {} for both; plugin concurrency {}",
        args.messages, args.size, args.rdy, args.concurrency
    );

    // The plugin: fill its paused channel, unpause, wait for every FIN.
    post(&http, "/channel/pause?topic=bench_plugin&channel=p")?;
    publish_backlog(tcp, "bench_plugin", args.messages, args.size).await?;
    let start = Instant::now();
    post(&http, "/channel/unpause?topic=bench_plugin&channel=p")?;
    while finished(&http, "trivial")? < args.messages as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let plugin_rate = args.messages as f64 / start.elapsed().as_secs_f64();
    println!("plugin (trivial.wasm):   {plugin_rate:>10.0} msg/s");

    // The external consumer: same backlog size, tokio-nsq with the same RDY.
    post(&http, "/topic/create?topic=bench_client")?;
    post(&http, "/channel/create?topic=bench_client&channel=c")?;
    publish_backlog(tcp, "bench_client", args.messages, args.size).await?;
    let mut consumer = NSQConsumerConfig::new(
        NSQTopic::new("bench_client").unwrap(),
        NSQChannel::new("c").unwrap(),
    )
    .set_max_in_flight(args.rdy)
    .set_shared(NSQConfigShared::new().set_flush_interval(Duration::from_millis(1)))
    .set_sources(NSQConsumerConfigSources::Daemons(vec![tcp.to_string()]))
    .build();
    let mut start = None;
    let mut received = 0;
    while received < args.messages {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.consume_filtered())
            .await
            .context("the tokio-nsq consumer stalled")?
            .context("consumer closed")?;
        start.get_or_insert_with(Instant::now);
        received += 1;
        message.finish().await;
    }
    let client_rate = args.messages as f64 / start.map_or(0.0, |s| s.elapsed().as_secs_f64());
    println!("tokio-nsq consumer:      {client_rate:>10.0} msg/s");
    println!("ratio plugin / consumer: {:.2}x", plugin_rate / client_rate);
    drop(broker);
    Ok(())
}

/// Publishes `messages` bodies of `size` bytes to `topic`, in MPUBs of 500.
pub(crate) async fn publish_backlog(
    tcp: SocketAddr,
    topic: &str,
    messages: usize,
    size: usize,
) -> anyhow::Result<()> {
    let batch = 500;
    let mut conn = AsyncClient::connect(tcp).await?;
    let mut left = messages;
    while left > 0 {
        let n = left.min(batch);
        let frame = command::encode(|out| command::mpub(out, topic, &vec![vec![b'x'; size]; n]));
        conn.send(&frame).await?;
        conn.expect_ok().await?;
        left -= n;
    }
    Ok(())
}

pub(crate) fn post(http: &SocketAddr, path: &str) -> anyhow::Result<()> {
    ureq::post(&format!("http://{http}{path}"))
        .send_empty()
        .with_context(|| format!("POST {path}"))?;
    Ok(())
}

/// GET /plugins, parsed.
fn plugins(http: &SocketAddr) -> anyhow::Result<serde_json::Value> {
    let body = ureq::get(&format!("http://{http}/plugins"))
        .call()?
        .body_mut()
        .read_to_string()?;
    Ok(serde_json::from_str(&body)?)
}

/// One plugin's entry in GET /plugins.
pub(crate) fn plugin(http: &SocketAddr, name: &str) -> anyhow::Result<serde_json::Value> {
    let status = plugins(http)?;
    status["plugins"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["name"] == name))
        .cloned()
        .with_context(|| format!("no plugin {name} in {status}"))
}

/// Messages a plugin has finished.
pub(crate) fn finished(http: &SocketAddr, name: &str) -> anyhow::Result<u64> {
    Ok(plugin(http, name)?["counters"]["finished"]
        .as_u64()
        .unwrap_or(0))
}
