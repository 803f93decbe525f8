//! Black-box tests of `wasq-lookupd`: a real process on OS-chosen loopback
//! ports, the TCP protocol V1 over raw sockets, the HTTP API over HTTP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};
use wasq_testkit::Lookupd;
use wasq_testkit::node::Node;

/// A node connection that has sent the magic and IDENTIFY (as nsqd does
/// when it registers), with the lookupd's answer checked.
fn identified(lookupd: &Lookupd, tcp_port: u16, http_port: u16) -> Node {
    let mut node = lookupd.node();
    let body = json!({"broadcast_address": "127.0.0.1", "hostname": "node", "tcp_port": tcp_port,
        "http_port": http_port, "version": "1.3.0"});
    let response: Value = serde_json::from_slice(&node.identify(&body.to_string())).unwrap();
    assert_eq!(response["version"], "1.3.0");
    assert_eq!(response["tcp_port"], lookupd.tcp.port());
    node
}

fn eventually(check: impl FnMut() -> bool) -> bool {
    wasq_testkit::eventually(Duration::from_secs(10), check)
}

#[test]
fn nodes_register_topics_and_channels_and_clients_look_them_up() {
    let lookupd = Lookupd::start(&[]);
    assert_eq!(
        lookupd.http().get_json("/ping"),
        (200, Value::String("OK".into()))
    );
    assert_eq!(
        lookupd.http().get_json("/info"),
        (200, json!({"version": "1.3.0"}))
    );
    assert_eq!(
        lookupd.http().get_json("/lookup?topic=t"),
        (404, json!({"message": "TOPIC_NOT_FOUND"}))
    );
    assert_eq!(
        lookupd.http().get_json("/lookup"),
        (400, json!({"message": "MISSING_ARG_TOPIC"}))
    );

    let mut a = identified(&lookupd, 4150, 4151);
    let mut b = identified(&lookupd, 5150, 5151);
    assert_eq!(a.command("REGISTER t c"), "OK");
    assert_eq!(a.command("REGISTER t2"), "OK");
    assert_eq!(b.command("REGISTER t d"), "OK");
    assert_eq!(a.command("PING"), "OK");

    let (status, found) = lookupd.http().get_json("/lookup?topic=t");
    assert_eq!(status, 200);
    assert_eq!(found["channels"], json!(["c", "d"]));
    let producers = found["producers"].as_array().unwrap();
    assert_eq!(producers.len(), 2);
    let ports: Vec<u64> = producers
        .iter()
        .map(|p| p["tcp_port"].as_u64().unwrap())
        .collect();
    assert!(ports.contains(&4150) && ports.contains(&5150));
    let keys: Vec<&str> = producers[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "remote_address",
            "hostname",
            "broadcast_address",
            "tcp_port",
            "http_port",
            "version"
        ]
    );
    assert_eq!(
        lookupd.http().get_json("/topics"),
        (200, json!({"topics": ["t", "t2"]}))
    );
    assert_eq!(
        lookupd.http().get_json("/channels?topic=t"),
        (200, json!({"channels": ["c", "d"]}))
    );

    let (_, nodes) = lookupd.http().get_json("/nodes");
    let node_a = nodes["producers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["tcp_port"] == 4150)
        .unwrap()
        .clone();
    assert_eq!(node_a["topics"], json!(["t", "t2"]));
    assert_eq!(node_a["tombstones"], json!([false, false]));

    // UNREGISTER of a topic takes the node's channels of it too.
    assert_eq!(a.command("UNREGISTER t"), "OK");
    let (_, found) = lookupd.http().get_json("/lookup?topic=t");
    assert_eq!(found["producers"].as_array().unwrap().len(), 1);
    // A node that disconnects is forgotten.
    drop(b);
    assert!(eventually(|| lookupd.http().get_json("/lookup?topic=t").1
        ["producers"]
        == json!([])));
    assert!(eventually(
        || lookupd.http().get_json("/nodes").1["producers"]
            .as_array()
            .unwrap()
            .len()
            == 1
    ));
}

#[test]
fn ephemeral_channels_vanish_when_unregistered() {
    let lookupd = Lookupd::start(&[]);
    let mut node = identified(&lookupd, 4150, 4151);
    node.command("REGISTER t c#ephemeral");
    node.command("REGISTER t keep");
    assert_eq!(
        lookupd.http().get_json("/channels?topic=t").1,
        json!({"channels": ["c#ephemeral", "keep"]})
    );
    node.command("UNREGISTER t c#ephemeral");
    node.command("UNREGISTER t keep");
    assert_eq!(
        lookupd.http().get_json("/channels?topic=t").1,
        json!({"channels": ["keep"]})
    );
}

#[test]
fn tombstones_hide_a_producer_for_their_lifetime() {
    let lookupd = Lookupd::start(&["--tombstone-lifetime", "1s"]);
    let mut node = identified(&lookupd, 4150, 4151);
    node.command("REGISTER t");
    assert_eq!(
        lookupd.http().post_json("/topic/tombstone?topic=t"),
        (400, json!({"message": "MISSING_ARG_NODE"}))
    );
    assert_eq!(
        lookupd
            .http()
            .post_json("/topic/tombstone?topic=t&node=127.0.0.1:4151")
            .0,
        200
    );
    assert_eq!(
        lookupd.http().get_json("/lookup?topic=t").1["producers"],
        json!([])
    );
    assert_eq!(
        lookupd.http().get_json("/nodes").1["producers"][0]["tombstones"],
        json!([true])
    );
    assert!(eventually(|| lookupd.http().get_json("/lookup?topic=t").1
        ["producers"]
        .as_array()
        .unwrap()
        .len()
        == 1));
}

#[test]
fn inactive_producers_expire() {
    let lookupd = Lookupd::start(&["--inactive-producer-timeout", "1s"]);
    let mut node = identified(&lookupd, 4150, 4151);
    node.command("REGISTER t");
    assert_eq!(
        lookupd.http().get_json("/lookup?topic=t").1["producers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // No PING for longer than the timeout: hidden from /lookup and /nodes.
    assert!(eventually(|| lookupd.http().get_json("/lookup?topic=t").1
        ["producers"]
        == json!([])));
    assert_eq!(lookupd.http().get_json("/nodes").1["producers"], json!([]));
    node.command("PING");
    assert_eq!(
        lookupd.http().get_json("/lookup?topic=t").1["producers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn http_topic_and_channel_actions() {
    let lookupd = Lookupd::start(&[]);
    assert_eq!(
        lookupd.http().post_json("/topic/create"),
        (400, json!({"message": "MISSING_ARG_TOPIC"}))
    );
    assert_eq!(
        lookupd.http().post_json("/topic/create?topic=bad!"),
        (400, json!({"message": "INVALID_ARG_TOPIC"}))
    );
    assert_eq!(lookupd.http().post_json("/topic/create?topic=t").0, 200);
    assert_eq!(
        lookupd.http().get_json("/lookup?topic=t"),
        (200, json!({"channels": [], "producers": []}))
    );
    assert_eq!(
        lookupd
            .http()
            .post_json("/channel/create?topic=t2&channel=c")
            .0,
        200
    );
    assert_eq!(
        lookupd.http().get_json("/topics").1,
        json!({"topics": ["t", "t2"]})
    );
    assert_eq!(
        lookupd.http().post_json("/channel/create?topic=t2"),
        (400, json!({"message": "MISSING_ARG_CHANNEL"}))
    );
    assert_eq!(
        lookupd
            .http()
            .post_json("/channel/delete?topic=t2&channel=nope"),
        (404, json!({"message": "CHANNEL_NOT_FOUND"}))
    );
    assert_eq!(
        lookupd
            .http()
            .post_json("/channel/delete?topic=t2&channel=c")
            .0,
        200
    );
    assert_eq!(
        lookupd.http().get_json("/channels?topic=t2").1,
        json!({"channels": []})
    );
    assert_eq!(lookupd.http().post_json("/topic/delete?topic=t2").0, 200);
    assert_eq!(
        lookupd.http().get_json("/topics").1,
        json!({"topics": ["t"]})
    );
    assert_eq!(
        lookupd.http().get_json("/nope"),
        (404, json!({"message": "NOT_FOUND"}))
    );
    assert_eq!(lookupd.http().get_json("/topic/create?topic=x").0, 405);
}

#[test]
fn protocol_errors_and_garbage_close_the_connection_only() {
    let lookupd = Lookupd::start(&[]);
    let cases: &[(&[u8], &str)] = &[
        (b"REGISTER t\n", "E_INVALID client must IDENTIFY"),
        (b"WAT\n", "E_INVALID invalid command WAT"),
        (
            b"IDENTIFY\n\x00\x00\x00\x03{x}",
            "E_BAD_BODY IDENTIFY failed to decode JSON body",
        ),
        (
            b"IDENTIFY\n\xff\xff\xff\xff",
            "E_BAD_BODY IDENTIFY failed to read body size",
        ),
        (
            b"IDENTIFY\n\x00\x00\x00\x02{}",
            "E_BAD_BODY IDENTIFY missing fields",
        ),
    ];
    for (input, expected) in cases {
        lookupd.node().expect_fatal(input, expected);
    }
    let mut node = identified(&lookupd, 4150, 4151);
    node.expect_fatal(
        b"REGISTER bad! \n",
        "E_BAD_TOPIC REGISTER topic name 'bad!' is not valid",
    );
    let mut node = identified(&lookupd, 4150, 4151);
    node.expect_fatal(
        b"REGISTER t bad!\n",
        "E_BAD_CHANNEL REGISTER channel name 'bad!' is not valid",
    );
    let mut node = identified(&lookupd, 4150, 4151);
    node.expect_fatal(
        b"UNREGISTER\n",
        "E_INVALID UNREGISTER insufficient number of params",
    );
    let mut node = identified(&lookupd, 4150, 4151);
    node.expect_fatal(b"IDENTIFY\n", "E_INVALID cannot IDENTIFY again");

    let mut wrong = TcpStream::connect(lookupd.tcp).unwrap();
    wrong
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    wrong.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut reply = Vec::new();
    let _ = wrong.read_to_end(&mut reply);
    assert_eq!(reply, b"\x00\x00\x00\x0eE_BAD_PROTOCOL");
    let mut garbage = lookupd.node();
    garbage.send(
        &(0..2048u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    drop(garbage);

    // Still serving.
    let mut node = identified(&lookupd, 4150, 4151);
    assert_eq!(node.command("REGISTER ok"), "OK");
    assert_eq!(
        lookupd.http().get_json("/topics").1,
        json!({"topics": ["ok"]})
    );
}

#[test]
fn the_deprecated_verbose_flag_is_accepted_as_nsqlookupd_accepts_it() {
    // pynsq's integration tests start nsqlookupd with --verbose.
    for flag in ["--verbose", "-verbose=true"] {
        let lookupd = Lookupd::start(&[flag]);
        assert_eq!(lookupd.http().get("/ping"), (200, "OK".into()), "{flag}");
    }
}

#[test]
fn help_lists_every_nsqlookupd_flag() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wasq-lookupd"))
        .arg("--help")
        .output()
        .expect("run wasq-lookupd");
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "broadcast-address",
        "config",
        "http-address",
        "inactive-producer-timeout",
        "log-level",
        "log-prefix",
        "tcp-address",
        "tombstone-lifetime",
        "verbose",
        "version",
    ] {
        assert!(
            help.contains(&format!("--{flag}")),
            "--{flag} missing: {help}"
        );
    }
}
