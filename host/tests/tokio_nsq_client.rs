//! The tokio-nsq crate, an independent NSQ client, against a real wasqd:
//! publish, consume, FIN, REQ with attempts, TOUCH, msg_timeout redelivery,
//! max-in-flight, sharing a channel, separate channels, ephemeral cleanup
//! and durable messages surviving a crash.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tokio::time::timeout;
use tokio_nsq::{
    NSQChannel, NSQConfigShared, NSQConsumer, NSQConsumerConfig, NSQConsumerConfigSources,
    NSQEvent, NSQMessage, NSQProducer, NSQProducerConfig, NSQRequeueDelay, NSQTopic,
};
use wasq_testkit::{Wasqd, eventually};

const WAIT: Duration = Duration::from_secs(15);

/// tokio-nsq buffers its writes and flushes every 250 ms by default, which
/// would make each awaited PUB take a quarter second.
fn shared() -> NSQConfigShared {
    NSQConfigShared::new().set_flush_interval(Duration::from_millis(5))
}

async fn producer(wasqd: &Wasqd) -> NSQProducer {
    let mut producer = NSQProducerConfig::new(wasqd.tcp.to_string())
        .set_shared(shared())
        .build();
    match timeout(WAIT, producer.consume())
        .await
        .expect("producer connects")
    {
        Some(NSQEvent::Healthy()) => producer,
        other => panic!("producer not healthy: {other:?}"),
    }
}

async fn publish(producer: &mut NSQProducer, topic: &str, body: &[u8]) {
    let topic = NSQTopic::new(topic).unwrap();
    producer.publish(&topic, body.to_vec()).await.unwrap();
    match timeout(WAIT, producer.consume())
        .await
        .expect("PUB acknowledged")
    {
        Some(NSQEvent::Ok()) => {}
        other => panic!("PUB not acknowledged: {other:?}"),
    }
}

fn consumer(wasqd: &Wasqd, topic: &str, channel: &str, max_in_flight: u32) -> NSQConsumer {
    NSQConsumerConfig::new(
        NSQTopic::new(topic).unwrap(),
        NSQChannel::new(channel).unwrap(),
    )
    .set_max_in_flight(max_in_flight)
    .set_shared(shared())
    .set_sources(NSQConsumerConfigSources::Daemons(vec![
        wasqd.tcp.to_string(),
    ]))
    .build()
}

async fn next_message(consumer: &mut NSQConsumer) -> NSQMessage {
    timeout(WAIT, consumer.consume_filtered())
        .await
        .expect("a message in time")
        .expect("consumer open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_consume_finish() {
    let wasqd = Wasqd::start();
    let mut producer = producer(&wasqd).await;
    let mut consumer = consumer(&wasqd, "tn_basic", "c", 10);
    for i in 0..50 {
        publish(&mut producer, "tn_basic", format!("msg {i}").as_bytes()).await;
    }
    let mut seen = HashSet::new();
    while seen.len() < 50 {
        let message = next_message(&mut consumer).await;
        assert_eq!(message.attempt, 1);
        seen.insert(String::from_utf8(message.body.clone()).unwrap());
        message.finish().await;
    }
    let http = wasqd.http();
    assert!(eventually(WAIT, || {
        let c = http.channel_stats("tn_basic", "c").unwrap();
        c["in_flight_count"] == 0 && c["depth"] == 0 && c["clients"][0]["finish_count"] == 50
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_counts_attempts() {
    let wasqd = Wasqd::start();
    let mut producer = producer(&wasqd).await;
    let mut consumer = consumer(&wasqd, "tn_req", "c", 1);
    publish(&mut producer, "tn_req", b"flaky").await;
    let first = next_message(&mut consumer).await;
    assert_eq!(first.attempt, 1);
    let id = first.id;
    first.requeue(NSQRequeueDelay::NoDelay).await;
    let second = next_message(&mut consumer).await;
    assert_eq!((second.id, second.attempt), (id, 2));
    second
        .requeue(NSQRequeueDelay::CustomDelay(Duration::from_millis(300)))
        .await;
    let sent = Instant::now();
    let third = next_message(&mut consumer).await;
    assert!(sent.elapsed() >= Duration::from_millis(250));
    assert_eq!(third.attempt, 3);
    third.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msg_timeout_redelivers_and_touch_holds() {
    let wasqd = Wasqd::start_with(&["--msg-timeout", "1s"]);
    let mut producer = producer(&wasqd).await;
    let mut consumer = consumer(&wasqd, "tn_timeout", "c", 2);
    publish(&mut producer, "tn_timeout", b"forgotten").await;
    publish(&mut producer, "tn_timeout", b"touched").await;
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(next_message(&mut consumer).await);
    }
    let touched = held.iter().position(|m| m.body == b"touched").unwrap();
    let touched = held.remove(touched);
    let forgotten = held.pop().unwrap();
    // Keep touching one past its timeout; leave the other alone.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        touched.touch().await;
    }
    let redelivered = next_message(&mut consumer).await;
    assert_eq!(redelivered.body, b"forgotten");
    assert_eq!(redelivered.attempt, 2);
    assert_eq!(redelivered.id, forgotten.id);
    std::mem::forget(forgotten); // its FIN would now fail; the client would REQ it on drop
    touched.finish().await;
    redelivered.finish().await;
    let http = wasqd.http();
    assert!(eventually(WAIT, || {
        let c = http.channel_stats("tn_timeout", "c").unwrap();
        c["timeout_count"] == 1 && c["in_flight_count"] == 0
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_in_flight_is_respected() {
    let wasqd = Wasqd::start();
    let mut producer = producer(&wasqd).await;
    for i in 0..20 {
        publish(&mut producer, "tn_rdy", format!("{i}").as_bytes()).await;
    }
    let mut consumer = consumer(&wasqd, "tn_rdy", "c", 5);
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(next_message(&mut consumer).await);
    }
    assert!(
        timeout(Duration::from_millis(500), consumer.consume_filtered())
            .await
            .is_err(),
        "more than max_in_flight"
    );
    let stats = wasqd.http().channel_stats("tn_rdy", "c").unwrap();
    assert_eq!(stats["in_flight_count"], 5);
    assert_eq!(stats["depth"], 15);
    for message in held {
        message.finish().await;
    }
    let more = next_message(&mut consumer).await;
    more.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_share_and_two_channels_copy() {
    let wasqd = Wasqd::start();
    let mut producer = producer(&wasqd).await;
    let mut a = consumer(&wasqd, "tn_fan", "shared", 50);
    let mut b = consumer(&wasqd, "tn_fan", "shared", 50);
    let mut other = consumer(&wasqd, "tn_fan", "other", 50);
    let http = wasqd.http();
    assert!(eventually(WAIT, || http
        .channel_stats("tn_fan", "shared")
        .is_some_and(|c| c["client_count"] == 2)));
    assert!(eventually(WAIT, || http
        .channel_stats("tn_fan", "other")
        .is_some()));
    let total = 100;
    for i in 0..total {
        publish(&mut producer, "tn_fan", format!("{i}").as_bytes()).await;
    }
    let mut other_seen = HashSet::new();
    while other_seen.len() < total {
        let m = next_message(&mut other).await;
        other_seen.insert(m.body.clone());
        m.finish().await;
    }
    let mut shared_seen = Vec::new();
    let (mut from_a, mut from_b) = (0, 0);
    while shared_seen.len() < total {
        tokio::select! {
            Some(m) = a.consume_filtered() => { from_a += 1; shared_seen.push(m.body.clone()); m.finish().await; }
            Some(m) = b.consume_filtered() => { from_b += 1; shared_seen.push(m.body.clone()); m.finish().await; }
            _ = tokio::time::sleep(WAIT) => panic!("shared channel stalled at {}", shared_seen.len()),
        }
    }
    let unique: HashSet<_> = shared_seen.iter().collect();
    assert_eq!(
        unique.len(),
        total,
        "a message went to both consumers of one channel"
    );
    assert!(
        from_a > 0 && from_b > 0,
        "one consumer got everything ({from_a}/{from_b})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_channel_goes_with_its_consumer() {
    let wasqd = Wasqd::start();
    let mut producer = producer(&wasqd).await;
    let mut consumer = consumer(&wasqd, "tn_eph", "watch#ephemeral", 1);
    let http = wasqd.http();
    assert!(eventually(WAIT, || http
        .channel_stats("tn_eph", "watch#ephemeral")
        .is_some()));
    publish(&mut producer, "tn_eph", b"seen").await;
    next_message(&mut consumer).await.finish().await;
    drop(consumer);
    assert!(eventually(WAIT, || http
        .channel_stats("tn_eph", "watch#ephemeral")
        .is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_messages_survive_a_crash_between_tokio_nsq_clients() {
    let data = tempfile::tempdir().unwrap();
    let args = [
        "--data-path",
        data.path().to_str().unwrap(),
        "--mem-queue-size",
        "0",
        "--sync-every",
        "1",
    ];
    let wasqd = Wasqd::start_with(&args);
    let mut producer = producer(&wasqd).await;
    let mut held_consumer = consumer(&wasqd, "tn_durable", "c", 10);
    for i in 0..100 {
        publish(&mut producer, "tn_durable", format!("msg {i}").as_bytes()).await;
    }
    let topic = NSQTopic::new("tn_durable").unwrap();
    let due = Instant::now() + Duration::from_millis(1500);
    producer
        .publish_deferred(&topic, b"later".to_vec(), 1500)
        .await
        .unwrap();
    assert!(matches!(
        timeout(WAIT, producer.consume()).await.unwrap(),
        Some(NSQEvent::Ok())
    ));
    // Ten messages in flight, never finished, when the broker dies.
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(next_message(&mut held_consumer).await);
    }
    wasqd.crash();
    drop(held);

    let wasqd = Wasqd::start_with(&args);
    let mut consumer = consumer(&wasqd, "tn_durable", "c", 50);
    let mut seen = HashSet::new();
    while seen.len() < 101 {
        let message = next_message(&mut consumer).await;
        let body = String::from_utf8(message.body.clone()).unwrap();
        if body == "later" {
            assert!(Instant::now() >= due, "the deferred message came early");
        }
        seen.insert(body);
        message.finish().await;
    }
    assert!(seen.contains("later") && seen.contains("msg 0") && seen.contains("msg 99"));
}
