//! `wasq plugin deploy`, `ls` and `rm` against three wasqd nodes that a
//! wasq-lookupd knows, with a publisher per node throughout: a rolling
//! deploy, a bad version rolled back everywhere, a good v2 everywhere, and
//! every published message handled; and a node guarded by client
//! certificates.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasq_testkit::certs::{CLIENT_COMMON_NAME, Certificates};
use wasq_testkit::{Lookupd, PluginDir, Wasqd, eventually, wat_plugin};

const WAIT: Duration = Duration::from_secs(60);
const TOKEN: &str = "0123456789abcdef0123";
const MANIFEST: &str = "topic = \"words\"\nchannel = \"deployed\"\npublish = [\"out\"]\n";

/// A version that publishes each body to `out`; `tag` makes it differ.
fn good(tag: u32) -> String {
    wat_plugin(
        &format!("(data (i32.const 16) \"out\") (global $tag i32 (i32.const {tag}))"),
        // The body follows the header, the topic and the channel (ABI.md).
        "(drop (call $publish (i32.const 16) (i32.const 3)
           (i32.add (i32.add (local.get $ptr) (i32.load (local.get $ptr)))
             (i32.add (i32.load offset=32 (local.get $ptr)) (i32.load offset=36 (local.get $ptr))))
           (i32.load offset=40 (local.get $ptr))))
         (i64.const 0)",
    )
}

/// A version that traps on every message.
fn bad() -> String {
    wat_plugin("", "(unreachable)")
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct Cluster {
    lookupd: Lookupd,
    nodes: Vec<Wasqd>,
    _dirs: Vec<PluginDir>,
    tokens: tempfile::NamedTempFile,
    files: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Cluster {
        let lookupd = Lookupd::start(&[]);
        let tokens = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tokens.path(), format!("ci:{TOKEN}\n")).unwrap();
        let lookupd_tcp = lookupd.tcp.to_string();
        let dirs: Vec<PluginDir> = (0..3).map(|_| PluginDir::default()).collect();
        let nodes = dirs
            .iter()
            .map(|dir| {
                dir.start_with(&[
                    "--no-embedded-lookupd",
                    "--lookupd-tcp-address",
                    &lookupd_tcp,
                    "--broadcast-address",
                    "127.0.0.1",
                    "--plugin-admin",
                    "--plugin-admin-token-file",
                    tokens.path().to_str().unwrap(),
                ])
            })
            .collect();
        let cluster = Cluster {
            lookupd,
            nodes,
            _dirs: dirs,
            tokens,
            files: tempfile::tempdir().unwrap(),
        };
        let registered = eventually(WAIT, || {
            let (_, nodes) = cluster.lookupd.http().get_json("/nodes");
            nodes["producers"].as_array().map_or(0, Vec::len) == 3
        });
        assert!(registered, "three nodes registered with lookupd");
        cluster
    }

    /// Runs `wasq plugin ARGS` against the cluster through lookupd.
    fn wasq(&self, args: &[&str]) -> (i32, String, String) {
        let lookupd = self.lookupd.http.to_string();
        let mut all = vec!["plugin"];
        all.extend_from_slice(args);
        all.extend_from_slice(&[
            "--lookupd-http-address",
            &lookupd,
            "--token-file",
            self.tokens.path().to_str().unwrap(),
        ]);
        support::run_in(self.files.path(), &all)
    }

    /// Deploys `module` as plugin `up`.
    fn deploy(&self, module: &str) -> (i32, String, String) {
        std::fs::write(self.files.path().join("up.wat"), module).unwrap();
        std::fs::write(self.files.path().join("up.toml"), MANIFEST).unwrap();
        self.wasq(&["deploy", "up.wat", "--settle", "1s"])
    }

    fn live_hashes(&self) -> Vec<Option<String>> {
        self.nodes
            .iter()
            .map(|node| {
                node.http().plugin("up")["module_hash"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect()
    }
}

/// Publishes `n<node>-<seq>` to `words` on each node until stopped.
struct Publishers {
    stop: Arc<AtomicBool>,
    sent: Vec<Arc<AtomicU64>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Publishers {
    fn start(nodes: &[Wasqd]) -> Publishers {
        let stop = Arc::new(AtomicBool::new(false));
        let mut sent = Vec::new();
        let mut threads = Vec::new();
        for (index, node) in nodes.iter().enumerate() {
            let (stop, count) = (stop.clone(), Arc::new(AtomicU64::new(0)));
            sent.push(count.clone());
            let mut client = node.raw();
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let seq = count.load(Ordering::Relaxed);
                    client.publish("words", format!("n{index}-{seq}").as_bytes());
                    count.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(5));
                }
            }));
        }
        Publishers {
            stop,
            sent,
            threads,
        }
    }

    /// Stops publishing; every body that was acknowledged.
    fn stop(self) -> HashSet<String> {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().unwrap();
        }
        let mut bodies = HashSet::new();
        for (index, sent) in self.sent.iter().enumerate() {
            for seq in 0..sent.load(Ordering::Relaxed) {
                bodies.insert(format!("n{index}-{seq}"));
            }
        }
        bodies
    }
}

/// Reads `out` on channel `check` of every node until `expected` all came
/// (or `WAIT` passed); what came.
fn received(nodes: &[Wasqd], expected: &HashSet<String>) -> HashSet<String> {
    let mut got = HashSet::new();
    let mut consumers: Vec<_> = nodes
        .iter()
        .map(|n| n.consumer("out", "check", 100))
        .collect();
    let deadline = std::time::Instant::now() + WAIT;
    while !expected.is_subset(&got) && std::time::Instant::now() < deadline {
        for consumer in &mut consumers {
            while let Some(message) = consumer.next_message(Duration::from_millis(50)) {
                got.insert(String::from_utf8_lossy(&message.body).into_owned());
                consumer.finish(&message);
            }
        }
    }
    got
}

#[test]
fn a_rolling_deploy_rolls_a_bad_version_back_everywhere_and_loses_no_message() {
    let cluster = Cluster::start();
    for node in &cluster.nodes {
        for path in [
            "/topic/create?topic=out",
            "/channel/create?topic=out&channel=check",
        ] {
            let (status, body) = node.http().post(path, b"");
            assert_eq!(status, 200, "{path}: {body}");
        }
    }
    let publishers = Publishers::start(&cluster.nodes);

    let v1 = good(1);
    let (code, stdout, stderr) = cluster.deploy(&v1);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("rolling"), "{stdout}");
    let v1_hash = sha256(v1.as_bytes());
    assert_eq!(cluster.live_hashes(), vec![Some(v1_hash.clone()); 3]);

    // The bad version traps on the first node within the settle time: it
    // goes back to v1 there, and the other nodes never see it.
    let bad = bad();
    let bad_hash = sha256(bad.as_bytes());
    let (code, stdout, stderr) = cluster.deploy(&bad);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("FAILED") && stdout.contains("rolled back to"),
        "{stdout}"
    );
    assert!(stderr.contains("was not deployed"), "{stderr}");
    assert_eq!(cluster.live_hashes(), vec![Some(v1_hash.clone()); 3]);
    let had_bad = |node: &Wasqd| {
        node.http().plugin("up")["history"]
            .to_string()
            .contains(&bad_hash)
    };
    let reached: Vec<bool> = cluster.nodes.iter().map(had_bad).collect();
    assert_eq!(
        reached.iter().filter(|r| **r).count(),
        1,
        "only the first node: {reached:?}"
    );

    let v2 = good(2);
    let (code, stdout, stderr) = cluster.deploy(&v2);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(cluster.live_hashes(), vec![Some(sha256(v2.as_bytes())); 3]);

    let (code, table, stderr) = cluster.wasq(&["ls", "--interval", "500ms"]);
    assert_eq!(code, 0, "{table}{stderr}");
    let summary = table.lines().find(|l| l.starts_with("up ")).expect(&table);
    let columns: Vec<&str> = summary.split_whitespace().collect();
    assert_eq!(&columns[1..5], ["3", "1", "3", "running"], "{table}");
    let (code, json, _) = cluster.wasq(&["ls", "--interval", "200ms", "--json"]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        json["plugins"][0]["nodes"].as_array().map(Vec::len),
        Some(3)
    );

    let published = publishers.stop();
    let got = received(&cluster.nodes, &published);
    let missing: Vec<&String> = published.difference(&got).take(10).collect();
    assert!(
        missing.is_empty(),
        "{} of {} published messages never handled, e.g. {missing:?}; the first node:\n{}",
        published.difference(&got).count(),
        published.len(),
        cluster.nodes[0].http().get("/stats").1
    );

    let (code, stdout, stderr) = cluster.wasq(&["rm", "up"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    for node in &cluster.nodes {
        assert_eq!(node.http().plugin("up")["state"], "removed");
    }
}

#[test]
fn a_node_that_verifies_client_certificates_takes_a_deploy_over_https() {
    let certs = Certificates::new();
    let mut args = certs.server_flags();
    args.extend(
        [
            "--tls-client-auth-policy",
            "require-verify",
            // Plain HTTP stays open (for the test's own looks); the plugin
            // API there needs a token, which this node has none of.
            "--tls-required",
            "tcp-https",
            "--plugin-admin",
            "--plugin-admin-cert-cn",
            CLIENT_COMMON_NAME,
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let node = PluginDir::default().start_with(&args);
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("up.wat"), good(1)).unwrap();
    std::fs::write(files.path().join("up.toml"), MANIFEST).unwrap();
    let https = format!("https://localhost:{}", node.https.expect("https").port());
    let deploy = |extra: &[&str]| {
        let mut all = vec![
            "plugin",
            "deploy",
            "up.wat",
            "--settle",
            "200ms",
            "--nsqd-http-address",
            &https,
        ];
        all.extend_from_slice(extra);
        support::run_in(files.path(), &all)
    };
    let (ca, cert, key) = (
        certs.path("ca.pem"),
        certs.path("client.pem"),
        certs.path("client.key"),
    );
    // Without a certificate the handshake itself fails: nothing changes.
    let (code, stdout, stderr) = deploy(&["--tls-root-ca-file", &ca]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert_eq!(node.http().plugin("up"), serde_json::Value::Null);

    let (code, stdout, stderr) = deploy(&[
        "--tls-root-ca-file",
        &ca,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let history = node.http().plugin("up")["history"].to_string();
    assert!(
        history.contains(&format!("certificate CN={CLIENT_COMMON_NAME}")),
        "{history}"
    );
    let (status, body) = node
        .http()
        .put_plugin("up", good(2).as_bytes(), MANIFEST, None);
    assert_eq!(status, 401, "plain HTTP has no certificate: {body}");
}
