//! Raw-socket tests of delivery semantics: RDY flow control, timeouts,
//! REQ, TOUCH, DPUB, CLS, heartbeats, sharing and ephemeral cleanup.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use wasq_testkit::{FrameType, Wasqd, eventually};

#[test]
fn rdy_bounds_unacknowledged_messages_exactly() {
    let wasqd = Wasqd::start();
    let mut producer = wasqd.raw();
    for i in 0..10 {
        producer.publish("flow", format!("m{i}").as_bytes());
    }
    let mut consumer = wasqd.consumer("flow", "c", 3);
    let first: Vec<_> = (0..3).map(|_| consumer.read_message()).collect();
    assert!(
        consumer.is_silent_for(Duration::from_millis(300)),
        "more than RDY messages were sent"
    );
    consumer.finish(&first[0]);
    let fourth = consumer.read_message();
    assert!(consumer.is_silent_for(Duration::from_millis(300)));
    assert_eq!(fourth.body, "m3");
    // RDY 0 stops delivery while messages stay in flight.
    consumer.send(b"RDY 0\n");
    for m in [&first[1], &first[2], &fourth] {
        consumer.finish(m);
    }
    assert!(consumer.is_silent_for(Duration::from_millis(300)));
    let stats = wasqd.http().channel_stats("flow", "c").unwrap();
    assert_eq!(stats["depth"], 6);
    assert_eq!(stats["in_flight_count"], 0);
    assert_eq!(stats["clients"][0]["ready_count"], 0);
}

#[test]
fn messages_have_nsqd_ids_timestamps_and_order() {
    let wasqd = Wasqd::start();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let mut producer = wasqd.raw();
    producer.mpub("order", &["one", "two", "three"]);
    let mut consumer = wasqd.consumer("order", "c", 10);
    let messages: Vec<_> = (0..3).map(|_| consumer.read_message()).collect();
    let bodies: Vec<_> = messages.iter().map(|m| m.body.clone()).collect();
    assert_eq!(
        bodies,
        vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
    );
    let ids: HashSet<_> = messages.iter().map(|m| m.id).collect();
    assert_eq!(ids.len(), 3);
    for m in &messages {
        assert_eq!(m.id.0.len(), 16);
        assert_eq!(m.attempts, 1);
        assert!(
            m.timestamp >= before && m.timestamp < before + 60_000_000_000,
            "timestamp {}",
            m.timestamp
        );
    }
}

#[test]
fn unacknowledged_messages_time_out_and_come_back_with_more_attempts() {
    let wasqd = Wasqd::start();
    let mut consumer = wasqd.raw();
    consumer.identify(r#"{"msg_timeout":1000}"#);
    consumer.send(b"SUB slow c\nRDY 1\n");
    assert_eq!(consumer.read_frame(), (FrameType::Response, b"OK".to_vec()));
    wasqd.raw().publish("slow", b"late");
    let first = consumer.read_message();
    let sent = Instant::now();
    let again = consumer.read_message();
    assert!(
        sent.elapsed() >= Duration::from_millis(900),
        "redelivered after {:?}",
        sent.elapsed()
    );
    assert_eq!(again.id, first.id);
    assert_eq!(again.attempts, 2);
    consumer.finish(&again);
    // A FIN for the first delivery now fails: it timed out.
    let stats = wasqd.http().channel_stats("slow", "c").unwrap();
    assert_eq!(stats["timeout_count"], 1);
}

#[test]
fn touch_extends_the_deadline() {
    let wasqd = Wasqd::start();
    let mut consumer = wasqd.raw();
    consumer.identify(r#"{"msg_timeout":1000}"#);
    consumer.send(b"SUB touchy c\nRDY 1\n");
    consumer.read_frame();
    wasqd.raw().publish("touchy", b"keep me");
    let message = consumer.read_message();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(600));
        consumer.touch(&message);
    }
    // 1.8 s after delivery, well past the 1 s timeout, the message is still ours.
    assert!(consumer.is_silent_for(Duration::from_millis(300)));
    consumer.finish(&message);
    assert!(
        consumer.is_silent_for(Duration::from_millis(300)),
        "FIN after TOUCH failed"
    );
    let stats = wasqd.http().channel_stats("touchy", "c").unwrap();
    assert_eq!(stats["timeout_count"], 0);
    assert_eq!(stats["in_flight_count"], 0);
}

#[test]
fn req_redelivers_after_the_delay_with_attempts_counted() {
    let wasqd = Wasqd::start_with(&["--max-req-timeout", "1s"]);
    wasqd.raw().publish("retry", b"again");
    let mut consumer = wasqd.consumer("retry", "c", 1);
    let m1 = consumer.read_message();
    consumer.send(format!("REQ {} 0\n", m1.id).as_bytes());
    let m2 = consumer.read_message();
    assert_eq!((m2.id, m2.attempts), (m1.id, 2));

    consumer.send(format!("REQ {} 400\n", m2.id).as_bytes());
    let sent = Instant::now();
    assert!(consumer.is_silent_for(Duration::from_millis(250)));
    let deferred = wasqd.http().channel_stats("retry", "c").unwrap();
    assert_eq!(deferred["deferred_count"], 1);
    let m3 = consumer.read_message();
    assert!(sent.elapsed() >= Duration::from_millis(380));
    assert_eq!(m3.attempts, 3);

    // A delay above --max-req-timeout is clamped to it (1 s), not refused.
    consumer.send(format!("REQ {} 3600000\n", m3.id).as_bytes());
    let sent = Instant::now();
    let m4 = consumer.read_message();
    assert!(
        sent.elapsed() >= Duration::from_millis(900) && sent.elapsed() < Duration::from_secs(5)
    );
    assert_eq!(m4.attempts, 4);
    let stats = wasqd.http().channel_stats("retry", "c").unwrap();
    assert_eq!(stats["requeue_count"], 3);
}

#[test]
fn dpub_holds_a_message_until_due() {
    let wasqd = Wasqd::start();
    let mut consumer = wasqd.consumer("later", "c", 5);
    let mut producer = wasqd.raw();
    producer.send_with_body("DPUB later 500\n", b"deferred");
    assert_eq!(producer.read_frame(), (FrameType::Response, b"OK".to_vec()));
    let sent = Instant::now();
    producer.publish("later", b"now");
    assert_eq!(consumer.read_message().body, "now");
    assert_eq!(
        wasqd.http().channel_stats("later", "c").unwrap()["deferred_count"],
        1
    );
    let deferred = consumer.read_message();
    assert_eq!(deferred.body, "deferred");
    assert!(
        sent.elapsed() >= Duration::from_millis(450),
        "arrived after {:?}",
        sent.elapsed()
    );
}

#[test]
fn dpub_before_any_channel_keeps_its_due_time() {
    let wasqd = Wasqd::start();
    let mut producer = wasqd.raw();
    producer.send_with_body("DPUB early 600\n", b"deferred");
    assert_eq!(producer.read_frame(), (FrameType::Response, b"OK".to_vec()));
    let sent = Instant::now();
    let mut consumer = wasqd.consumer("early", "c", 5);
    let deferred = consumer.read_message();
    assert!(
        sent.elapsed() >= Duration::from_millis(550),
        "arrived after {:?}",
        sent.elapsed()
    );
    assert_eq!(deferred.body, "deferred");
}

#[test]
fn cls_stops_delivery_and_lets_the_client_settle() {
    let wasqd = Wasqd::start();
    let mut producer = wasqd.raw();
    producer.publish("closing", b"a");
    producer.publish("closing", b"b");
    let mut consumer = wasqd.consumer("closing", "c", 1);
    let held = consumer.read_message();
    consumer.send(b"CLS\n");
    assert_eq!(
        consumer.read_frame(),
        (FrameType::Response, b"CLOSE_WAIT".to_vec())
    );
    consumer.finish(&held);
    consumer.send(b"RDY 5\n");
    assert!(
        consumer.is_silent_for(Duration::from_millis(400)),
        "messages after CLS"
    );
    let stats = wasqd.http().channel_stats("closing", "c").unwrap();
    assert_eq!(stats["depth"], 1);
    assert_eq!(stats["in_flight_count"], 0);
}

#[test]
fn heartbeats_flow_and_silent_clients_are_dropped() {
    let wasqd = Wasqd::start();
    let mut client = wasqd.raw();
    client.identify(r#"{"heartbeat_interval":1000}"#);
    let start = Instant::now();
    assert_eq!(
        client.read_any_frame(),
        (FrameType::Response, b"_heartbeat_".to_vec())
    );
    assert!(start.elapsed() >= Duration::from_millis(800));
    // Answering with NOP keeps the connection alive past two intervals.
    client.send(b"NOP\n");
    assert_eq!(
        client.read_any_frame(),
        (FrameType::Response, b"_heartbeat_".to_vec())
    );
    client.send(b"NOP\n");
    // Silence for two intervals: the server hangs up.
    let silent_since = Instant::now();
    assert!(
        client.closed_within(Duration::from_secs(6)),
        "silent client not dropped"
    );
    assert!(
        silent_since.elapsed() >= Duration::from_millis(1900),
        "dropped after {:?}",
        silent_since.elapsed()
    );
}

#[test]
fn consumers_share_a_channel_and_channels_each_get_everything() {
    let wasqd = Wasqd::start();
    let mut a = wasqd.consumer("fan", "shared", 100);
    let mut b = wasqd.consumer("fan", "shared", 100);
    let mut solo = wasqd.consumer("fan", "solo", 100);
    let mut producer = wasqd.raw();
    let total = 200;
    for i in 0..total {
        producer.publish("fan", format!("{i}").as_bytes());
    }
    let mut solo_seen = HashSet::new();
    for _ in 0..total {
        let m = solo.read_message();
        solo.finish(&m);
        solo_seen.insert(m.body);
    }
    assert_eq!(solo_seen.len(), total);

    // The shared channel delivers on its own schedule (the solo channel
    // being done says nothing of it): wait until its consumers hold all.
    let http = wasqd.http();
    let delivered = || -> Vec<u64> {
        http.channel_stats("fan", "shared").unwrap()["clients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["message_count"].as_u64().unwrap())
            .collect()
    };
    eventually(Duration::from_secs(20), || {
        delivered().iter().sum::<u64>() >= total as u64
    });
    let counts = delivered();
    assert_eq!(
        counts.iter().sum::<u64>(),
        total as u64,
        "each message to exactly one consumer"
    );
    let mut shared_seen = HashSet::new();
    for (client, count) in [(&mut a, counts[0]), (&mut b, counts[1])] {
        for _ in 0..count {
            shared_seen.insert(client.read_message().body);
        }
    }
    assert_eq!(shared_seen.len(), total);
}

#[test]
fn a_topic_keeps_messages_until_its_first_channel() {
    let wasqd = Wasqd::start();
    let mut producer = wasqd.raw();
    for i in 0..5 {
        producer.publish("backlog", format!("{i}").as_bytes());
    }
    let topic_depth = |w: &Wasqd| {
        let stats = w.http().stats();
        stats["topics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["topic_name"] == "backlog")
            .unwrap()["depth"]
            .clone()
    };
    assert_eq!(topic_depth(&wasqd), 5);
    let mut consumer = wasqd.consumer("backlog", "first", 10);
    let got: Vec<_> = (0..5).map(|_| consumer.read_message().body).collect();
    assert_eq!(got[0], "0");
    assert_eq!(got[4], "4");
    assert_eq!(topic_depth(&wasqd), 0);
}

#[test]
fn a_departing_consumers_messages_go_to_the_next_one_at_once() {
    let wasqd = Wasqd::start();
    wasqd.raw().publish("handoff", b"precious");
    let mut first = wasqd.consumer("handoff", "c", 1);
    let held = first.read_message();
    drop(first);
    let mut second = wasqd.consumer("handoff", "c", 1);
    let again = second.read_message();
    assert_eq!(again.id, held.id);
    assert_eq!(again.attempts, 2);
}

#[test]
fn ephemeral_channels_and_topics_vanish_with_their_last_consumer() {
    let wasqd = Wasqd::start();
    let http = wasqd.http();
    let a = wasqd.consumer("temp#ephemeral", "c#ephemeral", 1);
    let b = wasqd.consumer("temp#ephemeral", "c#ephemeral", 1);
    let durable = wasqd.consumer("keep", "c#ephemeral", 1);
    assert!(http.topic_names().contains(&"temp#ephemeral".to_string()));
    drop(a);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        http.channel_stats("temp#ephemeral", "c#ephemeral")
            .is_some(),
        "gone with a consumer left"
    );
    drop(b);
    assert!(eventually(Duration::from_secs(5), || !http
        .topic_names()
        .contains(&"temp#ephemeral".to_string())));
    drop(durable);
    assert!(eventually(Duration::from_secs(5), || http
        .channel_stats("keep", "c#ephemeral")
        .is_none()));
    assert!(
        http.topic_names().contains(&"keep".to_string()),
        "a normal topic stays"
    );
}

#[test]
fn deleting_a_channel_disconnects_its_consumers() {
    let wasqd = Wasqd::start();
    let mut consumer = wasqd.consumer("doomed", "c", 1);
    let (status, _) = wasqd
        .http()
        .post("/channel/delete?topic=doomed&channel=c", b"");
    assert_eq!(status, 200);
    consumer.expect_closed();
}

#[test]
fn paused_channels_hold_messages_until_unpaused() {
    let wasqd = Wasqd::start();
    let http = wasqd.http();
    let mut consumer = wasqd.consumer("paused", "c", 5);
    assert_eq!(
        http.post("/channel/pause?topic=paused&channel=c", b"").0,
        200
    );
    wasqd.raw().publish("paused", b"wait");
    assert!(consumer.is_silent_for(Duration::from_millis(300)));
    assert_eq!(http.channel_stats("paused", "c").unwrap()["paused"], true);
    assert_eq!(
        http.post("/channel/unpause?topic=paused&channel=c", b"").0,
        200
    );
    assert_eq!(consumer.read_message().body, "wait");

    assert_eq!(http.post("/topic/pause?topic=paused", b"").0, 200);
    wasqd.raw().publish("paused", b"topic wait");
    assert!(consumer.is_silent_for(Duration::from_millis(300)));
    assert_eq!(http.post("/topic/unpause?topic=paused", b"").0, 200);
    assert_eq!(consumer.read_message().body, "topic wait");
}

#[test]
fn sample_rate_delivers_a_sample() {
    let wasqd = Wasqd::start();
    let mut consumer = wasqd.raw();
    consumer.identify(r#"{"sample_rate":50}"#);
    consumer.send(b"SUB sampled c\nRDY 2500\n");
    consumer.read_frame();
    let mut producer = wasqd.raw();
    producer.mpub("sampled", &vec!["x"; 1000]);
    let http = wasqd.http();
    assert!(eventually(Duration::from_secs(5), || http
        .channel_stats("sampled", "c")
        .unwrap()["depth"]
        == 0));
    let delivered = http.channel_stats("sampled", "c").unwrap()["in_flight_count"]
        .as_u64()
        .unwrap();
    assert!(
        (350..=650).contains(&delivered),
        "delivered {delivered} of 1000 at 50%"
    );
}
