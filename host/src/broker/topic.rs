//! A topic: takes published messages and gives every channel its own copy.
//!
//! Until its first channel exists (or while it is paused) a topic keeps
//! messages in its own backlog, as nsqd's topic queue does, and hands them
//! over when a channel appears or it is unpaused. The body of a message is
//! shared by every channel's copy; only the small header is cloned.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use serde::Serialize;

use super::channel::{Channel, ChannelStats, Exiting, LatencyStats};
use super::message::Message;
use super::names::is_ephemeral;

#[derive(Debug)]
pub struct Topic {
    pub name: String,
    pub ephemeral: bool,
    state: Mutex<TopicState>,
    paused: AtomicBool,
    exiting: AtomicBool,
    message_count: AtomicU64,
    message_bytes: AtomicU64,
}

#[derive(Debug, Default)]
struct TopicState {
    channels: BTreeMap<String, Arc<Channel>>,
    backlog: VecDeque<Pending>,
}

/// A message held by the topic, with its due time if it was deferred.
#[derive(Debug)]
struct Pending {
    message: Message,
    due: Option<Instant>,
}

impl Topic {
    pub fn new(name: &str) -> Topic {
        Topic {
            name: name.to_string(),
            ephemeral: is_ephemeral(name),
            state: Mutex::new(TopicState::default()),
            paused: AtomicBool::new(false),
            exiting: AtomicBool::new(false),
            message_count: AtomicU64::new(0),
            message_bytes: AtomicU64::new(0),
        }
    }

    /// Publishes messages, all due at `due` if deferred. Fails only when
    /// the topic is being deleted; then nothing was queued.
    pub fn publish(&self, messages: Vec<Message>, due: Option<Instant>) -> Result<(), Exiting> {
        let bytes: usize = messages.iter().map(|m| m.body.len()).sum();
        let mut state = self.state.lock();
        if self.is_exiting() {
            return Err(Exiting);
        }
        self.message_count
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        self.message_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        if state.channels.is_empty() || self.is_paused() {
            state
                .backlog
                .extend(messages.into_iter().map(|message| Pending { message, due }));
        } else {
            fan_out(state.channels.values(), &messages, due);
        }
        Ok(())
    }

    /// Returns the channel, creating it if needed; the first channel takes
    /// over the topic's backlog.
    pub fn channel(&self, name: &str) -> Result<(Arc<Channel>, bool), Exiting> {
        let mut state = self.state.lock();
        if self.is_exiting() {
            return Err(Exiting);
        }
        if let Some(channel) = state.channels.get(name) {
            return Ok((channel.clone(), false));
        }
        let channel = Channel::new(&self.name, name);
        state.channels.insert(name.to_string(), channel.clone());
        if !self.is_paused() {
            drain_backlog(&mut state);
        }
        Ok((channel, true))
    }

    pub fn existing_channel(&self, name: &str) -> Option<Arc<Channel>> {
        self.state.lock().channels.get(name).cloned()
    }

    pub fn channels(&self) -> Vec<Arc<Channel>> {
        self.state.lock().channels.values().cloned().collect()
    }

    /// Deletes a channel (closing its consumers). Returns the channel and
    /// how many channels remain, or `None` if there was no such channel.
    pub fn delete_channel(&self, name: &str) -> Option<(Arc<Channel>, usize)> {
        let (channel, remaining) = {
            let mut state = self.state.lock();
            let channel = state.channels.remove(name)?;
            (channel, state.channels.len())
        };
        channel.close();
        Some((channel, remaining))
    }

    /// Deletes an ephemeral channel only if it still has no consumer; a
    /// consumer subscribing at the same moment goes to a new channel.
    pub fn delete_channel_if_unused(&self, channel: &Arc<Channel>) -> Option<usize> {
        let remaining = {
            let mut state = self.state.lock();
            let current = state.channels.get(&channel.name)?;
            if !Arc::ptr_eq(current, channel) || !channel.retire_if_unused() {
                return None;
            }
            state.channels.remove(&channel.name);
            state.channels.len()
        };
        channel.close();
        Some(remaining)
    }

    pub fn pause(&self) {
        self.paused.store(true, Ordering::Release);
    }

    pub fn unpause(&self) {
        let mut state = self.state.lock();
        self.paused.store(false, Ordering::Release);
        if !state.channels.is_empty() {
            drain_backlog(&mut state);
        }
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    pub fn is_exiting(&self) -> bool {
        self.exiting.load(Ordering::Acquire)
    }

    /// Drops the topic's own backlog (nsqd's topic /empty; channels keep theirs).
    pub fn empty(&self) {
        self.state.lock().backlog.clear();
    }

    /// Deletes the topic and all its channels.
    pub fn close(&self) {
        let channels = {
            let mut state = self.state.lock();
            self.exiting.store(true, Ordering::Release);
            state.backlog.clear();
            std::mem::take(&mut state.channels)
        };
        for channel in channels.values() {
            channel.close();
        }
    }

    pub fn depth(&self) -> usize {
        self.state.lock().backlog.len()
    }

    pub fn stats(&self, channel_filter: Option<&str>, include_clients: bool) -> TopicStats {
        let (depth, channels) = {
            let state = self.state.lock();
            (
                state.backlog.len(),
                state.channels.values().cloned().collect::<Vec<_>>(),
            )
        };
        let channels = channels
            .iter()
            .filter(|c| channel_filter.is_none_or(|name| name == c.name))
            .map(|c| c.stats(include_clients))
            .collect();
        TopicStats {
            topic_name: self.name.clone(),
            channels,
            depth: depth as i64,
            backend_depth: 0,
            message_count: self.message_count.load(Ordering::Relaxed),
            message_bytes: self.message_bytes.load(Ordering::Relaxed),
            paused: self.is_paused(),
            e2e_processing_latency: LatencyStats::default(),
        }
    }
}

/// Gives each channel its copy of `messages` (bodies shared, not copied).
fn fan_out<'a>(
    channels: impl Iterator<Item = &'a Arc<Channel>>,
    messages: &[Message],
    due: Option<Instant>,
) {
    for channel in channels {
        match due {
            Some(due) if due > Instant::now() => channel.put_deferred(messages, due),
            _ => channel.put(messages),
        }
    }
}

fn drain_backlog(state: &mut TopicState) {
    let backlog = std::mem::take(&mut state.backlog);
    let mut immediate = Vec::new();
    for pending in backlog {
        match pending.due {
            Some(due) => fan_out(
                state.channels.values(),
                std::slice::from_ref(&pending.message),
                Some(due),
            ),
            None => immediate.push(pending.message),
        }
    }
    fan_out(state.channels.values(), &immediate, None);
}

/// Field names and order as nsqd's `TopicStats`.
#[derive(Debug, Clone, Serialize)]
pub struct TopicStats {
    pub topic_name: String,
    pub channels: Vec<ChannelStats>,
    pub depth: i64,
    pub backend_depth: i64,
    pub message_count: u64,
    pub message_bytes: u64,
    pub paused: bool,
    pub e2e_processing_latency: LatencyStats,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::message::MessageId;
    use bytes::Bytes;

    fn message(body: &'static str) -> Message {
        Message::new(
            MessageId(*b"0000000000000001"),
            Bytes::from_static(body.as_bytes()),
        )
    }

    #[tokio::test]
    async fn holds_messages_until_the_first_channel() {
        let topic = Topic::new("t");
        topic
            .publish(vec![message("a"), message("b")], None)
            .unwrap();
        assert_eq!(topic.depth(), 2);
        let (c1, created) = topic.channel("c1").unwrap();
        assert!(created);
        assert_eq!(c1.depth(), 2);
        assert_eq!(topic.depth(), 0);
        let (c2, _) = topic.channel("c2").unwrap();
        topic.publish(vec![message("c")], None).unwrap();
        assert_eq!(c1.depth(), 3);
        assert_eq!(c2.depth(), 1);
    }

    #[tokio::test]
    async fn paused_topics_keep_messages_until_unpaused() {
        let topic = Topic::new("t");
        let (c, _) = topic.channel("c").unwrap();
        topic.pause();
        topic.publish(vec![message("a")], None).unwrap();
        assert_eq!(c.depth(), 0);
        assert_eq!(topic.depth(), 1);
        topic.unpause();
        assert_eq!(c.depth(), 1);
    }

    #[tokio::test]
    async fn closed_topics_refuse_messages() {
        let topic = Topic::new("t");
        topic.close();
        assert_eq!(topic.publish(vec![message("a")], None), Err(Exiting));
        assert!(topic.channel("c").is_err());
    }
}
