//! What survives a restart, seen from the broker: recreating the previous
//! run's topics and channels at start-up, writing back what memory holds
//! at shutdown, the periodic sync of every queue, and `wasqd.dat`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use wasq_storage::held::{self, HeldQueue};
use wasq_storage::metadata::{self, ChannelMetadata, Metadata, MetadataError, TopicMetadata};

use super::Broker;
use super::names::{is_ephemeral, is_valid_name};
use super::queues::{Held, channel_queue_name};
use super::topic::Topic;
use crate::config::NSQ_VERSION;

impl Broker {
    /// Recreates the topics and channels of the last run, with their pause
    /// states and disk backlogs: those in `wasqd.dat` and those that have
    /// queue files (created after the last metadata save). Returns how
    /// many topics were restored.
    ///
    /// Every topic and channel exists when this returns, so the broker can
    /// serve at once; the recovery scans of their disk queues run on the
    /// queues' workers, all at the same time, and [`Broker::restore_progress`]
    /// counts them down. A queue still being recovered counts as non-empty:
    /// what arrives meanwhile waits behind what is on disk, and a read
    /// waits for the scan.
    pub async fn restore(self: &Arc<Self>) -> Result<usize, MetadataError> {
        let Some(disk) = self.queues.disk.clone() else {
            return Ok(0);
        };
        // The data path is read on a blocking thread, before any queue
        // opens: the metadata file, the messages held at the last
        // shutdown, and one listing of the directory.
        let (saved, held, on_disk) = tokio::task::spawn_blocking(move || {
            let dir = &disk.settings().dir;
            let saved = metadata::load(dir)?;
            let held = held::read(dir, disk.settings().max_payload).map_err(|e| MetadataError {
                path: held::path(dir),
                reason: e.to_string(),
            })?;
            Ok::<_, MetadataError>((saved, held, disk.scan()))
        })
        .await
        .map_err(|e| MetadataError {
            path: metadata::path(&self.options.data_dir()),
            reason: e.to_string(),
        })??;
        let mut wanted: BTreeMap<String, RestoredTopic> = BTreeMap::new();
        for topic in saved.topics {
            let entry = wanted.entry(topic.name).or_default();
            entry.paused = topic.paused;
            for channel in topic.channels {
                entry.channels.insert(channel.name, channel.paused);
            }
        }
        for queue in on_disk.iter().chain(held.iter().map(|(name, _)| name)) {
            match queue.split_once(':') {
                Some((topic, channel)) => {
                    let entry = wanted.entry(topic.to_string()).or_default();
                    entry.channels.entry(channel.to_string()).or_insert(false);
                }
                None => {
                    wanted.entry(queue.clone()).or_default();
                }
            }
        }
        let durable = |name: &str| is_valid_name(name) && !is_ephemeral(name);
        let mut recovering = Vec::new();
        let mut restored = 0;
        for (topic_name, RestoredTopic { paused, channels }) in wanted {
            if !durable(&topic_name) {
                tracing::warn!(topic = %topic_name, "STORAGE: ignoring saved data of an invalid or ephemeral topic name");
                continue;
            }
            // Created without a log line or an event each: a summary is
            // logged, and lookupd registrations start after this.
            let (topic, _) = self.topic_entry(&topic_name);
            // Paused while its channels are created, so a disk backlog is
            // handed to all of them, not to whichever came first.
            topic.pause();
            if on_disk.contains(&topic_name) {
                recovering.push(topic.settled());
            }
            for (channel_name, channel_paused) in channels {
                if !durable(&channel_name) {
                    tracing::warn!(topic = %topic_name, channel = %channel_name, "STORAGE: ignoring saved data of an invalid or ephemeral channel name");
                    continue;
                }
                let Ok((channel, _)) = topic.channel(&channel_name) else {
                    continue;
                };
                if channel_paused {
                    channel.pause();
                }
                if on_disk.contains(&channel_queue_name(&topic_name, &channel_name)) {
                    recovering.push(channel.settled());
                }
            }
            if !paused {
                topic.unpause();
            }
            restored += 1;
        }
        self.restore_progress.start(recovering.len() + held.len());
        let broker = self.clone();
        let task = tokio::spawn(async move {
            let started = std::time::Instant::now();
            let queues = recovering.len();
            for work in recovering {
                if let Err(e) = work.wait().await {
                    tracing::error!(error = %e, "STORAGE: cannot recover a queue");
                }
                broker.restore_progress.recovered_one();
            }
            broker.put_back_held(held).await;
            let messages: usize = broker
                .topics
                .read()
                .values()
                .map(|t| t.depth() + t.channels().iter().map(|c| c.depth()).sum::<usize>())
                .sum();
            tracing::info!(queues, messages, elapsed = ?started.elapsed(), "STORAGE: every queue recovered");
        });
        *self.restoring.lock() = Some(task);
        Ok(restored)
    }

    /// Puts the messages held at the last shutdown back on their queues'
    /// disks, makes them durable with one sync of the filesystem, and only
    /// then deletes `wasqd.held.dat` (a crash before finds it again: its
    /// messages are put back again, delivered again, never lost).
    async fn put_back_held(&self, held: Vec<held::ReadQueue>) {
        let Some(disk) = self.queues.disk.clone() else {
            return;
        };
        if held.is_empty() {
            return;
        }
        let mut writes = Vec::new();
        for (queue, messages) in held {
            let (topic_name, channel_name) = match queue.split_once(':') {
                Some((topic, channel)) => (topic, Some(channel)),
                None => (queue.as_str(), None),
            };
            let Some(topic) = self.existing_topic(topic_name) else {
                // An invalid or ephemeral name (warned about above).
                self.restore_progress.recovered_one();
                continue;
            };
            let written = match channel_name {
                None => topic.put_back_held(messages),
                Some(channel) => match topic.existing_channel(channel) {
                    Some(channel) => channel.put_back_held(messages),
                    None => {
                        self.restore_progress.recovered_one();
                        continue;
                    }
                },
            };
            writes.push((queue, written));
        }
        let mut failed = false;
        for (queue, written) in writes {
            if let Err(e) = written.wait().await {
                tracing::error!(queue = %queue, error = %e, "STORAGE: cannot put the messages held at shutdown back on the queue's disk");
                failed = true;
            }
            self.restore_progress.recovered_one();
        }
        if let Err(e) = disk.sync_all().await {
            tracing::error!(error = %e, "STORAGE: cannot sync the data path");
            failed = true;
        }
        if failed {
            tracing::error!(file = %held::path(&disk.settings().dir).display(),
                "STORAGE: keeping the file of messages held at shutdown; the next start puts them back again");
            return;
        }
        let dir = disk.settings().dir.clone();
        let _ = tokio::task::spawn_blocking(move || held::remove(&dir)).await;
    }

    /// Where the recovery of the previous run's queues stands.
    pub fn restore_progress(&self) -> RestoreStatus {
        self.restore_progress.status()
    }

    /// What `wasqd.dat` should say now.
    fn metadata(&self) -> Metadata {
        let mut topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        let topics = topics
            .iter()
            .filter(|t| !t.ephemeral)
            .map(|t| TopicMetadata {
                channels: t
                    .channels()
                    .iter()
                    .filter(|c| !c.ephemeral)
                    .map(|c| ChannelMetadata {
                        name: c.name.clone(),
                        paused: c.is_paused(),
                    })
                    .collect(),
                name: t.name.clone(),
                paused: t.is_paused(),
            })
            .collect();
        Metadata {
            topics,
            version: NSQ_VERSION.to_string(),
        }
    }

    /// Saves which topics and channels exist (atomically, on a blocking
    /// thread).
    pub async fn save_metadata(&self) -> std::io::Result<()> {
        let Some(disk) = &self.queues.disk else {
            return Ok(());
        };
        let (dir, metadata) = (disk.settings().dir.clone(), self.metadata());
        tokio::task::spawn_blocking(move || metadata::save(&dir, &metadata))
            .await
            .map_err(std::io::Error::other)?
    }

    /// Fsyncs every queue with unsynced writes and saves read checkpoints.
    /// Every queue's sync is asked for before any is waited on (their
    /// workers do them side by side), and a queue untouched since its last
    /// sync answers at once with no file work.
    pub async fn sync_queues(&self) {
        let topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        let mut syncs = Vec::new();
        for topic in &topics {
            syncs.push((topic.clone(), None, topic.sync()));
            for channel in topic.channels() {
                let sync = channel.sync();
                syncs.push((topic.clone(), Some(channel), sync));
            }
        }
        for (topic, channel, sync) in syncs {
            if let Err(e) = sync.wait().await {
                match channel {
                    None => {
                        tracing::error!(topic = %topic.name, error = %e, "STORAGE: cannot sync the topic's disk queue")
                    }
                    Some(channel) => {
                        tracing::error!(topic = %topic.name, channel = %channel.name, error = %e, "STORAGE: cannot sync the channel's disk queue")
                    }
                }
            }
        }
    }

    /// Clean shutdown: refuses further publishes, writes every message held
    /// in memory (backlogs, ready, in flight, deferred) to disk, makes it
    /// durable, and saves the metadata. Call after connections and plugins
    /// stopped.
    ///
    /// The messages go into one file, `wasqd.held.dat` (one write and one
    /// fsync, where a file per queue cost a file creation each); the disk
    /// queues only forget what they had handed over and save their
    /// checkpoints, side by side and without an fsync each, and one sync
    /// of the filesystem makes that durable.
    pub async fn persist(&self) {
        let started = std::time::Instant::now();
        // A restore still putting the last shutdown's messages back must
        // finish first: it deletes the file this writes.
        let restoring = self.restoring.lock().take();
        if let Some(restoring) = restoring {
            let _ = restoring.await;
        }
        let topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        for topic in &topics {
            topic.stop();
        }
        let mut kept: Vec<HeldQueue> = Vec::new();
        let mut writes = Vec::new();
        for topic in &topics {
            let Held { messages, written } = topic.persist().await;
            kept.push((topic.name.clone(), messages));
            writes.push((topic.name.clone(), written));
            for channel in topic.channels() {
                let Held { messages, written } = channel.persist();
                let queue = channel_queue_name(&topic.name, &channel.name);
                kept.push((queue.clone(), messages));
                writes.push((queue, written));
            }
        }
        let held: usize = kept.iter().map(|(_, m)| m.len()).sum();
        if let Some(disk) = self.queues.disk.clone() {
            let dir = disk.settings().dir.clone();
            let result = tokio::task::spawn_blocking(move || held::write(&dir, &kept))
                .await
                .map_err(std::io::Error::other)
                .and_then(|written| written);
            if let Err(e) = result {
                tracing::error!(error = %e, messages = held, "STORAGE: cannot write the messages held in memory to disk");
            }
        }
        for (queue, written) in writes {
            if let Err(e) = written.wait().await {
                tracing::error!(queue = %queue, error = %e, "STORAGE: cannot save the queue's checkpoint");
            }
        }
        let wrote = started.elapsed();
        if let Some(disk) = &self.queues.disk
            && let Err(e) = disk.sync_all().await
        {
            tracing::error!(error = %e, "STORAGE: cannot sync the data path after writing messages to disk");
        }
        if let Err(e) = self.save_metadata().await {
            tracing::error!(error = %e, "STORAGE: cannot save the metadata");
        }
        tracing::info!(
            messages = held,
            written_in = ?wrote,
            synced_in = ?started.elapsed() - wrote,
            "STORAGE: messages held in memory written to disk"
        );
    }
}

/// Counts down the queues whose recovery scans run after start-up.
#[derive(Debug, Default)]
pub(super) struct RestoreProgress {
    queues: AtomicUsize,
    recovered: AtomicUsize,
}

impl RestoreProgress {
    fn start(&self, queues: usize) {
        self.queues.store(queues, Ordering::Release);
    }

    fn recovered_one(&self) {
        self.recovered.fetch_add(1, Ordering::AcqRel);
    }

    fn status(&self) -> RestoreStatus {
        let queues = self.queues.load(Ordering::Acquire);
        let recovered = self.recovered.load(Ordering::Acquire).min(queues);
        RestoreStatus {
            done: recovered == queues,
            queues,
            recovered,
        }
    }
}

/// The recovery of the previous run's disk queues, as `/stats` shows it
/// (Wasq's addition): the API answers while it runs, and a queue not yet
/// recovered shows no depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RestoreStatus {
    pub done: bool,
    /// Queues (topics and channels) with files at start-up.
    pub queues: usize,
    pub recovered: usize,
}

/// A topic to recreate at start-up: its pause state and its channels'.
#[derive(Debug, Default)]
struct RestoredTopic {
    paused: bool,
    /// Channel name -> paused.
    channels: BTreeMap<String, bool>,
}
