//! Pushing stats to a statsd daemon as nsqd does (`--statsd-address`).
//!
//! Every `--statsd-interval`, counters go out as their change since the last
//! push (`|c`) and levels as gauges (`|g`), under nsqd's names
//! (`nsq.HOST_4151.topic.T.channel.C.depth`), so dashboards built for nsqd
//! work unchanged. Wasq adds its plugins (`plugin.NAME.handled`, …) and, with
//! `--statsd-mem-stats`, the process's resident memory in place of Go's heap
//! figures.
//!
//! Lines are packed into UDP packets of at most `--statsd-udp-packet-size`
//! bytes without splitting a line, and, as nsqd, the packets are spread over
//! the interval less a second, so the daemon sees no burst from a broker
//! with thousands of channels. A statsd address that does not resolve is
//! logged and tried again next interval; the change since the last push
//! that did go out is sent then.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::broker::latency::LatencyStats;
use crate::broker::{Broker, Stats};
use crate::plugins::{PluginHost, PluginStatus};

/// What `--statsd-*` asked for, with the prefix's `%s` already replaced.
#[derive(Debug, Clone)]
pub struct StatsdSettings {
    pub address: String,
    pub prefix: String,
    pub interval: Duration,
    pub mem_stats: bool,
    pub packet_size: usize,
    pub exclude_ephemeral: bool,
}

impl StatsdSettings {
    /// The settings, if `--statsd-address` is given.
    pub fn from_broker(broker: &Broker) -> Option<StatsdSettings> {
        let options = &broker.options;
        let address = options.statsd_address.clone().filter(|a| !a.is_empty())?;
        Some(StatsdSettings {
            address,
            prefix: StatsdSettings::expanded_prefix(broker),
            interval: options.statsd_interval,
            mem_stats: options.statsd_mem_stats,
            packet_size: options.statsd_udp_packet_size as usize,
            exclude_ephemeral: options.statsd_exclude_ephemeral,
        })
    }

    /// `--statsd-prefix` as every key starts with it: `%s` is the broadcast
    /// address and HTTP port with `.` and `:` as `_`, as nsqd.
    pub fn expanded_prefix(broker: &Broker) -> String {
        let options = &broker.options;
        let http_port =
            options.broadcast_port(options.broadcast_http_port, broker.listen_addresses().http);
        let host = format!("{}:{http_port}", options.broadcast_address());
        expand_prefix(&options.statsd_prefix, &host)
    }
}

/// nsqd's prefix rule: `%s` becomes the host key, and a non-empty prefix
/// ends with a dot.
fn expand_prefix(prefix: &str, host: &str) -> String {
    if prefix.is_empty() {
        return String::new();
    }
    let host_key = host.replace(['.', ':'], "_");
    let mut expanded = prefix.replace("%s", &host_key);
    if !expanded.ends_with('.') {
        expanded.push('.');
    }
    expanded
}

/// Starts pushing; the task ends when `shutdown` is cancelled, after sending
/// what it was spreading without further pauses.
pub fn spawn(
    settings: StatsdSettings,
    broker: Arc<Broker>,
    plugins: Arc<PluginHost>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut previous = Previous::default();
        let start = tokio::time::Instant::now() + settings.interval;
        let mut ticker = tokio::time::interval_at(start, settings.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            let socket = match connect(&settings.address).await {
                Ok(socket) => socket,
                Err(e) => {
                    tracing::error!(
                        "STATSD: failed to create UDP socket to statsd({}): {e}",
                        settings.address
                    );
                    continue;
                }
            };
            tracing::info!("STATSD: pushing stats to {}", settings.address);
            let mut lines = Lines::new(&settings.prefix);
            lines.broker(
                &broker.stats(None, None, false),
                &mut previous,
                settings.exclude_ephemeral,
            );
            lines.plugins(&plugins.status(), &mut previous);
            if settings.mem_stats
                && let Some(bytes) = crate::metrics::resident_bytes()
            {
                lines.gauge("mem.resident_bytes", bytes as i64);
            }
            let packets = pack(&lines.text, settings.packet_size);
            let spread = settings.interval.saturating_sub(Duration::from_secs(1));
            send_spread(&socket, &packets, spread, &shutdown).await;
        }
        tracing::info!("STATSD: closing");
    })
}

/// A UDP socket connected to the statsd daemon (`:8125` is this host).
async fn connect(address: &str) -> std::io::Result<UdpSocket> {
    let address = if address.starts_with(':') {
        format!("127.0.0.1{address}")
    } else {
        address.to_string()
    };
    let target: SocketAddr = tokio::net::lookup_host(&address)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other("the address resolves to nothing"))?;
    let local: SocketAddr = if target.is_ipv6() {
        "[::]:0".parse().expect("literal address")
    } else {
        "0.0.0.0:0".parse().expect("literal address")
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(target).await?;
    Ok(socket)
}

/// Sends the packets evenly over `spread`; on shutdown, the rest at once.
async fn send_spread(
    socket: &UdpSocket,
    packets: &[Vec<u8>],
    spread: Duration,
    shutdown: &CancellationToken,
) {
    let pause = spread / packets.len().max(1) as u32;
    for (i, packet) in packets.iter().enumerate() {
        if let Err(e) = socket.send(packet).await {
            // A statsd daemon that is down makes the kernel report the
            // previous packet refused; the next interval tries again.
            tracing::debug!("STATSD: send failed: {e}");
        }
        let last = i + 1 == packets.len();
        if !last && !pause.is_zero() && !shutdown.is_cancelled() {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// Splits newline-ended lines into packets of at most `size` bytes, never
/// splitting a line (a longer line goes alone), as nsqd's boundary writer.
fn pack(text: &str, size: usize) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    let mut current: Vec<u8> = Vec::with_capacity(size);
    for line in text.split_inclusive('\n') {
        if !current.is_empty() && current.len() + line.len() > size {
            packets.push(std::mem::replace(&mut current, Vec::with_capacity(size)));
        }
        current.extend_from_slice(line.as_bytes());
    }
    if !current.is_empty() {
        packets.push(current);
    }
    packets
}

/// The counters of the last push, to send their change.
#[derive(Debug, Default)]
struct Previous {
    counters: HashMap<String, u64>,
}

impl Previous {
    /// The change of the counter `stat` since the last push. A counter that
    /// went down was reset (its topic deleted and made again): all of it is
    /// new.
    fn change(&mut self, stat: &str, now: u64) -> i64 {
        let before = self.counters.insert(stat.to_string(), now).unwrap_or(0);
        if now >= before {
            (now - before) as i64
        } else {
            now as i64
        }
    }
}

/// statsd lines under one prefix.
struct Lines<'p> {
    prefix: &'p str,
    text: String,
}

impl<'p> Lines<'p> {
    fn new(prefix: &'p str) -> Lines<'p> {
        Lines {
            prefix,
            text: String::new(),
        }
    }

    fn gauge(&mut self, stat: &str, value: i64) {
        let _ = writeln!(self.text, "{}{stat}:{value}|g", self.prefix);
    }

    fn count(&mut self, stat: &str, change: i64) {
        let _ = writeln!(self.text, "{}{stat}:{change}|c", self.prefix);
    }

    /// A counter, sent as its change since the last push.
    fn counter(&mut self, previous: &mut Previous, stat: &str, now: u64) {
        let change = previous.change(stat, now);
        self.count(stat, change);
    }

    /// nsqd's `e2e_processing_latency_99` gauges (nanoseconds).
    fn latency(&mut self, base: &str, latency: &LatencyStats) {
        for p in latency.percentiles.iter().flatten() {
            let stat = format!("{base}.e2e_processing_latency_{:.0}", p.quantile * 100.0);
            self.gauge(&stat, p.value as i64);
        }
    }

    /// Topics and channels, with nsqd's names and kinds.
    fn broker(&mut self, stats: &Stats, previous: &mut Previous, exclude_ephemeral: bool) {
        let ephemeral = |name: &str| exclude_ephemeral && name.ends_with("#ephemeral");
        for topic in stats.topics.iter().filter(|t| !ephemeral(&t.topic_name)) {
            let base = format!("topic.{}", topic.topic_name);
            self.counter(
                previous,
                &format!("{base}.message_count"),
                topic.message_count,
            );
            self.counter(
                previous,
                &format!("{base}.message_bytes"),
                topic.message_bytes,
            );
            self.gauge(&format!("{base}.depth"), topic.depth);
            self.gauge(&format!("{base}.backend_depth"), topic.backend_depth);
            self.latency(&base, &topic.e2e_processing_latency);
            for channel in topic
                .channels
                .iter()
                .filter(|c| !ephemeral(&c.channel_name))
            {
                let base = format!("{base}.channel.{}", channel.channel_name);
                self.counter(
                    previous,
                    &format!("{base}.message_count"),
                    channel.message_count,
                );
                self.gauge(&format!("{base}.depth"), channel.depth);
                self.gauge(&format!("{base}.backend_depth"), channel.backend_depth);
                self.gauge(
                    &format!("{base}.in_flight_count"),
                    channel.in_flight_count as i64,
                );
                self.gauge(
                    &format!("{base}.deferred_count"),
                    channel.deferred_count as i64,
                );
                self.counter(
                    previous,
                    &format!("{base}.requeue_count"),
                    channel.requeue_count,
                );
                self.counter(
                    previous,
                    &format!("{base}.timeout_count"),
                    channel.timeout_count,
                );
                self.gauge(&format!("{base}.clients"), channel.client_count as i64);
                self.latency(&base, &channel.e2e_processing_latency);
            }
        }
    }

    /// Wasq's plugins: what they did (counters) and how they are (gauges).
    fn plugins(&mut self, plugins: &[PluginStatus], previous: &mut Previous) {
        for plugin in plugins {
            let base = format!("plugin.{}", plugin.name);
            let c = &plugin.counters;
            for (name, value) in [
                ("handled", c.handled),
                ("finished", c.finished),
                ("requeued", c.requeued),
                ("dead_lettered", c.dead_lettered),
                ("traps", c.traps),
                ("timeouts", c.timeouts),
                ("published", c.published),
                ("publish_refused", c.publish_refused),
                ("reloads", plugin.reloads.reloaded),
                ("reload_failures", plugin.reloads.failed),
            ] {
                self.counter(previous, &format!("{base}.{name}"), value);
            }
            let outbound = &c.outbound;
            for (class, n) in &outbound.responses {
                self.counter(previous, &format!("{base}.outbound.{class}"), *n);
            }
            for (kind, n) in &outbound.errors {
                self.counter(previous, &format!("{base}.outbound.error.{kind}"), *n);
            }
            self.gauge(
                &format!("{base}.outbound.latency_us_99"),
                outbound.latency_us_p99 as i64,
            );
            if let Some(state) = &plugin.state_store {
                self.gauge(&format!("{base}.state.keys"), state.keys as i64);
                self.gauge(&format!("{base}.state.bytes"), state.bytes as i64);
                let counters = &state.counters;
                for (name, value) in [
                    ("commits", counters.committed),
                    ("conflicts", counters.conflicts),
                    ("replayed", counters.replayed),
                ] {
                    self.counter(previous, &format!("{base}.state.{name}"), value);
                }
                for (kind, n) in &counters.refused {
                    self.counter(previous, &format!("{base}.state.refused.{kind}"), *n);
                }
            }
            self.gauge(&format!("{base}.instances"), plugin.instances as i64);
            self.gauge(
                &format!("{base}.backoff_level"),
                plugin.backoff_level as i64,
            );
            self.gauge(
                &format!("{base}.handler_time_us_50"),
                c.handler_time_us_p50 as i64,
            );
            self.gauge(
                &format!("{base}.handler_time_us_99"),
                c.handler_time_us_p99 as i64,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_names_the_host_as_nsqd_does() {
        assert_eq!(
            expand_prefix("nsq.%s", "node-1.example:4151"),
            "nsq.node-1_example_4151."
        );
        assert_eq!(expand_prefix("wasq.", "h:1"), "wasq.");
        assert_eq!(expand_prefix("", "h:1"), "");
    }

    #[test]
    fn packets_hold_whole_lines_up_to_the_size() {
        let text = "a:1|c\nbb:2|g\nccc:3|c\n";
        let packets = pack(text, 13);
        assert_eq!(
            packets,
            [b"a:1|c\nbb:2|g\n".to_vec(), b"ccc:3|c\n".to_vec()]
        );
        // A line longer than a packet goes alone rather than being cut.
        let packets = pack("long-line:1|c\nx:1|c\n", 4);
        assert_eq!(packets, [b"long-line:1|c\n".to_vec(), b"x:1|c\n".to_vec()]);
        assert!(pack("", 508).is_empty());
    }

    #[test]
    fn counters_send_their_change_and_a_reset_counts_whole() {
        let mut previous = Previous::default();
        assert_eq!(previous.change("t.message_count", 10), 10);
        assert_eq!(previous.change("t.message_count", 25), 15);
        assert_eq!(previous.change("t.message_count", 25), 0);
        assert_eq!(previous.change("t.message_count", 4), 4);
    }
}
