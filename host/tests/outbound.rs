//! Plugins that call out: the `webhook` example in each language against a
//! real local HTTP sink (testkit's), with the manifest's allowlist,
//! limits, configuration and TLS roots enforced by a real wasqd.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use wasq_testkit::certs::Certificates;
use wasq_testkit::{Answer, HttpSink, PLUGINS_LOADED_TIMEOUT, PluginDir, Wasqd, eventually};

const WAIT: Duration = Duration::from_secs(60);

/// The webhook's languages: core modules over ABI v1's `http_request`,
/// then components over wasi:http.
const WEBHOOKS: [&str; 8] = [
    "rust",
    "c",
    "go",
    "zig",
    "assemblyscript",
    "rust-component",
    "js",
    "python",
];

/// Adds the `webhook` example of `language` as plugin `name`.
fn add_webhook(plugins: &PluginDir, language: &str, name: &str, manifest: &str) {
    if language == "rust" {
        plugins.example("webhook", name, manifest);
    } else {
        plugins.guest(language, "webhook", name, manifest);
    }
}

/// A webhook manifest: `topic`, POSTing to `url`, allowed `allow`, with
/// `extra` keys (concurrency: the default, 1, unless `extra` sets it).
fn webhook_manifest(topic: &str, url: &str, allow: &[String], extra: &str) -> String {
    let allow: Vec<String> = allow.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "topic = {topic:?}\nmax_attempts = 10\nbackoff_min_ms = 50\nbackoff_max_ms = 200\n\
         allowed_outbound_hosts = [{}]\n{extra}\nrequired_config = [\"url\"]\n[config]\nurl = {url:?}\n",
        allow.join(", ")
    )
}

/// The Rust webhook as plugin `name` on topic `name`, posting to `sink`
/// (allowed), with `extra` manifest keys.
fn add_webhook_posting_to(plugins: &PluginDir, name: &str, sink: &HttpSink, extra: &str) {
    plugins.example(
        "webhook",
        name,
        &webhook_manifest(name, &sink.url("/"), &[sink.origin()], extra),
    );
}

/// Bodies each webhook gets, and what the sink answers to each on its
/// first try (later tries: 200).
fn scripted_answer(body: &[u8], tries: usize) -> Answer {
    let text = String::from_utf8_lossy(body);
    match (text.split('-').next().unwrap_or(""), tries) {
        ("bad", _) => Answer::status(400),
        ("busy", 0) => Answer::status(503),
        ("later", 0) => Answer::status(429).header("Retry-After", "1"),
        _ => Answer::ok(),
    }
}

/// How often the sink saw each body on each path.
type TriesByPathAndBody = HashMap<(String, Vec<u8>), usize>;

#[test]
fn webhooks_in_every_language_deliver_retry_and_dead_letter() {
    let sink = HttpSink::start();
    let tries: std::sync::Arc<std::sync::Mutex<TriesByPathAndBody>> = Default::default();
    let counted = tries.clone();
    sink.answer_with(move |request| {
        let mut tries = counted.lock().unwrap();
        let seen = tries
            .entry((request.path.clone(), request.body.clone()))
            .or_insert(0);
        let answer = scripted_answer(&request.body, *seen);
        *seen += 1;
        answer
    });
    let plugins = PluginDir::default();
    for language in WEBHOOKS {
        let manifest = webhook_manifest(
            "hooks",
            &sink.url(&format!("/in/{language}")),
            &[sink.origin()],
            // Four messages per worker at once: batches for the core
            // modules that take them, each message waiting on the network
            // within its batch.
            "concurrency = 4\nmax_in_flight = 16",
        );
        let manifest = format!("{manifest}authorization = \"Bearer ${{WEBHOOK_TOKEN}}\"\n");
        add_webhook(&plugins, language, &format!("hook-{language}"), &manifest);
    }
    let dir = plugins.dir.path().to_str().unwrap().to_string();
    let wasqd = Wasqd::start_via_shell(
        "WEBHOOK_TOKEN=s3cret exec \"$0\" \"$@\"",
        &["--plugins-dir", &dir],
    );
    let http = wasqd.http();
    http.wait_for_plugins_loaded(PLUGINS_LOADED_TIMEOUT);
    let bodies: Vec<String> = (0..20)
        .map(|i| format!("ok-{i}"))
        .chain(["busy-1", "busy-2", "later-1", "bad-1"].map(String::from))
        .collect();
    for body in &bodies {
        assert_eq!(http.post("/pub?topic=hooks", body.as_bytes()).0, 200);
    }
    for language in WEBHOOKS {
        let plugin = format!("hook-{language}");
        let channel = plugin.clone();
        let settled = eventually(WAIT, || {
            http.channel_stats("hooks", &channel).is_some_and(|c| {
                c["depth"] == 0 && c["in_flight_count"] == 0 && c["deferred_count"] == 0
            }) && http.counter(&plugin, "finished") == bodies.len() as u64 - 1
        });
        assert!(
            settled,
            "{language}: {:?}",
            http.plugin(&plugin)["counters"]
        );
        assert_eq!(
            http.counter(&plugin, "dead_lettered"),
            1,
            "{language}: the 400"
        );
        assert_eq!(
            http.topic_count(&format!("hooks.{plugin}.dead")),
            1,
            "{language}: the 400's body dead-lettered"
        );
        let path = format!("/in/{language}");
        let got: Vec<_> = sink
            .requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect();
        for body in &bodies {
            let times: Vec<Instant> = got
                .iter()
                .filter(|r| r.body == body.as_bytes())
                .map(|r| r.at)
                .collect();
            let expected = if body.starts_with("busy") || body.starts_with("later") {
                2
            } else {
                1
            };
            assert_eq!(
                times.len(),
                expected,
                "{language}: {body} posted {} times",
                times.len()
            );
            if body.starts_with("later") {
                assert!(
                    times[1] - times[0] >= Duration::from_millis(950),
                    "{language}: Retry-After: 1 not honoured ({:?})",
                    times[1] - times[0]
                );
            }
        }
        let first = &got[0];
        assert_eq!(first.method, "POST", "{language}");
        assert_eq!(
            first.header("authorization"),
            Some("Bearer s3cret"),
            "{language}: ${{WEBHOOK_TOKEN}}"
        );
        let outbound = &http.plugin(&plugin)["counters"]["outbound"];
        assert_eq!(
            outbound["responses"]["2xx"],
            bodies.len() as u64 - 1,
            "{language}: all but the 400: {outbound}"
        );
        assert_eq!(outbound["responses"]["5xx"], 2, "{language}: {outbound}");
        assert_eq!(
            outbound["responses"]["4xx"], 2,
            "{language}: a 429 and a 400: {outbound}"
        );
        let grants = &http.plugin(&plugin)["grants"];
        assert_eq!(grants["allowed_outbound_hosts"][0], sink.origin());
        assert!(
            !grants.to_string().contains("s3cret"),
            "configuration values are not shown: {grants}"
        );
    }
}

/// One plugin per way out of the allowlist: each message is refused
/// before any connection (dead-lettered by the webhook as fatal), the
/// refusal counted and logged with the URL.
#[test]
fn the_allowlist_refuses_before_anything_connects() {
    let allowed = HttpSink::start();
    let forbidden = HttpSink::start();
    // The allowed sink redirects to the forbidden one.
    let target = forbidden.url("/stolen");
    allowed.answer_with(move |_| Answer::status(302).header("Location", &target));
    let plugins = PluginDir::default();
    let port = forbidden.address.port();
    let cases = [
        (
            "other-host",
            format!("http://localhost:{port}/x"),
            vec![format!("http://localhost:{port}")],
        ),
        ("other-port", forbidden.url("/x"), vec![allowed.origin()]),
        (
            "other-scheme",
            format!("https://{}/x", forbidden.address),
            vec![forbidden.origin()],
        ),
        (
            "any-name",
            format!("http://localhost:{port}/x"),
            vec![format!("http://*:{port}")],
        ),
        (
            "metadata",
            "http://169.254.169.254/latest/meta-data".to_string(),
            vec!["http://*".to_string()],
        ),
        ("redirect", allowed.url("/hop"), vec![allowed.origin()]),
        ("no-list", forbidden.url("/x"), vec![]),
    ];
    for (name, url, allow) in &cases {
        plugins.example("webhook", name, &webhook_manifest(name, url, allow, ""));
    }
    let wasqd = plugins.start();
    let http = wasqd.http();
    for (name, _, _) in &cases {
        assert_eq!(http.post(&format!("/pub?topic={name}"), b"secret").0, 200);
    }
    for (name, url, _) in &cases {
        let refused = eventually(WAIT, || http.counter(name, "dead_lettered") == 1);
        let counters = &http.plugin(name)["counters"];
        assert!(refused, "{name}: {counters}");
        assert_eq!(
            counters["outbound"]["errors"]["refused"], 1,
            "{name}: {counters}"
        );
        let logged = wasqd
            .log()
            .iter()
            .any(|line| line.contains(&format!("plugin={name}")) && line.contains("error=refused"));
        assert!(
            logged,
            "{name}: no log line names the plugin and the refusal for {url}"
        );
    }
    // /metrics counts them per plugin and kind, as Prometheus reads it.
    let (_, metrics) = http.get("/metrics");
    for (name, _, _) in &cases {
        let counted = metrics.lines().any(|line| {
            line.starts_with("wasq_plugin_outbound_errors_total{")
                && line.contains(&format!("plugin=\"{name}\""))
                && line.contains("kind=\"refused\"")
                && line.ends_with(" 1")
        });
        assert!(counted, "{name}: no refusal in /metrics");
    }
    assert_eq!(
        forbidden.connections(),
        0,
        "nothing reached the forbidden sink"
    );
    assert_eq!(
        allowed.count(),
        1,
        "only the redirect's first hop reached the allowed sink"
    );
}

#[test]
fn https_trusts_the_system_roots_and_the_manifests_ca_only() {
    let certificates = Certificates::new();
    let sink = HttpSink::start_tls(&certificates);
    let plugins = PluginDir::default();
    std::fs::copy(
        certificates.path("ca.pem"),
        plugins.dir.path().join("test-ca.pem"),
    )
    .unwrap();
    let url = sink.url("/secure");
    plugins.example(
        "webhook",
        "trusting",
        &webhook_manifest(
            "secure",
            &url,
            &[sink.origin()],
            "tls_root_ca_file = \"test-ca.pem\"",
        ),
    );
    plugins.example(
        "webhook",
        "untrusting",
        &webhook_manifest("insecure", &url, &[sink.origin()], ""),
    );
    let wasqd = plugins.start();
    let http = wasqd.http();
    assert_eq!(http.post("/pub?topic=secure", b"over tls").0, 200);
    assert_eq!(http.post("/pub?topic=insecure", b"not trusted").0, 200);
    assert!(eventually(WAIT, || http.counter("trusting", "finished") == 1));
    assert_eq!(sink.requests()[0].body, b"over tls");
    let connect_failed = eventually(WAIT, || {
        http.plugin("untrusting")["counters"]["outbound"]["errors"]["connect"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    });
    assert!(connect_failed, "{}", http.plugin("untrusting")["counters"]);
    assert_eq!(http.counter("untrusting", "finished"), 0);
    assert_eq!(sink.count(), 1, "the untrusted handshake sent no request");
}

#[test]
fn a_missing_required_key_or_variable_keeps_the_version_out() {
    let sink = HttpSink::start();
    let plugins = PluginDir::default();
    plugins.example(
        "webhook",
        "no-url",
        &format!(
            "topic = \"t\"\nallowed_outbound_hosts = [{:?}]\nrequired_config = [\"url\"]\n",
            sink.origin()
        ),
    );
    plugins.example(
        "webhook",
        "no-variable",
        &format!(
            "topic = \"t\"\n[config]\nurl = {:?}\nauthorization = \"${{WASQ_TEST_UNSET_VARIABLE}}\"\n",
            sink.url("/")
        ),
    );
    let wasqd = plugins.start();
    let http = wasqd.http();
    let error = |name: &str| {
        http.plugin(name)["last_error"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(http.plugin("no-url")["state"], "failed");
    assert!(
        error("no-url").contains("\"url\" is required"),
        "{}",
        error("no-url")
    );
    assert_eq!(http.plugin("no-variable")["state"], "failed");
    assert!(
        error("no-variable").contains("WASQ_TEST_UNSET_VARIABLE is not set"),
        "{}",
        error("no-variable")
    );
}

/// A plugin whose endpoint hangs holds its messages for its whole
/// timeout, but it holds no thread: a second plugin and an external
/// consumer keep their pace beside it.
#[test]
fn a_hanging_endpoint_slows_no_other_plugin_or_consumer() {
    let hanging = HttpSink::start();
    hanging.answer_with(|_| Answer::hang());
    let quick = HttpSink::start();
    let plugins = PluginDir::default();
    add_webhook_posting_to(
        &plugins,
        "stuck",
        &hanging,
        "concurrency = 200\nmax_in_flight = 200\nhttp_max_concurrent = 200\nhandler_deadline_ms = 30000\nhttp_timeout_ms = 30000",
    );
    add_webhook_posting_to(&plugins, "flowing", &quick, "concurrency = 4");
    let wasqd = plugins.start();
    let http = wasqd.http();

    // The pace of the flowing plugin and of an external consumer, alone,
    // then beside 200 requests that hang.
    // Per round: the plugin's time for 200 messages, the consumer's, and
    // the consumer's p99 from publish to receipt.
    let measure = |round: &str| -> (Duration, Duration, Duration) {
        let before = http.counter("flowing", "finished");
        let started = Instant::now();
        let bodies: Vec<Vec<u8>> = (0..200)
            .map(|i| format!("{round}-{i}").into_bytes())
            .collect();
        assert_eq!(http.mpub_binary("flowing", &bodies).0, 200);
        assert!(eventually(WAIT, || http.counter("flowing", "finished") == before + 200));
        let plugin_time = started.elapsed();
        let mut consumer = wasqd.consumer("external", "reader", 50);
        let started = Instant::now();
        assert_eq!(http.mpub_binary("external", &bodies).0, 200);
        let mut latencies = Vec::new();
        for _ in 0..200 {
            let message = consumer.read_message();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as i64;
            latencies.push(Duration::from_nanos((now - message.timestamp).max(0) as u64));
            consumer.finish(&message);
        }
        latencies.sort();
        (
            plugin_time,
            started.elapsed(),
            latencies[latencies.len() * 99 / 100],
        )
    };
    let alone = measure("alone");
    let stuck_bodies: Vec<Vec<u8>> = (0..400)
        .map(|i| format!("stuck-{i}").into_bytes())
        .collect();
    assert_eq!(http.mpub_binary("stuck", &stuck_bodies).0, 200);
    assert!(
        eventually(WAIT, || hanging.count() >= 200),
        "200 requests hang at once ({} seen)",
        hanging.count()
    );
    let beside = measure("beside");
    assert_eq!(
        http.plugin("stuck")["instances"],
        200,
        "every instance is waiting"
    );
    // Bounds that hold on a busy machine: the pace may wobble, but a
    // thread held per waiting request (200 of them) would stall both.
    let limit = |alone: Duration| alone * 5 + Duration::from_secs(2);
    assert!(
        beside.0 <= limit(alone.0),
        "the plugin: {alone:?} alone, {beside:?} beside"
    );
    assert!(
        beside.1 <= limit(alone.1),
        "the consumer: {alone:?} alone, {beside:?} beside"
    );
    assert!(
        beside.2 <= limit(alone.2),
        "the consumer's p99: {:?} alone, {:?} beside",
        alone.2,
        beside.2
    );
    assert_eq!(http.counter("stuck", "finished"), 0, "still hanging");
}

/// A new version arrives while the old one waits on slow requests: those
/// finish and settle their messages; every message is posted, none lost,
/// none settled twice.
#[test]
fn a_reload_with_requests_in_flight_loses_and_doubles_nothing() {
    let sink = HttpSink::start();
    sink.answer_with(|_| Answer::ok().after(Duration::from_millis(300)));
    let plugins = PluginDir::default();
    let manifest = webhook_manifest(
        "slow",
        &sink.url("/v1"),
        &[sink.origin()],
        "concurrency = 50",
    );
    plugins.example("webhook", "slow", &manifest);
    let wasqd = plugins.start();
    let http = wasqd.http();
    let bodies: Vec<Vec<u8>> = (0..300).map(|i| format!("m-{i}").into_bytes()).collect();
    assert_eq!(http.mpub_binary("slow", &bodies).0, 200);
    assert!(
        eventually(WAIT, || sink.count() >= 50),
        "requests in flight"
    );
    // The new version posts elsewhere: a changed manifest is a new version.
    plugins.manifest("slow", &manifest.replace("/v1", "/v2"));
    assert!(
        eventually(WAIT, || http.plugin("slow")["reloads"]["reloaded"] == 1),
        "{}",
        http.plugin("slow")
    );
    http.wait_settled("slow", "slow");
    assert_eq!(http.counter("slow", "finished"), 300);
    let requests = sink.requests();
    for body in &bodies {
        let posted = requests.iter().filter(|r| &r.body == body).count();
        assert!(
            posted >= 1,
            "{} never posted",
            String::from_utf8_lossy(body)
        );
    }
    assert!(requests.iter().any(|r| r.path == "/v1") && requests.iter().any(|r| r.path == "/v2"));
    let stats = http.channel_stats("slow", "slow").unwrap();
    assert_eq!(stats["message_count"], 300);
    assert_eq!(stats["requeue_count"], 0, "no message went back: {stats}");
    assert_eq!(stats["timeout_count"], 0, "{stats}");
}

/// `enrich` (Go): each order's customer is looked up over HTTP and the
/// order is published with the answer; an unknown customer is a dead letter.
#[test]
fn enrich_publishes_each_message_with_the_apis_answer() {
    let api = HttpSink::start();
    api.answer_with(|request| match request.path.as_str() {
        "/customers/c1" => Answer::ok().body(r#"{"name":"Ada"}"#),
        _ => Answer::status(404),
    });
    let plugins = PluginDir::default();
    plugins.guest(
        "go",
        "enrich",
        "enrich",
        &format!(
            "topic = \"orders\"\npublish = [\"enriched\"]\nallowed_outbound_hosts = [{:?}]\n\
             required_config = [\"api_url\"]\n[config]\napi_url = {:?}\n",
            api.origin(),
            api.url("/customers")
        ),
    );
    let wasqd = plugins.start();
    let http = wasqd.http();
    let mut output = wasqd.consumer("enriched", "check", 10);
    assert_eq!(
        http.post("/pub?topic=orders", br#"{"id":"c1","total":5}"#)
            .0,
        200
    );
    assert_eq!(http.post("/pub?topic=orders", br#"{"id":"nobody"}"#).0, 200);
    let message = output.read_message();
    let published: serde_json::Value = serde_json::from_slice(&message.body).unwrap();
    assert_eq!(published["message"]["id"], "c1", "{published}");
    assert_eq!(published["message"]["total"], 5, "{published}");
    assert_eq!(published["enriched"]["name"], "Ada", "{published}");
    assert!(eventually(WAIT, || http.counter("enrich", "dead_lettered") == 1));
    assert_eq!(http.counter("enrich", "finished"), 1);
}

/// A clean stop does not wait out a request that hangs: the call is cut
/// short, and its message is kept for the next start, which delivers it.
#[test]
fn a_clean_stop_cuts_a_hanging_request_short_and_keeps_its_message() {
    let sink = HttpSink::start();
    sink.answer_with(|_| Answer::hang());
    let plugins = PluginDir::default();
    add_webhook_posting_to(
        &plugins,
        "stuck",
        &sink,
        "handler_deadline_ms = 120000\nhttp_timeout_ms = 120000",
    );
    let data = tempfile::tempdir().unwrap();
    let args = [
        "--plugins-dir",
        plugins.dir.path().to_str().unwrap(),
        "--data-path",
        data.path().to_str().unwrap(),
    ];
    let wasqd = Wasqd::start_with(&args);
    wasqd.http().wait_for_plugins_loaded(PLUGINS_LOADED_TIMEOUT);
    assert_eq!(wasqd.http().post("/pub?topic=stuck", b"kept").0, 200);
    assert!(eventually(WAIT, || sink.count() == 1), "the request hangs");
    // Well within the request's two minutes.
    let status = wasqd
        .terminate_within(Duration::from_secs(60))
        .expect("stopped while its request hangs");
    assert!(status.success(), "{status}");

    sink.answer_with(|_| Answer::ok());
    let wasqd = Wasqd::start_with(&args);
    let http = wasqd.http();
    http.wait_for_plugins_loaded(PLUGINS_LOADED_TIMEOUT);
    http.wait_restored();
    assert!(
        eventually(WAIT, || http.counter("stuck", "finished") == 1),
        "{}",
        http.plugin("stuck")["counters"]
    );
    let posted = sink.requests().iter().filter(|r| r.body == b"kept").count();
    assert_eq!(posted, 2, "cut short, then delivered again");
}
