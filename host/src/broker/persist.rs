//! What survives a restart, seen from the broker: recreating the previous
//! run's topics and channels at start-up, writing back what memory holds
//! at shutdown, the periodic sync of every queue, and `wasqd.dat`.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasq_storage::files::queue_names;
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
    pub fn restore(&self) -> Result<usize, MetadataError> {
        let Some(disk) = &self.queues.disk else {
            return Ok(0);
        };
        let saved = metadata::load(&disk.dir)?;
        let mut wanted: BTreeMap<String, RestoredTopic> = BTreeMap::new();
        for topic in saved.topics {
            let entry = wanted.entry(topic.name).or_default();
            entry.paused = topic.paused;
            for channel in topic.channels {
                entry.channels.insert(channel.name, channel.paused);
            }
        }
        for queue in queue_names(&disk.dir) {
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
            if !paused {
                topic.unpause();
            }
            let channels = topic.channels();
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

    /// Saves which topics and channels exist (atomically).
    pub fn save_metadata(&self) -> std::io::Result<()> {
        match &self.queues.disk {
            Some(disk) => metadata::save(&disk.dir, &self.metadata()),
            None => Ok(()),
        }
    }

    /// Fsyncs every queue with unsynced writes and saves read checkpoints.
    pub async fn sync_queues(&self) {
        let topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        for topic in topics {
            if let Err(e) = topic.sync_disk().await {
                tracing::error!(topic = %topic.name, error = %e, "STORAGE: cannot sync the topic's disk queue");
            }
            for channel in topic.channels() {
                if let Err(e) = channel.sync_disk().await {
                    tracing::error!(topic = %topic.name, channel = %channel.name, error = %e, "STORAGE: cannot sync the channel's disk queue");
                }
            }
        }
    }

    /// Clean shutdown: refuses further publishes, writes every message held
    /// in memory (backlogs, ready, in flight, deferred) to disk, flushes,
    /// and saves the metadata. Call after connections and plugins stopped.
    pub fn persist(&self) {
        let topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        let mut written = 0;
        for topic in &topics {
            topic.stop();
            match topic.persist() {
                Ok(n) => written += n,
                Err(e) => {
                    tracing::error!(topic = %topic.name, error = %e, "STORAGE: cannot write the topic's messages to disk")
                }
            }
            for channel in topic.channels() {
                match channel.persist() {
                    Ok(n) => written += n,
                    Err(e) => {
                        tracing::error!(topic = %topic.name, channel = %channel.name, error = %e, "STORAGE: cannot write the channel's messages to disk")
                    }
                }
            }
        }
        if let Err(e) = self.save_metadata() {
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
