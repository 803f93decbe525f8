//! `wasq plugin deploy`, `ls` and `rm` against three wasqd nodes that a
//! wasq-lookupd knows, with a publisher per node throughout: a rolling
//! deploy, a bad version rolled back everywhere, a good v2 everywhere, and
//! every published message handled; and a node guarded by client
//! certificates.

mod cluster;
mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use cluster::{Cluster, WAIT, bad, good, manifest, sha256};
use wasq_testkit::certs::{CLIENT_COMMON_NAME, Certificates};
use wasq_testkit::{Answer, HttpSink, PluginDir, Wasqd, wat_plugin};

/// Publishes `n<node>-<seq>` to `words` on each node until stopped.
struct Publishers {
    stop: Arc<AtomicBool>,
    sent: Vec<Arc<AtomicU64>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Publishers {
    fn start(nodes: &[&Wasqd]) -> Publishers {
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
fn received(nodes: &[&Wasqd], expected: &HashSet<String>) -> HashSet<String> {
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
    let cluster = Cluster::start(1, 3, &[]);
    let nodes: Vec<&Wasqd> = cluster.nodes.iter().map(|n| n.wasqd()).collect();
    cluster.create_channels("out", &["check"]);
    let publishers = Publishers::start(&nodes);
    let manifest = manifest("words", "out");

    let v1 = good("out", 1);
    let (code, stdout, stderr) = cluster.deploy(&v1, &manifest);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("rolling"), "{stdout}");
    let v1_hash = sha256(v1.as_bytes());
    assert_eq!(cluster.live_hashes("up"), vec![Some(v1_hash.clone()); 3]);

    // The bad version traps on the first node within the settle time: it
    // goes back to v1 there, and the other nodes never see it.
    let bad = bad();
    let bad_hash = sha256(bad.as_bytes());
    let (code, stdout, stderr) = cluster.deploy(&bad, &manifest);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("FAILED") && stdout.contains("rolled back to"),
        "{stdout}"
    );
    assert!(stderr.contains("was not deployed"), "{stderr}");
    assert_eq!(cluster.live_hashes("up"), vec![Some(v1_hash.clone()); 3]);
    let had_bad = |node: &&Wasqd| {
        node.http().plugin("up")["history"]
            .to_string()
            .contains(&bad_hash)
    };
    let reached = nodes.iter().filter(|n| had_bad(n)).count();
    assert_eq!(reached, 1, "only the first node tried it");

    let v2 = good("out", 2);
    let (code, stdout, stderr) = cluster.deploy_with(&v2, &manifest, &["--all-at-once"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("all at once"), "{stdout}");
    assert_eq!(
        cluster.live_hashes("up"),
        vec![Some(sha256(v2.as_bytes())); 3]
    );

    let (code, table, stderr) = cluster.wasq(&["ls", "--interval", "500ms"]);
    assert_eq!(code, 0, "{table}{stderr}");
    let summary = table.lines().find(|l| l.starts_with("up ")).expect(&table);
    let columns: Vec<&str> = summary.split_whitespace().collect();
    assert_eq!(&columns[1..5], ["3", "1", "3", "running"], "{table}");
    let handled: u64 = columns[5].parse().expect(&table);
    assert!(handled > 0, "{table}");
    let (code, json, _) = cluster.wasq(&["ls", "--interval", "200ms", "--json"]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        json["plugins"][0]["nodes"].as_array().map(Vec::len),
        Some(3)
    );

    let published = publishers.stop();
    let got = received(&nodes, &published);
    let missing: Vec<&String> = published.difference(&got).take(10).collect();
    assert!(
        missing.is_empty(),
        "{} of {} published messages never handled, e.g. {missing:?}; the first node:\n{}",
        published.difference(&got).count(),
        published.len(),
        nodes[0].http().get("/stats").1
    );

    let (code, stdout, stderr) = cluster.wasq(&["rm", "up"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    for node in &nodes {
        assert_eq!(node.http().plugin("up")["state"], "removed");
    }
}

#[test]
fn a_version_that_takes_no_message_while_messages_wait_is_rolled_back() {
    let cluster = Cluster::start(1, 1, &[]);
    let node = cluster.nodes[0].wasqd();
    let manifest = manifest("words", "out");
    let v1 = good("out", 1);
    let (code, stdout, stderr) = cluster.deploy(&v1, &manifest);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let publishers = Publishers::start(&[node]);
    // Loops until its deadline (5 s): within the settle time it neither
    // finishes a message nor fails one, while messages pile up.
    let stuck = wat_plugin("", "(loop (br 0)) (i64.const 0)");
    let (code, stdout, stderr) = cluster.deploy(&stuck, &manifest);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("not handling"), "{stdout}");
    assert_eq!(cluster.live_hashes("up"), vec![Some(sha256(v1.as_bytes()))]);
    publishers.stop();
}

#[test]
fn a_plain_nsqd_among_the_nodes_is_left_out() {
    let cluster = Cluster::start(1, 1, &[]);
    // Stands in for a real nsqd: no /plugins, nothing else either.
    let nsqd = HttpSink::start();
    nsqd.answer_with(|_| Answer::status(404).body(r#"{"message":"NOT_FOUND"}"#));
    let origin = nsqd.origin();
    let also_nsqd = ["--nsqd-http-address", origin.as_str()];
    let v1 = good("out", 1);
    let (code, stdout, stderr) = cluster.deploy_with(&v1, &manifest("words", "out"), &also_nsqd);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains("not a wasqd"), "{stderr}");
    assert!(stdout.contains("to 1 node(s)"), "{stdout}");
    assert_eq!(cluster.live_hashes("up"), vec![Some(sha256(v1.as_bytes()))]);
    let mut ls = vec!["ls", "--interval", "100ms"];
    ls.extend_from_slice(&also_nsqd);
    let (code, table, stderr) = cluster.wasq(&ls);
    assert_eq!(code, 0, "{table}{stderr}");
    assert!(!stderr.contains("unreachable"), "{stderr}");
    assert!(table.lines().any(|l| l.starts_with("up ")), "{table}");
}

#[test]
fn a_node_that_verifies_client_certificates_takes_a_deploy_over_https() {
    let certs = Certificates::new();
    // Plain HTTP stays open (for the test's own looks); the plugin API
    // there needs a token, which these nodes have none of.
    let start_node = |allowed_name: &str| {
        let mut args = certs.server_flags();
        args.extend(
            [
                "--tls-client-auth-policy",
                "require-verify",
                "--tls-required",
                "tcp-https",
                "--plugin-admin",
                "--plugin-admin-cert-cn",
                allowed_name,
            ]
            .map(String::from),
        );
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        PluginDir::default().start_with(&args)
    };
    let node = start_node(CLIENT_COMMON_NAME);
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("up.wat"), good("out", 1)).unwrap();
    std::fs::write(files.path().join("up.toml"), manifest("words", "out")).unwrap();
    let https_of =
        |node: &Wasqd| format!("https://localhost:{}", node.https.expect("https").port());
    let deploy = |node: &Wasqd, extra: &[&str]| {
        let https = https_of(node);
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
    let with_certificate = [
        "--tls-root-ca-file",
        &ca,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ];
    // Without a certificate the handshake itself fails: nothing changes.
    let (code, stdout, stderr) = deploy(&node, &["--tls-root-ca-file", &ca]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert_eq!(node.http().plugin("up"), serde_json::Value::Null);

    let (code, stdout, stderr) = deploy(&node, &with_certificate);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let history = node.http().plugin("up")["history"].to_string();
    assert!(
        history.contains(&format!("certificate CN={CLIENT_COMMON_NAME}")),
        "{history}"
    );
    let (status, body) = node.http().put_plugin(
        "up",
        good("out", 2).as_bytes(),
        &manifest("words", "out"),
        None,
    );
    assert_eq!(status, 401, "plain HTTP has no certificate: {body}");

    // A node that allows another name refuses this certificate.
    let other = start_node("deployer");
    let (code, stdout, stderr) = deploy(&other, &with_certificate);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.contains("PLUGIN_ADMIN_UNAUTHORIZED"), "{stderr}");
    assert_eq!(other.http().plugin("up"), serde_json::Value::Null);
}
