//! Component plugins (the WIT world in guest-sdk/wit) end to end, through
//! real components built by scripts/build-guests: `scripted` (a Rust
//! component that does what each body says) drives every part of the
//! contract that core modules are held to in plugins.rs and hot_reload.rs:
//! outcomes, max_attempts, dead-letter, deadline, memory limit, traps,
//! publish allowlist and refusals, init, WASI 0.2 limits, the log, and hot
//! reload from the compiled-artifact cache.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use wasq_testkit::{PluginDir, RawClient, Wasqd, eventually, guest_dir};

const WAIT: Duration = Duration::from_secs(30);
const LANGUAGE: &str = "rust-component";

fn component(example: &str) -> Vec<u8> {
    let path = guest_dir(LANGUAGE).join(format!("{example}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: run scripts/build-guests (scripts/test does)",
            path.display()
        )
    })
}

/// A plugins directory with `scripted` under `name` and `manifest`.
fn scripted(name: &str, manifest: &str) -> PluginDir {
    let dir = PluginDir::default();
    dir.guest(LANGUAGE, "scripted", name, manifest);
    dir
}

fn read_bodies(consumer: &mut RawClient, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let message = consumer.read_message();
            consumer.finish(&message);
            String::from_utf8_lossy(&message.body).into_owned()
        })
        .collect()
}

fn logged(wasqd: &Wasqd, all: &[&str]) -> bool {
    wasqd
        .log()
        .iter()
        .any(|line| all.iter().all(|text| line.contains(text)))
}

#[test]
fn outcomes_retries_and_dead_letters_are_those_of_core_modules() {
    let dir = scripted(
        "script",
        "topic = \"script\"\nmax_attempts = 2\ndead_letter_topic = \"script.dead\"\n\
         backoff_min_ms = 20\nbackoff_max_ms = 100\n",
    );
    let wasqd = dir.start();
    let http = wasqd.http();
    assert_eq!(http.plugin("script")["kind"], "component");
    let mut dead = wasqd.consumer("script.dead", "check", 10);
    let mut publisher = wasqd.raw();
    let published_at = Instant::now();
    for body in ["ok", "retry", "retry-after 300", "fatal bad input"] {
        publisher.publish("script", body.as_bytes());
    }
    let mut dead_letters = BTreeSet::new();
    for _ in 0..3 {
        let body = read_bodies(&mut dead, 1).remove(0);
        if body == "retry-after 300" {
            // Two attempts, the second 300 ms after the first failed.
            assert!(published_at.elapsed() >= Duration::from_millis(300));
        }
        dead_letters.insert(body);
    }
    assert_eq!(
        dead_letters,
        BTreeSet::from(["fatal bad input", "retry", "retry-after 300"].map(String::from))
    );
    http.wait_settled("script", "script");
    let counters = http.plugin("script")["counters"].clone();
    assert_eq!(counters["handled"], 6, "{counters}");
    assert_eq!(counters["finished"], 1, "{counters}");
    assert_eq!(counters["requeued"], 2, "{counters}");
    assert_eq!(counters["dead_lettered"], 3, "{counters}");
    // Logged before the message was dead-lettered.
    assert!(
        logged(&wasqd, &["script", "bad input"]),
        "the fatal reason is logged under the plugin's name: {:?}",
        wasqd.log()
    );
}

#[test]
fn deadlines_memory_limits_and_traps_replace_the_instance() {
    let dir = scripted(
        "faulty",
        "topic = \"faults\"\nmax_attempts = 1\ndead_letter_topic = \"faults.dead\"\n\
         handler_deadline_ms = 200\nmemory_limit_mib = 16\nbackoff_min_ms = 1\nbackoff_max_ms = 5\n",
    );
    let wasqd = dir.start();
    let http = wasqd.http();
    let mut dead = wasqd.consumer("faults.dead", "check", 10);
    let mut publisher = wasqd.raw();
    for body in ["spin", "grow 64", "trap", "grow 2", "ok"] {
        publisher.publish("faults", body.as_bytes());
    }
    let mut dead_letters: Vec<String> = read_bodies(&mut dead, 3);
    dead_letters.sort();
    assert_eq!(dead_letters, ["grow 64", "spin", "trap"]);
    http.wait_settled("faults", "faulty");
    let status = http.plugin("faulty");
    let counters = &status["counters"];
    assert_eq!(counters["timeouts"], 1, "{status}");
    assert_eq!(counters["traps"], 2, "{status}");
    assert_eq!(
        counters["finished"], 2,
        "a new instance serves after each: {status}"
    );
    assert_eq!(status["state"], "running");
    assert!(logged(&wasqd, &["faulty", "handler deadline exceeded"]));
}

#[test]
fn publishes_are_checked_and_refused_as_for_core_modules() {
    let dir = scripted(
        "publisher",
        "topic = \"orders\"\npublish = [\"orders.results\", \"allowed.*\"]\n",
    );
    let wasqd = dir.start();
    let http = wasqd.http();
    let mut results = wasqd.consumer("orders.results", "check", 1);
    let mut allowed = wasqd.consumer("allowed.x", "check", 10);
    let mut deferred = wasqd.consumer("allowed.later", "check", 10);
    let mut publisher = wasqd.raw();
    let cases = [
        ("publish allowed.x hello", "ok"),
        ("publish other.topic hi", "forbidden"),
        ("publish bad!topic hi", "invalid-topic"),
        ("publish allowed.x", "invalid-body"),
        ("publish-deferred allowed.later 4000000000", "invalid-delay"),
        ("publish-deferred allowed.later 50", "ok"),
    ];
    for (body, _) in cases {
        publisher.publish("orders", body.as_bytes());
    }
    let got = read_bodies(&mut results, cases.len());
    let expected: Vec<&str> = cases.iter().map(|(_, result)| *result).collect();
    assert_eq!(got, expected);
    assert_eq!(read_bodies(&mut allowed, 1), ["hello"]);
    assert_eq!(read_bodies(&mut deferred, 1), ["deferred"]);
    let counters = http.plugin("publisher")["counters"].clone();
    assert_eq!(counters["publish_refused"], 4, "{counters}");
    assert_eq!(
        counters["published"],
        2 + 6,
        "two publishes and six results: {counters}"
    );
}

#[test]
fn init_runs_per_instance_and_a_failing_init_keeps_the_version_out() {
    let dir = scripted("greeter", "topic = \"greetings\"\n");
    dir.guest(
        LANGUAGE,
        "scripted",
        "refuse-init",
        "topic = \"greetings\"\n",
    );
    let wasqd = dir.start();
    let http = wasqd.http();
    assert_eq!(http.plugin("greeter")["state"], "running");
    assert!(eventually(WAIT, || logged(
        &wasqd,
        &["greeter", "init ran in greeter"]
    )));
    let refused = http.plugin("refuse-init");
    assert_eq!(refused["state"], "failed", "{refused}");
    let error = refused["last_error"].as_str().unwrap();
    assert!(
        error.contains("init() failed") && error.contains("refuse-init refuses to start"),
        "{error}"
    );
}

#[test]
fn wasi_gives_no_environment_files_or_network_and_stdout_reaches_the_log() {
    let dir = scripted(
        "boxed",
        "topic = \"boxed\"\npublish = [\"boxed.results\"]\n",
    );
    let wasqd = dir.start();
    let mut results = wasqd.consumer("boxed.results", "check", 1);
    let mut publisher = wasqd.raw();
    publisher.publish("boxed", b"sandbox");
    publisher.publish("boxed", b"print hello from a component");
    assert_eq!(
        read_bodies(&mut results, 1),
        ["env=0 file=denied net=denied"]
    );
    assert!(
        eventually(WAIT, || logged(
            &wasqd,
            &["boxed", "hello from a component"]
        )),
        "{:?}",
        wasqd.log()
    );
}

#[test]
fn a_component_reloads_under_traffic_and_back_from_the_cache() {
    let dir = PluginDir::default();
    dir.guest(
        LANGUAGE,
        "uppercase",
        "upper",
        "topic = \"words\"\nchannel = \"upper\"\nconcurrency = 2\npublish = [\"words.upper.rs-component\"]\n",
    );
    let wasqd = dir.start();
    let http = wasqd.http();
    let first = http.plugin("upper");
    assert_eq!(first["load"]["from_cache"], false, "{first}");
    let target = dir.dir.path().join("upper.wasm");
    let staging = dir.dir.path().join("upper.wasm.staging");
    let replace = |bytes: &[u8]| {
        std::fs::write(&staging, bytes).unwrap();
        std::fs::rename(&staging, &target).unwrap();
    };
    let history_len = || http.plugin("upper")["history"].as_array().unwrap().len();

    let mut publisher = wasqd.raw();
    let batch: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    publisher.mpub("words", &batch);
    // To `trivial` (finishes without publishing) while messages flow…
    replace(&component("trivial"));
    publisher.mpub("words", &batch);
    assert!(
        eventually(WAIT, || history_len() == 2),
        "{}",
        http.plugin("upper")
    );
    publisher.mpub("words", &batch);
    // …and back: the same module, compiled before, comes from the cache.
    replace(&component("uppercase"));
    assert!(
        eventually(WAIT, || history_len() == 3),
        "{}",
        http.plugin("upper")
    );
    publisher.mpub("words", &batch);
    http.wait_settled("words", "upper");
    let status = http.plugin("upper");
    let history = status["history"].as_array().unwrap();
    assert!(
        history[1..].iter().all(|r| r["result"] == "reloaded"),
        "{status}"
    );
    assert_eq!(status["kind"], "component");
    assert_eq!(status["load"]["from_cache"], true, "{status}");
    eprintln!(
        "reload of a cached component: {} ms (first load {} ms)",
        status["load"]["load_ms"], first["load"]["load_ms"]
    );
    // Nothing lost: every message was handled once and finished.
    let counters = &status["counters"];
    assert_eq!(counters["finished"], 200, "{status}");
    assert_eq!(counters["requeued"], 0, "{status}");
}

/// The same script through `scripted` in Rust, JavaScript and Python, side
/// by side in one wasqd: every outcome, a handler that throws something
/// that is not a `failure`, publish refusals, init and stdout.
#[test]
fn rust_javascript_and_python_components_keep_the_contract_alike() {
    const LANGUAGES: [(&str, &str); 3] = [
        ("rust-component", "init ran in scripted_rust-component"),
        ("js", "init ran in javascript"),
        ("python", "init ran in python"),
    ];
    let dir = PluginDir::default();
    for (language, _) in LANGUAGES {
        let manifest = format!(
            "topic = \"script_{language}\"\nmax_attempts = 2\n\
             dead_letter_topic = \"script_{language}.dead\"\nbackoff_min_ms = 20\nbackoff_max_ms = 100\n\
             publish = [\"script_{language}.results\", \"allowed_{language}\"]\n"
        );
        dir.guest(
            language,
            "scripted",
            &format!("scripted_{language}"),
            &manifest,
        );
    }
    let wasqd = dir.start();
    let http = wasqd.http();
    // Multi-megabyte runtimes say when their compile starts, and its time.
    // Plugins load in the background, after wasqd is ready.
    eventually(WAIT, || {
        logged(&wasqd, &["PLUGINS: compiled a WebAssembly component"])
    });
    let log = wasqd.log();
    assert!(
        log.iter()
            .any(|l| l.contains("PLUGINS: compiling a WebAssembly component of")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("PLUGINS: compiled a WebAssembly component") && l.contains("ms=")),
        "{log:?}"
    );
    let mut publisher = wasqd.raw();
    let mut readers = Vec::new();
    for (language, _) in LANGUAGES {
        let topic = format!("script_{language}");
        let dead = wasqd.consumer(&format!("{topic}.dead"), "check", 10);
        let results = wasqd.consumer(&format!("{topic}.results"), "check", 1);
        let allowed = wasqd.consumer(&format!("allowed_{language}"), "check", 10);
        for body in [
            "ok".to_string(),
            "retry".to_string(),
            "retry-after 200".to_string(),
            format!("fatal bad input for {language}"),
            "throw".to_string(),
            format!("publish allowed_{language} hello"),
            "publish forbidden.topic x".to_string(),
            "publish bad!name x".to_string(),
            format!("publish allowed_{language}"),
            format!("print hello from {language}"),
        ] {
            publisher.publish(&topic, body.as_bytes());
        }
        readers.push((language, dead, results, allowed));
    }
    for (language, dead, results, allowed) in &mut readers {
        let mut dead_letters = read_bodies(dead, 4);
        dead_letters.sort();
        assert_eq!(
            dead_letters,
            [
                format!("fatal bad input for {language}"),
                "retry".to_string(),
                "retry-after 200".to_string(),
                "throw".to_string()
            ],
            "{language}"
        );
        assert_eq!(
            read_bodies(results, 4),
            ["ok", "forbidden", "invalid-topic", "invalid-body"],
            "{language}"
        );
        assert_eq!(read_bodies(allowed, 1), ["hello"], "{language}");
    }
    for (language, init_line) in LANGUAGES {
        let plugin = format!("scripted_{language}");
        http.wait_settled(&format!("script_{language}"), &plugin);
        let status = http.plugin(&plugin);
        let counters = &status["counters"];
        assert_eq!(status["kind"], "component", "{status}");
        assert_eq!(counters["handled"], 13, "{language}: {status}");
        assert_eq!(counters["finished"], 6, "{language}: {status}");
        assert_eq!(counters["requeued"], 3, "{language}: {status}");
        assert_eq!(counters["dead_lettered"], 4, "{language}: {status}");
        assert_eq!(counters["traps"], 2, "{language}: throwing traps: {status}");
        assert_eq!(counters["publish_refused"], 3, "{language}: {status}");
        for line in [
            init_line.to_string(),
            format!("bad input for {language}"),
            format!("hello from {language}"),
        ] {
            assert!(
                eventually(WAIT, || logged(&wasqd, &[&plugin, &line])),
                "{plugin}: no log line {line:?} in {:?}",
                wasqd.log()
            );
        }
    }
}

#[test]
fn a_large_component_serves_on_baseline_code_until_its_optimized_code_takes_over() {
    let dir = PluginDir::default();
    dir.guest(
        "js",
        "uppercase",
        "upper",
        "topic = \"words\"\nchannel = \"upper\"\nconcurrency = 2\n\
         publish = [\"words.upper.js\"]\n",
    );
    // The same module under another name: each gets its own optimized build.
    dir.guest(
        "js",
        "uppercase",
        "twin",
        "topic = \"quiet\"\nchannel = \"twin\"\npublish = [\"words.upper.js\"]\n",
    );
    let wasqd = dir.start();
    let http = wasqd.http();
    // Nothing was cached: Winch compiled the runtime, Cranelift follows.
    assert!(
        logged(&wasqd, &["baseline compiler", "optimized code follows"]),
        "{:?}",
        wasqd.log()
    );
    let mut upper = wasqd.consumer("words.upper.js", "check", 100);
    let mut publisher = wasqd.raw();
    let mut published = 0;
    let mut batch = |publisher: &mut RawClient| {
        let bodies: Vec<String> = (published..published + 20)
            .map(|i| format!("w{i}"))
            .collect();
        publisher.mpub("words", &bodies);
        published += bodies.len();
    };
    // Traffic before, during and after the swap to optimized code.
    batch(&mut publisher);
    let optimized = || {
        ["upper", "twin"]
            .iter()
            .all(|name| http.plugin(name)["load"]["compiler"] == "optimizing")
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    while !optimized() {
        assert!(Instant::now() < deadline, "{}", http.get("/plugins").1);
        batch(&mut publisher);
        std::thread::sleep(Duration::from_millis(50));
    }
    batch(&mut publisher);
    let status = http.plugin("upper");
    let history = status["history"].as_array().unwrap();
    assert_eq!(history.len(), 1, "the swap is not a new version: {status}");
    assert_eq!(history[0]["result"], "loaded", "{status}");
    assert!(
        logged(&wasqd, &["optimized code live"]),
        "{:?}",
        wasqd.log()
    );
    let (_, metrics) = http.get("/metrics");
    let info = |line: &&str| line.contains("plugin=\"upper\"") && line.contains("compiler=");
    assert!(
        metrics
            .lines()
            .filter(info)
            .all(|line| line.contains("compiler=\"optimizing\"")),
        "{metrics}"
    );
    assert!(metrics.lines().any(|line| info(&line)), "{metrics}");
    // Every message handled, each once.
    let outputs: BTreeSet<String> = read_bodies(&mut upper, published).into_iter().collect();
    let expected: BTreeSet<String> = (0..published).map(|i| format!("W{i}")).collect();
    assert_eq!(outputs, expected);
    http.wait_settled("words", "upper");
}
