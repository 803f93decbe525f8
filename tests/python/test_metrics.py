"""GET /metrics read by the Prometheus project's own Python client, whose
OpenMetrics parser is strict: a malformed line, a counter without `_total`,
a histogram without `+Inf` or a missing `# EOF` fails the parse."""

import json
import os
import tempfile
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families

from conftest import Wasqd, eventually

FIN_PLUGIN = """(module
  (memory (export "memory") 1)
  (func (export "wasq_abi_version") (result i32) (i32.const 1))
  (func (export "wasq_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "wasq_handle") (param i32 i32) (result i64) (i64.const 0)))
"""


def get(wasqd, path):
    with urllib.request.urlopen(f"http://{wasqd.http}{path}") as response:
        return response.headers.get("Content-Type"), response.read().decode()


def plugin(wasqd, name):
    _, body = get(wasqd, "/plugins")
    return next((p for p in json.loads(body)["plugins"] if p["name"] == name), None)


def test_metrics_parse_as_openmetrics_and_agree_with_stats():
    plugins = tempfile.TemporaryDirectory(prefix="wasq-metrics-")
    with open(os.path.join(plugins.name, "fin.wat"), "w") as f:
        f.write(FIN_PLUGIN)
    with open(os.path.join(plugins.name, "fin.toml"), "w") as f:
        f.write('topic = "metered"\nchannel = "plugin"\n')
    wasqd = Wasqd("--plugins-dir", plugins.name, "--e2e-processing-latency-percentile", "0.99,0.5")
    try:
        assert eventually(lambda: (plugin(wasqd, "fin") or {}).get("state") == "running", 60)
        urllib.request.urlopen(f"http://{wasqd.http}/channel/create?topic=metered&channel=held", data=b"")
        body = b"\n".join([b"one", b"two", b"three", b"four", b"five"])
        urllib.request.urlopen(f"http://{wasqd.http}/mpub?topic=metered", data=body)
        assert eventually(lambda: plugin(wasqd, "fin")["counters"]["finished"] == 5, 30)

        content_type, text = get(wasqd, "/metrics")
        assert content_type.startswith("application/openmetrics-text")
        families = {f.name: f for f in text_string_to_metric_families(text)}

        def value(family, **labels):
            samples = [
                s for s in families[family].samples
                if all(s.labels.get(k) == v for k, v in labels.items())
                and not s.name.endswith(("_created", "_bucket", "_sum", "_count"))
            ]
            assert len(samples) == 1, (family, labels, families[family].samples)
            return samples[0].value

        assert families["wasq_topic_messages"].type == "counter"
        assert value("wasq_topic_messages", topic="metered") == 5
        assert value("wasq_topic_message_bytes", topic="metered") == len(b"onetwothreefourfive")
        assert families["wasq_topic_message_bytes"].unit == "bytes"
        assert value("wasq_channel_depth", topic="metered", channel="held") == 5
        assert value("wasq_channel_depth", topic="metered", channel="plugin") == 0
        assert value("wasq_channel_messages", topic="metered", channel="plugin") == 5
        assert value("wasq_channel_clients", topic="metered", channel="plugin") == 1
        assert value("wasq_channel_in_flight", topic="metered", channel="held") == 0
        assert value("wasq_plugin_handled_messages", plugin="fin") == 5
        assert value("wasq_plugin_finished_messages", plugin="fin") == 5
        assert value("wasq_plugin_traps", plugin="fin") == 0
        assert value("wasq_plugin_reloads", plugin="fin", result="loaded") == 1
        assert value("wasq_plugin_state", plugin="fin", state="running") == 1
        assert value("wasq_plugin_state", plugin="fin", state="failed") == 0
        info = families["wasq_plugin"]
        assert info.type == "info"
        assert info.samples[0].labels["topic"] == "metered"
        assert info.samples[0].labels["kind"] == "core-module"

        handler = families["wasq_plugin_handler_duration_seconds"]
        assert handler.type == "histogram" and handler.unit == "seconds"
        count = next(s.value for s in handler.samples if s.name.endswith("_count"))
        buckets = [s for s in handler.samples if s.name.endswith("_bucket")]
        assert count == 5
        assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == 5
        assert all(a.value <= b.value for a, b in zip(buckets, buckets[1:]))

        latency = families["wasq_channel_e2e_processing_latency_seconds"]
        quantiles = {s.labels["quantile"] for s in latency.samples if s.labels["channel"] == "plugin"}
        assert quantiles == {"0.99", "0.5"}
        assert value("process_resident_memory_bytes") > 1 << 20
    finally:
        wasqd.stop()
        plugins.cleanup()
