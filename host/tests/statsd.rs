//! statsd push as nsqd does it: nsqd's metric names and kinds under the
//! host prefix, counters as changes, whole lines per UDP packet, ephemeral
//! channels left out on request, plus Wasq's plugin metrics. A UDP socket
//! in the test plays the statsd daemon.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use wasq_testkit::PluginDir;

/// What the fake statsd daemon has received so far.
#[derive(Default)]
struct Received {
    /// Sum of every `|c` line per name.
    counts: HashMap<String, i64>,
    /// The last `|g` value per name.
    gauges: HashMap<String, i64>,
    datagrams: Vec<String>,
}

impl Received {
    /// Whether the last datagram ended a push (memory is its last line).
    fn push_complete(&self) -> bool {
        self.datagrams
            .last()
            .is_some_and(|d| d.contains("mem.resident_bytes:"))
    }

    /// Reads datagrams until, at the end of a push, `done` holds.
    fn until(&mut self, socket: &UdpSocket, limit: Duration, done: impl Fn(&Received) -> bool) {
        let deadline = Instant::now() + limit;
        let mut buffer = [0u8; 65536];
        while !(self.push_complete() && done(self)) {
            assert!(
                Instant::now() < deadline,
                "statsd never got there: {:?}",
                self.datagrams
            );
            let Ok(n) = socket.recv(&mut buffer) else {
                continue;
            };
            let datagram = String::from_utf8(buffer[..n].to_vec()).expect("utf-8 datagram");
            for line in datagram.lines() {
                let (name, rest) = line.split_once(':').expect("name:value|kind");
                let (value, kind) = rest.split_once('|').expect("value|kind");
                let value: i64 = value.parse().expect("integer value");
                match kind {
                    "c" => *self.counts.entry(name.to_string()).or_default() += value,
                    "g" => {
                        self.gauges.insert(name.to_string(), value);
                    }
                    other => panic!("unexpected kind {other} in {line}"),
                }
            }
            self.datagrams.push(datagram);
        }
    }
}

#[test]
fn wasqd_pushes_nsqd_s_metrics_and_its_plugins_to_statsd() {
    let statsd = UdpSocket::bind("127.0.0.1:0").unwrap();
    statsd
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let address = statsd.local_addr().unwrap().to_string();

    let plugins = PluginDir::default();
    // Counts its messages in its state, under the key "hits".
    let tally = r#"(module
  (import "wasq" "state_increment" (func $increment (param i32 i32 i64 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hits")
  (func (export "wasq_abi_version") (result i32) (i32.const 1))
  (func (export "wasq_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "wasq_handle") (param i32 i32) (result i64)
    (drop (call $increment (i32.const 16) (i32.const 4) (i64.const 1) (i32.const 32)))
    (i64.const 0)))"#;
    plugins.wat(
        "counter",
        tally,
        "topic = \"metered\"\nchannel = \"plugin\"\nstate = true\n",
    );
    let wasqd = plugins.start_with(&[
        "--statsd-address",
        &address,
        "--statsd-interval=1s",
        "--statsd-udp-packet-size=200",
        "--statsd-exclude-ephemeral",
        "--broadcast-address=stats.example",
    ]);
    let prefix = format!("nsq.stats_example_{}.", wasqd.http.port());
    assert_eq!(
        wasqd.http().get_json("/config/statsd_prefix").1,
        prefix.as_str(),
        "/config shows the prefix as pushed"
    );

    let _ephemeral = wasqd.consumer("metered", "gone#ephemeral", 0);
    let _held = wasqd.consumer("metered", "held", 0);
    let mut producer = wasqd.raw();
    producer.mpub("metered", &["a", "b", "c", "d", "e", "f", "g"]);

    let topic = format!("{prefix}topic.metered");
    let mut received = Received::default();
    received.until(&statsd, Duration::from_secs(60), |r| {
        r.counts.get(&format!("{topic}.message_count")) == Some(&7)
            && r.counts.get(&format!("{prefix}plugin.counter.finished")) == Some(&7)
            && r.counts
                .get(&format!("{prefix}plugin.counter.state.commits"))
                == Some(&7)
            && r.gauges.get(&format!("{topic}.channel.held.depth")) == Some(&7)
    });

    assert_eq!(received.counts[&format!("{topic}.message_bytes")], 7);
    assert_eq!(received.gauges[&format!("{topic}.depth")], 0);
    assert!(
        received
            .gauges
            .contains_key(&format!("{topic}.backend_depth"))
    );
    let held = format!("{topic}.channel.held");
    assert_eq!(received.counts[&format!("{held}.message_count")], 7);
    for gauge in [
        "in_flight_count",
        "deferred_count",
        "backend_depth",
        "clients",
    ] {
        assert!(
            received.gauges.contains_key(&format!("{held}.{gauge}")),
            "{gauge}"
        );
    }
    for counter in ["requeue_count", "timeout_count"] {
        assert_eq!(
            received.counts[&format!("{held}.{counter}")],
            0,
            "{counter}"
        );
    }
    assert_eq!(received.gauges[&format!("{held}.clients")], 1);
    let plugin = format!("{prefix}plugin.counter");
    assert_eq!(received.counts[&format!("{plugin}.handled")], 7);
    assert_eq!(received.counts[&format!("{plugin}.traps")], 0);
    assert_eq!(received.gauges[&format!("{plugin}.instances")], 1);
    // Outbound HTTP, by status class and error kind (none made here).
    assert_eq!(received.counts[&format!("{plugin}.outbound.2xx")], 0);
    assert_eq!(
        received.counts[&format!("{plugin}.outbound.error.refused")],
        0
    );
    assert!(
        received
            .gauges
            .contains_key(&format!("{plugin}.outbound.latency_us_99"))
    );
    // Its state: one key ("hits" = "7": 5 bytes), nothing refused.
    assert_eq!(received.gauges[&format!("{plugin}.state.keys")], 1);
    assert_eq!(received.gauges[&format!("{plugin}.state.bytes")], 5);
    assert_eq!(
        received.counts[&format!("{plugin}.state.refused.over_limit")],
        0
    );
    assert!(received.gauges[&format!("{prefix}mem.resident_bytes")] > 1 << 20);

    let all = received.datagrams.concat();
    assert!(
        !all.contains("#ephemeral"),
        "ephemeral channels are left out"
    );
    for datagram in &received.datagrams {
        assert!(
            datagram.len() <= 200,
            "{} bytes: {datagram}",
            datagram.len()
        );
        assert!(datagram.ends_with('\n'), "whole lines only: {datagram}");
        assert!(
            datagram.lines().all(|line| line.starts_with(&prefix)),
            "{datagram}"
        );
    }
}
