//! Persistence, black-box: real wasqd processes sharing a `--data-path`,
//! stopped with SIGTERM or killed with SIGKILL under load, restarted, and
//! drained over real sockets. The rule checked everywhere: a message whose
//! publish got OK is delivered (again, if it was in flight) after the
//! restart, unless a consumer finished it before.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use wasq_testkit::*;
use wasq_wire::command;

/// A publisher that reports failures instead of panicking: under a
/// shutdown or a crash the connection goes away mid-command.
struct Publisher {
    client: RawClient,
}

impl Publisher {
    fn connect(addr: SocketAddr) -> Publisher {
        Publisher {
            client: RawClient::connect_v2(addr),
        }
    }

    /// Sends one command; true if it was acknowledged.
    fn acknowledged(&mut self, write: impl FnOnce(&mut Vec<u8>)) -> bool {
        self.client.try_command(&command::encode(write)) == Some("OK".into())
    }

    fn publish(&mut self, topic: &str, body: &str) -> bool {
        self.acknowledged(|out| command::publish(out, topic, body.as_bytes()))
    }

    fn publish_deferred(&mut self, topic: &str, defer_ms: u64, body: &str) -> bool {
        self.acknowledged(|out| command::dpub(out, topic, defer_ms, body.as_bytes()))
    }

    fn publish_many(&mut self, topic: &str, bodies: &[String]) -> bool {
        self.acknowledged(|out| command::mpub(out, topic, bodies))
    }
}

/// What the load saw: bodies acknowledged, finished, and deferred ones
/// with their due times.
#[derive(Default)]
struct Ledger {
    acknowledged: BTreeSet<String>,
    finished: BTreeSet<String>,
    due: BTreeMap<String, SystemTime>,
}

/// Runs publishers (PUB, MPUB and DPUB) and a consumer that finishes every
/// other message and leaves the rest in flight, until `stop` is set or
/// the server goes away.
fn run_load(
    wasqd: &Wasqd,
    topic: &'static str,
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
) -> Vec<std::thread::JoinHandle<()>> {
    let mut threads = Vec::new();
    for p in 0..4 {
        let (addr, stop, ledger) = (wasqd.tcp, stop.clone(), ledger.clone());
        threads.push(std::thread::spawn(move || {
            let mut publisher = Publisher::connect(addr);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let ok = if p % 2 == 0 {
                    let body = format!("p{p}-{n}");
                    n += 1;
                    publisher
                        .publish(topic, &body)
                        .then(|| ledger.lock().unwrap().acknowledged.insert(body))
                        .is_some()
                } else {
                    let bodies: Vec<String> = (0..20).map(|i| format!("p{p}-{}", n + i)).collect();
                    n += 20;
                    publisher
                        .publish_many(topic, &bodies)
                        .then(|| ledger.lock().unwrap().acknowledged.extend(bodies))
                        .is_some()
                };
                if !ok {
                    return;
                }
            }
        }));
    }
    let (addr, stop_deferred, ledger_deferred) = (wasqd.tcp, stop.clone(), ledger.clone());
    threads.push(std::thread::spawn(move || {
        let mut publisher = Publisher::connect(addr);
        let mut n = 0;
        while !stop_deferred.load(Ordering::Relaxed) {
            let body = format!("d-{n}");
            n += 1;
            let due = SystemTime::now() + Duration::from_millis(2500);
            if !publisher.publish_deferred(topic, 2500, &body) {
                return;
            }
            let mut ledger = ledger_deferred.lock().unwrap();
            ledger.acknowledged.insert(body.clone());
            ledger.due.insert(body, due);
            drop(ledger);
            std::thread::sleep(Duration::from_millis(20));
        }
    }));
    let (addr, ledger_consumer) = (wasqd.tcp, ledger.clone());
    threads.push(std::thread::spawn(move || {
        let mut consumer = RawClient::connect(addr);
        consumer.send(format!("  V2SUB {topic} c\nRDY 200\n").as_bytes());
        let mut count = 0;
        while let Some(message) = consumer.next_message(Duration::from_secs(5)) {
            count += 1;
            if count % 2 == 0 {
                let body = String::from_utf8_lossy(&message.body).into_owned();
                consumer.finish(&message);
                ledger_consumer.lock().unwrap().finished.insert(body);
            }
        }
    }));
    threads
}

/// Lets the load run until the consumer has finished some messages and
/// holds others in flight, so the stop interrupts all of it.
fn wait_for_consumer(wasqd: &Wasqd, topic: &str, ledger: &Mutex<Ledger>) {
    let consumed = eventually(Duration::from_secs(20), || {
        ledger.lock().unwrap().finished.len() >= 150
    });
    if !consumed {
        let ledger = ledger.lock().unwrap();
        let log = wasqd.log();
        let notable: Vec<&String> = log
            .iter()
            .filter(|l| !l.contains(" INFO ") || l.contains("closing") || l.contains("exited"))
            .collect();
        panic!(
            "the consumer finished only {} messages ({} acknowledged); channel: {}; log: {notable:#?}",
            ledger.finished.len(),
            ledger.acknowledged.len(),
            wasqd.http().channel_stats(topic, "c").unwrap_or_default()
        );
    }
    std::thread::sleep(Duration::from_millis(300));
}

/// Consumes (and finishes) until every body in `expected` arrived or
/// nothing came for `idle`; returns each body with its arrival time.
fn drain(
    wasqd: &Wasqd,
    topic: &str,
    expected: &BTreeSet<String>,
    idle: Duration,
) -> BTreeMap<String, SystemTime> {
    let mut consumer = wasqd.consumer(topic, "c", 500);
    let mut received = BTreeMap::new();
    while !expected.iter().all(|b| received.contains_key(b)) {
        let Some(message) = consumer.next_message(idle) else {
            break;
        };
        consumer.finish(&message);
        received
            .entry(String::from_utf8_lossy(&message.body).into_owned())
            .or_insert_with(SystemTime::now);
    }
    received
}

/// Checks the restarted broker delivered everything it owed.
fn check_delivery(ledger: &Ledger, received: &BTreeMap<String, SystemTime>) {
    let owed: Vec<&String> = ledger
        .acknowledged
        .iter()
        .filter(|b| !ledger.finished.contains(*b))
        .collect();
    let missing: Vec<&&String> = owed
        .iter()
        .filter(|b| !received.contains_key(**b))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged, unfinished messages lost, e.g. {:?}",
        missing.len(),
        owed.len(),
        &missing[..missing.len().min(5)]
    );
    for (body, due) in &ledger.due {
        if let Some(arrived) = received.get(body) {
            assert!(
                *arrived + Duration::from_millis(50) >= *due,
                "deferred {body} arrived {:?} before its due time",
                due.duration_since(*arrived).unwrap_or_default()
            );
            // Not held back either (generous: CI machines are busy).
            assert!(
                *arrived <= *due + Duration::from_secs(5),
                "deferred {body} arrived {:?} after its due time",
                arrived.duration_since(*due).unwrap_or_default()
            );
        }
    }
}

fn create_channel(wasqd: &Wasqd, topic: &str) {
    let http = wasqd.http();
    assert_eq!(
        http.post(&format!("/topic/create?topic={topic}"), b"").0,
        200
    );
    let (status, _) = http.post(&format!("/channel/create?topic={topic}&channel=c"), b"");
    assert_eq!(status, 200);
}

fn path_arg(dir: &Path) -> &str {
    dir.to_str().expect("utf-8 temp path")
}

/// Creates `topic`/c, runs the load until the consumer holds messages in
/// flight, stops wasqd with `stop` (SIGTERM or SIGKILL) while publishers
/// run, restarts it on the same data and checks that every acknowledged,
/// unfinished message arrives (deferred ones at their due time).
fn restart_under_load(topic: &'static str, args: &[&str], stop: impl FnOnce(Wasqd)) {
    let wasqd = Wasqd::start_with(args);
    create_channel(&wasqd, topic);
    let (stopped, ledger) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::default()));
    let threads = run_load(&wasqd, topic, stopped.clone(), Arc::clone(&ledger));
    wait_for_consumer(&wasqd, topic, &ledger);
    stop(wasqd);
    stopped.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().unwrap();
    }
    let ledger = ledger.lock().unwrap();
    assert!(
        ledger.acknowledged.len() > 100,
        "too little load to mean anything"
    );
    assert!(
        !ledger.due.is_empty(),
        "no deferred message was acknowledged"
    );

    let wasqd = Wasqd::start_with(args);
    // It answers before the previous run's queues are recovered.
    wasqd.http().wait_restored();
    let channel = wasqd
        .http()
        .channel_stats(topic, "c")
        .expect("channel restored");
    assert!(channel["depth"].as_i64().unwrap() > 0, "{channel}");
    let received = drain(&wasqd, topic, &ledger.acknowledged, Duration::from_secs(4));
    check_delivery(&ledger, &received);
    eprintln!(
        "{topic}: {} acknowledged, {} finished before the stop, {} delivered after the restart",
        ledger.acknowledged.len(),
        ledger.finished.len(),
        received.len()
    );
}

#[test]
fn a_graceful_restart_under_load_keeps_every_acknowledged_message() {
    let data = tempfile::tempdir().unwrap();
    let args = [
        "--data-path",
        path_arg(data.path()),
        "--mem-queue-size",
        "50",
        "--max-bytes-per-file",
        "65536",
    ];
    restart_under_load("load", &args, |wasqd| assert!(wasqd.terminate().success()));
}

#[test]
fn durable_mode_loses_nothing_acknowledged_when_killed() {
    let data = tempfile::tempdir().unwrap();
    let args = [
        "--data-path",
        path_arg(data.path()),
        "--mem-queue-size",
        "0",
        "--sync-every",
        "1",
        "--max-bytes-per-file",
        "65536",
        // Checkpoints saved often, so a crash finds them past what was
        // read and must redeliver in-flight messages from their locations.
        "--sync-timeout",
        "50ms",
    ];
    restart_under_load("durable", &args, Wasqd::crash);
}

fn data_files(dir: &Path, queue: &str) -> usize {
    segments(dir, queue).len()
}

#[test]
fn overflow_goes_to_disk_and_comes_back_in_order() {
    let data = tempfile::tempdir().unwrap();
    let wasqd = Wasqd::start_with(&[
        "--data-path",
        path_arg(data.path()),
        "--mem-queue-size",
        "100",
        "--max-bytes-per-file",
        "8192",
        "--sync-timeout",
        "100ms",
    ]);
    // No channel yet: the topic holds the backlog, mostly on disk.
    let producers: Vec<_> = (0..2)
        .map(|p| {
            let addr = wasqd.tcp;
            std::thread::spawn(move || {
                let mut publisher = Publisher::connect(addr);
                for batch in 0..10 {
                    let bodies: Vec<String> = (0..100)
                        .map(|i| format!("p{p}-{:05}", batch * 100 + i))
                        .collect();
                    assert!(publisher.publish_many("spill", &bodies));
                }
            })
        })
        .collect();
    for producer in producers {
        producer.join().unwrap();
    }
    let stats = wasqd.http().stats();
    let topic = &stats["topics"][0];
    assert_eq!(topic["depth"], 2000, "{topic}");
    assert_eq!(topic["backend_depth"], 1900, "{topic}");
    assert!(data_files(data.path(), "spill") > 5);

    let mut consumer = wasqd.consumer("spill", "c", 150);
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    for _ in 0..2000 {
        let message = consumer
            .next_message(Duration::from_secs(10))
            .expect("a message");
        consumer.finish(&message);
        let body = String::from_utf8(message.body.to_vec()).unwrap();
        let (producer, n) = body.split_once('-').unwrap();
        let n: i64 = n.parse().unwrap();
        let previous = last.insert(producer.to_string(), n).unwrap_or(-1);
        assert_eq!(n, previous + 1, "{producer} out of order");
    }
    assert_eq!(last.values().copied().collect::<Vec<_>>(), [999, 999]);
    // Consumed segments are deleted once the checkpoint passes them.
    assert!(eventually(Duration::from_secs(5), || {
        data_files(data.path(), "spill") <= 1 && data_files(data.path(), "spill:c") <= 1
    }));
    let channel = wasqd.http().channel_stats("spill", "c").unwrap();
    assert_eq!(channel["depth"], 0);
    assert_eq!(channel["backend_depth"], 0);
}

/// Segment files of a queue, oldest first.
fn segments(dir: &Path, queue: &str) -> Vec<std::path::PathBuf> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(&format!("{queue}.wasq.")) && name.ends_with(".dat")
        })
        .collect();
    paths.sort();
    paths
}

#[test]
fn torn_tails_and_corrupt_segments_are_logged_and_skipped() {
    let data = tempfile::tempdir().unwrap();
    let args = [
        "--data-path",
        path_arg(data.path()),
        "--mem-queue-size",
        "0",
        "--max-bytes-per-file",
        "1024",
    ];
    let wasqd = Wasqd::start_with(&args);
    let mut publisher = Publisher::connect(wasqd.tcp);
    for topic in ["torn", "corrupt"] {
        let bodies: Vec<String> = (0..50).map(|n| format!("m{n:02}")).collect();
        assert!(publisher.publish_many(topic, &bodies));
    }
    wasqd.crash();

    // A write cut short by the crash: half a record at the newest tail.
    let torn = segments(data.path(), "torn");
    let newest = torn.last().unwrap();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(newest)
        .unwrap();
    file.write_all(&[60, 0, 0, 0, 1, 2, 3, 4, b'x', b'y'])
        .unwrap();
    // Damage in the middle of the oldest segment of another queue.
    let corrupt = segments(data.path(), "corrupt");
    assert!(corrupt.len() > 2);
    let mut bytes = std::fs::read(&corrupt[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&corrupt[0], bytes).unwrap();

    let wasqd = Wasqd::start_with(&args);
    // It answers before the previous run's queues are recovered.
    wasqd.http().wait_restored();
    let log = wasqd.log().join("\n");
    let newest_name = newest.file_name().unwrap().to_string_lossy();
    assert!(
        log.lines()
            .any(|l| l.contains("torn record") && l.contains(&*newest_name)),
        "{log}"
    );
    let corrupt_name = corrupt[0].file_name().unwrap().to_string_lossy();
    assert!(
        log.lines()
            .any(|l| l.contains("corrupt segment") && l.contains(&*corrupt_name)),
        "{log}"
    );

    let all: BTreeSet<String> = (0..50).map(|n| format!("m{n:02}")).collect();
    create_channel(&wasqd, "torn");
    let received = drain(&wasqd, "torn", &all, Duration::from_secs(2));
    assert_eq!(received.keys().cloned().collect::<BTreeSet<_>>(), all);
    create_channel(&wasqd, "corrupt");
    let received = drain(&wasqd, "corrupt", &all, Duration::from_secs(2));
    assert!(
        received.len() < 50 && received.contains_key("m49"),
        "{received:?}"
    );
    // Still serving: new publishes go to a fresh segment and arrive.
    let mut publisher = Publisher::connect(wasqd.tcp);
    assert!(publisher.publish("torn", "after"));
    let after = BTreeSet::from(["after".to_string()]);
    assert!(drain(&wasqd, "torn", &after, Duration::from_secs(2)).contains_key("after"));
}

/// Runs wasqd on `data` to completion (it exits at once on a start-up
/// error, or when its standard input, empty here, closes).
fn run_to_exit(data: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_wasqd"))
        .args([
            "--data-path",
            path_arg(data),
            "--tcp-address",
            "127.0.0.1:0",
            "--http-address",
            "127.0.0.1:0",
            "--no-embedded-lookupd",
            "--exit-on-stdin-eof",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_damaged_metadata_file_stops_start_up_with_its_name() {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("wasqd.dat"), "{not json").unwrap();
    let output = run_to_exit(data.path());
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("wasqd.dat"), "{stderr}");
}

#[test]
fn a_data_path_in_use_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let first = Wasqd::start_with(&["--data-path", path_arg(data.path())]);
    let output = run_to_exit(data.path());
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("in use by another wasqd"), "{stderr}");
    // Once the first is gone (even killed), the path is free again.
    first.crash();
    assert!(run_to_exit(data.path()).status.success());
}

#[test]
fn a_full_disk_fails_publishes_and_the_broker_keeps_serving() {
    let data = tempfile::tempdir().unwrap();
    // A file-size limit makes writes past 64 blocks fail, as a full disk
    // would, without needing root to mount a small filesystem.
    let wasqd = Wasqd::start_via_shell(
        r#"trap '' XFSZ; ulimit -f 64; exec "$0" "$@""#,
        &[
            "--data-path",
            path_arg(data.path()),
            "--mem-queue-size",
            "0",
        ],
    );
    create_channel(&wasqd, "full");
    let body = "x".repeat(1000);
    let mut publisher = Publisher::connect(wasqd.tcp);
    let mut acknowledged = 0;
    let error = loop {
        let publish = command::encode(|out| command::publish(out, "full", body.as_bytes()));
        match publisher.client.try_command(&publish) {
            Some(ok) if ok == "OK" => acknowledged += 1,
            other => break other,
        }
        assert!(acknowledged < 1000, "the file-size limit never hit");
    };
    let error = error.expect("an error frame before the close");
    assert!(
        error.starts_with("E_PUB_FAILED PUB failed storage error"),
        "{error}"
    );
    assert!(acknowledged > 0);
    // Logged before the error was sent.
    let log = wasqd.log();
    assert!(
        log.iter()
            .any(|l| l.contains("PUB failed") && l.contains("full")),
        "{log:?}"
    );
    let (status, text) = wasqd.http().post("/pub?topic=full", body.as_bytes());
    assert_eq!(status, 500, "{text}");
    assert!(text.contains("PUB_FAILED"), "{text}");

    // Reads go on: everything acknowledged is there.
    assert_eq!(wasqd.http().get("/ping"), (200, "OK".to_string()));
    let mut consumer = wasqd.consumer("full", "c", 100);
    for _ in 0..acknowledged {
        let message = consumer
            .next_message(Duration::from_secs(5))
            .expect("a message");
        assert_eq!(message.body.len(), 1000);
        consumer.finish(&message);
    }
}

fn mpub(wasqd: &Wasqd, topic: &str, count: usize) {
    let bodies: Vec<String> = (0..count).map(|n| format!("m{n}")).collect();
    assert!(Publisher::connect(wasqd.tcp).publish_many(topic, &bodies));
}

#[test]
fn empty_and_delete_remove_disk_data_and_ephemeral_queues_never_touch_it() {
    let data = tempfile::tempdir().unwrap();
    let wasqd = Wasqd::start_with(&[
        "--data-path",
        path_arg(data.path()),
        "--mem-queue-size",
        "10",
    ]);
    let http = wasqd.http();
    create_channel(&wasqd, "gone");
    mpub(&wasqd, "gone", 100);
    let channel = http.channel_stats("gone", "c").unwrap();
    assert_eq!(
        (channel["depth"].as_i64(), channel["backend_depth"].as_i64()),
        (Some(100), Some(90))
    );
    assert!(data_files(data.path(), "gone:c") > 0);
    assert_eq!(http.post("/channel/empty?topic=gone&channel=c", b"").0, 200);
    assert_eq!(http.channel_stats("gone", "c").unwrap()["depth"], 0);
    assert_eq!(data_files(data.path(), "gone:c"), 0);

    mpub(&wasqd, "kept", 100);
    assert!(data_files(data.path(), "kept") > 0);
    assert_eq!(http.post("/topic/empty?topic=kept", b"").0, 200);
    assert_eq!(data_files(data.path(), "kept"), 0);
    mpub(&wasqd, "kept", 100);
    assert_eq!(http.post("/topic/delete?topic=kept", b"").0, 200);
    assert_eq!(data_files(data.path(), "kept"), 0);

    // Ephemeral: memory only, overflow dropped as nsqd drops it.
    mpub(&wasqd, "tail#ephemeral", 100);
    let (status, _) = http.post("/channel/create?topic=gone&channel=c%23ephemeral", b"");
    assert_eq!(status, 200);
    mpub(&wasqd, "gone", 100);
    let stats = http.stats();
    let tail = stats["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["topic_name"] == "tail#ephemeral")
        .unwrap();
    assert_eq!(tail["depth"], 10);
    assert_eq!(
        http.channel_stats("gone", "c#ephemeral").unwrap()["depth"],
        10
    );
    assert_eq!(files_named(data.path(), "#ephemeral"), 0);
}

#[test]
fn topics_channels_and_pause_states_survive_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let args = ["--data-path", path_arg(data.path())];
    let wasqd = Wasqd::start_with(&args);
    let http = wasqd.http();
    create_channel(&wasqd, "one");
    create_channel(&wasqd, "two");
    assert_eq!(http.post("/channel/pause?topic=one&channel=c", b"").0, 200);
    assert_eq!(http.post("/topic/pause?topic=two", b"").0, 200);
    mpub(&wasqd, "two", 3);
    // Ephemeral ones are not saved.
    assert_eq!(
        http.post("/topic/create?topic=brief%23ephemeral", b"").0,
        200
    );
    assert!(wasqd.terminate().success());
    let saved = std::fs::read_to_string(data.path().join("wasqd.dat")).unwrap();
    assert!(saved.contains(r#""version":"1.3.0""#), "{saved}");

    let wasqd = Wasqd::start_with(&args);
    // It answers before the previous run's queues are recovered.
    wasqd.http().wait_restored();
    let stats = wasqd.http().stats();
    let topics = stats["topics"].as_array().unwrap();
    let names: Vec<&str> = topics
        .iter()
        .map(|t| t["topic_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["one", "two"]);
    assert_eq!(topics[0]["paused"], false);
    assert_eq!(topics[0]["channels"][0]["paused"], true);
    assert_eq!(topics[1]["paused"], true);
    // The paused topic kept its messages back from the channel, on disk.
    assert_eq!(topics[1]["depth"], 3);
    assert_eq!(topics[1]["channels"][0]["depth"], 0);
    assert_eq!(wasqd.http().post("/topic/unpause?topic=two", b"").0, 200);
    assert!(eventually(Duration::from_secs(5), || {
        wasqd.http().channel_stats("two", "c").unwrap()["depth"] == 3
    }));
}

#[test]
fn restoring_a_large_queue_logs_its_progress() {
    let data = tempfile::tempdir().unwrap();
    let args = [
        "--data-path",
        path_arg(data.path()),
        "--mem-queue-size",
        "0",
        "--max-bytes-per-file",
        "16777216",
    ];
    let wasqd = Wasqd::start_with(&args);
    // 70 MB on disk (a large queue reports from 64 MiB), in a few segments.
    let body = "x".repeat(64 * 1024);
    let mut publisher = Publisher::connect(wasqd.tcp);
    for _ in 0..(70_000_000 / body.len() / 50 + 1) {
        let bodies = vec![body.clone(); 50];
        assert!(publisher.publish_many("big", &bodies));
    }
    drop(publisher);
    assert!(wasqd.terminate().success());

    let wasqd = Wasqd::start_with(&args);
    // It answers before the previous run's queues are recovered, and
    // /stats counts them down.
    wasqd.http().wait_restored();
    let restore = &wasqd.http().stats()["restore"];
    assert_eq!(restore["queues"], 1, "{restore}");
    assert_eq!(restore["recovered"], 1, "{restore}");
    let log = wasqd.log();
    let has = |text: &str| log.iter().any(|line| line.contains(text));
    assert!(has("DISKQUEUE: recovering queue big: "), "{log:?}");
    assert!(
        has("DISKQUEUE: recovered queue big: 1100 messages"),
        "{log:?}"
    );
    assert_eq!(wasqd.http().stats()["topics"][0]["depth"], 1100);
}

/// Files in the data path whose names contain `part`.
fn files_named(dir: &Path, part: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(part))
        .count()
}

#[test]
fn a_clean_stop_keeps_what_memory_held_in_one_file_until_the_next_start_puts_it_back() {
    let data = tempfile::tempdir().unwrap();
    let args = ["--data-path", path_arg(data.path())];
    let wasqd = Wasqd::start_with(&args);
    let http = wasqd.http();
    for n in 0..20 {
        create_channel(&wasqd, &format!("held{n}"));
        mpub(&wasqd, &format!("held{n}"), 2);
    }
    // A deferred message keeps its due time; a topic's own backlog counts too.
    let (status, _) = http.post("/pub?topic=held0&defer=3600000", b"later");
    assert_eq!(status, 200);
    mpub(&wasqd, "no_channel", 3);
    assert!(wasqd.terminate().success());
    // One file for every queue's messages: no queue file was created.
    assert_eq!(files_named(data.path(), "wasqd.held.dat"), 1);
    assert_eq!(files_named(data.path(), ".wasq."), 0);

    let wasqd = Wasqd::start_with(&args);
    wasqd.http().wait_restored();
    let stats = wasqd.http().stats();
    assert_eq!(stats["restore"]["queues"], 21, "{}", stats["restore"]);
    for n in 0..20 {
        let channel = wasqd
            .http()
            .channel_stats(&format!("held{n}"), "c")
            .unwrap();
        let deferred = u64::from(n == 0);
        assert_eq!(
            channel["depth"].as_u64().unwrap() + channel["deferred_count"].as_u64().unwrap(),
            2 + deferred,
            "held{n}: {channel}"
        );
    }
    let topic = stats["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["topic_name"] == "no_channel")
        .unwrap()
        .clone();
    assert_eq!(topic["depth"], 3, "{topic}");
    // Now in the queues' own files, durable; the shared file is gone.
    assert_eq!(files_named(data.path(), "wasqd.held.dat"), 0);
    assert!(files_named(data.path(), ".wasq.") >= 21);
    let mut consumer = wasqd.consumer("held7", "c", 10);
    let bodies: BTreeSet<String> = (0..2)
        .map(|_| String::from_utf8_lossy(&consumer.read_message().body).into_owned())
        .collect();
    assert_eq!(bodies, BTreeSet::from(["m0".to_string(), "m1".to_string()]));
}
