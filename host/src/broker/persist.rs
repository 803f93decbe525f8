//! What survives a restart, seen from the broker: recreating the previous
//! run's topics and channels at start-up, writing back what memory holds
//! at shutdown, the periodic sync of every queue, and `wasqd.dat`.

use std::collections::BTreeMap;
use std::sync::Arc;

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
    pub async fn restore(&self) -> Result<usize, MetadataError> {
        let Some(disk) = self.queues.disk.clone() else {
            return Ok(0);
        };
        // The data path is read on a blocking thread, before any queue opens.
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
        for queue in on_disk {
            match queue.split_once(':') {
                Some((topic, channel)) => {
                    let entry = wanted.entry(topic.to_string()).or_default();
                    entry.channels.entry(channel.to_string()).or_insert(false);
                }
                None => {
                    wanted.entry(queue).or_default();
                }
            }
        }
        let durable = |name: &str| is_valid_name(name) && !is_ephemeral(name);
        let mut restored = 0;
        for (topic_name, RestoredTopic { paused, channels }) in wanted {
            if !durable(&topic_name) {
                tracing::warn!(topic = %topic_name, "STORAGE: ignoring saved data of an invalid or ephemeral topic name");
                continue;
            }
            let topic = self.topic(&topic_name);
            // Paused while its channels are created, so a disk backlog is
            // handed to all of them, not to whichever came first.
            topic.pause();
            for (channel_name, channel_paused) in channels {
                if !durable(&channel_name) {
                    tracing::warn!(topic = %topic_name, channel = %channel_name, "STORAGE: ignoring saved data of an invalid or ephemeral channel name");
                    continue;
                }
                if let Ok(channel) = self.channel(&topic, &channel_name)
                    && channel_paused
                {
                    channel.pause();
                }
            }
            // Each queue with files is recovered by its own worker.
            let channels = topic.channels();
            let mut recovered = vec![topic.settled()];
            recovered.extend(channels.iter().map(|c| c.settled()));
            for work in recovered {
                if let Err(e) = work.wait().await {
                    tracing::error!(topic = %topic_name, error = %e, "STORAGE: cannot recover a queue");
                }
            }
            if !paused {
                topic.unpause();
            }
            let queued = topic.depth() + channels.iter().map(|c| c.depth()).sum::<usize>();
            tracing::info!(topic = %topic_name, channels = channels.len(), messages = queued, "STORAGE: topic restored");
            restored += 1;
        }
        Ok(restored)
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
    pub async fn sync_queues(&self) {
        let topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        for topic in topics {
            if let Err(e) = topic.sync().wait().await {
                tracing::error!(topic = %topic.name, error = %e, "STORAGE: cannot sync the topic's disk queue");
            }
            for channel in topic.channels() {
                if let Err(e) = channel.sync().wait().await {
                    tracing::error!(topic = %topic.name, channel = %channel.name, error = %e, "STORAGE: cannot sync the channel's disk queue");
                }
            }
        }
    }

    /// Clean shutdown: refuses further publishes, writes every message held
    /// in memory (backlogs, ready, in flight, deferred) to disk, flushes,
    /// and saves the metadata. Call after connections and plugins stopped.
    pub async fn persist(&self) {
        let topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        let mut written = 0;
        for topic in &topics {
            topic.stop();
            match topic.persist().await {
                Ok(n) => written += n,
                Err(e) => {
                    tracing::error!(topic = %topic.name, error = %e, "STORAGE: cannot write the topic's messages to disk")
                }
            }
            for channel in topic.channels() {
                match channel.persist().wait().await {
                    Ok(n) => written += n,
                    Err(e) => {
                        tracing::error!(topic = %topic.name, channel = %channel.name, error = %e, "STORAGE: cannot write the channel's messages to disk")
                    }
                }
            }
        }
        if let Err(e) = self.save_metadata().await {
            tracing::error!(error = %e, "STORAGE: cannot save the metadata");
        }
        tracing::info!(
            messages = written,
            "STORAGE: messages held in memory written to disk"
        );
    }
}

/// A topic to recreate at start-up: its pause state and its channels'.
#[derive(Debug, Default)]
struct RestoredTopic {
    paused: bool,
    /// Channel name -> paused.
    channels: BTreeMap<String, bool>,
}
