//! nsqd's remaining flags at work: --max-channel-consumers,
//! --broadcast-tcp-port / --broadcast-http-port, --node-id in message ids.

use std::time::Duration;

use wasq_testkit::{Wasqd, eventually};

#[test]
fn max_channel_consumers_refuses_one_more_as_nsqd_does() {
    let wasqd = Wasqd::start_with(&["--max-channel-consumers", "2"]);
    let _first = wasqd.consumer("limited", "c", 1);
    let _second = wasqd.consumer("limited", "c", 1);
    let mut third = wasqd.raw();
    third.send(b"SUB limited c\n");
    third.expect_fatal("E_SUB_FAILED SUB failed consumers for limited:c exceeds limit of 2");
    // Another channel of the same topic has room of its own.
    let _other = wasqd.consumer("limited", "d", 1);
}

#[test]
fn broadcast_ports_are_what_lookupd_is_told() {
    let wasqd = Wasqd::start_with(&[
        "--broadcast-tcp-port",
        "9150",
        "--broadcast-http-port",
        "9151",
    ]);
    wasqd.raw().publish("announced", b"x");
    let lookupd = wasq_testkit::Http::new(wasqd.lookupd_http.expect("embedded lookupd"));
    assert!(eventually(Duration::from_secs(10), || {
        let (_, nodes) = lookupd.get_json("/nodes");
        nodes["producers"]
            .as_array()
            .and_then(|p| p.first())
            .is_some_and(|p| p["tcp_port"] == 9150 && p["http_port"] == 9151)
    }));
}

#[test]
fn message_ids_carry_the_node_id() {
    let wasqd = Wasqd::start_with(&["--node-id", "677"]);
    wasqd.raw().publish("ids", b"one");
    wasqd.raw().publish("ids", b"two");
    let mut consumer = wasqd.consumer("ids", "c", 2);
    for _ in 0..2 {
        let message = consumer.read_message();
        let value = u64::from_str_radix(std::str::from_utf8(&message.id.0).unwrap(), 16).unwrap();
        assert_eq!((value >> 12) & 0x3ff, 677, "id {:?}", message.id);
        consumer.finish(&message);
    }
}
