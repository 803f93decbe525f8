//! Raw-socket tests of every protocol error nsqd sends, its text and
//! whether it closes the connection; and of garbage input, after which the
//! broker still serves a healthy round trip.

use std::time::Duration;
use wasq_testkit::{FrameType, RawClient, Wasqd};

/// After whatever a test did, a fresh client can still publish and consume.
fn assert_healthy(wasqd: &Wasqd) {
    let mut producer = wasqd.raw();
    producer.publish("health", b"still here");
    let mut consumer = wasqd.consumer("health", "check", 1);
    let message = consumer.read_message();
    assert_eq!(message.body, "still here");
    consumer.finish(&message);
}

#[test]
fn wrong_magic_gets_e_bad_protocol_and_close() {
    let wasqd = Wasqd::start();
    let mut client = RawClient::connect(wasqd.tcp);
    client.send(b"  V1");
    client.expect_fatal("E_BAD_PROTOCOL");
    assert_healthy(&wasqd);
}

#[test]
fn an_http_request_on_the_tcp_port_is_refused() {
    let wasqd = Wasqd::start();
    let mut client = RawClient::connect(wasqd.tcp);
    client.send(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n");
    client.expect_fatal("E_BAD_PROTOCOL");
    assert_healthy(&wasqd);
}

#[test]
fn fatal_errors_carry_nsqds_texts() {
    let wasqd = Wasqd::start_with(&["--max-msg-size", "100", "--max-body-size", "1000"]);
    let len = |n: i32| n.to_be_bytes().to_vec();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"WAT\n".to_vec(), "E_INVALID invalid command WAT"),
        (b"\n".to_vec(), "E_INVALID invalid command "),
        (
            b"PUB\n".to_vec(),
            "E_INVALID PUB insufficient number of parameters",
        ),
        (
            [b"PUB bad!name\n".to_vec(), len(1), b"x".to_vec()].concat(),
            "E_BAD_TOPIC PUB topic name \"bad!name\" is not valid",
        ),
        (
            [b"PUB t\n".to_vec(), len(0)].concat(),
            "E_BAD_MESSAGE PUB invalid message body size 0",
        ),
        (
            [b"PUB t\n".to_vec(), len(-1)].concat(),
            "E_BAD_MESSAGE PUB invalid message body size -1",
        ),
        (
            [b"PUB t\n".to_vec(), len(i32::MAX)].concat(),
            "E_BAD_MESSAGE PUB message too big 2147483647 > 100",
        ),
        (
            [b"MPUB t\n".to_vec(), len(2000)].concat(),
            "E_BAD_BODY MPUB body too big 2000 > 1000",
        ),
        (
            [b"MPUB t\n".to_vec(), len(4), len(0)].concat(),
            "E_BAD_BODY MPUB invalid message count 0",
        ),
        (
            [b"MPUB t\n".to_vec(), len(8), len(1), len(200)].concat(),
            "E_BAD_MESSAGE MPUB message too big 200 > 100",
        ),
        (
            b"MPUB bad!\n".to_vec(),
            "E_BAD_TOPIC E_BAD_TOPIC MPUB topic name \"bad!\" is not valid",
        ),
        (
            b"DPUB t\n".to_vec(),
            "E_INVALID DPUB insufficient number of parameters",
        ),
        (
            b"DPUB t soon\n".to_vec(),
            "E_INVALID DPUB could not parse timeout soon",
        ),
        (
            b"DPUB t 3600001\n".to_vec(),
            "E_INVALID DPUB timeout 3600001 out of range 0-3600000",
        ),
        (
            [b"DPUB t 10\n".to_vec(), len(0)].concat(),
            "E_BAD_MESSAGE DPUB invalid message body size 0",
        ),
        (
            [b"IDENTIFY\n".to_vec(), len(0)].concat(),
            "E_BAD_BODY IDENTIFY invalid body size 0",
        ),
        (
            [b"IDENTIFY\n".to_vec(), len(5000)].concat(),
            "E_BAD_BODY IDENTIFY body too big 5000 > 1000",
        ),
        (
            [b"IDENTIFY\n".to_vec(), len(3), b"{x}".to_vec()].concat(),
            "E_BAD_BODY IDENTIFY failed to decode JSON body",
        ),
        (
            b"SUB t\n".to_vec(),
            "E_INVALID SUB insufficient number of parameters",
        ),
        (
            b"SUB bad! c\n".to_vec(),
            "E_BAD_TOPIC SUB topic name \"bad!\" is not valid",
        ),
        (
            b"SUB t bad!\n".to_vec(),
            "E_BAD_CHANNEL SUB channel name \"bad!\" is not valid",
        ),
        (b"RDY 1\n".to_vec(), "E_INVALID cannot RDY in current state"),
        (
            b"FIN 0123456789abcdef\n".to_vec(),
            "E_INVALID cannot FIN in current state",
        ),
        (
            b"REQ 0123456789abcdef 0\n".to_vec(),
            "E_INVALID cannot REQ in current state",
        ),
        (
            b"TOUCH 0123456789abcdef\n".to_vec(),
            "E_INVALID cannot TOUCH in current state",
        ),
        (b"CLS\n".to_vec(), "E_INVALID cannot CLS in current state"),
        (
            [b"AUTH\n".to_vec(), len(6), b"secret".to_vec()].concat(),
            "E_AUTH_DISABLED AUTH disabled",
        ),
    ];
    for (input, expected) in cases {
        let mut client = wasqd.raw();
        client.send(&input);
        client.expect_fatal(expected);
    }
    assert_healthy(&wasqd);
}

#[test]
fn identify_settings_are_validated_like_nsqd() {
    let wasqd = Wasqd::start();
    let cases = [
        (
            r#"{"heartbeat_interval":100}"#,
            "E_BAD_BODY IDENTIFY heartbeat interval (100) is invalid",
        ),
        (
            r#"{"heartbeat_interval":60001}"#,
            "E_BAD_BODY IDENTIFY heartbeat interval (60001) is invalid",
        ),
        (
            r#"{"output_buffer_size":10}"#,
            "E_BAD_BODY IDENTIFY output buffer size (10) is invalid",
        ),
        (
            r#"{"output_buffer_timeout":1}"#,
            "E_BAD_BODY IDENTIFY output buffer timeout (1) is invalid",
        ),
        (
            r#"{"sample_rate":100}"#,
            "E_BAD_BODY IDENTIFY sample rate (100) is invalid",
        ),
        (
            r#"{"msg_timeout":999}"#,
            "E_BAD_BODY IDENTIFY msg timeout (999) is invalid",
        ),
        (
            r#"{"heartbeat_interval":"fast"}"#,
            "E_BAD_BODY IDENTIFY failed to decode JSON body",
        ),
    ];
    for (json, expected) in cases {
        let mut client = wasqd.raw();
        client.send_with_body("IDENTIFY\n", json.as_bytes());
        client.expect_fatal(expected);
    }
    // Heartbeats off, then SUB is refused as in nsqd.
    let mut client = wasqd.raw();
    assert_eq!(
        client.identify(r#"{"heartbeat_interval":-1}"#),
        (FrameType::Response, b"OK".to_vec())
    );
    client.send(b"SUB t c\n");
    client.expect_fatal("E_INVALID cannot SUB with heartbeats disabled");
}

#[test]
fn subscribed_state_errors() {
    let wasqd = Wasqd::start();
    let mut client = wasqd.consumer("t", "c", 0);
    client.send(b"SUB t c\n");
    client.expect_fatal("E_INVALID cannot SUB in current state");

    let mut client = wasqd.consumer("t", "c", 0);
    client.send_with_body("IDENTIFY\n", b"{}");
    client.expect_fatal("E_INVALID cannot IDENTIFY in current state");

    let mut client = wasqd.consumer("t", "c", 0);
    client.send(b"RDY 2501\n");
    client.expect_fatal("E_INVALID RDY count 2501 out of range 0-2500");

    let mut client = wasqd.consumer("t", "c", 0);
    client.send(b"RDY -1\n");
    client.expect_fatal("E_INVALID RDY could not parse count -1");

    let mut client = wasqd.consumer("t", "c", 0);
    client.send(b"FIN short\n");
    client.expect_fatal("E_INVALID invalid message ID");

    let mut client = wasqd.consumer("t", "c", 0);
    client.send(b"FIN\n");
    client.expect_fatal("E_INVALID FIN insufficient number of params");

    let mut client = wasqd.consumer("t", "c", 0);
    client.send(b"REQ 0123456789abcdef\n");
    client.expect_fatal("E_INVALID REQ insufficient number of params");

    let mut client = wasqd.consumer("t", "c", 0);
    client.send(b"REQ 0123456789abcdef later\n");
    client.expect_fatal("E_INVALID REQ could not parse timeout later");
}

#[test]
fn failed_acknowledgements_keep_the_connection() {
    let wasqd = Wasqd::start();
    let mut client = wasqd.consumer("t", "c", 1);
    let id = "0123456789abcdef";
    for (command, expected) in [
        (
            format!("FIN {id}\n"),
            format!("E_FIN_FAILED FIN {id} failed ID not in flight"),
        ),
        (
            format!("REQ {id} 0\n"),
            format!("E_REQ_FAILED REQ {id} failed ID not in flight"),
        ),
        (
            format!("TOUCH {id}\n"),
            format!("E_TOUCH_FAILED TOUCH {id} failed ID not in flight"),
        ),
    ] {
        client.send(command.as_bytes());
        assert_eq!(
            client.read_frame(),
            (FrameType::Error, expected.into_bytes())
        );
    }
    // Still subscribed and served.
    let mut producer = wasqd.raw();
    producer.publish("t", b"after errors");
    let message = client.read_message();
    assert_eq!(message.body, "after errors");

    // A message held by another consumer of the channel is not ours to FIN.
    let mut other = wasqd.consumer("t", "c", 0);
    other.finish(&message);
    assert_eq!(
        other.read_frame(),
        (
            FrameType::Error,
            format!(
                "E_FIN_FAILED FIN {} failed client does not own message",
                message.id
            )
            .into_bytes()
        )
    );
}

#[test]
fn pipelined_fins_are_answered_in_order() {
    // FINs read in one go are done together; a refused one among them
    // still gets its error in its place, before what followed it.
    let wasqd = Wasqd::start();
    let mut producer = wasqd.raw();
    producer.mpub("t", &["a", "b", "c"]);
    let mut client = wasqd.consumer("t", "c", 3);
    let held: Vec<_> = (0..3).map(|_| client.read_message()).collect();
    let unknown = "0123456789abcdef";
    let mut commands = format!("FIN {}\nFIN {unknown}\nFIN {}\n", held[0].id, held[1].id);
    commands.push_str(&format!(
        "REQ {unknown} 0\nFIN {}\nFIN {}\n",
        held[2].id, held[2].id
    ));
    client.send(commands.as_bytes());
    for expected in [
        format!("E_FIN_FAILED FIN {unknown} failed ID not in flight"),
        format!("E_REQ_FAILED REQ {unknown} failed ID not in flight"),
        format!("E_FIN_FAILED FIN {} failed ID not in flight", held[2].id),
    ] {
        assert_eq!(
            client.read_frame(),
            (FrameType::Error, expected.into_bytes())
        );
    }
    let http = wasqd.http();
    let channel = http.channel_stats("t", "c").unwrap();
    assert_eq!(channel["in_flight_count"], 0, "{channel}");
    assert_eq!(channel["depth"], 0, "{channel}");
    assert_eq!(channel["clients"][0]["finish_count"], 3, "{channel}");
}

#[test]
fn garbage_truncation_and_slow_drips_never_hurt_other_clients() {
    let wasqd = Wasqd::start();
    // A consumer that must keep working throughout.
    let mut consumer = wasqd.consumer("steady", "c", 10);

    // Random bytes after the magic.
    let mut noisy = wasqd.raw();
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    noisy.send(&garbage);
    let (frame_type, _) = noisy.read_frame();
    assert_eq!(frame_type, FrameType::Error);
    noisy.expect_closed();

    // A line with no newline, longer than any command.
    let mut long = wasqd.raw();
    long.send(&vec![b'A'; 64 * 1024]);
    let (frame_type, _) = long.read_frame();
    assert_eq!(frame_type, FrameType::Error);

    // A truncated PUB whose sender vanishes, and one that stalls mid-body.
    let mut truncated = wasqd.raw();
    truncated.send(b"PUB steady\n\x00\x00\x00\x10half");
    drop(truncated);
    let mut stalled = wasqd.raw();
    stalled.send(b"PUB steady\n\x00\x00\x00\x10half");

    // A body that arrives one byte at a time is still a good PUB.
    let mut dripping = wasqd.raw();
    let frame =
        wasq_wire::command::encode(|out| wasq_wire::command::publish(out, "steady", b"drip"));
    for byte in frame {
        dripping.send(&[byte]);
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(dripping.read_frame(), (FrameType::Response, b"OK".to_vec()));
    assert_eq!(consumer.read_message().body, "drip");

    // Connections that close at once, before or after the magic.
    for _ in 0..20 {
        drop(RawClient::connect(wasqd.tcp));
        drop(wasqd.raw());
    }

    let mut producer = wasqd.raw();
    producer.publish("steady", b"fine");
    assert_eq!(consumer.read_message().body, "fine");
    drop(stalled);
    assert_healthy(&wasqd);
}

#[test]
fn an_oversized_mpub_message_is_refused_before_the_rest_of_the_body_arrives() {
    let wasqd = Wasqd::start_with(&["--max-msg-size", "1000"]);
    let mut client = wasqd.raw();
    // Declares 4 MB, sends the count and a first size header of 2000
    // bytes (over --max-msg-size), and nothing more: nsqd answers at once.
    let mut start = b"MPUB t\n".to_vec();
    start.extend_from_slice(&4_000_000i32.to_be_bytes());
    start.extend_from_slice(&100i32.to_be_bytes());
    start.extend_from_slice(&2000i32.to_be_bytes());
    client.send(&start);
    client.expect_fatal("E_BAD_MESSAGE MPUB message too big 2000 > 1000");

    let mut client = wasqd.raw();
    let mut zero = b"MPUB t\n".to_vec();
    zero.extend_from_slice(&4_000_000i32.to_be_bytes());
    zero.extend_from_slice(&100i32.to_be_bytes());
    zero.extend_from_slice(&3i32.to_be_bytes());
    zero.extend_from_slice(b"abc");
    zero.extend_from_slice(&0i32.to_be_bytes());
    client.send(&zero);
    client.expect_fatal("E_BAD_MESSAGE MPUB invalid message(1) body size 0");
    assert_healthy(&wasqd);
}
