//! The broker: topics, channels, messages and the clients that use them.
//!
//! - [`topic`], [`channel`]: where messages wait; [`in_flight`] and
//!   [`deferred`] are a channel's time-ordered parts
//! - [`client`]: what a channel knows of a consumer
//! - [`queues`]: memory first, then the backing queue (`wasq_storage`);
//!   `pump` moves a topic's disk backlog to its channels
//! - `persist`: restore at start, write back at shutdown, `wasqd.dat`
//! - [`storage_task`]: periodic fsync and checkpoints, metadata saves
//! - `spare_room`: queues give their room back after a burst
//!
//! ## Locks
//!
//! All are `parking_lot` mutexes held for short, non-blocking sections,
//! and taken only in this order:
//!
//! 1. the topic map (`Broker::topics`): a lookup or an insert, never while
//!    messages move;
//! 2. one topic's state: a publish fans out to its channels while holding
//!    it, so every channel sees one topic's messages in the same order;
//! 3. one channel's state (never two channels at once, never a channel's
//!    and then its topic's);
//! 4. leaf locks: a channel's client list, a client's meta and counters,
//!    a disk queue's group-commit state.
//!
//! The client registry (`Broker::clients`) is taken alone, on connect and
//! disconnect. Nothing waits on I/O, or on an async lock, while holding any
//! of them.

pub mod channel;
pub mod client;
pub mod deferred;
mod disk_place;
pub mod in_flight;
pub mod latency;
pub mod message;
pub use wasq_nsq::names;
mod persist;
pub use persist::RestoreStatus;
mod pump;
pub mod queues;
mod spare_room;
pub mod storage_task;
pub mod topic;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use serde::Serialize;

use crate::config::{LogLevel, Options};
use channel::consumers::JoinError;
use channel::{Channel, Exiting};
use client::{Client, ClientStats};
use message::{IdGenerator, IntoBody, Message};
use queues::{Cleared, QueueSettings};
use topic::{PublishError, Topic, TopicStats};
use wasq_storage::{DiskStore, PendingSync};

/// A change in which topics and channels exist, for lookupd registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerEvent {
    TopicCreated(String),
    TopicDeleted(String),
    ChannelCreated(String, String),
    ChannelDeleted(String, String),
}

/// Events kept for slow listeners before they must resynchronize.
const EVENT_BUFFER: usize = 4096;

/// Settings an operator may change at run time through PUT /config.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    pub lookupd_tcp_addresses: Vec<String>,
    pub log_level: LogLevel,
}

#[derive(Debug)]
pub struct Broker {
    pub options: Options,
    pub settings: RwLock<RuntimeSettings>,
    queues: QueueSettings,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    clients: Mutex<HashMap<u64, Arc<Client>>>,
    ids: IdGenerator,
    next_client_id: AtomicU64,
    start_time: SystemTime,
    listen_addresses: OnceLock<ListenAddresses>,
    events: tokio::sync::broadcast::Sender<BrokerEvent>,
    /// Topics, channels or pause states changed since the last metadata save.
    metadata_changed: tokio::sync::Notify,
    /// The previous run's queues still being recovered after start-up.
    restore_progress: persist::RestoreProgress,
    /// The task doing it, which shutdown waits for.
    restoring: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// A topic's name and its channels' names, as lookupd registers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicChannels {
    pub topic: String,
    pub channels: Vec<String>,
}

/// Where the listeners really are (a port of 0 in the options is chosen by the OS).
#[derive(Debug, Clone, Copy)]
pub struct ListenAddresses {
    pub tcp: SocketAddr,
    pub http: SocketAddr,
    /// Only with TLS configured.
    pub https: Option<SocketAddr>,
}

impl Broker {
    pub fn new(options: Options) -> Arc<Broker> {
        let settings = RuntimeSettings {
            lookupd_tcp_addresses: options.lookupd_tcp_addresses.clone(),
            log_level: options.log_level,
        };
        let runtime = tokio::runtime::Handle::try_current().ok();
        let queues = QueueSettings {
            mem_queue_size: options.mem_queue_size as usize,
            // Disk queues need a runtime for their workers; without one
            // (never in wasqd) the broker keeps memory only.
            disk: runtime.as_ref().map(|runtime| {
                Arc::new(DiskStore::new(
                    Arc::new(options.disk_settings()),
                    runtime.clone(),
                ))
            }),
            latency: options.latency_settings(),
        };
        let ids = IdGenerator::new(options.node_id() as u16);
        Arc::new(Broker {
            queues,
            options,
            settings: RwLock::new(settings),
            topics: RwLock::new(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
            ids,
            next_client_id: AtomicU64::new(1),
            start_time: SystemTime::now(),
            listen_addresses: OnceLock::new(),
            events: tokio::sync::broadcast::channel(EVENT_BUFFER).0,
            metadata_changed: tokio::sync::Notify::new(),
            restore_progress: persist::RestoreProgress::default(),
            restoring: Mutex::new(None),
        })
    }

    pub fn set_listen_addresses(&self, addresses: ListenAddresses) {
        let _ = self.listen_addresses.set(addresses);
    }

    pub fn listen_addresses(&self) -> ListenAddresses {
        self.listen_addresses
            .get()
            .copied()
            .unwrap_or(ListenAddresses {
                tcp: self.options.tcp_address,
                http: self.options.http_address,
                https: None,
            })
    }

    /// Topic and channel creations and deletions from now on.
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<BrokerEvent> {
        self.events.subscribe()
    }

    fn emit(&self, event: BrokerEvent) {
        let _ = self.events.send(event);
        self.note_metadata_changed();
    }

    /// Asks for the metadata to be saved soon (a pause state changed).
    pub fn note_metadata_changed(&self) {
        self.metadata_changed.notify_one();
    }

    /// Completes when the metadata changed since it was last saved.
    pub async fn metadata_changed(&self) {
        self.metadata_changed.notified().await
    }

    /// Every topic and its channels, for a full registration.
    pub fn topology(&self) -> Vec<TopicChannels> {
        let topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        topics
            .iter()
            .map(|t| TopicChannels {
                topic: t.name.clone(),
                channels: t.channels().iter().map(|c| c.name.clone()).collect(),
            })
            .collect()
    }

    /// Returns a topic's channel, creating it if needed (HTTP /channel/create).
    pub fn channel(&self, topic: &Arc<Topic>, name: &str) -> Result<Arc<Channel>, Exiting> {
        let (channel, created) = topic.channel(name)?;
        if created {
            tracing::info!(topic = %topic.name, channel = name, "CHANNEL: created");
            self.emit(BrokerEvent::ChannelCreated(
                topic.name.clone(),
                name.to_string(),
            ));
        }
        Ok(channel)
    }

    /// Unix seconds at start.
    pub fn start_time(&self) -> i64 {
        self.start_time
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }

    pub fn uptime(&self) -> Duration {
        self.start_time.elapsed().unwrap_or_default()
    }

    /// Returns the topic, creating it if needed.
    pub fn topic(&self, name: &str) -> Arc<Topic> {
        let (topic, created) = self.topic_entry(name);
        if created {
            tracing::info!(topic = name, "TOPIC: created");
            self.emit(BrokerEvent::TopicCreated(name.to_string()));
        }
        topic
    }

    /// The topic, and whether this call created it (with no log line and
    /// no event: the caller says what it did).
    fn topic_entry(&self, name: &str) -> (Arc<Topic>, bool) {
        if let Some(topic) = self.topics.read().get(name) {
            return (topic.clone(), false);
        }
        let mut topics = self.topics.write();
        let mut created = false;
        let topic = topics
            .entry(name.to_string())
            .or_insert_with(|| {
                created = true;
                Topic::new(name, &self.queues)
            })
            .clone();
        (topic, created)
    }

    pub fn existing_topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }

    /// Deletes a topic with all its channels; `None` if it did not exist.
    /// Its files are gone once the result completes.
    pub fn delete_topic(&self, name: &str) -> Option<Cleared> {
        let topic = self.topics.write().remove(name)?;
        let cleared = topic.close();
        tracing::info!(topic = name, "TOPIC: deleted");
        self.emit(BrokerEvent::TopicDeleted(name.to_string()));
        Some(cleared)
    }

    /// Deletes a channel; an ephemeral topic goes with its last channel.
    /// `None` if it did not exist; its files are gone once the result
    /// completes.
    pub fn delete_channel(&self, topic: &Arc<Topic>, name: &str) -> Option<Cleared> {
        let (remaining, cleared) = topic.delete_channel(name)?;
        tracing::info!(topic = %topic.name, channel = name, "CHANNEL: deleted");
        self.emit(BrokerEvent::ChannelDeleted(
            topic.name.clone(),
            name.to_string(),
        ));
        if remaining == 0 && topic.ephemeral {
            self.delete_topic_if_current(topic);
        }
        Some(cleared)
    }

    fn delete_topic_if_current(&self, topic: &Arc<Topic>) {
        let mut topics = self.topics.write();
        if topics
            .get(&topic.name)
            .is_some_and(|t| Arc::ptr_eq(t, topic))
            && topic.channels().is_empty()
        {
            topics.remove(&topic.name);
            drop(topics);
            // Ephemeral: nothing on disk to wait for.
            drop(topic.close());
            tracing::info!(topic = %topic.name, "TOPIC: deleted (ephemeral, no channels left)");
            self.emit(BrokerEvent::TopicDeleted(topic.name.clone()));
        }
    }

    /// Publishes bodies to a topic, deferred by `defer` if non-zero. The
    /// publisher is answered once the returned sync completes (at once
    /// unless in durable mode).
    ///
    /// Each message gets a fresh id, its body copied out of the buffer it
    /// arrived in ([`message::owned_body`]), and the time of this call:
    /// one clock read per publish, not per message (an MPUB's messages
    /// arrived together; the clock was 2 % of an HTTP /mpub's time).
    pub fn publish<I>(
        &self,
        topic_name: &str,
        bodies: I,
        defer: Duration,
    ) -> Result<PendingSync, PublishError>
    where
        I: IntoIterator<Item: IntoBody, IntoIter: ExactSizeIterator>,
    {
        let timestamp = message::now_nanos();
        let bodies = bodies.into_iter();
        let ids = self.ids.next_ids(bodies.len());
        let messages: Vec<Message> = bodies
            .zip(ids)
            .map(|(body, id)| Message::published_at(id, timestamp, body.into_body()))
            .collect();
        let due = (!defer.is_zero()).then(|| Instant::now() + defer);
        // A topic is removed from the map before it is closed, so a second
        // lookup finds its successor; the rare race left is reported to the
        // publisher as nsqd does (E_PUB_FAILED ... exiting).
        let mut topic = self.topic(topic_name);
        if topic.is_exiting() {
            topic = self.topic(topic_name);
        }
        topic.publish(messages, due)
    }

    /// [`Broker::publish`], returning once the messages are as safe as a
    /// PUB's OK says (fsynced in durable mode).
    pub async fn publish_and_wait<I>(
        &self,
        topic_name: &str,
        bodies: I,
        defer: Duration,
    ) -> Result<(), PublishError>
    where
        I: IntoIterator<Item: IntoBody, IntoIter: ExactSizeIterator>,
    {
        let pending = self.publish(topic_name, bodies, defer)?;
        Ok(pending.wait().await?)
    }

    /// Adds `client` as a consumer of the channel, creating topic and
    /// channel as needed; `limit` is the most consumers the channel may
    /// have (0: no limit).
    pub fn subscribe(
        &self,
        topic_name: &str,
        channel_name: &str,
        client: &Arc<Client>,
        limit: usize,
    ) -> Result<(Arc<Topic>, Arc<Channel>), JoinError> {
        // An ephemeral channel or topic may be exiting as its last consumer
        // leaves; try again once with its successor, as nsqd does.
        for attempt in 0..2 {
            let topic = self.topic(topic_name);
            let Ok(channel) = self.channel(&topic, channel_name) else {
                continue;
            };
            match channel.add_client(client.clone(), limit) {
                Ok(()) => return Ok((topic, channel)),
                Err(JoinError::Exiting) => {}
                Err(full) => return Err(full),
            }
            if attempt == 0 {
                std::thread::yield_now();
            }
        }
        Err(JoinError::Exiting)
    }

    /// Removes a consumer; an ephemeral channel goes with its last consumer.
    pub fn unsubscribe(&self, topic: &Arc<Topic>, channel: &Arc<Channel>, client_id: u64) {
        let remaining = channel.remove_client(client_id);
        if remaining == 0
            && channel.ephemeral
            && let Some(left) = topic.delete_channel_if_unused(channel)
        {
            tracing::info!(topic = %topic.name, channel = %channel.name, "CHANNEL: deleted (ephemeral, no consumers left)");
            self.emit(BrokerEvent::ChannelDeleted(
                topic.name.clone(),
                channel.name.clone(),
            ));
            if left == 0 && topic.ephemeral {
                self.delete_topic_if_current(topic);
            }
        }
    }

    /// Registers a new connection and returns its shared state.
    pub fn connect_client(&self, remote_address: String) -> Arc<Client> {
        let id = self.next_client_id.fetch_add(1, Ordering::Relaxed);
        let client = Arc::new(Client::new(id, remote_address, unix_now()));
        self.clients.lock().insert(id, client.clone());
        client
    }

    pub fn disconnect_client(&self, id: u64) {
        self.clients.lock().remove(&id);
    }

    /// nsqd's /stats data: topics sorted by name, filtered as asked.
    pub fn stats(
        &self,
        topic: Option<&str>,
        channel: Option<&str>,
        include_clients: bool,
    ) -> Stats {
        let mut topics: Vec<Arc<Topic>> = match topic {
            Some(name) => self.existing_topic(name).into_iter().collect(),
            None => self.topics.read().values().cloned().collect(),
        };
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        let topics = topics
            .iter()
            .map(|t| t.stats(channel, include_clients))
            .collect();
        let producers = if include_clients {
            let clients: Vec<Arc<Client>> = self.clients.lock().values().cloned().collect();
            let mut producers: Vec<ClientStats> = clients
                .iter()
                .map(|c| c.stats(topic))
                .filter(|s| !s.pub_counts.is_empty())
                .collect();
            producers.sort_by_key(|s| s.connect_ts);
            producers
        } else {
            Vec::new()
        };
        Stats { topics, producers }
    }
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub topics: Vec<TopicStats>,
    pub producers: Vec<ClientStats>,
}
