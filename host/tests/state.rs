//! Plugin state, black-box: real wasqd processes with plugins granted a
//! key-value store, messages over real sockets, the state read back over
//! `GET /plugins/NAME/state`. The promise checked: a message's writes
//! commit with its FIN, once, across retries, restarts, reloads and
//! kill -9 (durable mode).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use wasq_testkit::{Http, PluginDir, RawClient, Wasqd, eventually};
use wasq_wire::command;

const WAIT: Duration = Duration::from_secs(60);

/// Every entry under `prefix`, as text, listed in pages by the one-digit
/// prefixes below it when there are more than one page holds.
fn entries(http: &Http, plugin: &str, prefix: &str) -> BTreeMap<String, String> {
    let (page, more) = http.state_entries(plugin, prefix, 10_000);
    if more {
        return ('0'..='9')
            .flat_map(|digit| entries(http, plugin, &format!("{prefix}{digit}")))
            .collect();
    }
    page
}

fn counts(http: &Http, plugin: &str) -> BTreeMap<String, i64> {
    entries(http, plugin, "count/")
        .into_iter()
        .map(|(k, v)| (k["count/".len()..].to_string(), v.parse().unwrap()))
        .collect()
}

fn publish_all(http: &Http, topic: &str, bodies: &[&str]) {
    let (status, body) = http.mpub_binary(topic, bodies);
    assert_eq!(status, 200, "{body}");
}

const COUNTER: &str = "topic = \"clicks\"\nstate = true\npublish = [\"counts\"]\nconcurrency = 4\nmax_in_flight = 16\n";

#[test]
fn counts_commit_with_the_fin_and_outlive_reloads_restarts_and_removal() {
    let data = tempfile::tempdir().unwrap();
    let data_path = data.path().to_str().unwrap();
    let plugins = PluginDir::default();
    plugins.example(
        "counter",
        "counter",
        &format!("{COUNTER}[config]\nevery = \"5\"\n"),
    );
    let wasqd = plugins.start_with(&["--data-path", data_path]);
    let http = wasqd.http();
    let mut clicks = vec!["a"; 10];
    clicks.extend(["b"; 7]);
    clicks.extend(["c"; 3]);
    publish_all(&http, "clicks", &clicks);
    http.wait_settled("clicks", "counter");
    let expected: BTreeMap<String, i64> = [("a", 10), ("b", 7), ("c", 3)]
        .map(|(k, v)| (k.to_string(), v))
        .into();
    assert_eq!(counts(&http, "counter"), expected);
    // What it published, each body at least once: a handler whose
    // commit conflicted with another instance's ran again (its writes are
    // counted once, its publishes are not part of the commit).
    let mut consumer = wasqd.consumer("counts", "test", 100);
    let mut published = std::collections::BTreeSet::new();
    while let Some(message) = consumer.next_message(Duration::from_secs(2)) {
        consumer.finish(&message);
        published.insert(String::from_utf8(message.body.to_vec()).unwrap());
    }
    assert_eq!(
        published.into_iter().collect::<Vec<_>>(),
        ["a 10", "a 5", "b 5"]
    );
    let (status, one) = http.get_json("/plugins/counter/state/count/a");
    assert_eq!((status, &one["value"]), (200, &Value::from("10")));
    assert_eq!(http.get_json("/plugins/counter/state/count/zz").0, 404);
    let store = &http.plugin("counter")["state_store"];
    assert_eq!(store["keys"], 3, "{store}");
    assert_eq!(store["bytes"], (7 + 2) + (7 + 1) + (7 + 1), "{store}");
    assert!(store["committed"].as_u64().unwrap() >= 20, "{store}");
    let (_, metrics) = http.get("/metrics");
    for line in [
        "wasq_plugin_state_keys{plugin=\"counter\"} 3.0",
        "wasq_plugin_state_size_bytes{plugin=\"counter\"} 25.0",
        "wasq_plugin_state_refusals_total{plugin=\"counter\",kind=\"over_limit\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }

    // A new version (its manifest changed), loaded while clicks keep
    // coming, counts on from the same state: none lost or counted twice
    // across the swap.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let publisher = {
        let (stop, sent, http) = (stop.clone(), sent.clone(), wasqd.http());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                publish_all(&http, "clicks", &["r"; 10]);
                sent.fetch_add(10, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    assert!(eventually(WAIT, || sent.load(Ordering::Relaxed) >= 100));
    plugins.manifest("counter", &format!("{COUNTER}[config]\nevery = \"4\"\n"));
    assert!(
        eventually(WAIT, || http.plugin("counter")["reloads"]["reloaded"] == 1),
        "{}",
        http.plugin("counter")
    );
    let at_reload = sent.load(Ordering::Relaxed);
    assert!(eventually(WAIT, || sent.load(Ordering::Relaxed) >= at_reload + 100));
    stop.store(true, Ordering::Relaxed);
    publisher.join().unwrap();
    http.wait_settled("clicks", "counter");
    let after_reload = counts(&http, "counter");
    assert_eq!(after_reload["r"], sent.load(Ordering::Relaxed) as i64);
    assert_eq!(after_reload["a"], 10, "the old version's keys are read on");
    publish_all(&http, "clicks", &["a", "a"]);
    http.wait_settled("clicks", "counter");
    assert_eq!(counts(&http, "counter")["a"], 12);

    // A restart keeps it.
    wasqd.terminate();
    let wasqd = plugins.start_with(&["--data-path", data_path]);
    let http = wasqd.http();
    publish_all(&http, "clicks", &["a"]);
    http.wait_settled("clicks", "counter");
    assert_eq!(counts(&http, "counter")["a"], 13);

    // Not deleted under a running plugin; kept after its removal until
    // the operator deletes it.
    let (status, _) = http.delete("/plugins/counter/state");
    assert_eq!(status, 409);
    std::fs::remove_file(plugins.dir.path().join("counter.toml")).unwrap();
    assert!(eventually(WAIT, || http.plugin("counter")["state"] == "removed"));
    assert_eq!(counts(&http, "counter")["b"], 7, "kept after removal");
    let (status, deleted) = http.delete("/plugins/counter/state");
    assert_eq!((status, deleted.as_str()), (200, "{\"deleted_keys\":4}"));
    assert!(counts(&http, "counter").is_empty());
    wasqd.terminate();
    let wasqd = plugins.start_with(&["--data-path", data_path]);
    let (status, page) = wasqd.http().get_json("/plugins/counter/state");
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        (&page["keys"], &page["entries"]),
        (&Value::from(0), &Value::Array(vec![]))
    );
}

#[test]
fn state_is_granted_by_the_manifest_and_its_limits_are_errors_the_guest_sees() {
    let plugins = PluginDir::default();
    let dead_letter = "max_attempts = 2\nbackoff_min_ms = 10\nbackoff_max_ms = 20\n";
    // Beside them, a plugin whose state stays within its limits.
    plugins.example(
        "counter",
        "healthy",
        "topic = \"h\"\nstate = true\npublish = [\"counts\"]\n",
    );
    plugins.example(
        "counter",
        "ungranted",
        &format!("topic = \"u\"\n{dead_letter}"),
    );
    plugins.example(
        "counter",
        "short",
        &format!("topic = \"s\"\nstate = true\nstate_max_key_bytes = 8\n{dead_letter}"),
    );
    plugins.example(
        "counter",
        "small",
        &format!("topic = \"f\"\nstate = true\nstate_limit_mib = 1\n{dead_letter}[config]\nevery = \"1000000\"\n"),
    );
    let wasqd = plugins.start();
    let http = wasqd.http();
    publish_all(&http, "u", &["a"]);
    publish_all(&http, "s", &["a", "a-much-longer-key"]);
    // 500-byte keys: about 2 000 fill a MiB.
    let big: Vec<String> = (0..2_200).map(|i| format!("{i:0>500}")).collect();
    let big: Vec<&str> = big.iter().map(String::as_str).collect();
    for chunk in big.chunks(200) {
        publish_all(&http, "f", chunk);
    }
    publish_all(&http, "h", &["x"; 25]);
    for (topic, plugin) in [
        ("u", "ungranted"),
        ("s", "short"),
        ("f", "small"),
        ("h", "healthy"),
    ] {
        http.wait_settled(topic, plugin);
    }
    assert_eq!(http.plugin("ungranted")["state_store"], Value::Null);
    assert_eq!(http.topic_count("u.ungranted.dead"), 1);
    assert!(
        wasqd
            .log()
            .iter()
            .any(|l| l.contains("ungranted") && l.contains("no state")),
        "the guest's log line naming the refusal"
    );
    let short = &http.plugin("short")["state_store"];
    assert!(
        short["refused"]["key_too_large"].as_u64().unwrap() >= 1,
        "{short}"
    );
    assert_eq!(short["keys"], 1, "{short}");
    assert_eq!(http.topic_count("s.short.dead"), 1);
    let small = &http.plugin("small")["state_store"];
    assert!(
        small["refused"]["over_limit"].as_u64().unwrap() >= 1,
        "{small}"
    );
    assert!(small["bytes"].as_u64().unwrap() <= 1 << 20, "{small}");
    let (_, healthy) = http.get_json("/plugins/healthy/state/count/x");
    assert_eq!(healthy["value"], "25", "other plugins are unaffected");
    let kept = small["keys"].as_u64().unwrap();
    assert_eq!(
        kept + http.topic_count("f.small.dead"),
        2_200,
        "every message is counted or dead-lettered: {small}"
    );
}

/// Publishes `<key> <id>` for ids 0..total in MPUBs to whichever wasqd is
/// up (`address`), never the same id twice: a batch whose OK did not come
/// back (the server died) is recorded as maybe published.
struct LedgerPublisher {
    address: Arc<Mutex<Option<SocketAddr>>>,
    acknowledged: Arc<AtomicU64>,
    unsure: Arc<Mutex<Vec<u64>>>,
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const KEYS: u64 = 37;

impl LedgerPublisher {
    fn start(total: u64) -> LedgerPublisher {
        let address: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let acknowledged = Arc::new(AtomicU64::new(0));
        let unsure: Arc<Mutex<Vec<u64>>> = Arc::default();
        let done = Arc::new(AtomicBool::new(false));
        let (addr, acked, maybe, finished) = (
            address.clone(),
            acknowledged.clone(),
            unsure.clone(),
            done.clone(),
        );
        let thread = std::thread::spawn(move || {
            let mut next = 0;
            let mut client: Option<(SocketAddr, RawClient)> = None;
            while next < total {
                let Some(current) = *addr.lock().unwrap() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                if client.as_ref().is_none_or(|(a, _)| *a != current) {
                    client = Some((current, RawClient::connect_v2(current)));
                }
                let ids: Vec<u64> = (next..(next + 50).min(total)).collect();
                next += ids.len() as u64;
                let bodies: Vec<String> = ids
                    .iter()
                    .map(|id| format!("k{} {id:05}", id % KEYS))
                    .collect();
                let (_, raw) = client.as_mut().unwrap();
                let answer = raw.try_command(&command::encode(|out| {
                    command::mpub(out, "ledger", &bodies)
                }));
                if answer.as_deref() == Some("OK") {
                    acked.fetch_add(ids.len() as u64, Ordering::Relaxed);
                } else {
                    maybe.lock().unwrap().extend(ids);
                    client = None;
                    // Until the next wasqd is up.
                    *addr.lock().unwrap() = None;
                }
            }
            finished.store(true, Ordering::Release);
        });
        LedgerPublisher {
            address,
            acknowledged,
            unsure,
            done,
            thread: Some(thread),
        }
    }

    fn publish_to(&self, wasqd: &Wasqd) {
        *self.address.lock().unwrap() = Some(wasqd.tcp);
    }
}

#[test]
fn no_message_is_counted_twice_or_lost_across_three_kill_9s() {
    const TOTAL: u64 = 20_000;
    let data = tempfile::tempdir().unwrap();
    let data_path = data.path().to_str().unwrap();
    let plugins = PluginDir::default();
    plugins.example(
        "ledger",
        "ledger",
        "topic = \"ledger\"\nstate = true\nconcurrency = 4\nmax_in_flight = 16\nmax_attempts = 100\nbackoff_min_ms = 10\nbackoff_max_ms = 50\n",
    );
    let durable = [
        "--data-path",
        data_path,
        "--mem-queue-size=0",
        "--sync-every=1",
    ];
    let publisher = LedgerPublisher::start(TOTAL);
    let mut replayed = 0;
    for kill in 1..=3 {
        let wasqd = plugins.start_with(&durable);
        publisher.publish_to(&wasqd);
        let goal = TOTAL * kill / 4;
        assert!(
            eventually(Duration::from_secs(300), || {
                publisher.acknowledged.load(Ordering::Relaxed) >= goal
            }),
            "publishing stalled at {}",
            publisher.acknowledged.load(Ordering::Relaxed)
        );
        replayed += wasqd.http().plugin("ledger")["state_store"]["replayed"]
            .as_u64()
            .unwrap_or(0);
        wasqd.crash();
    }
    let wasqd = plugins.start_with(&durable);
    publisher.publish_to(&wasqd);
    let http = wasqd.http();
    assert!(eventually(Duration::from_secs(300), || publisher
        .done
        .load(Ordering::Acquire)));
    let mut publisher = publisher;
    publisher.thread.take().unwrap().join().unwrap();
    let settled = eventually(Duration::from_secs(300), || {
        http.channel_stats("ledger", "ledger").is_some_and(|c| {
            c["depth"] == 0 && c["in_flight_count"] == 0 && c["deferred_count"] == 0
        })
    });
    assert!(settled, "{:?}", http.channel_stats("ledger", "ledger"));

    let unsure = publisher.unsure.lock().unwrap().clone();
    let messages = entries(&http, "ledger", "msg/");
    let counted_twice: Vec<_> = messages.iter().filter(|(_, v)| *v != "1").collect();
    assert!(
        counted_twice.is_empty(),
        "counted more than once: {counted_twice:?}"
    );
    let lost: Vec<u64> = (0..TOTAL)
        .filter(|id| !unsure.contains(id) && !messages.contains_key(&format!("msg/{id:05}")))
        .collect();
    assert!(lost.is_empty(), "acknowledged but never counted: {lost:?}");
    // Each key counts exactly its messages.
    let mut per_key: BTreeMap<String, i64> = BTreeMap::new();
    for key in messages.keys() {
        let id: u64 = key["msg/".len()..].parse().unwrap();
        *per_key.entry(format!("k{}", id % KEYS)).or_default() += 1;
    }
    assert_eq!(counts(&http, "ledger"), per_key);
    let total: i64 = per_key.values().sum();
    assert_eq!(total as usize, messages.len());
    replayed += http.plugin("ledger")["state_store"]["replayed"]
        .as_u64()
        .unwrap_or(0);
    eprintln!(
        "ledger: {} messages counted once ({} maybe published during kills), {replayed} redelivered after their commit and finished without the handler",
        messages.len(),
        unsure.len()
    );
}

/// Counts its messages under "hits", and on a first delivery then spins
/// for about a second: longer than the broker's --msg-timeout below.
const SLOW_FIRST_ATTEMPT: &str = r#"(module
  (import "wasq" "state_increment" (func $increment (param i32 i32 i64 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hits")
  (func (export "wasq_abi_version") (result i32) (i32.const 1))
  (func (export "wasq_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "wasq_handle") (param $ptr i32) (param $len i32) (result i64)
    (local $spun i64)
    (drop (call $increment (i32.const 16) (i32.const 4) (i64.const 1) (i32.const 32)))
    (if (i32.eq (i32.load16_u offset=4 (local.get $ptr)) (i32.const 1))
      (then
        (loop $spin
          (local.set $spun (i64.add (local.get $spun) (i64.const 1)))
          (br_if $spin (i64.lt_u (local.get $spun) (i64.const 1000000000))))))
    (i64.const 0)))"#;

#[test]
fn a_message_from_memory_whose_fin_comes_too_late_is_not_counted_again() {
    let plugins = PluginDir::default();
    plugins.wat(
        "slow",
        SLOW_FIRST_ATTEMPT,
        "topic = \"slow\"\nstate = true\nhandler_deadline_ms = 60000\n",
    );
    // The default mode: the message stays in memory, so it has no place
    // on disk to be marked at.
    let wasqd = plugins.start_with(&["--msg-timeout", "100ms"]);
    let http = wasqd.http();
    publish_all(&http, "slow", &["once"]);
    assert!(
        eventually(WAIT, || http.plugin("slow")["state_store"]["replayed"] == 1),
        "timed out during its handler, committed, delivered again: {}",
        http.plugin("slow")
    );
    http.wait_settled("slow", "slow");
    let (_, hits) = http.get_json("/plugins/slow/state/hits");
    assert_eq!(hits["value"], "1", "counted once");
    assert_eq!(http.plugin("slow")["counters"]["handled"], 1);
}
