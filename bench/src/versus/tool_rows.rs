//! The rows measured with clients not written here (NSQ's `bench_writer`
//! and `bench_reader`, ApacheBench): what NSQ's users and NSQ's own
//! `bench.sh` see.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use super::VersusArgs;
use super::broker::Broker;
use crate::external_clients::{apache_bench, bench_reader, bench_writer};
use crate::http_load::mpub_body;
use crate::plugin::get_json;
use crate::workload::{Workload, prepare_backlog};

/// The channel the bench_reader row reads.
const CHANNEL: &str = "bench";
/// Messages per MPUB (bench_writer's default) and per /mpub.
const BATCH: usize = 200;

/// Whether `id` is measured by an outside client.
pub(super) fn is_tool_row(id: &str) -> bool {
    id.starts_with("bench_") || id.starts_with("ab_")
}

impl VersusArgs {
    fn nsq_tool(&self, given: &Option<PathBuf>, name: &str) -> anyhow::Result<PathBuf> {
        let path = given
            .clone()
            .unwrap_or_else(|| self.nsqd.with_file_name(name));
        anyhow::ensure!(
            path.exists(),
            "{} not found (build NSQ's bench/{name} from v1.3.0's source, bench/README.md, \
             or give --{})",
            path.display(),
            name.replace('_', "-")
        );
        Ok(path)
    }

    fn tool_time(&self) -> Duration {
        Duration::from_secs(self.tool_seconds)
    }
}

/// Where a tool row runs: a broker, set up as NSQ's `bench.sh` does (the
/// topic and its channel first), or the do-nothing server, which needs no
/// set-up and serves the consumer its own messages.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Target {
    Broker,
    OkServer,
}

/// A tool row's figure on `broker`.
pub(super) async fn tool_row(
    id: &str,
    args: &VersusArgs,
    workload: &Workload,
    broker: &Broker,
    topic: &str,
    target: Target,
) -> anyhow::Result<f64> {
    let size = workload.size;
    let channel_first = || async {
        let create = Workload {
            messages: 0,
            ..workload.clone()
        };
        prepare_backlog(&create, broker.tcp, topic)
            .await
            .with_context(|| format!("creating channel {topic}/{CHANNEL}"))
    };
    let writer = args.nsq_tool(&args.bench_writer, "bench_writer");
    match id {
        "bench_writer" => {
            if target == Target::Broker {
                channel_first().await?;
            }
            bench_writer(&writer?, broker.tcp, topic, size, BATCH, args.tool_time()).await
        }
        "bench_reader" => {
            let reader = args.nsq_tool(&args.bench_reader, "bench_reader")?;
            let runfor = args.tool_time() / 2;
            if target == Target::OkServer {
                return bench_reader(&reader, broker.tcp, topic, CHANNEL, size, runfor).await;
            }
            channel_first().await?;
            bench_writer(&writer?, broker.tcp, topic, size, BATCH, args.tool_time()).await?;
            let rate = bench_reader(&reader, broker.tcp, topic, CHANNEL, size, runfor).await?;
            let depth = channel_depth(broker, topic).await?;
            anyhow::ensure!(
                depth > 0,
                "bench_reader emptied the backlog bench_writer left: its figure would count \
                 waiting (give a larger --tool-seconds)"
            );
            Ok(rate)
        }
        "ab_pub_c1" | "ab_pub_c4" => {
            let concurrency = if id == "ab_pub_c1" { 1 } else { 4 };
            let path = format!("/pub?topic={topic}");
            let body = vec![b'x'; size];
            apache_bench(
                &args.ab,
                broker.http,
                &path,
                &body,
                concurrency,
                args.tool_time(),
            )
            .await
        }
        "ab_mpub_c4" => {
            let path = format!("/mpub?topic={topic}");
            let body = mpub_body(size, BATCH);
            let requests =
                apache_bench(&args.ab, broker.http, &path, &body, 4, args.tool_time()).await?;
            Ok(requests * BATCH as f64)
        }
        other => anyhow::bail!("no tool row {other}"),
    }
}

/// The depth of the bench_reader row's channel, from `/stats`.
async fn channel_depth(broker: &Broker, topic: &str) -> anyhow::Result<u64> {
    let path = format!("/stats?format=json&topic={topic}&channel={CHANNEL}");
    let http = broker.http;
    let stats = tokio::task::spawn_blocking(move || get_json(&http, &path)).await??;
    // nsqd 1.3 answers the object itself; older versions wrapped it in "data".
    let stats = stats.get("data").unwrap_or(&stats);
    stats["topics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["topic_name"] == topic)
        .flat_map(|t| t["channels"].as_array().into_iter().flatten())
        .find(|c| c["channel_name"] == CHANNEL)
        .and_then(|c| c["depth"].as_u64())
        .context("the channel is not in /stats")
}
