//! What survives a restart, seen from the broker: recreating the previous
//! run's topics and channels at start-up, writing back what memory holds
//! at shutdown, the periodic sync of every queue, and `wasqd.dat`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use wasq_storage::metadata::{self, ChannelMetadata, Metadata, MetadataError, TopicMetadata};

use super::Broker;
use super::names::{is_ephemeral, is_valid_name};
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
        // opens: the metadata file and one listing of the directory.
        let (saved, on_disk) = tokio::task::spawn_blocking(move || {
            let saved = metadata::load(&disk.settings().dir)?;
            Ok::<_, MetadataError>((saved, disk.scan()))
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
        for queue in &on_disk {
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
                if on_disk.contains(&format!("{topic_name}:{channel_name}")) {
                    recovering.push(channel.settled());
                }
            }
            if !paused {
                topic.unpause();
            }
            restored += 1;
        }
        self.restore_progress.start(recovering.len());
        let broker = self.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let queues = recovering.len();
            for work in recovering {
                if let Err(e) = work.wait().await {
                    tracing::error!(error = %e, "STORAGE: cannot recover a queue");
                }
                broker.restore_progress.recovered_one();
            }
            let messages: usize = broker
                .topics
                .read()
                .values()
                .map(|t| t.depth() + t.channels().iter().map(|c| c.depth()).sum::<usize>())
                .sum();
            tracing::info!(queues, messages, elapsed = ?started.elapsed(), "STORAGE: every queue recovered");
        });
        Ok(restored)
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
    /// Topics are written back side by side (a task each; within a topic,
    /// its channels only after its own backlog, which may still be moving
    /// to them), without an fsync per file; one sync of the filesystem
    /// then makes all of it durable.
    pub async fn persist(&self) {
        let started = std::time::Instant::now();
        let topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        for topic in &topics {
            topic.stop();
        }
        let mut tasks = tokio::task::JoinSet::new();
        for topic in topics {
            tasks.spawn(write_back(topic));
        }
        let mut written = 0;
        while let Some(result) = tasks.join_next().await {
            written += result.unwrap_or(0);
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
            messages = written,
            written_in = ?wrote,
            synced_in = ?started.elapsed() - wrote,
            "STORAGE: messages held in memory written to disk"
        );
    }
}

/// Writes one stopped topic's messages held in memory to disk, then its
/// channels'; returns how many.
async fn write_back(topic: Arc<Topic>) -> usize {
    let mut written = 0;
    match topic.persist().await {
        Ok(n) => written += n,
        Err(e) => {
            tracing::error!(topic = %topic.name, error = %e, "STORAGE: cannot write the topic's messages to disk")
        }
    }
    let channels = topic.channels();
    let pending: Vec<_> = channels.iter().map(|c| c.persist()).collect();
    for (channel, pending) in channels.iter().zip(pending) {
        match pending.wait().await {
            Ok(n) => written += n,
            Err(e) => {
                tracing::error!(topic = %topic.name, channel = %channel.name, error = %e, "STORAGE: cannot write the channel's messages to disk")
            }
        }
    }
    written
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
