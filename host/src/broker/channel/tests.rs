use super::*;
use crate::broker::in_flight::InFlightError;
use crate::broker::message::MessageId;
use bytes::Bytes;

fn client(id: u64) -> Arc<Client> {
    Arc::new(Client::new(id, "127.0.0.1:1".into(), 0))
}

fn message(n: u64) -> Message {
    let mut id = [b'0'; 16];
    id[8..].copy_from_slice(format!("{n:08}").as_bytes());
    Message::new(MessageId(id), Bytes::from(format!("m{n}")))
}

#[tokio::test]
async fn take_respects_max_and_counts_attempts() {
    let channel = Channel::new("t", "c", &QueueSettings::memory_only());
    let c = client(1);
    assert!(
        channel
            .put(&[message(1), message(2), message(3)])
            .is_empty()
    );
    let taken = channel.take(&c, 2, Duration::from_secs(60), 0);
    assert_eq!(taken.len(), 2);
    assert_eq!(taken[0].attempts, 1);
    assert_eq!(c.in_flight.load(Ordering::Relaxed), 2);
    assert_eq!(channel.depth(), 1);

    channel.requeue(&c, &taken[0].id, Duration::ZERO).unwrap();
    assert_eq!(
        channel.finish_many(&c, &[taken[1].id, taken[1].id], |_, _| {}),
        1
    );
    assert_eq!(
        channel.finish(&c, &taken[1].id),
        Err(InFlightError::NotInFlight)
    );
    assert_eq!(c.in_flight.load(Ordering::Relaxed), 0);
    let again = channel.take(&c, 10, Duration::from_secs(60), 0);
    assert_eq!(again.len(), 2);
    let redelivered = again.iter().find(|m| m.id == taken[0].id).unwrap();
    assert_eq!(redelivered.attempts, 2);
}

#[tokio::test]
async fn timeouts_requeue_and_return_capacity() {
    let channel = Channel::new("t", "c", &QueueSettings::memory_only());
    let c = client(1);
    channel.add_client(c.clone(), 0).unwrap();
    assert!(channel.put(&[message(1)]).is_empty());
    let taken = channel.take(&c, 1, Duration::from_millis(30), 0);
    assert_eq!(taken.len(), 1);
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(c.in_flight.load(Ordering::Relaxed), 0);
    assert_eq!(channel.depth(), 1);
    assert_eq!(channel.stats(false).timeout_count, 1);
}

#[tokio::test]
async fn paused_channels_deliver_nothing() {
    let channel = Channel::new("t", "c", &QueueSettings::memory_only());
    let c = client(1);
    assert!(channel.put(&[message(1)]).is_empty());
    channel.pause();
    assert!(channel.take(&c, 1, Duration::from_secs(1), 0).is_empty());
    channel.unpause();
    assert_eq!(channel.take(&c, 1, Duration::from_secs(1), 0).len(), 1);
}

#[tokio::test]
async fn a_leaving_client_returns_its_messages() {
    let channel = Channel::new("t", "c", &QueueSettings::memory_only());
    let a = client(1);
    channel.add_client(a.clone(), 0).unwrap();
    assert!(channel.put(&[message(1), message(2)]).is_empty());
    assert_eq!(channel.take(&a, 2, Duration::from_secs(60), 0).len(), 2);
    assert_eq!(channel.remove_client(1), 0);
    assert_eq!(channel.depth(), 2);
    let b = client(2);
    let again = channel.take(&b, 2, Duration::from_secs(60), 0);
    assert_eq!(again[0].body, Bytes::from("m1"));
    assert_eq!(
        channel.finish(&a, &again[0].id),
        Err(InFlightError::NotOwner)
    );
}

fn durable(dir: &std::path::Path) -> QueueSettings {
    QueueSettings {
        latency: None,
        mem_queue_size: 0,
        disk: Some(Arc::new(wasq_storage::DiskStore::new(
            Arc::new(wasq_storage::DiskSettings {
                dir: dir.to_path_buf(),
                max_bytes_per_file: 1 << 20,
                sync_every: 2500,
                max_payload: 1 << 20,
            }),
            tokio::runtime::Handle::current(),
        ))),
    }
}

/// Takes as a consumer does: take, and if nothing came, wait to be
/// woken (a refill from disk arriving) and take again.
async fn take_when_ready(channel: &Channel, client: &Arc<Client>) -> Vec<Message> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ready = channel.messages_ready();
        let taken = channel.take(client, 10, Duration::from_secs(60), 0);
        if !taken.is_empty() || Instant::now() > deadline {
            return taken;
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), ready).await;
    }
}

#[tokio::test]
async fn a_deferred_message_on_disk_wakes_a_waiting_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let channel = Channel::new("t", "c", &durable(dir.path()));
    let c = client(1);
    let ready = channel.messages_ready();
    assert!(channel.take(&c, 10, Duration::from_secs(60), 0).is_empty());
    let due = Instant::now() + Duration::from_secs(60);
    channel
        .put_deferred(&[message(1)], due)
        .wait()
        .await
        .unwrap();
    // Without this wake-up the consumer would sleep while messages
    // queue on disk behind the deferred one.
    tokio::time::timeout(Duration::from_secs(2), ready)
        .await
        .expect("woken");
    channel.put(&[message(2)]).wait().await.unwrap();
    let taken = take_when_ready(&channel, &c).await;
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].body, Bytes::from("m2"));
    assert_eq!(channel.stats(false).deferred_count, 1);
}

#[tokio::test]
async fn a_disk_backlog_is_read_back_in_order_off_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let channel = Channel::new("t", "c", &durable(dir.path()));
    let c = client(1);
    channel
        .put((1..=5).map(message).collect::<Vec<_>>())
        .wait()
        .await
        .unwrap();
    // Everything went to disk (no memory in durable mode).
    assert_eq!(channel.stats(false).backend_depth, 5);
    let mut bodies = Vec::new();
    while bodies.len() < 5 {
        let taken = take_when_ready(&channel, &c).await;
        assert!(!taken.is_empty(), "the backlog never came back");
        bodies.extend(taken.into_iter().map(|m| m.body));
    }
    assert_eq!(bodies, ["m1", "m2", "m3", "m4", "m5"]);
    assert_eq!(channel.depth(), 0);
}

#[tokio::test]
async fn deferred_messages_arrive_when_due() {
    let channel = Channel::new("t", "c", &QueueSettings::memory_only());
    let c = client(1);
    assert!(
        channel
            .put_deferred(&[message(1)], Instant::now() + Duration::from_millis(40))
            .is_empty()
    );
    assert!(channel.take(&c, 1, Duration::from_secs(1), 0).is_empty());
    let ready = channel.messages_ready();
    tokio::time::timeout(Duration::from_secs(2), ready)
        .await
        .unwrap();
    assert_eq!(channel.take(&c, 1, Duration::from_secs(1), 0).len(), 1);
}
