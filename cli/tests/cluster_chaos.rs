//! A cluster keeps every acknowledged message while its nodes and lookupds
//! fail: three wasqd nodes in durable mode and two wasq-lookupds, a plugin
//! deployed everywhere with `wasq plugin deploy` (then a bad version,
//! rolled back, then a good v2), a publisher per node, and consumers that
//! find the nodes through the lookupds (tokio-nsq and pynsq) reading what
//! the plugins publish onward. While traffic runs: SIGKILL a node and
//! restart it, twice; stop a lookupd for 30 s; pause a node with SIGSTOP
//! for longer than its heartbeat and resume it. Then every acknowledged
//! message must have reached both consumers; the report gives duplicates
//! and the longest wait between two deliveries.

mod cluster;
mod support;

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::{Cluster, bad, good, manifest, sha256};
use tokio_nsq::{
    NSQChannel, NSQConfigShared, NSQConsumerConfig, NSQConsumerConfigSources,
    NSQConsumerLookupConfig, NSQTopic,
};
use wasq_testkit::eventually;

const EVENTS: &str = "events";
const HANDLED: &str = "handled";
/// How long the consumers may take to catch up once publishing stopped.
const CATCH_UP: Duration = Duration::from_secs(180);

/// What one consumer received, in order, with when.
type Deliveries = Arc<Mutex<Vec<(Instant, String)>>>;

/// The pynsq consumer: the Python of the venv scripts/test makes.
fn python() -> PathBuf {
    let python = std::env::var_os("WASQ_PYTHON").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/py-venv/bin/python"
            ))
        },
        PathBuf::from,
    );
    assert!(
        python.exists(),
        "{} is missing: scripts/test makes the venv with pynsq (or set WASQ_PYTHON)",
        python.display()
    );
    python
}

/// A pynsq Reader on `handled`/`pynsq` through the lookupds; what it
/// prints is recorded until it is killed.
struct PynsqConsumer {
    child: Child,
    deliveries: Deliveries,
}

impl PynsqConsumer {
    fn start(lookupds: &[String]) -> PynsqConsumer {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/python/chaos_consumer.py"
        );
        let mut child = Command::new(python())
            .arg(script)
            .args([HANDLED, "pynsq"])
            .args(lookupds)
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("start the pynsq consumer");
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(
            lines.next().and_then(Result::ok).as_deref(),
            Some("ready"),
            "the pynsq consumer did not start"
        );
        let deliveries = Deliveries::default();
        let recorded = deliveries.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                recorded.lock().unwrap().push((Instant::now(), line));
            }
        });
        PynsqConsumer { child, deliveries }
    }
}

impl Drop for PynsqConsumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tokio-nsq consumer on `handled`/`tokio` through the lookupds, on a
/// thread of its own until `stop`.
fn tokio_consumer(lookupds: &[String], stop: Arc<AtomicBool>) -> Deliveries {
    let addresses: HashSet<String> = lookupds.iter().map(|l| format!("http://{l}")).collect();
    let deliveries = Deliveries::default();
    let recorded = deliveries.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let mut consumer = NSQConsumerConfig::new(
                NSQTopic::new(HANDLED).unwrap(),
                NSQChannel::new("tokio").unwrap(),
            )
            .set_max_in_flight(100)
            .set_shared(NSQConfigShared::new().set_flush_interval(Duration::from_millis(5)))
            .set_sources(NSQConsumerConfigSources::Lookup(
                NSQConsumerLookupConfig::new()
                    .set_addresses(addresses)
                    .set_poll_interval(Duration::from_millis(500)),
            ))
            .build();
            while !stop.load(Ordering::Relaxed) {
                let next =
                    tokio::time::timeout(Duration::from_millis(200), consumer.consume_filtered());
                if let Ok(Some(message)) = next.await {
                    let body = String::from_utf8_lossy(&message.body).into_owned();
                    recorded.lock().unwrap().push((Instant::now(), body));
                    message.finish().await;
                }
            }
        });
    });
    deliveries
}

/// Publishes `n<node>-<seq>` to `events` over HTTP on each node until
/// stopped, keeping the bodies a node acknowledged (200 OK). A node that
/// is down or paused answers nothing: those bodies are not counted.
struct Publishers {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Vec<String>>>,
}

impl Publishers {
    fn start(cluster: &Cluster) -> Publishers {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = cluster
            .nodes
            .iter()
            .enumerate()
            .map(|(index, node)| {
                let (stop, url) = (
                    stop.clone(),
                    format!("http://{}/pub?topic={EVENTS}", node.http),
                );
                std::thread::spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .timeout_global(Some(Duration::from_secs(2)))
                        .http_status_as_error(false)
                        .build()
                        .into();
                    let mut acknowledged = Vec::new();
                    let mut seq = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let body = format!("n{index}-{seq}");
                        seq += 1;
                        let ok = agent
                            .post(&url)
                            .send(body.as_bytes())
                            .is_ok_and(|r| r.status() == 200);
                        if ok {
                            acknowledged.push(body);
                        } else {
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    acknowledged
                })
            })
            .collect();
        Publishers { stop, threads }
    }

    /// Stops publishing; every acknowledged body.
    fn stop(self) -> HashSet<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    }
}

/// One consumer's account: unique bodies, duplicates, longest gap.
fn report(name: &str, deliveries: &Deliveries, expected: &HashSet<String>) -> (usize, String) {
    let deliveries = deliveries.lock().unwrap();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (_, body) in deliveries.iter() {
        *counts.entry(body).or_default() += 1;
    }
    let missing = expected
        .iter()
        .filter(|b| !counts.contains_key(b.as_str()))
        .count();
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    let longest_gap = |from: Option<&str>| {
        let times: Vec<Instant> = deliveries
            .iter()
            .filter(|(_, body)| from.is_none_or(|node| body.starts_with(node)))
            .map(|(at, _)| *at)
            .collect();
        times
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default()
    };
    // Per node published to: how long its messages stopped arriving
    // while it was down or paused.
    let per_node: Vec<String> = ["n0-", "n1-", "n2-"]
        .iter()
        .map(|node| format!("{}: {:.1?}", &node[..2], longest_gap(Some(node))))
        .collect();
    (
        missing,
        format!(
            "{name}: {} deliveries, {} distinct, {missing} of {} acknowledged missing, {duplicates} duplicates; longest gap between deliveries {:.1?} (of messages published to {})",
            deliveries.len(),
            counts.len(),
            expected.len(),
            longest_gap(None),
            per_node.join(", ")
        ),
    )
}

fn caught_up(deliveries: &Deliveries, expected: &HashSet<String>) -> bool {
    let got: HashSet<String> = deliveries
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b)| b.clone())
        .collect();
    expected.is_subset(&got)
}

#[test]
fn nodes_and_lookupds_fail_under_traffic_and_no_acknowledged_message_is_lost() {
    let mut cluster = Cluster::start(
        2,
        3,
        &[
            "--mem-queue-size",
            "0",
            "--sync-every",
            "1",
            // Clients heartbeat every 2 s: the pause below outlasts it.
            "--client-timeout",
            "4s",
        ],
    );
    cluster.create_channels(HANDLED, &["tokio", "pynsq"]);
    let manifest = manifest(EVENTS, HANDLED);
    let v1 = good(HANDLED, 1);
    let (code, out, err) = cluster.deploy(&v1, &manifest);
    assert_eq!(code, 0, "v1: {out}{err}");

    let lookupds = cluster.lookupd_http_addresses();
    let stop_tokio = Arc::new(AtomicBool::new(false));
    let tokio_deliveries = tokio_consumer(&lookupds, stop_tokio.clone());
    let pynsq = PynsqConsumer::start(&lookupds);
    let publishers = Publishers::start(&cluster);

    // A bad version is rolled back everywhere; a good v2 goes everywhere.
    let (code, out, err) = cluster.deploy(&bad(), &manifest);
    assert_eq!(code, 1, "the bad version: {out}{err}");
    let v1_hash = Some(sha256(v1.as_bytes()));
    assert_eq!(cluster.live_hashes("up"), vec![v1_hash; 3]);
    let v2 = good(HANDLED, 2);
    let (code, out, err) = cluster.deploy(&v2, &manifest);
    assert_eq!(code, 0, "v2: {out}{err}");
    let v2_hash = Some(sha256(v2.as_bytes()));

    // Two nodes crash and come back, one after the other.
    for index in [1, 2] {
        std::thread::sleep(Duration::from_secs(2));
        cluster.nodes[index].kill();
        std::thread::sleep(Duration::from_secs(2));
        cluster.nodes[index].restart();
    }
    // A lookupd is gone for 30 s: the other one serves discovery, and
    // the nodes register again when it is back.
    cluster.lookupds[0].stop();
    std::thread::sleep(Duration::from_secs(30));
    cluster.lookupds[0].restart();
    let back = cluster.lookupds[0].lookupd.as_ref().unwrap().http();
    assert!(
        eventually(Duration::from_secs(60), || {
            back.get_json("/nodes").1["producers"]
                .as_array()
                .map_or(0, Vec::len)
                == 3
        }),
        "the nodes registered again with the restarted lookupd"
    );
    // A node hangs for longer than its clients' heartbeat, then resumes.
    cluster.nodes[0].pause(true);
    std::thread::sleep(Duration::from_secs(6));
    cluster.nodes[0].pause(false);
    std::thread::sleep(Duration::from_secs(3));

    let acknowledged = publishers.stop();
    assert!(
        acknowledged.len() > 1000,
        "traffic ran: {}",
        acknowledged.len()
    );
    let all_there = eventually(CATCH_UP, || {
        caught_up(&tokio_deliveries, &acknowledged) && caught_up(&pynsq.deliveries, &acknowledged)
    });
    stop_tokio.store(true, Ordering::Relaxed);
    let (tokio_missing, tokio_report) = report("tokio-nsq", &tokio_deliveries, &acknowledged);
    let (pynsq_missing, pynsq_report) = report("pynsq", &pynsq.deliveries, &acknowledged);
    eprintln!("chaos report:\n  {tokio_report}\n  {pynsq_report}");
    assert!(
        all_there && tokio_missing == 0 && pynsq_missing == 0,
        "acknowledged messages lost:\n  {tokio_report}\n  {pynsq_report}"
    );
    assert_eq!(
        cluster.live_hashes("up"),
        vec![v2_hash; 3],
        "every node runs v2 after its restart"
    );
}
