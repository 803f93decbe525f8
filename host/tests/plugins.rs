//! Plugins end to end: real wasqd processes loading real modules (the Rust
//! examples and inline WAT), messages published over HTTP, outputs read with
//! tokio-nsq and raw sockets.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tokio_nsq::{
    NSQChannel, NSQConfigShared, NSQConsumer, NSQConsumerConfig, NSQConsumerConfigSources, NSQTopic,
};
use wasq_testkit::{PluginDir, Wasqd, eventually, wat_plugin};

const WAIT: Duration = Duration::from_secs(20);

fn tokio_consumer(wasqd: &Wasqd, topic: &str, channel: &str) -> NSQConsumer {
    NSQConsumerConfig::new(
        NSQTopic::new(topic).unwrap(),
        NSQChannel::new(channel).unwrap(),
    )
    .set_max_in_flight(50)
    .set_shared(NSQConfigShared::new().set_flush_interval(Duration::from_millis(5)))
    .set_sources(NSQConsumerConfigSources::Daemons(vec![
        wasqd.tcp.to_string(),
    ]))
    .build()
}

async fn read_bodies(consumer: &mut NSQConsumer, n: usize) -> Vec<Vec<u8>> {
    let mut bodies = Vec::new();
    while bodies.len() < n {
        let message = tokio::time::timeout(WAIT, consumer.consume_filtered())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} messages arrived", bodies.len()))
            .expect("consumer open");
        bodies.push(message.body.clone());
        message.finish().await;
    }
    bodies
}

/// The `uppercase` example on channel `upper` of topic `words`,
/// publishing to `words.upper`.
fn add_uppercase(plugins: &PluginDir) {
    plugins.example(
        "uppercase",
        "uppercase",
        "topic = \"words\"\nchannel = \"upper\"\npublish = [\"words.upper\"]\n",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uppercase_publishes_to_its_output_topic() {
    let plugins = PluginDir::default();
    add_uppercase(&plugins);
    let wasqd = plugins.start();
    let http = wasqd.http();
    let mut output = tokio_consumer(&wasqd, "words.upper", "check");
    for word in ["hello", "wasm", "plugins"] {
        assert_eq!(http.post("/pub?topic=words", word.as_bytes()).0, 200);
    }
    let mut got = read_bodies(&mut output, 3).await;
    got.sort();
    assert_eq!(
        got,
        vec![b"HELLO".to_vec(), b"PLUGINS".to_vec(), b"WASM".to_vec()]
    );

    http.wait_settled("words", "upper");
    let status = http.plugin("uppercase");
    assert_eq!(status["state"], "running");
    assert_eq!(status["topic"], "words");
    assert_eq!(status["channel"], "upper");
    assert_eq!(status["module_hash"].as_str().unwrap().len(), 64);
    assert_eq!(status["counters"]["finished"], 3);
    assert_eq!(status["counters"]["published"], 3);
    assert!(status["counters"]["handler_time_us_p99"].as_u64().unwrap() > 0);
    // The plugin is an ordinary client of its channel in /stats.
    let channel = http.channel_stats("words", "upper").unwrap();
    assert_eq!(channel["clients"][0]["user_agent"], "wasq-plugin/uppercase");
    assert_eq!(channel["clients"][0]["ready_count"], 1);
    assert_eq!(http.stats()["plugins"][0]["name"], "uppercase");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_and_an_external_consumer_share_a_channel() {
    let plugins = PluginDir::default();
    plugins.example(
        "uppercase",
        "uppercase",
        "topic = \"words\"\nchannel = \"upper\"\nconcurrency = 2\npublish = [\"words.upper\"]\n",
    );
    let wasqd = plugins.start();
    let http = wasqd.http();
    let mut external = tokio_consumer(&wasqd, "words", "upper");
    let mut other_channel = tokio_consumer(&wasqd, "words", "other");
    // Both consumers of the shared channel are ready before anything is published.
    let shared_ready = || {
        http.channel_stats("words", "upper").is_some_and(|c| {
            let clients = c["clients"].as_array().unwrap().clone();
            clients.len() == 2
                && clients
                    .iter()
                    .all(|client| client["ready_count"].as_i64().unwrap() > 0)
        })
    };
    assert!(eventually(WAIT, shared_ready));
    assert!(eventually(WAIT, || http
        .channel_stats("words", "other")
        .is_some_and(|c| c["client_count"] == 1)));

    // Batches of 300 until each side of the shared channel got some: which
    // side takes a message is up to timing (on a loaded machine the plugin
    // may take a whole batch first), that none is lost or doubled is not.
    let batch = 300;
    let mut total = 0;
    let mut by_client = 0;
    while by_client == 0 || http.counter("uppercase", "finished") == 0 {
        assert!(
            total < 20 * batch,
            "one side of the shared channel got nothing of {total}"
        );
        let body: String = (total..total + batch).map(|i| format!("w{i}\n")).collect();
        assert_eq!(http.post("/mpub?topic=words", body.as_bytes()).0, 200);
        total += batch;

        // The other channel gets its own copy of everything.
        let copies: HashSet<Vec<u8>> = read_bodies(&mut other_channel, batch)
            .await
            .into_iter()
            .collect();
        assert_eq!(copies.len(), batch);
        // On the shared channel each message goes to the plugin or the
        // client, never both and never neither.
        let deadline = Instant::now() + WAIT;
        while by_client + http.counter("uppercase", "finished") as usize != total {
            assert!(
                Instant::now() < deadline,
                "messages missing: client {by_client}, plugin {}",
                http.counter("uppercase", "finished")
            );
            if let Ok(Some(message)) =
                tokio::time::timeout(Duration::from_millis(50), external.consume_filtered()).await
            {
                by_client += 1;
                message.finish().await;
            }
        }
    }
    let by_plugin = http.counter("uppercase", "finished") as usize;
    assert!(by_plugin > 0, "the plugin got nothing");
    assert!(by_client > 0, "the external consumer got nothing");
    assert!(eventually(WAIT, || http.topic_count("words.upper") == by_plugin as u64));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), external.consume_filtered())
            .await
            .is_err(),
        "a message was delivered twice"
    );
}

#[test]
fn retries_count_attempts_then_dead_letter() {
    let plugins = PluginDir::default();
    plugins.example(
        "flaky",
        "flaky",
        "topic = \"jobs\"\nchannel = \"flaky\"\nmax_attempts = 3\ndead_letter_topic = \"jobs.dead\"\nbackoff_min_ms = 20\nbackoff_max_ms = 100\npublish = [\"jobs.done\"]\n",
    );
    let wasqd = plugins.start();
    let http = wasqd.http();
    let mut dead = wasqd.consumer("jobs.dead", "check", 10);
    let mut done = wasqd.consumer("jobs.done", "check", 10);
    http.post("/pub?topic=jobs", b"this will fail");
    http.post("/pub?topic=jobs", b"this is fine");
    assert_eq!(done.read_message().body, "this is fine");
    let dead_letter = dead.read_message();
    assert_eq!(dead_letter.body, "this will fail", "body unchanged");
    http.wait_settled("jobs", "flaky");
    let counters = http.plugin("flaky")["counters"].clone();
    assert_eq!(counters["requeued"], 2);
    assert_eq!(counters["dead_lettered"], 1);
    assert_eq!(counters["finished"], 1);
    assert_eq!(counters["handled"], 4);
    let channel = http.channel_stats("jobs", "flaky").unwrap();
    assert_eq!(channel["requeue_count"], 2);
    assert_eq!(channel["depth"], 0);
    // Logged just after the FIN that the stats above already show.
    assert!(eventually(Duration::from_secs(5), || {
        wasqd
            .log()
            .iter()
            .any(|l| l.contains("dead-lettered") && l.contains("max_attempts 3"))
    }));
}

#[test]
fn fatal_goes_straight_to_the_dead_letter_topic() {
    let plugins = PluginDir::default();
    plugins.example("router", "router", "topic = \"events\"\nchannel = \"router\"\ndead_letter_topic = \"events.dead\"\npublish = [\"events.*\"]\n");
    let wasqd = plugins.start();
    let http = wasqd.http();
    let mut clicks = wasqd.consumer("events.click", "check", 10);
    let mut dead = wasqd.consumer("events.dead", "check", 10);
    http.post("/pub?topic=events", br#"{"type":"click","x":1}"#);
    http.post("/pub?topic=events", b"not json at all");
    assert_eq!(clicks.read_message().body, r#"{"type":"click","x":1}"#);
    let dead_letter = dead.read_message();
    assert_eq!(dead_letter.body, "not json at all");
    http.wait_settled("events", "router");
    let counters = http.plugin("router")["counters"].clone();
    assert_eq!(counters["dead_lettered"], 1);
    assert_eq!(counters["requeued"], 0, "fatal is never retried");
}

#[test]
fn backoff_pauses_delivery_after_failures() {
    let plugins = PluginDir::default();
    plugins.example(
        "flaky",
        "flaky",
        "topic = \"jobs\"\nchannel = \"flaky\"\nconcurrency = 4\nmax_attempts = 1\ndead_letter_topic = \"jobs.dead\"\nbackoff_min_ms = 600\nbackoff_max_ms = 5000\npublish = [\"jobs.done\"]\n",
    );
    let wasqd = plugins.start();
    let http = wasqd.http();
    let mut done = wasqd.consumer("jobs.done", "check", 10);
    // Healthy: a good job goes through at once.
    http.post("/pub?topic=jobs", b"warm up");
    let start = Instant::now();
    done.read_message();
    assert!(start.elapsed() < Duration::from_millis(500));

    // One failure: the plugin backs off (RDY 0), so the next job waits.
    http.post("/pub?topic=jobs", b"fail now");
    assert!(eventually(WAIT, || http.plugin("flaky")["backoff_level"] == 1));
    let failed_at = Instant::now();
    assert_eq!(
        http.channel_stats("jobs", "flaky").unwrap()["clients"][0]["ready_count"],
        0
    );
    http.post("/pub?topic=jobs", b"next job");
    assert_eq!(done.read_message().body, "next job");
    let waited = failed_at.elapsed();
    assert!(
        waited >= Duration::from_millis(450),
        "delivered after {waited:?}, during the backoff pause"
    );
    // The trial succeeded: back to full concurrency.
    assert!(eventually(WAIT, || http.plugin("flaky")["backoff_level"] == 0));
    assert!(eventually(WAIT, || http
        .channel_stats("jobs", "flaky")
        .unwrap()["clients"][0]["ready_count"]
        == 4));
}

/// Manifest for a fault plugin: quick deadline, small memory, fast backoff.
fn fault_manifest(topic: &str) -> String {
    format!(
        "topic = \"{topic}\"\nchannel = \"c\"\nmax_attempts = 2\ndead_letter_topic = \"{topic}.dead\"\nhandler_deadline_ms = 200\nmemory_limit_mib = 2\nbackoff_min_ms = 10\nbackoff_max_ms = 50\npublish = [\"allowed\"]\n"
    )
}

/// Guests that compute for long share their threads: a plugin whose
/// every instance loops (more of them than wasqd has threads for guests,
/// each with 30 s to go) does not hold up another plugin, which keeps
/// handling message after message while the loops run.
#[test]
fn a_computing_guest_does_not_hold_up_other_plugins() {
    let plugins = PluginDir::default();
    plugins.wat(
        "looper",
        &wat_plugin("", "(loop $forever (br $forever)) (i64.const 0)"),
        "topic = \"spin\"\nchannel = \"c\"\nconcurrency = 8\nmax_in_flight = 8\nhandler_deadline_ms = 30000\n",
    );
    add_uppercase(&plugins);
    let wasqd = plugins.start();
    let http = wasqd.http();
    for i in 0..8 {
        http.post("/pub?topic=spin", format!("spin {i}").as_bytes());
    }
    // Every looper instance is computing.
    assert!(eventually(WAIT, || http
        .channel_stats("spin", "c")
        .is_some_and(|c| c["in_flight_count"] == 8)));
    let mut upper = wasqd.consumer("words.upper", "check", 100);
    for i in 0..20 {
        http.post("/pub?topic=words", format!("meanwhile {i}").as_bytes());
        assert_eq!(
            upper.read_message().body,
            format!("MEANWHILE {i}").into_bytes()
        );
    }
    let looper = http.plugin("looper");
    assert_eq!(
        looper["counters"]["timeouts"], 0,
        "the loops were still running: {looper}"
    );
}

#[test]
fn faulty_plugins_never_hurt_the_broker_or_lose_messages() {
    let plugins = PluginDir::default();
    add_uppercase(&plugins);
    plugins.wat(
        "trapper",
        &wat_plugin("", "unreachable"),
        &fault_manifest("trap"),
    );
    plugins.wat(
        "looper",
        &wat_plugin("", "(loop $forever (br $forever)) (i64.const 0)"),
        &fault_manifest("loop"),
    );
    plugins.wat(
        "hog",
        &wat_plugin("", "(loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) unreachable"),
        &fault_manifest("hog"),
    );
    plugins.wat(
        "recursor",
        &wat_plugin(
            "(func $deeper (param i32) (result i32) (call $deeper (i32.add (local.get 0) (i32.const 1))))",
            "(drop (call $deeper (i32.const 0))) (i64.const 0)",
        ),
        &fault_manifest("recurse"),
    );
    // Publishes to a topic its manifest does not allow; FATAL if refused.
    plugins.wat(
        "sneaky",
        &wat_plugin(
            "(data (i32.const 16) \"secret\")",
            "(if (result i64) (call $publish (i32.const 16) (i32.const 6) (i32.const 16) (i32.const 6)) (then (i64.const 3)) (else (i64.const 0)))",
        ),
        &fault_manifest("sneak"),
    );
    let wasqd = plugins.start();
    let http = wasqd.http();
    let faults = [
        ("trapper", "trap"),
        ("looper", "loop"),
        ("hog", "hog"),
        ("recursor", "recurse"),
        ("sneaky", "sneak"),
    ];
    for (name, _) in faults {
        assert_eq!(
            http.plugin(name)["state"],
            "running",
            "{name}: {}",
            http.plugin(name)
        );
    }
    let mut dead_letters: Vec<_> = faults
        .iter()
        .map(|(_, topic)| wasqd.consumer(&format!("{topic}.dead"), "check", 10))
        .collect();
    let mut upper = wasqd.consumer("words.upper", "check", 100);
    let per_plugin = 3;
    for (_, topic) in faults {
        for i in 0..per_plugin {
            assert_eq!(
                http.post(
                    &format!("/pub?topic={topic}"),
                    format!("{topic} {i}").as_bytes()
                )
                .0,
                200
            );
        }
    }
    // Throughout, the broker answers and other channels flow.
    for i in 0..20 {
        assert_eq!(http.get("/ping"), (200, "OK".into()));
        http.post("/pub?topic=words", format!("still {i}").as_bytes());
        assert_eq!(upper.read_message().body, format!("STILL {i}").into_bytes());
    }
    // Nothing is lost: every faulty message ends in its dead-letter topic.
    for ((name, topic), dead) in faults.iter().zip(dead_letters.iter_mut()) {
        let mut bodies: Vec<String> = (0..per_plugin)
            .map(|_| String::from_utf8(dead.read_message().body.to_vec()).unwrap())
            .collect();
        bodies.sort();
        let expected: Vec<String> = (0..per_plugin).map(|i| format!("{topic} {i}")).collect();
        assert_eq!(bodies, expected, "{name}");
    }
    let counter = |name: &str, key: &str| http.counter(name, key);
    assert!(counter("trapper", "traps") >= per_plugin);
    assert!(counter("looper", "timeouts") >= per_plugin);
    assert!(counter("hog", "traps") >= per_plugin);
    assert!(counter("recursor", "traps") >= per_plugin);
    assert_eq!(counter("sneaky", "publish_refused"), per_plugin);
    assert_eq!(
        http.topic_count("secret"),
        0,
        "a forbidden publish reached its topic"
    );
    assert!(
        http.plugin("looper")["last_error"]
            .as_str()
            .unwrap()
            .contains("deadline")
    );
    assert!(
        http.plugin("recursor")["last_error"]
            .as_str()
            .unwrap()
            .contains("stack")
    );
    assert_eq!(http.plugin("uppercase")["counters"]["traps"], 0);
}

#[test]
fn bad_modules_and_manifests_are_reported_and_skipped() {
    let plugins = PluginDir::default();
    plugins.example(
        "uppercase",
        "good",
        "topic = \"words\"\nchannel = \"upper\"\npublish = [\"words.upper\"]\n",
    );
    std::fs::write(
        plugins.dir.path().join("garbage.wasm"),
        b"\0asm this is not wasm",
    )
    .unwrap();
    plugins.manifest("garbage", "topic = \"g\"\n");
    plugins.example(
        "uppercase",
        "badmanifest",
        "topic = \"t\"\nconcurency = 2\n",
    );
    plugins.wat(
        "oldabi",
        &wat_plugin("", "(i64.const 0)").replace("(i32.const 1))", "(i32.const 7))"),
        "topic = \"o\"\n",
    );
    plugins.wat("noalloc", "(module (memory (export \"memory\") 1) (func (export \"wasq_abi_version\") (result i32) (i32.const 1)))", "topic = \"n\"\n");
    plugins.example("uppercase", "lonely", "topic = \"x\"\n");
    std::fs::remove_file(plugins.dir.path().join("lonely.toml")).unwrap();
    let wasqd = plugins.start();
    let http = wasqd.http();
    assert_eq!(http.plugin("good")["state"], "running");
    let error = |name: &str| {
        let p = http.plugin(name);
        assert_eq!(p["state"], "failed", "{name}: {p}");
        p["last_error"].as_str().unwrap().to_string()
    };
    assert!(error("garbage").contains("garbage.wasm"));
    let manifest_error = error("badmanifest");
    assert!(
        manifest_error.contains("badmanifest.toml") && manifest_error.contains("concurency"),
        "{manifest_error}"
    );
    assert!(error("oldabi").contains("returned 7"));
    assert!(error("noalloc").contains("wasq_alloc"));
    assert!(error("lonely").contains("lonely.toml"));
    assert!(
        wasqd
            .log()
            .iter()
            .any(|l| l.contains("PLUGIN: not loaded") && l.contains("garbage.wasm"))
    );
    // The broker serves normally.
    let mut upper = wasqd.consumer("words.upper", "check", 1);
    http.post("/pub?topic=words", b"ok");
    assert_eq!(upper.read_message().body, "OK");
}

#[test]
fn the_hand_written_example_from_abi_md_works() {
    // The WAT plugin printed in guest-sdk/ABI.md, taken from the document itself.
    let abi = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../guest-sdk/ABI.md"))
        .unwrap();
    let wat = abi
        .split("```wat\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let plugins = PluginDir::default();
    plugins.wat("copier", wat, "topic = \"source\"\npublish = [\"copy\"]\n");
    let wasqd = plugins.start();
    let mut copies = wasqd.consumer("copy", "check", 1);
    wasqd.http().post("/pub?topic=source", b"by hand");
    assert_eq!(copies.read_message().body, "by hand");
    assert!(eventually(WAIT, || wasqd
        .http()
        .counter("copier", "finished")
        == 1));
}

#[test]
fn guest_stdout_and_stderr_reach_the_host_log_under_the_plugin_name() {
    let wat = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; iovecs at 32 (stdout text at 64) and 40 (stderr text at 96)
  (data (i32.const 32) "\40\00\00\00\10\00\00\00\60\00\00\00\0e\00\00\00")
  (data (i32.const 64) "hello from wasm\n")
  (data (i32.const 96) "oops on stderr")
  (func (export "wasq_abi_version") (result i32) (i32.const 1))
  (func (export "wasq_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "wasq_handle") (param i32 i32) (result i64)
    (drop (call $fd_write (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 200)))
    (drop (call $fd_write (i32.const 2) (i32.const 40) (i32.const 1) (i32.const 200)))
    (i64.const 0)))"#;
    let plugins = PluginDir::default();
    plugins.wat("talker", wat, "topic = \"talk\"\n");
    let wasqd = plugins.start();
    wasqd.http().post("/pub?topic=talk", b"say something");
    let logged = |text: &str| {
        wasqd
            .log()
            .iter()
            .any(|l| l.contains(text) && l.contains("talker"))
    };
    assert!(
        eventually(WAIT, || logged("hello from wasm")
            && logged("oops on stderr")),
        "{:?}",
        wasqd.log()
    );
    assert!(eventually(WAIT, || wasqd
        .http()
        .counter("talker", "finished")
        == 1));
}
