//! Publishing and consuming with tokio-nsq under a given shared
//! configuration (TLS, compression, credentials).

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::timeout;
use tokio_nsq::{
    NSQChannel, NSQConfigShared, NSQConsumer, NSQConsumerConfig, NSQConsumerConfigSources,
    NSQEvent, NSQProducerConfig, NSQTopic,
};
use wasq_testkit::Wasqd;

pub const WAIT: Duration = Duration::from_secs(20);

/// tokio-nsq flushes every 250 ms by default; quicker for tests.
pub fn shared() -> NSQConfigShared {
    NSQConfigShared::new().set_flush_interval(Duration::from_millis(5))
}

/// The i-th test body: `size` bytes that differ per message.
pub fn body(i: usize, size: usize) -> Vec<u8> {
    let mut body = format!("message {i} ").into_bytes();
    body.extend((0..size).map(|j| b"abcdefghij"[(i + j) % 10]));
    body
}

/// Publishes `count` messages with a tokio-nsq producer and receives them
/// all (each FINished) with a tokio-nsq consumer, both configured with
/// `config`. Returns the consumer, still connected.
pub async fn round_trip(
    wasqd: &Wasqd,
    config: NSQConfigShared,
    topic: &str,
    count: usize,
    size: usize,
) -> NSQConsumer {
    let nsq_topic = NSQTopic::new(topic).unwrap();
    let mut producer = NSQProducerConfig::new(wasqd.tcp.to_string())
        .set_shared(config.clone())
        .build();
    match timeout(WAIT, producer.consume())
        .await
        .expect("producer connects")
    {
        Some(NSQEvent::Healthy()) => {}
        other => panic!("producer not healthy: {other:?}"),
    }
    for i in 0..count {
        producer.publish(&nsq_topic, body(i, size)).await.unwrap();
        match timeout(WAIT, producer.consume())
            .await
            .expect("PUB answered")
        {
            Some(NSQEvent::Ok()) => {}
            other => panic!("PUB {i} not acknowledged: {other:?}"),
        }
    }
    let mut consumer = NSQConsumerConfig::new(nsq_topic, NSQChannel::new("c").unwrap())
        .set_max_in_flight(10)
        .set_shared(config)
        .set_sources(NSQConsumerConfigSources::Daemons(vec![
            wasqd.tcp.to_string(),
        ]))
        .build();
    let expected: HashSet<Vec<u8>> = (0..count).map(|i| body(i, size)).collect();
    let mut seen = HashSet::new();
    while seen.len() < count {
        let message = timeout(WAIT, consumer.consume_filtered())
            .await
            .expect("a message in time")
            .expect("consumer open");
        assert!(expected.contains(&message.body), "an unexpected body");
        seen.insert(message.body.clone());
        message.finish().await;
    }
    consumer
}
