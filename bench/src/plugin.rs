//! `wasq-bench plugin`: messages per second handled by a trivial plugin
//! (examples/trivial: FIN and nothing else) versus an external tokio-nsq
//! consumer that FINs every message, on the same broker in the same run.
//!
//! Both drain a prepared backlog of the same size with the same RDY, so the
//! ratio isolates the delivery path: in-broker Wasm versus TCP to a client.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio_nsq::{
    NSQChannel, NSQConfigShared, NSQConsumerConfig, NSQConsumerConfigSources, NSQTopic,
};

use crate::{IN_MEMORY, spawn_wasqd_with_plugins, thread_cpu};
use wasq_testkit::Wasqd;
use wasq_testkit::async_client::AsyncClient;
use wasq_wire::command;

pub struct PluginArgs {
    pub messages: usize,
    pub size: usize,
    pub rdy: u32,
    pub concurrency: usize,
}

pub async fn run(args: PluginArgs) -> anyhow::Result<()> {
    println!(
        "workload: {} messages of {} B drained from a backlog; RDY {} for both; plugin concurrency {}",
        args.messages, args.size, args.rdy, args.concurrency
    );
    let trivial = TrivialPlugin::start(&args)?;
    let plugin_rate = trivial.drain(args.messages, args.size).await?;
    println!("plugin (trivial.wasm):   {plugin_rate:>10.0} msg/s");
    let client_rate =
        tokio_nsq_drain(trivial.broker.tcp, args.messages, args.size, args.rdy).await?;
    println!("tokio-nsq consumer:      {client_rate:>10.0} msg/s");
    println!("ratio plugin / consumer: {:.2}x", plugin_rate / client_rate);
    Ok(())
}

/// A wasqd (in memory) running `examples/trivial` on `bench_plugin/p`.
pub struct TrivialPlugin {
    pub broker: Wasqd,
    _plugins: tempfile::TempDir,
}

impl TrivialPlugin {
    pub fn start(args: &PluginArgs) -> anyhow::Result<TrivialPlugin> {
        TrivialPlugin::start_with(args, &[])
    }

    /// [`TrivialPlugin::start`] with more wasqd flags.
    pub fn start_with(args: &PluginArgs, extra: &[&str]) -> anyhow::Result<TrivialPlugin> {
        let plugins = plugins_dir(
            "trivial",
            &format!(
                "topic = \"bench_plugin\"\nchannel = \"p\"\nconcurrency = {}\nmax_in_flight = {}\n",
                args.concurrency, args.rdy
            ),
        )?;
        // In memory: this compares consumers, not disk reads.
        let mut flags = IN_MEMORY.to_vec();
        flags.extend_from_slice(extra);
        let broker = spawn_wasqd_with_plugins(plugins.path(), &flags)?;
        Ok(TrivialPlugin {
            broker,
            _plugins: plugins,
        })
    }

    /// Messages per second the plugin drains from a backlog of `messages`:
    /// its channel is paused while the backlog is published, then
    /// unpaused; the clock runs until it has finished them all.
    pub async fn drain(&self, messages: usize, size: usize) -> anyhow::Result<f64> {
        let backlog = publish_backlog(self.broker.tcp, "bench_plugin", messages, size);
        let broker = &self.broker;
        let drained = drain_paused(broker, "trivial", "bench_plugin", messages, backlog).await?;
        Ok(drained.per_second)
    }
}

/// A plugins directory holding the example module `NAME.wasm` and the
/// manifest `NAME.toml` with `manifest` in it.
pub(crate) fn plugins_dir(name: &str, manifest: &str) -> anyhow::Result<tempfile::TempDir> {
    let plugins = tempfile::tempdir()?;
    let module = format!("{name}.wasm");
    std::fs::copy(example_module(&module)?, plugins.path().join(&module))?;
    std::fs::write(plugins.path().join(format!("{name}.toml")), manifest)?;
    Ok(plugins)
}

/// What a plugin's drain of a backlog took.
pub(crate) struct Drained {
    pub per_second: f64,
    /// Nanoseconds each of wasqd's threads (by name) ran meanwhile.
    pub thread_nanos: HashMap<String, u64>,
}

/// How fast plugin `plugin` (subscribed to `topic`, channel `p`) drains a
/// backlog of `messages` from `broker`: the channel is paused while
/// `publish` puts the backlog, then unpaused; the clock (and the count of
/// the threads' CPU time) runs until the plugin has finished them all.
pub(crate) async fn drain_paused(
    broker: &Wasqd,
    plugin: &str,
    topic: &str,
    messages: usize,
    publish: impl Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<Drained> {
    let http = broker.http;
    let before = finished(&http, plugin)?;
    post(&http, &format!("/channel/pause?topic={topic}&channel=p"))?;
    publish.await?;
    let cpu_before = thread_cpu::by_name(broker.pid());
    let start = Instant::now();
    post(&http, &format!("/channel/unpause?topic={topic}&channel=p"))?;
    while finished(&http, plugin)? < before + messages as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let per_second = messages as f64 / start.elapsed().as_secs_f64();
    let thread_nanos = thread_cpu::between(&cpu_before, &thread_cpu::by_name(broker.pid()));
    Ok(Drained {
        per_second,
        thread_nanos,
    })
}

/// A release build of an example core-module plugin.
pub(crate) fn example_module(file: &str) -> anyhow::Result<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let module = root
        .join("examples/target/wasm32-wasip1/release")
        .join(file);
    if !module.exists() {
        bail!(
            "{} not found: run scripts/build-plugins first",
            module.display()
        );
    }
    Ok(module)
}

/// Messages per second a tokio-nsq consumer (max_in_flight `rdy`, FIN
/// each) drains from a backlog of `messages` on a new topic of the
/// broker at `tcp`; the clock starts at the first message.
pub async fn tokio_nsq_drain(
    tcp: SocketAddr,
    messages: usize,
    size: usize,
    rdy: u32,
) -> anyhow::Result<f64> {
    let topic = format!("bench_client_{}", unique());
    let mut setup = AsyncClient::connect(tcp).await?;
    setup
        .send(&command::encode(|out| command::sub(out, &topic, "c")))
        .await?;
    setup.expect_ok().await?;
    drop(setup);
    publish_backlog(tcp, &topic, messages, size).await?;
    let mut consumer = NSQConsumerConfig::new(
        NSQTopic::new(topic).context("topic name")?,
        NSQChannel::new("c").context("channel name")?,
    )
    .set_max_in_flight(rdy)
    .set_shared(NSQConfigShared::new().set_flush_interval(Duration::from_millis(1)))
    .set_sources(NSQConsumerConfigSources::Daemons(vec![tcp.to_string()]))
    .build();
    let mut start = None;
    let mut received = 0;
    while received < messages {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.consume_filtered())
            .await
            .context("the tokio-nsq consumer stalled")?
            .context("consumer closed")?;
        start.get_or_insert_with(Instant::now);
        received += 1;
        message.finish().await;
    }
    Ok(messages as f64 / start.map_or(0.0, |s| s.elapsed().as_secs_f64()))
}

/// A number for names no earlier run of this process used.
pub(crate) fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
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

/// `GET path` (with its query), parsed as JSON.
pub(crate) fn get_json(http: &SocketAddr, path: &str) -> anyhow::Result<serde_json::Value> {
    let body = ureq::get(&format!("http://{http}{path}"))
        .call()
        .with_context(|| format!("GET {path}"))?
        .body_mut()
        .read_to_string()?;
    Ok(serde_json::from_str(&body)?)
}

/// GET /plugins, parsed.
fn plugins(http: &SocketAddr) -> anyhow::Result<serde_json::Value> {
    get_json(http, "/plugins")
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

/// Polls plugin `name`'s entry in GET /plugins every `poll` until `done`
/// says yes (for at most 600 s: a large component compiles for seconds);
/// its last entry. `what` names what is awaited, for the error.
pub(crate) async fn wait_for_plugin(
    http: &SocketAddr,
    name: &str,
    poll: Duration,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> anyhow::Result<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let status = plugin(http, name)?;
        if done(&status) {
            return Ok(status);
        }
        if Instant::now() > deadline {
            bail!("{name}: {what}, not after 600 s: {status}");
        }
        tokio::time::sleep(poll).await;
    }
}

/// Messages a plugin has finished.
pub(crate) fn finished(http: &SocketAddr, name: &str) -> anyhow::Result<u64> {
    Ok(plugin(http, name)?["counters"]["finished"]
        .as_u64()
        .unwrap_or(0))
}
