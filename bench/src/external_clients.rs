//! The clients NSQ's users measure with, none of them written here: NSQ's
//! own `bench_writer` and `bench_reader` (built from NSQ v1.3.0's source,
//! bench/README.md) and ApacheBench (`ab`, Debian's apache2-utils). Each
//! runs as its own process with its defaults, and its figure is read from
//! its own summary.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail, ensure};

/// What `bench_writer` and `bench_reader` print last:
/// `duration: 5.0s - 280.012mb/s - 1468100.123ops/s - 0.681us/op`.
fn nsq_tool_rate(output: &str) -> Option<f64> {
    let line = output.lines().rev().find(|l| l.contains("duration:"))?;
    let rate = line.split(" - ").find(|part| part.ends_with("ops/s"))?;
    rate.trim_end_matches("ops/s").trim().parse().ok()
}

/// Runs a tool to its end (each is given a time limit) on a blocking
/// thread: the broker under test runs in another process, and Tokio's
/// own child processes would cost every runtime a look for exited
/// children at each park (see the workspace's Tokio features).
async fn run(mut command: Command, what: &str) -> anyhow::Result<String> {
    let output = tokio::task::spawn_blocking(move || command.output())
        .await?
        .with_context(|| format!("cannot run {what}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        bail!(
            "{what} failed ({}): {}",
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        );
    }
    Ok(text)
}

/// NSQ's `bench_writer --size=SIZE --batch-size=BATCH` for `runfor` on
/// `topic`: messages per second. Its other settings are its defaults (one
/// connection per CPU, one MPUB in flight on each).
pub async fn bench_writer(
    tool: &Path,
    tcp: SocketAddr,
    topic: &str,
    size: usize,
    batch: usize,
    runfor: Duration,
) -> anyhow::Result<f64> {
    let batch = format!("--batch-size={batch}");
    nsq_tool("bench_writer", tool, tcp, topic, size, runfor, &batch).await
}

/// NSQ's `bench_reader --size=SIZE` for `runfor` on `topic`/`channel`:
/// messages per second (received and FINed). Its RDY (2500) and
/// connections (one per CPU) are its defaults.
pub async fn bench_reader(
    tool: &Path,
    tcp: SocketAddr,
    topic: &str,
    channel: &str,
    size: usize,
    runfor: Duration,
) -> anyhow::Result<f64> {
    let channel = format!("--channel={channel}");
    nsq_tool("bench_reader", tool, tcp, topic, size, runfor, &channel).await
}

/// Runs NSQ's bench tool `name` (at `tool`) with the flags both take and
/// `flag`: the rate it reports.
async fn nsq_tool(
    name: &str,
    tool: &Path,
    tcp: SocketAddr,
    topic: &str,
    size: usize,
    runfor: Duration,
    flag: &str,
) -> anyhow::Result<f64> {
    let mut command = Command::new(tool);
    command
        .arg(format!("--nsqd-tcp-address={tcp}"))
        .arg(format!("--topic={topic}"))
        .arg(format!("--size={size}"))
        .arg(flag)
        .arg(format!("--runfor={}ms", runfor.as_millis()));
    let output = run(command, name).await?;
    nsq_tool_rate(&output).with_context(|| format!("no rate in {name}'s output: {output}"))
}

/// ApacheBench's figures of one run.
#[derive(Debug, PartialEq)]
struct AbSummary {
    complete: u64,
    failed: u64,
    non_2xx: u64,
    keep_alive: u64,
    per_second: f64,
}

fn ab_summary(output: &str) -> Option<AbSummary> {
    let field = |name: &str| {
        output
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
    };
    let count = |name: &str| field(name).map_or(Some(0), |v| v.parse().ok());
    Some(AbSummary {
        complete: field("Complete requests:")?.parse().ok()?,
        failed: count("Failed requests:")?,
        non_2xx: count("Non-2xx responses:")?,
        keep_alive: count("Keep-Alive requests:")?,
        per_second: field("Requests per second:")?.parse().ok()?,
    })
}

/// `ab -k -c CONCURRENCY` POSTing `body` to `http://ADDRESS/PATH` for
/// `seconds`: requests per second. Every request must succeed on a kept
/// connection (a broker closing them would be measured reconnecting).
pub async fn apache_bench(
    ab: &Path,
    http: SocketAddr,
    path_and_query: &str,
    body: &[u8],
    concurrency: usize,
    runfor: Duration,
) -> anyhow::Result<f64> {
    let body_file = tempfile::NamedTempFile::new()?;
    std::fs::write(body_file.path(), body)?;
    let mut command = Command::new(ab);
    command
        .args(["-q", "-k", "-c", &concurrency.to_string()])
        // -t first: it sets -n to 50 000, which the -n after it lifts.
        .args(["-t", &runfor.as_secs().max(1).to_string(), "-n", "10000000"])
        .arg("-p")
        .arg(body_file.path())
        .args(["-T", "application/octet-stream"])
        .arg(format!("http://{http}{path_and_query}"));
    let output = run(command, "ab (ApacheBench: apt-get install apache2-utils)").await?;
    let summary =
        ab_summary(&output).with_context(|| format!("no summary in ab's output: {output}"))?;
    ensure!(
        summary.failed == 0 && summary.non_2xx == 0,
        "ab: {} of {} requests failed, {} answered other than 2xx",
        summary.failed,
        summary.complete,
        summary.non_2xx
    );
    ensure!(
        summary.keep_alive == summary.complete,
        "ab: only {} of {} requests on a kept connection",
        summary.keep_alive,
        summary.complete
    );
    Ok(summary.per_second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_nsq_tools_rate() {
        let output = "[bench_writer] 2026/12/05 21:00:00 duration: 5.000112s - 280.012mb/s - 1468100.123ops/s - 0.681us/op\n";
        assert_eq!(nsq_tool_rate(output), Some(1468100.123));
        assert_eq!(nsq_tool_rate("panic: connection refused"), None);
    }

    #[test]
    fn reads_ab_summary() {
        let output = "Concurrency Level:      4\n\
            Complete requests:      305123\n\
            Failed requests:        0\n\
            Keep-Alive requests:    305123\n\
            Requests per second:    101707.66 [#/sec] (mean)\n";
        assert_eq!(
            ab_summary(output),
            Some(AbSummary {
                complete: 305123,
                failed: 0,
                non_2xx: 0,
                keep_alive: 305123,
                per_second: 101707.66
            })
        );
        let broken = "Complete requests:      10\nFailed requests:        3\n   (Connect: 0, Receive: 0, Length: 3, Exceptions: 0)\nNon-2xx responses:      2\nKeep-Alive requests:    10\nRequests per second:    5.0 [#/sec] (mean)\n";
        let summary = ab_summary(broken).expect("a summary");
        assert_eq!((summary.failed, summary.non_2xx), (3, 2));
    }
}
