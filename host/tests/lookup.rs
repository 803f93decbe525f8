//! wasqd and lookupd together: registration with the embedded lookupd and
//! with configured ones, re-registration after a lookupd restart, and
//! consumers that discover producers through lookupd.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;
use tokio_nsq::{
    NSQChannel, NSQConfigShared, NSQConsumerConfig, NSQConsumerConfigSources,
    NSQConsumerLookupConfig, NSQTopic,
};
use wasq_testkit::{Wasqd, eventually};

const WAIT: Duration = Duration::from_secs(20);

fn lookup(lookupd_http: std::net::SocketAddr, topic: &str) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .get(&format!("http://{lookupd_http}/lookup?topic={topic}"))
        .call()
        .unwrap();
    let status = response.status().as_u16();
    (
        status,
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap(),
    )
}

fn producer_ports(lookupd_http: std::net::SocketAddr, topic: &str) -> Vec<u64> {
    let (_, body) = lookup(lookupd_http, topic);
    let mut ports: Vec<u64> = body["producers"]
        .as_array()
        .map(|ps| ps.iter().map(|p| p["tcp_port"].as_u64().unwrap()).collect())
        .unwrap_or_default();
    ports.sort();
    ports
}

/// A loopback port that is free right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn topics_and_channels_are_registered_with_the_embedded_lookupd() {
    let wasqd = Wasqd::start();
    let lookupd = wasqd.lookupd_http.expect("embedded lookupd");
    let http = wasqd.http();
    assert_eq!(lookup(lookupd, "t").0, 404);
    http.post("/pub?topic=t", b"x");
    assert!(eventually(WAIT, || producer_ports(lookupd, "t")
        == vec![u64::from(wasqd.tcp.port())]));
    let (_, body) = lookup(lookupd, "t");
    assert_eq!(body["producers"][0]["http_port"], wasqd.http.port());
    assert_eq!(body["producers"][0]["version"], "1.3.0");

    http.post("/channel/create?topic=t&channel=c", b"");
    let _consumer = wasqd.consumer("t", "d", 1);
    assert!(
        eventually(WAIT, || lookup(lookupd, "t").1["channels"]
            == serde_json::json!(["c", "d"])),
        "{:?}",
        lookup(lookupd, "t")
    );
    // Deleting a channel unregisters the node from it; like nsqlookupd, the
    // lookupd keeps the (now producer-less) channel until it is deleted there.
    http.post("/channel/delete?topic=t&channel=c", b"");
    let debug = |key: &str| {
        let mut response = ureq::get(&format!("http://{lookupd}/debug"))
            .call()
            .unwrap();
        let all: Value =
            serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
        all[key].as_array().map_or(0, Vec::len)
    };
    assert!(eventually(WAIT, || debug("channel:t:c") == 0
        && debug("channel:t:d") == 1));
    http.post("/topic/delete?topic=t", b"");
    assert!(eventually(WAIT, || producer_ports(lookupd, "t").is_empty()));
}

#[test]
fn nodes_re_register_after_a_lookupd_restart_and_follow_config_changes() {
    let (lookupd_tcp, lookupd_http) = (free_port(), free_port());
    let lookupd_args = |tcp: u16, http: u16| {
        vec![
            "--lookupd-embedded-tcp-address".to_string(),
            format!("127.0.0.1:{tcp}"),
            "--lookupd-embedded-http-address".to_string(),
            format!("127.0.0.1:{http}"),
        ]
    };
    let args = lookupd_args(lookupd_tcp, lookupd_http);
    let hub = Wasqd::start_with(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let hub_lookupd: std::net::SocketAddr = format!("127.0.0.1:{lookupd_http}").parse().unwrap();
    let node = Wasqd::start_with(&[
        "--no-embedded-lookupd",
        "--lookupd-tcp-address",
        &format!("127.0.0.1:{lookupd_tcp}"),
    ]);
    node.http().post("/topic/create?topic=shared", b"");
    assert!(eventually(WAIT, || producer_ports(hub_lookupd, "shared")
        == vec![u64::from(node.tcp.port())]));

    // The lookupd goes away and comes back on the same ports, empty.
    drop(hub);
    let hub = Wasqd::start_with(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        eventually(WAIT, || producer_ports(hub_lookupd, "shared")
            == vec![u64::from(node.tcp.port())]),
        "the node did not register again after the lookupd restarted"
    );

    // PUT /config/nsqlookupd_tcp_addresses: registrations move with it.
    let other_lookupd = Wasqd::start();
    let other_tcp = other_lookupd.lookupd_tcp.unwrap();
    let other_http = other_lookupd.lookupd_http.unwrap();
    let list = format!(r#"["127.0.0.1:{lookupd_tcp}","{other_tcp}"]"#);
    assert_eq!(
        node.http()
            .put("/config/nsqlookupd_tcp_addresses", list.as_bytes())
            .0,
        200
    );
    assert!(eventually(WAIT, || producer_ports(other_http, "shared")
        == vec![u64::from(node.tcp.port())]));
    let only_other = format!(r#"["{other_tcp}"]"#);
    node.http()
        .put("/config/nsqlookupd_tcp_addresses", only_other.as_bytes());
    assert!(
        eventually(WAIT, || producer_ports(hub_lookupd, "shared").is_empty()),
        "still registered with a removed lookupd"
    );

    // A clean shutdown unregisters.
    let status = node.terminate();
    assert!(status.success());
    assert!(eventually(WAIT, || producer_ports(other_http, "shared").is_empty()));
    drop(hub);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_discovers_three_nodes_through_lookupd() {
    let hub = Wasqd::start();
    let lookupd_tcp = hub.lookupd_tcp.unwrap().to_string();
    let lookupd_http = hub.lookupd_http.unwrap();
    let nodes: Vec<Wasqd> = (0..3)
        .map(|_| {
            Wasqd::start_with(&[
                "--no-embedded-lookupd",
                "--lookupd-tcp-address",
                &lookupd_tcp,
            ])
        })
        .collect();
    for (i, node) in nodes.iter().enumerate() {
        for j in 0..5 {
            assert_eq!(
                node.http()
                    .post("/pub?topic=spread", format!("node{i}-{j}").as_bytes())
                    .0,
                200
            );
        }
    }
    let mut expected_ports: Vec<u64> = nodes.iter().map(|n| u64::from(n.tcp.port())).collect();
    expected_ports.sort();
    assert!(eventually(WAIT, || producer_ports(lookupd_http, "spread")
        == expected_ports));

    let mut addresses = HashSet::new();
    addresses.insert(format!("http://{lookupd_http}"));
    let mut consumer = NSQConsumerConfig::new(
        NSQTopic::new("spread").unwrap(),
        NSQChannel::new("all").unwrap(),
    )
    .set_max_in_flight(30)
    .set_shared(NSQConfigShared::new().set_flush_interval(Duration::from_millis(5)))
    .set_sources(NSQConsumerConfigSources::Lookup(
        NSQConsumerLookupConfig::new()
            .set_addresses(addresses)
            .set_poll_interval(Duration::from_millis(200)),
    ))
    .build();
    let mut seen = HashSet::new();
    while seen.len() < 15 {
        let message = tokio::time::timeout(WAIT, consumer.consume_filtered())
            .await
            .unwrap_or_else(|_| panic!("only {} of 15 arrived: {seen:?}", seen.len()))
            .unwrap();
        seen.insert(String::from_utf8(message.body.clone()).unwrap());
        message.finish().await;
    }
    for i in 0..3 {
        assert!(
            seen.contains(&format!("node{i}-0")),
            "nothing from node {i}"
        );
    }
}
