//! GET /metrics: topics, channels, plugins and the process in the
//! OpenMetrics text format that Prometheus scrapes, written by
//! `prometheus-client`.
//!
//! Everything is read at scrape time from the same snapshot /stats and
//! /plugins serve, so the numbers agree with them; nothing is kept twice.
//! Names follow Prometheus conventions: a `wasq_` prefix, base units
//! (`_seconds`, `_bytes`), `_total` on counters, the topic, channel and
//! plugin as labels.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::broker::Stats;
use crate::broker::channel::ChannelStats;
use crate::broker::latency::LatencyStats;
use crate::plugins::stats::HandlerTimes;
use crate::plugins::status::StateStoreStatus;
use crate::plugins::{PluginState, PluginStatus};

/// The media type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Everything one scrape reports.
#[derive(Debug)]
pub struct Snapshot {
    pub stats: Stats,
    pub plugins: Vec<PluginStatus>,
    /// Unix seconds.
    pub start_time: i64,
    pub resident_bytes: Option<u64>,
}

/// The exposition of `snapshot`, ending with `# EOF`.
pub fn render(snapshot: Snapshot) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snapshot));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .expect("writing to a String cannot fail");
    text
}

/// A metric read off each item: name, help, how to read it.
type Metric<T, V> = (&'static str, &'static str, fn(&T) -> V);

/// A sample's labels (a scrape is rare enough to own them).
type Labels = Vec<(&'static str, String)>;

/// Writes the families of one scrape through the encoder.
struct Writer<'a> {
    encoder: DescriptorEncoder<'a>,
}

impl Writer<'_> {
    /// A family's descriptor; its samples are written to what it returns.
    fn family<'s>(
        &'s mut self,
        name: &'s str,
        help: &str,
        unit: Option<&'s Unit>,
        kind: MetricType,
    ) -> Result<MetricEncoder<'s>, std::fmt::Error> {
        self.encoder.encode_descriptor(name, help, unit, kind)
    }

    /// A gauge family with one sample per `(labels, value)`.
    fn gauges(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        samples: impl IntoIterator<Item = (Labels, f64)>,
    ) -> std::fmt::Result {
        let mut family = self.family(name, help, unit, MetricType::Gauge)?;
        for (labels, value) in samples {
            if labels.is_empty() {
                // Not `name{}`: a family without labels has bare samples.
                family.encode_gauge(&value)?;
            } else {
                family.encode_family(&labels)?.encode_gauge(&value)?;
            }
        }
        Ok(())
    }

    /// A counter family (`_total`) with one sample per `(labels, value)`.
    fn counters(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        samples: impl IntoIterator<Item = (Labels, u64)>,
    ) -> std::fmt::Result {
        let mut family = self.family(name, help, unit, MetricType::Counter)?;
        for (labels, value) in samples {
            family
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
        }
        Ok(())
    }

    /// A histogram family in seconds with one sample per `(labels, times)`.
    fn histograms<'t>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels, &'t HandlerTimes)>,
    ) -> std::fmt::Result {
        let mut family = self.family(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
        for (labels, times) in samples {
            family
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(
                    times.sum_seconds,
                    times.count,
                    &times.buckets,
                    None,
                )?;
        }
        Ok(())
    }
}

impl Collector for Snapshot {
    fn encode(&self, encoder: DescriptorEncoder) -> std::fmt::Result {
        let mut w = Writer { encoder };
        self.topics(&mut w)?;
        self.channels(&mut w)?;
        self.plugin_metrics(&mut w)?;
        self.process(&mut w)
    }
}

fn flag(on: bool) -> f64 {
    if on { 1.0 } else { 0.0 }
}

impl Snapshot {
    fn topics(&self, w: &mut Writer) -> std::fmt::Result {
        let topics = &self.stats.topics;
        let labels = |name: &str| -> Labels { vec![("topic", name.to_string())] };
        w.gauges(
            "wasq_topic_depth",
            "Messages queued in the topic, in memory and on disk (nsqd's depth).",
            None,
            topics
                .iter()
                .map(|t| (labels(&t.topic_name), t.depth as f64)),
        )?;
        w.gauges(
            "wasq_topic_backend_depth",
            "Messages of the topic's queue on disk.",
            None,
            topics
                .iter()
                .map(|t| (labels(&t.topic_name), t.backend_depth as f64)),
        )?;
        w.counters(
            "wasq_topic_messages",
            "Messages published to the topic.",
            None,
            topics
                .iter()
                .map(|t| (labels(&t.topic_name), t.message_count)),
        )?;
        w.counters(
            "wasq_topic_message",
            "Body bytes published to the topic.",
            Some(&Unit::Bytes),
            topics
                .iter()
                .map(|t| (labels(&t.topic_name), t.message_bytes)),
        )?;
        w.gauges(
            "wasq_topic_paused",
            "1 while the topic is paused.",
            None,
            topics
                .iter()
                .map(|t| (labels(&t.topic_name), flag(t.paused))),
        )?;
        let quantiles = topics
            .iter()
            .flat_map(|t| quantile_samples(labels(&t.topic_name), &t.e2e_processing_latency));
        w.gauges(
            "wasq_topic_e2e_processing_latency",
            "Publish-to-FIN time of the topic's messages at each --e2e-processing-latency-percentile, over the window.",
            Some(&Unit::Seconds),
            quantiles,
        )
    }

    fn channels(&self, w: &mut Writer) -> std::fmt::Result {
        let channels: Vec<(&str, &ChannelStats)> = self
            .stats
            .topics
            .iter()
            .flat_map(|t| t.channels.iter().map(move |c| (t.topic_name.as_str(), c)))
            .collect();
        let labels = |topic: &str, c: &ChannelStats| -> Labels {
            vec![
                ("topic", topic.to_string()),
                ("channel", c.channel_name.clone()),
            ]
        };
        let gauges: [Metric<ChannelStats, f64>; 6] = [
            (
                "wasq_channel_depth",
                "Messages queued in the channel, in memory and on disk, not in flight or deferred.",
                |c| c.depth as f64,
            ),
            (
                "wasq_channel_backend_depth",
                "Messages of the channel's queue on disk.",
                |c| c.backend_depth as f64,
            ),
            (
                "wasq_channel_in_flight",
                "Messages sent to a consumer and not yet finished, requeued or timed out.",
                |c| c.in_flight_count as f64,
            ),
            (
                "wasq_channel_deferred",
                "Messages requeued or published with a delay, waiting for it.",
                |c| c.deferred_count as f64,
            ),
            (
                "wasq_channel_clients",
                "Consumers subscribed to the channel (TCP clients and plugins).",
                |c| c.client_count as f64,
            ),
            (
                "wasq_channel_paused",
                "1 while the channel is paused.",
                |c| flag(c.paused),
            ),
        ];
        for (name, help, value) in gauges {
            w.gauges(
                name,
                help,
                None,
                channels.iter().map(|(t, c)| (labels(t, c), value(c))),
            )?;
        }
        let counters: [Metric<ChannelStats, u64>; 3] = [
            (
                "wasq_channel_messages",
                "Messages the channel received from its topic.",
                |c| c.message_count,
            ),
            (
                "wasq_channel_requeues",
                "Messages requeued (REQ, or a plugin's retry).",
                |c| c.requeue_count,
            ),
            (
                "wasq_channel_timeouts",
                "In-flight messages that timed out and were queued again.",
                |c| c.timeout_count,
            ),
        ];
        for (name, help, value) in counters {
            w.counters(
                name,
                help,
                None,
                channels.iter().map(|(t, c)| (labels(t, c), value(c))),
            )?;
        }
        let quantiles = channels
            .iter()
            .flat_map(|(t, c)| quantile_samples(labels(t, c), &c.e2e_processing_latency));
        w.gauges(
            "wasq_channel_e2e_processing_latency",
            "Publish-to-FIN time of the channel's messages at each --e2e-processing-latency-percentile, over the window.",
            Some(&Unit::Seconds),
            quantiles,
        )
    }

    fn plugin_metrics(&self, w: &mut Writer) -> std::fmt::Result {
        let plugins = &self.plugins;
        let by_name = |p: &PluginStatus| -> Labels { vec![("plugin", p.name.clone())] };
        {
            let mut family = w.family(
                "wasq_plugin",
                "A plugin: its subscription, guest kind, live module and the compiler of its code (baseline until a large component's optimized code takes over).",
                None,
                MetricType::Info,
            )?;
            for p in plugins {
                let info: Labels = vec![
                    ("plugin", p.name.clone()),
                    ("topic", p.topic.clone().unwrap_or_default()),
                    ("channel", p.channel.clone().unwrap_or_default()),
                    ("kind", p.kind.map(|k| k.to_string()).unwrap_or_default()),
                    ("module_hash", p.module_hash.clone().unwrap_or_default()),
                    (
                        "compiler",
                        p.load.map(|l| l.compiler.to_string()).unwrap_or_default(),
                    ),
                ];
                family.encode_info(&info)?;
            }
        }
        w.gauges(
            "wasq_plugin_state",
            "1 for the plugin's state (running, failed, removed, loading), 0 for the others.",
            None,
            plugins.iter().flat_map(|p| {
                PluginState::ALL.into_iter().map(move |state| {
                    let labels = vec![("plugin", p.name.clone()), ("state", state.to_string())];
                    (labels, flag(p.state == state))
                })
            }),
        )?;
        w.gauges(
            "wasq_plugin_instances",
            "Instances of the plugin handling messages.",
            None,
            plugins.iter().map(|p| (by_name(p), p.instances as f64)),
        )?;
        w.gauges(
            "wasq_plugin_backoff_level",
            "The plugin's backoff level (0: not backing off).",
            None,
            plugins.iter().map(|p| (by_name(p), p.backoff_level as f64)),
        )?;
        w.gauges(
            "wasq_plugin_guest_memory_peak",
            "The most linear memory one instance of the plugin has held.",
            Some(&Unit::Bytes),
            plugins
                .iter()
                .map(|p| (by_name(p), p.counters.guest_memory_peak_bytes as f64)),
        )?;
        let counters: [Metric<PluginStatus, u64>; 10] = [
            (
                "wasq_plugin_handled_messages",
                "Messages the plugin's handler was called with.",
                |p| p.counters.handled,
            ),
            (
                "wasq_plugin_batched_messages",
                "Handled messages that were handed over many to a call (wasq_handle_batch).",
                |p| p.counters.batched,
            ),
            (
                "wasq_plugin_finished_messages",
                "Messages the plugin finished.",
                |p| p.counters.finished,
            ),
            (
                "wasq_plugin_requeued_messages",
                "Messages the plugin asked to retry.",
                |p| p.counters.requeued,
            ),
            (
                "wasq_plugin_dead_letters",
                "Messages the plugin sent to its dead-letter topic.",
                |p| p.counters.dead_lettered,
            ),
            (
                "wasq_plugin_traps",
                "Handler calls that trapped (the message is retried).",
                |p| p.counters.traps,
            ),
            (
                "wasq_plugin_timeouts",
                "Handler calls stopped for running past the plugin's time limit.",
                |p| p.counters.timeouts,
            ),
            (
                "wasq_plugin_published_messages",
                "Messages the plugin published.",
                |p| p.counters.published,
            ),
            (
                "wasq_plugin_publish_refusals",
                "Publishes the host refused the plugin (topic not allowed, too big, ...).",
                |p| p.counters.publish_refused,
            ),
            (
                "wasq_plugin_recycled_instances",
                "Instances replaced because their memory kept growing.",
                |p| p.counters.recycled,
            ),
        ];
        for (name, help, value) in counters {
            w.counters(
                name,
                help,
                None,
                plugins.iter().map(|p| (by_name(p), value(p))),
            )?;
        }
        w.counters(
            "wasq_plugin_reloads",
            "Loads and reloads of the plugin by result (loaded, reloaded, removed, failed).",
            None,
            plugins.iter().flat_map(|p| {
                let r = p.reloads;
                [
                    ("loaded", r.loaded),
                    ("reloaded", r.reloaded),
                    ("removed", r.removed),
                    ("failed", r.failed),
                ]
                .into_iter()
                .map(move |(result, n)| {
                    let labels = vec![("plugin", p.name.clone()), ("result", result.to_string())];
                    (labels, n)
                })
            }),
        )?;
        w.counters(
            "wasq_plugin_outbound_responses",
            "Responses to the plugin's outbound HTTP requests, by status class.",
            None,
            by_key(plugins, "class", |p| &p.counters.outbound.responses),
        )?;
        w.counters(
            "wasq_plugin_outbound_errors",
            "Outbound HTTP requests of the plugin that got no response, by kind (refused by the allowlist, timeout, dns, connect, too_large, invalid_request, io).",
            None,
            by_key(plugins, "kind", |p| &p.counters.outbound.errors),
        )?;
        self.plugin_state(w, plugins)?;
        w.histograms(
            "wasq_plugin_outbound_duration",
            "Time the plugin's outbound HTTP requests took, answered or failed.",
            plugins
                .iter()
                .map(|p| (by_name(p), &p.counters.outbound.latency)),
        )?;
        w.histograms(
            "wasq_plugin_handler_duration",
            "Time the plugin's handler took per message.",
            plugins
                .iter()
                .map(|p| (by_name(p), &p.counters.handler_time)),
        )?;
        Ok(())
    }

    /// The key-value stores of the plugins that have one.
    fn plugin_state(&self, w: &mut Writer, plugins: &[PluginStatus]) -> std::fmt::Result {
        let by_name = |p: &PluginStatus| -> Labels { vec![("plugin", p.name.clone())] };
        let stateful = || {
            plugins
                .iter()
                .filter_map(|p| p.state_store.as_ref().map(|s| (p, s)))
        };
        w.gauges(
            "wasq_plugin_state_keys",
            "Keys in the plugin's state.",
            None,
            stateful().map(|(p, s)| (by_name(p), s.keys as f64)),
        )?;
        w.gauges(
            "wasq_plugin_state_size",
            "Bytes of the keys and values in the plugin's state.",
            Some(&Unit::Bytes),
            stateful().map(|(p, s)| (by_name(p), s.bytes as f64)),
        )?;
        let counters: [StateCounter; 3] = [
            (
                "wasq_plugin_state_commits",
                "Messages whose state writes committed with their FIN.",
                |s| s.counters.committed,
            ),
            (
                "wasq_plugin_state_conflicts",
                "Commits refused because another instance changed what the call read; the message was handled again.",
                |s| s.counters.conflicts,
            ),
            (
                "wasq_plugin_state_replayed",
                "Messages delivered again after their writes committed, finished without calling the handler.",
                |s| s.counters.replayed,
            ),
        ];
        for (name, help, value) in counters {
            w.counters(
                name,
                help,
                None,
                stateful().map(|(p, s)| (by_name(p), value(s))),
            )?;
        }
        w.counters(
            "wasq_plugin_state_refusals",
            "State operations refused to the plugin, by kind (empty_key, key_too_large, value_too_large, over_limit, not_a_number, io).",
            None,
            stateful().flat_map(|(p, s)| {
                s.counters.refused.iter().map(move |(kind, n)| {
                    (
                        vec![("plugin", p.name.clone()), ("kind", kind.clone())],
                        *n,
                    )
                })
            }),
        )
    }

    fn process(&self, w: &mut Writer) -> std::fmt::Result {
        w.gauges(
            "process_start_time",
            "When wasqd started, in Unix time.",
            Some(&Unit::Seconds),
            [(Vec::new(), self.start_time as f64)],
        )?;
        if let Some(bytes) = self.resident_bytes {
            w.gauges(
                "process_resident_memory",
                "Resident memory of the wasqd process.",
                Some(&Unit::Bytes),
                [(Vec::new(), bytes as f64)],
            )?;
        }
        Ok(())
    }
}

/// This process's resident memory, from `/proc/self/status` (Linux).
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// One sample per configured percentile, labelled with its quantile.
fn quantile_samples(labels: Labels, latency: &LatencyStats) -> Vec<(Labels, f64)> {
    latency
        .percentiles
        .iter()
        .flatten()
        .map(|p| {
            let mut labels = labels.clone();
            labels.push(("quantile", p.quantile.to_string()));
            (labels, p.value as f64 / 1e9)
        })
        .collect()
}

/// One series per plugin and key of a counter map (`class="2xx"`, …).
/// A plugin state counter's name, help and value.
type StateCounter = (&'static str, &'static str, fn(&StateStoreStatus) -> u64);

fn by_key<'a>(
    plugins: &'a [PluginStatus],
    label: &'static str,
    counts: impl Fn(&'a PluginStatus) -> &'a std::collections::BTreeMap<String, u64> + Copy + 'a,
) -> impl Iterator<Item = (Labels, u64)> + 'a {
    plugins.iter().flat_map(move |p| {
        counts(p)
            .iter()
            .map(move |(key, n)| (vec![("plugin", p.name.clone()), (label, key.clone())], *n))
    })
}
