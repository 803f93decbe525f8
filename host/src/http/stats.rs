//! GET /stats in nsqd's JSON (`format=json`) and text formats, with the
//! `topic`, `channel`, `include_clients` and `include_mem` filters.
//!
//! nsqd's `memory` block reports Go's heap; Wasq fills the fields that
//! have a meaning for it from glibc's malloc (`heap_in_use_bytes`: bytes
//! allocated, `heap_idle_bytes`: bytes malloc holds free) and adds
//! `resident_bytes` (the process's resident set). The rest are always 0:
//! malloc does not count objects or returned bytes, and there is no
//! garbage collector.

use std::fmt::Write as _;

use axum::extract::{RawQuery, State};
use serde::Serialize;

use super::{ApiResponse, ApiResult, AppState, Query, parse_bool_param};
use crate::broker::client::ClientStats;
use crate::broker::topic::TopicStats;
use crate::broker::{RestoreStatus, Stats};
use crate::config::{NSQ_VERSION, WASQ_VERSION, go_duration};
use crate::plugins::PluginStatus;

#[derive(Serialize)]
struct StatsDocument<'a> {
    version: &'a str,
    health: &'a str,
    start_time: i64,
    /// `null` when a topic filter matched nothing, as nsqd.
    topics: Option<Vec<TopicStats>>,
    /// Left out with `include_mem=false`, as nsqd.
    #[serde(skip_serializing_if = "Option::is_none")]
    memory: Option<MemoryStats>,
    /// `null` when there are none, as nsqd.
    producers: Option<Vec<ClientStats>>,
    /// Wasq's addition: the in-broker consumers (also at GET /plugins).
    plugins: Vec<PluginStatus>,
    /// Wasq's addition: the recovery of the previous run's disk queues,
    /// which goes on after the API answers.
    restore: RestoreStatus,
}

/// nsqd's `memory` object, field for field (see the module doc).
#[derive(Serialize, Default)]
struct MemoryStats {
    heap_objects: u64,
    heap_idle_bytes: u64,
    heap_in_use_bytes: u64,
    heap_released_bytes: u64,
    gc_pause_usec_100: u64,
    gc_pause_usec_99: u64,
    gc_pause_usec_95: u64,
    next_gc_bytes: u64,
    gc_total_runs: u32,
    /// Wasq's addition.
    resident_bytes: u64,
}

impl MemoryStats {
    fn now() -> MemoryStats {
        let heap = crate::allocator::heap().unwrap_or_default();
        MemoryStats {
            heap_idle_bytes: heap.idle_bytes,
            heap_in_use_bytes: heap.in_use_bytes,
            resident_bytes: crate::metrics::resident_bytes().unwrap_or(0),
            ..MemoryStats::default()
        }
    }

    /// nsqd's text lines, in its order and layout.
    fn render(&self, w: &mut String) {
        let _ = writeln!(w, "\nMemory:");
        for (name, value) in [
            ("heap_objects", self.heap_objects),
            ("heap_idle_bytes", self.heap_idle_bytes),
            ("heap_in_use_bytes", self.heap_in_use_bytes),
            ("heap_released_bytes", self.heap_released_bytes),
            ("gc_pause_usec_100", self.gc_pause_usec_100),
            ("gc_pause_usec_99", self.gc_pause_usec_99),
            ("gc_pause_usec_95", self.gc_pause_usec_95),
            ("next_gc_bytes", self.next_gc_bytes),
            ("gc_total_runs", u64::from(self.gc_total_runs)),
        ] {
            let _ = writeln!(w, "   {name:<25}\t{value}");
        }
    }
}

pub async fn stats(State(state): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult {
    let query = Query::parse(raw.as_deref());
    let topic = query.get("topic").filter(|t| !t.is_empty());
    let channel = query.get("channel").filter(|c| !c.is_empty());
    let include_clients = parse_bool_param(query.get("include_clients")).unwrap_or(true);
    let memory = parse_bool_param(query.get("include_mem"))
        .unwrap_or(true)
        .then(MemoryStats::now);
    let broker = &state.broker;
    let stats = broker.stats(topic, channel, include_clients);

    if query.get("format") != Some("json") {
        let mut text = render_text(
            &stats,
            memory.as_ref(),
            broker.start_time(),
            broker.uptime(),
        );
        render_plugins(&mut text, &state.plugins.status());
        return Ok(ApiResponse::Text(text));
    }
    let topic_missing = topic.is_some() && stats.topics.is_empty();
    let document = StatsDocument {
        version: NSQ_VERSION,
        health: "OK",
        start_time: broker.start_time(),
        topics: (!topic_missing).then_some(stats.topics),
        memory,
        producers: (!stats.producers.is_empty()).then_some(stats.producers),
        plugins: state.plugins.status(),
        restore: broker.restore_progress(),
    };
    let json = serde_json::to_vec(&document).expect("stats serialize");
    Ok(ApiResponse::JsonBytes(json))
}

/// nsqd's text layout (`printStats`), column widths included.
fn render_text(
    stats: &Stats,
    memory: Option<&MemoryStats>,
    start_time: i64,
    uptime: std::time::Duration,
) -> String {
    let mut w = String::new();
    let started = chrono_like_rfc3339(start_time);
    let _ = writeln!(w, "nsqd v{NSQ_VERSION} (built w/wasq v{WASQ_VERSION})");
    let _ = writeln!(w, "start_time {started}");
    let _ = writeln!(w, "uptime {}", go_duration(uptime));
    let _ = writeln!(w, "\nHealth: OK");
    if let Some(memory) = memory {
        memory.render(&mut w);
    }
    if stats.topics.is_empty() {
        let _ = writeln!(w, "\nTopics: None");
    } else {
        let _ = write!(w, "\nTopics:");
    }
    for t in &stats.topics {
        let prefix = if t.paused { "*P " } else { "   " };
        let _ = writeln!(
            w,
            "\n{prefix}[{:<15}] depth: {:<5} be-depth: {:<5} msgs: {:<8} e2e%: {}",
            t.topic_name,
            t.depth,
            t.backend_depth,
            t.message_count,
            t.e2e_processing_latency.human()
        );
        for c in &t.channels {
            let prefix = if c.paused { "   *P " } else { "      " };
            let _ = writeln!(
                w,
                "{prefix}[{:<25}] depth: {:<5} be-depth: {:<5} inflt: {:<4} def: {:<4} re-q: {:<5} timeout: {:<5} msgs: {:<8} e2e%: {}",
                c.channel_name,
                c.depth,
                c.backend_depth,
                c.in_flight_count,
                c.deferred_count,
                c.requeue_count,
                c.timeout_count,
                c.message_count,
                c.e2e_processing_latency.human()
            );
            for client in &c.clients {
                let _ = writeln!(w, "        {}", client_line(client));
            }
        }
    }
    if stats.producers.is_empty() {
        let _ = writeln!(w, "\nProducers: None");
    } else {
        let _ = writeln!(w, "\nProducers:");
        for p in &stats.producers {
            let _ = writeln!(w, "   {}", client_line(p));
        }
    }
    w
}

/// Wasq's addition to the text format: one line per plugin.
fn render_plugins(w: &mut String, plugins: &[PluginStatus]) {
    if plugins.is_empty() {
        return;
    }
    let _ = writeln!(w, "\nPlugins:");
    for p in plugins {
        let c = &p.counters;
        let _ = writeln!(
            w,
            "   [{:<15}] {:<7} {}/{} instances: {} handled: {} fin: {} re-q: {} dead: {} traps: {} timeouts: {} p50: {}us p99: {}us",
            p.name,
            p.state,
            p.topic.as_deref().unwrap_or("-"),
            p.channel.as_deref().unwrap_or("-"),
            p.instances,
            c.handled,
            c.finished,
            c.requeued,
            c.dead_lettered,
            c.traps,
            c.timeouts,
            c.handler_time_us_p50,
            c.handler_time_us_p99
        );
        if let Some(error) = &p.last_error {
            let _ = writeln!(w, "      last error: {error}");
        }
    }
}

/// nsqd's `ClientV2Stats.String()`.
fn client_line(s: &ClientStats) -> String {
    let port = s.remote_address.rsplit(':').next().unwrap_or("");
    let id = format!("{}:{} {}", s.hostname, port, s.user_agent);
    let connected = go_duration(std::time::Duration::from_secs(
        (crate::broker::unix_now() - s.connect_ts).max(0) as u64,
    ));
    if !s.pub_counts.is_empty() {
        let total: u64 = s.pub_counts.iter().map(|p| p.count).sum();
        let topics: Vec<String> = s
            .pub_counts
            .iter()
            .map(|p| format!("{}={}", p.topic, p.count))
            .collect();
        return format!(
            "[{} {:<21}] msgs: {:<8} topics: {} connected: {connected}",
            s.version,
            id,
            total,
            topics.join(",")
        );
    }
    format!(
        "[{} {:<21}] state: {} inflt: {:<4} rdy: {:<4} fin: {:<8} re-q: {:<8} msgs: {:<8} connected: {connected}",
        s.version,
        id,
        s.state,
        s.in_flight_count,
        s.ready_count,
        s.finish_count,
        s.requeue_count,
        s.message_count
    )
}

/// Formats Unix seconds as RFC 3339 in UTC (`2026-11-27T10:46:28Z`).
fn chrono_like_rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_dates() {
        assert_eq!(chrono_like_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(chrono_like_rfc3339(1_795_776_388), "2026-11-27T10:46:28Z");
        assert_eq!(chrono_like_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
