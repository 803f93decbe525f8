//! The topic part: topics created over HTTP, a stop and a restart that
//! must bring every message back.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use wasq_testkit::memory::resident_bytes;

use super::broker::{Broker, Running, get_json, post, time_get};
use super::{BODY_SIZE, CREATORS, Figure, per_item, poll_until, seconds, total};
use crate::http_load::KeepAlive;

/// The topic part at one size (see the module doc).
pub(super) async fn topics(
    broker: &Broker,
    count: usize,
    message_every: usize,
) -> anyhow::Result<Vec<Figure>> {
    let data = tempfile::tempdir()?;
    let (running, _) = broker.start(data.path(), &[])?;
    let before = resident_bytes(running.pid())?;
    let started = Instant::now();
    let expected = create_topics(running.http(), count, message_every).await?;
    let create = started.elapsed();
    let rss = resident_bytes(running.pid())?.saturating_sub(before);
    let stats = time_get(running.http(), "/stats?format=json")?;
    let stop = running.stop()?;

    let restarted = Instant::now();
    let (running, until_ping) = broker.start(data.path(), &[])?;
    let until_restored = until_every_message(&running, expected, restarted)?;
    let second_stop = running.stop()?;
    let figures = vec![
        per_item("create", count as f64 / seconds(create), "topics/s"),
        per_item("rss_per_topic", rss as f64 / count as f64 / 1024.0, "KiB"),
        total("stats", seconds(stats) * 1e3, "ms"),
        total("stop", seconds(stop), "s"),
        total("restart_ping", seconds(until_ping), "s"),
        total("restart_restored", seconds(until_restored), "s"),
        total("stop_after_restart", seconds(second_stop), "s"),
    ];
    Ok(figures)
}

/// Creates `count` topics with a channel each over HTTP (a few keep-alive
/// connections side by side), publishing one message to every
/// `message_every`th; returns how many messages were published.
async fn create_topics(
    http: SocketAddr,
    count: usize,
    message_every: usize,
) -> anyhow::Result<usize> {
    let every = message_every.max(1);
    let mut tasks = Vec::new();
    for creator in 0..CREATORS {
        tasks.push(tokio::spawn(async move {
            let mut connection = KeepAlive::connect(http).await?;
            let mut published = 0;
            for n in (creator..count).step_by(CREATORS) {
                let topic = format!("scale.{n}");
                connection
                    .round_trip(&post(&format!("/topic/create?topic={topic}"), b""))
                    .await?;
                connection
                    .round_trip(&post(
                        &format!("/channel/create?topic={topic}&channel=c"),
                        b"",
                    ))
                    .await?;
                if n % every == 0 {
                    connection
                        .round_trip(&post(&format!("/pub?topic={topic}"), &[b'x'; BODY_SIZE]))
                        .await?;
                    published += 1;
                }
            }
            anyhow::Ok(published)
        }));
    }
    let mut published = 0;
    for task in tasks {
        published += task.await??;
    }
    Ok(published)
}

/// Waits until the channels hold `expected` messages (for wasqd, first
/// until `/stats` says the recovery is done, asking about one small topic
/// so the polling costs neither side much); returns the time since `since`.
fn until_every_message(
    running: &Running,
    expected: usize,
    since: Instant,
) -> anyhow::Result<Duration> {
    poll_until(since, || {
        let stats = get_json(running.http(), "/stats?format=json&topic=scale.0")?;
        let done = stats.get("restore").is_none_or(|r| r["done"] == true);
        Ok((!done).then(|| "queues still being recovered".to_string()))
    })?;
    poll_until(since, || {
        let stats = get_json(running.http(), "/stats?format=json&include_clients=false")?;
        let queued: u64 = stats["topics"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|t| t["channels"].as_array().into_iter().flatten())
            .map(|c| c["depth"].as_u64().unwrap_or(0))
            .sum();
        Ok((queued < expected as u64).then(|| format!("{queued} of {expected} messages back")))
    })
}
