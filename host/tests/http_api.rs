//! nsqd's HTTP API over real HTTP: every endpoint, its errors and statuses.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::Value;
use wasq_testkit::{FrameType, Wasqd, eventually};

#[test]
fn ping_info_and_unknown_routes() {
    let wasqd = Wasqd::start();
    let http = wasqd.http();
    assert_eq!(http.get("/ping"), (200, "OK".into()));
    let (status, body) = http.get("/info");
    assert_eq!(status, 200);
    let info: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["version"], "1.3.0");
    assert_eq!(info["tcp_port"], wasqd.tcp.port());
    assert_eq!(info["http_port"], wasqd.http.port());
    assert_eq!(info["max_heartbeat_interval"], 60_000_000_000u64);
    assert!(info["start_time"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(
        http.get("/nope"),
        (404, r#"{"message":"NOT_FOUND"}"#.into())
    );
    assert_eq!(
        http.get("/pub?topic=t"),
        (405, r#"{"message":"METHOD_NOT_ALLOWED"}"#.into())
    );
    // The deprecated pre-1.0 aliases are gone in nsqd 1.3 too.
    assert_eq!(http.get("/create_topic?topic=x").0, 404);

    let response = ureq::get(&wasqd.url("/ping")).call().unwrap();
    assert_eq!(
        response.headers().get("X-NSQ-Content-Type").unwrap(),
        "nsq; version=1.0"
    );
}

#[test]
fn pub_and_its_errors() {
    let wasqd = Wasqd::start_with(&["--max-msg-size", "10", "--max-req-timeout", "10s"]);
    let http = wasqd.http();
    assert_eq!(http.post("/pub?topic=t", b"hello"), (200, "OK".into()));
    assert_eq!(
        http.post("/pub?topic=t", b""),
        (400, r#"{"message":"MSG_EMPTY"}"#.into())
    );
    assert_eq!(
        http.post("/pub", b"hello"),
        (400, r#"{"message":"MISSING_ARG_TOPIC"}"#.into())
    );
    assert_eq!(
        http.post("/pub?topic=bad!name", b"hello"),
        (400, r#"{"message":"INVALID_TOPIC"}"#.into())
    );
    assert_eq!(
        http.post("/pub?topic=t&defer=abc", b"x"),
        (400, r#"{"message":"INVALID_DEFER"}"#.into())
    );
    assert_eq!(
        http.post("/pub?topic=t&defer=-1", b"x"),
        (400, r#"{"message":"INVALID_DEFER"}"#.into())
    );
    assert_eq!(
        http.post("/pub?topic=t&defer=10001", b"x"),
        (400, r#"{"message":"INVALID_DEFER"}"#.into())
    );
    assert_eq!(
        http.post("/pub?topic=t", b"12345678901"),
        (413, r#"{"message":"MSG_TOO_BIG"}"#.into())
    );
    assert_eq!(http.post("/pub?topic=t", b"1234567890"), (200, "OK".into()));

    let mut consumer = wasqd.consumer("t", "c", 10);
    assert_eq!(consumer.read_message().body, "hello");
    assert_eq!(consumer.read_message().body, "1234567890");

    assert_eq!(
        http.post("/pub?topic=t&defer=400", b"later"),
        (200, "OK".into())
    );
    let sent = Instant::now();
    assert_eq!(consumer.read_message().body, "later");
    assert!(sent.elapsed() >= Duration::from_millis(350));
}

#[test]
fn mpub_text_and_binary() {
    let wasqd = Wasqd::start_with(&["--max-msg-size", "10", "--max-body-size", "100"]);
    let http = wasqd.http();
    assert_eq!(http.post("/mpub?topic=m", b"a\nb\n\nc"), (200, "OK".into()));
    let binary = wasq_wire::command::mpub_body(&["dd", "e"]);
    assert_eq!(
        http.post("/mpub?topic=m&binary=true", &binary),
        (200, "OK".into())
    );
    let mut consumer = wasqd.consumer("m", "c", 10);
    let bodies: Vec<Vec<u8>> = (0..5)
        .map(|_| consumer.read_message().body.to_vec())
        .collect();
    assert_eq!(
        bodies,
        vec![
            b"a".to_vec(),
            b"b".to_vec(),
            b"c".to_vec(),
            b"dd".to_vec(),
            b"e".to_vec()
        ]
    );

    assert_eq!(
        http.post("/mpub?topic=m", &[b'x'; 101]),
        (413, r#"{"message":"BODY_TOO_BIG"}"#.into())
    );
    assert_eq!(
        http.post("/mpub?topic=m", b"ok\n12345678901\n"),
        (413, r#"{"message":"MSG_TOO_BIG"}"#.into())
    );
    assert_eq!(
        http.post("/mpub?topic=m&binary=1", &0u32.to_be_bytes()),
        (413, r#"{"message":"BAD_BODY"}"#.into())
    );
    let mut too_big = 1u32.to_be_bytes().to_vec();
    too_big.extend_from_slice(&11u32.to_be_bytes());
    too_big.extend_from_slice(&[b'x'; 11]);
    assert_eq!(
        http.post("/mpub?topic=m&binary=true", &too_big),
        (413, r#"{"message":"BAD_MESSAGE"}"#.into())
    );
    assert_eq!(
        http.post("/mpub", b"a"),
        (400, r#"{"message":"MISSING_ARG_TOPIC"}"#.into())
    );
    assert_eq!(
        http.post("/mpub?topic=no!", b"a"),
        (400, r#"{"message":"INVALID_TOPIC"}"#.into())
    );
}

#[test]
fn topic_endpoints() {
    let wasqd = Wasqd::start();
    let http = wasqd.http();
    assert_eq!(
        http.post("/topic/create?topic=t1", b""),
        (200, String::new())
    );
    assert!(http.topic_names().contains(&"t1".to_string()));
    assert_eq!(
        http.post("/topic/create", b""),
        (400, r#"{"message":"MISSING_ARG_TOPIC"}"#.into())
    );
    assert_eq!(
        http.post("/topic/create?topic=a%20b", b""),
        (400, r#"{"message":"INVALID_TOPIC"}"#.into())
    );

    http.post("/pub?topic=t1", b"x");
    let depth = || http.stats()["topics"][0]["depth"].clone();
    assert_eq!(depth(), 1);
    assert_eq!(
        http.post("/topic/empty?topic=t1", b""),
        (200, String::new())
    );
    assert_eq!(depth(), 0);
    assert_eq!(
        http.post("/topic/empty?topic=nosuch", b""),
        (404, r#"{"message":"TOPIC_NOT_FOUND"}"#.into())
    );
    assert_eq!(
        http.post("/topic/empty?topic=bad!", b""),
        (400, r#"{"message":"INVALID_TOPIC"}"#.into())
    );

    assert_eq!(
        http.post("/topic/pause?topic=t1", b""),
        (200, String::new())
    );
    assert_eq!(http.stats()["topics"][0]["paused"], true);
    assert_eq!(
        http.post("/topic/unpause?topic=t1", b""),
        (200, String::new())
    );
    assert_eq!(http.stats()["topics"][0]["paused"], false);
    assert_eq!(
        http.post("/topic/pause?topic=nosuch", b""),
        (404, r#"{"message":"TOPIC_NOT_FOUND"}"#.into())
    );
    assert_eq!(
        http.post("/topic/pause", b""),
        (400, r#"{"message":"MISSING_ARG_TOPIC"}"#.into())
    );

    assert_eq!(
        http.post("/topic/delete?topic=t1", b""),
        (200, String::new())
    );
    assert!(!http.topic_names().contains(&"t1".to_string()));
    assert_eq!(
        http.post("/topic/delete?topic=t1", b""),
        (404, r#"{"message":"TOPIC_NOT_FOUND"}"#.into())
    );
    assert_eq!(
        http.post("/topic/delete", b""),
        (400, r#"{"message":"MISSING_ARG_TOPIC"}"#.into())
    );
    assert_eq!(http.get("/topic/create?topic=x").0, 405);
}

#[test]
fn channel_endpoints() {
    let wasqd = Wasqd::start();
    let http = wasqd.http();
    assert_eq!(
        http.post("/channel/create?topic=nosuch&channel=c", b""),
        (404, r#"{"message":"TOPIC_NOT_FOUND"}"#.into())
    );
    http.post("/topic/create?topic=t", b"");
    assert_eq!(
        http.post("/channel/create?topic=t&channel=c", b""),
        (200, String::new())
    );
    assert!(http.channel_stats("t", "c").is_some());
    for (path, expected) in [
        ("/channel/create?channel=c", (400, "MISSING_ARG_TOPIC")),
        (
            "/channel/create?topic=bad!&channel=c",
            (400, "INVALID_ARG_TOPIC"),
        ),
        ("/channel/create?topic=t", (400, "MISSING_ARG_CHANNEL")),
        (
            "/channel/create?topic=t&channel=bad!",
            (400, "INVALID_ARG_CHANNEL"),
        ),
        (
            "/channel/empty?topic=t&channel=nosuch",
            (404, "CHANNEL_NOT_FOUND"),
        ),
        (
            "/channel/pause?topic=t&channel=nosuch",
            (404, "CHANNEL_NOT_FOUND"),
        ),
        (
            "/channel/unpause?topic=t&channel=nosuch",
            (404, "CHANNEL_NOT_FOUND"),
        ),
        (
            "/channel/delete?topic=t&channel=nosuch",
            (404, "CHANNEL_NOT_FOUND"),
        ),
    ] {
        assert_eq!(
            http.post(path, b""),
            (expected.0, format!(r#"{{"message":"{}"}}"#, expected.1)),
            "{path}"
        );
    }

    http.post("/pub?topic=t", b"x");
    assert_eq!(http.channel_stats("t", "c").unwrap()["depth"], 1);
    assert_eq!(
        http.post("/channel/empty?topic=t&channel=c", b""),
        (200, String::new())
    );
    assert_eq!(http.channel_stats("t", "c").unwrap()["depth"], 0);
    assert_eq!(
        http.post("/channel/pause?topic=t&channel=c", b""),
        (200, String::new())
    );
    assert_eq!(http.channel_stats("t", "c").unwrap()["paused"], true);
    assert_eq!(
        http.post("/channel/unpause?topic=t&channel=c", b""),
        (200, String::new())
    );
    assert_eq!(http.channel_stats("t", "c").unwrap()["paused"], false);
    assert_eq!(
        http.post("/channel/delete?topic=t&channel=c", b""),
        (200, String::new())
    );
    assert!(http.channel_stats("t", "c").is_none());
}

#[test]
fn emptying_a_channel_drops_in_flight_messages_too() {
    let wasqd = Wasqd::start();
    let http = wasqd.http();
    let mut consumer = wasqd.consumer("e", "c", 1);
    http.post("/pub?topic=e", b"held");
    let held = consumer.read_message();
    assert_eq!(
        http.post("/channel/empty?topic=e&channel=c", b""),
        (200, String::new())
    );
    let stats = http.channel_stats("e", "c").unwrap();
    assert_eq!(stats["in_flight_count"], 0);
    assert_eq!(stats["clients"][0]["in_flight_count"], 0);
    // Its capacity is back: a new message is delivered at once.
    http.post("/pub?topic=e", b"next");
    assert_eq!(consumer.read_message().body, "next");
    consumer.finish(&held);
    let (frame_type, text) = consumer.read_frame();
    assert_eq!(frame_type, FrameType::Error);
    assert!(String::from_utf8_lossy(&text).starts_with("E_FIN_FAILED"));
}

#[test]
fn stats_has_nsqds_memory_object_with_wasqs_figures() {
    let wasqd = Wasqd::start();
    let http = wasqd.http();
    let memory = &http.stats()["memory"];
    for field in [
        "heap_objects",
        "heap_idle_bytes",
        "heap_in_use_bytes",
        "heap_released_bytes",
        "gc_pause_usec_100",
        "gc_pause_usec_99",
        "gc_pause_usec_95",
        "next_gc_bytes",
        "gc_total_runs",
        "resident_bytes",
    ] {
        assert!(memory[field].is_u64(), "{field} in {memory}");
    }
    // The figures that have a meaning here are real: a running broker
    // has memory allocated and resident; there is no garbage collector.
    assert!(
        memory["heap_in_use_bytes"].as_u64().unwrap() > 0,
        "{memory}"
    );
    assert!(
        memory["resident_bytes"].as_u64().unwrap()
            > memory["heap_in_use_bytes"].as_u64().unwrap() / 2,
        "{memory}"
    );
    assert_eq!(memory["gc_total_runs"], 0);
    // Left out on request, as nsqd does.
    let (_, without) = http.get_json("/stats?format=json&include_mem=false");
    assert!(without.get("memory").is_none(), "{without}");
    // And in the text form, in nsqd's layout.
    let (_, text) = http.get("/stats");
    assert!(
        text.contains("\nMemory:\n   heap_objects             \t0\n"),
        "{text}"
    );
    let (_, text) = http.get("/stats?include_mem=false");
    assert!(!text.contains("Memory:"), "{text}");
}

#[test]
fn stats_json_text_and_filters() {
    let wasqd = Wasqd::start();
    let http = wasqd.http();
    let empty = http.stats();
    assert_eq!(empty["topics"], serde_json::json!([]));
    assert_eq!(empty["producers"], Value::Null);
    assert_eq!(empty["version"], "1.3.0");
    assert_eq!(empty["health"], "OK");

    let mut producer = wasqd.raw();
    producer.publish("alpha", b"12345");
    producer.publish("beta", b"x");
    let mut consumer = wasqd.raw();
    consumer.identify(r#"{"client_id":"tester","hostname":"box","user_agent":"raw/1.0"}"#);
    consumer.send(b"SUB alpha ch\nRDY 3\n");
    consumer.read_frame();
    consumer.read_message();
    http.post("/channel/create?topic=alpha&channel=other", b"");

    let stats = http.stats();
    let alpha = &stats["topics"][0];
    assert_eq!(alpha["topic_name"], "alpha");
    assert_eq!(alpha["message_count"], 1);
    assert_eq!(alpha["message_bytes"], 5);
    let ch = &alpha["channels"][0];
    assert_eq!(ch["channel_name"], "ch");
    assert_eq!(ch["in_flight_count"], 1);
    assert_eq!(ch["client_count"], 1);
    let client = &ch["clients"][0];
    for (key, value) in [
        ("client_id", "tester"),
        ("hostname", "box"),
        ("user_agent", "raw/1.0"),
        ("version", "V2"),
    ] {
        assert_eq!(client[key], value, "{key}");
    }
    assert_eq!(client["state"], 3);
    assert_eq!(client["ready_count"], 3);
    assert_eq!(client["in_flight_count"], 1);
    let keys: Vec<&str> = ch.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "channel_name",
            "depth",
            "backend_depth",
            "in_flight_count",
            "deferred_count",
            "message_count",
            "requeue_count",
            "timeout_count",
            "client_count",
            "clients",
            "paused",
            "e2e_processing_latency"
        ]
    );
    let producers = stats["producers"].as_array().unwrap();
    assert_eq!(producers.len(), 1);
    assert_eq!(producers[0]["pub_counts"].as_array().unwrap().len(), 2);

    let filtered: Value =
        serde_json::from_str(&http.get("/stats?format=json&topic=alpha&channel=other").1).unwrap();
    assert_eq!(filtered["topics"].as_array().unwrap().len(), 1);
    assert_eq!(
        filtered["topics"][0]["channels"].as_array().unwrap().len(),
        1
    );
    assert_eq!(
        filtered["topics"][0]["channels"][0]["channel_name"],
        "other"
    );
    let missing: Value =
        serde_json::from_str(&http.get("/stats?format=json&topic=nosuch").1).unwrap();
    assert_eq!(missing["topics"], Value::Null);
    let no_clients: Value =
        serde_json::from_str(&http.get("/stats?format=json&include_clients=false").1).unwrap();
    assert_eq!(
        no_clients["topics"][0]["channels"][0]["clients"],
        serde_json::json!([])
    );
    assert_eq!(no_clients["topics"][0]["channels"][0]["client_count"], 1);

    let (status, text) = http.get("/stats");
    assert_eq!(status, 200);
    assert!(text.starts_with("nsqd v1.3.0"), "{text}");
    assert!(text.contains("\nHealth: OK\n"));
    assert!(
        text.contains("   [alpha          ] depth: 0     be-depth: 0     msgs: 1        e2e%: \n"),
        "{text}"
    );
    assert!(text.contains("      [ch                       ] depth: 0     be-depth: 0     inflt: 1    def: 0    re-q: 0     timeout: 0     msgs: 1        e2e%: \n"), "{text}");
    assert!(text.contains("[V2 box:"), "{text}");
    assert!(text.contains("\nProducers:\n"), "{text}");
}

#[test]
fn end_to_end_latency_percentiles_as_nsqd_reports_them() {
    let wasqd = Wasqd::start_with(&[
        "--e2e-processing-latency-percentile",
        "0.99",
        "--e2e-processing-latency-percentile=0.5",
    ]);
    let http = wasqd.http();
    let mut a = wasqd.consumer("lat", "a", 10);
    let _b = wasqd.consumer("lat", "b", 0);
    let mut producer = wasqd.raw();
    producer.mpub("lat", &["1", "2", "3"]);
    for _ in 0..3 {
        let message = a.read_message();
        a.finish(&message);
    }
    // FIN has no answer: wait until all three count.
    assert!(eventually(Duration::from_secs(10), || {
        http.channel_stats("lat", "a").unwrap()["e2e_processing_latency"]["count"] == 3
    }));
    let stats = http.stats();
    let topic = &stats["topics"][0];
    let finished = &topic["channels"][0]["e2e_processing_latency"];
    let percentiles = finished["percentiles"].as_array().unwrap();
    assert_eq!(percentiles.len(), 2, "{finished}");
    assert_eq!(percentiles[0]["quantile"], 0.99);
    assert_eq!(percentiles[1]["quantile"], 0.5);
    let p99 = percentiles[0]["value"].as_u64().unwrap();
    assert!(p99 > 0 && p99 < 60_000_000_000, "{finished}");
    // The channel nobody finished on has none; the topic has them all.
    let idle = &topic["channels"][1]["e2e_processing_latency"];
    assert_eq!(idle["count"], 0, "{idle}");
    assert_eq!(topic["e2e_processing_latency"]["count"], 3, "{topic}");
    let (_, text) = http.get("/stats");
    let line = text.lines().find(|line| line.contains("[a      ")).unwrap();
    let shown = line.split("e2e%: ").nth(1).unwrap();
    assert!(
        shown.split(", ").count() == 2 && shown.split(", ").all(|v| v.ends_with('s')),
        "{line}"
    );
}

#[test]
fn config_get_and_put() {
    let wasqd = Wasqd::start_with(&["--lookupd-tcp-address", "127.0.0.1:4160"]);
    let http = wasqd.http();
    assert_eq!(
        http.get("/config/nsqlookupd_tcp_addresses"),
        (200, r#"["127.0.0.1:4160"]"#.into())
    );
    assert_eq!(http.get("/config/max_msg_size"), (200, "1048576".into()));
    assert_eq!(http.get("/config/msg_timeout"), (200, "60000000000".into()));
    assert_eq!(http.get("/config/log_level"), (200, "2".into()));
    assert_eq!(
        http.get("/config/nonsense"),
        (400, r#"{"message":"INVALID_OPTION"}"#.into())
    );

    assert_eq!(
        http.put(
            "/config/nsqlookupd_tcp_addresses",
            br#"["127.0.0.1:4160","127.0.0.1:5160"]"#
        ),
        (200, r#"["127.0.0.1:4160","127.0.0.1:5160"]"#.into())
    );
    assert_eq!(
        http.put("/config/nsqlookupd_tcp_addresses", b"not json"),
        (400, r#"{"message":"INVALID_VALUE"}"#.into())
    );
    assert_eq!(http.put("/config/log_level", b"debug"), (200, "1".into()));
    assert_eq!(
        http.put("/config/log_level", b"loud"),
        (400, r#"{"message":"INVALID_VALUE"}"#.into())
    );
    assert_eq!(
        http.put("/config/log_level", b""),
        (413, r#"{"message":"INVALID_VALUE"}"#.into())
    );
    assert_eq!(
        http.put("/config/max_msg_size", b"5"),
        (400, r#"{"message":"INVALID_OPTION"}"#.into())
    );
    // The log level really changed: debug lines appear.
    wasqd.raw().publish("logged", b"x");
    assert!(eventually(Duration::from_secs(5), || wasqd
        .log()
        .iter()
        .any(|l| l.contains("DEBUG"))));
}

#[test]
fn nsq_spoken_to_the_http_port_gets_400() {
    let wasqd = Wasqd::start();
    let mut stream = std::net::TcpStream::connect(wasqd.http).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(b"  V2PUB t\n\x00\x00\x00\x02hi").unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 400"), "{response:?}");
    assert_eq!(wasqd.http().get("/ping").0, 200);
}

/// Publishers on many keep-alive connections at once (the HTTP API serves
/// them on a thread per CPU, handed out in turn) all get their OKs, every
/// message is in the topic, and SIGTERM still ends wasqd while those
/// connections sit open and idle.
#[test]
fn concurrent_keep_alive_publishers_then_sigterm() {
    const CONNECTIONS: usize = 8;
    const REQUESTS: usize = 25;
    const PER_REQUEST: usize = 10;
    let wasqd = Wasqd::start();
    let url = wasqd.url("/mpub?topic=many");
    let idle_connections: Vec<ureq::Agent> = std::thread::scope(|scope| {
        let publishers: Vec<_> = (0..CONNECTIONS)
            .map(|connection| {
                let url = &url;
                scope.spawn(move || {
                    // One agent keeps one connection alive for all its requests.
                    let agent = ureq::Agent::new_with_defaults();
                    for request in 0..REQUESTS {
                        let body: Vec<String> = (0..PER_REQUEST)
                            .map(|m| format!("{connection}-{request}-{m}"))
                            .collect();
                        let mut response = agent.post(url).send(body.join("\n")).unwrap();
                        assert_eq!(response.body_mut().read_to_string().unwrap(), "OK");
                    }
                    agent
                })
            })
            .collect();
        publishers
            .into_iter()
            .map(|publisher| publisher.join().unwrap())
            .collect()
    });
    let stats = wasqd.http().stats();
    assert_eq!(
        stats["topics"][0]["message_count"],
        CONNECTIONS * REQUESTS * PER_REQUEST
    );
    let status = wasqd.terminate();
    assert!(status.success(), "exit status {status:?}");
    drop(idle_connections);
}
