//! A topic: takes published messages and gives every channel its own copy.
//!
//! Until its first channel exists (or while it is paused) a topic keeps
//! messages in its own backlog, as nsqd's topic queue does, and hands them
//! over when a channel appears or it is unpaused. The body of a message is
//! shared by every channel's copy; only the small header is cloned.
//!
//! Like a channel, the backlog keeps `--mem-queue-size` messages in memory
//! and the rest on disk. The memory part is handed over at once; the disk
//! part by a pump task, batch by batch, while publishes queue behind it.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use parking_lot::Mutex;
use serde::Serialize;

use tokio::sync::Notify;
use wasq_storage::{
    BackingQueue, PendingSync, PendingWork, ReadBatch, StoredMessage, due_to_unix_nanos,
};

use super::channel::{Channel, ChannelStats, Exiting};
use super::latency::{self, LatencyStats};
use super::message::Message;
use super::names::is_ephemeral;
use super::pump;
use super::queues::{Cleared, Held, QueueSettings, held_records, memory_room};

/// Why a publish was refused; nothing acknowledged was lost.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The topic is being deleted (nsqd's text).
    #[error("exiting")]
    Exiting,
    /// The disk queue could not take the messages (disk full, permissions).
    #[error("storage error: {0}")]
    Storage(#[from] io::Error),
}

impl From<Exiting> for PublishError {
    fn from(_: Exiting) -> Self {
        PublishError::Exiting
    }
}

#[derive(Debug)]
pub struct Topic {
    pub name: String,
    pub ephemeral: bool,
    queues: QueueSettings,
    memory_limit: usize,
    me: Weak<Topic>,
    pub(super) state: Mutex<TopicState>,
    /// Signalled when the pump stops.
    pump_idle: Notify,
    paused: AtomicBool,
    exiting: AtomicBool,
    message_count: AtomicU64,
    message_bytes: AtomicU64,
}

#[derive(Debug)]
pub(super) struct TopicState {
    pub(super) channels: BTreeMap<String, Arc<Channel>>,
    backlog: VecDeque<Pending>,
    /// Backlog beyond the memory limit (on disk; dropped if ephemeral).
    pub(super) backing: Box<dyn BackingQueue>,
    /// A pump task is moving the disk backlog to the channels.
    pub(super) pumping: bool,
    /// A batch the pump read when the last channel had just gone: kept
    /// (unfinished on disk) until a channel comes.
    pub(super) stash: Option<ReadBatch>,
}

/// A message held by the topic, with its due time if it was deferred.
#[derive(Debug)]
struct Pending {
    message: Message,
    due: Option<Instant>,
}

impl Topic {
    /// Creates the topic, opening (and recovering) its disk backlog.
    pub fn new(name: &str, queues: &QueueSettings) -> Arc<Topic> {
        let ephemeral = is_ephemeral(name);
        Arc::new_cyclic(|me| Topic {
            name: name.to_string(),
            ephemeral,
            queues: queues.clone(),
            memory_limit: queues.memory_limit(ephemeral),
            me: me.clone(),
            state: Mutex::new(TopicState {
                channels: BTreeMap::new(),
                backlog: VecDeque::new(),
                backing: queues.open_backing(name, ephemeral),
                pumping: false,
                stash: None,
            }),
            pump_idle: Notify::new(),
            paused: AtomicBool::new(false),
            exiting: AtomicBool::new(false),
            message_count: AtomicU64::new(0),
            message_bytes: AtomicU64::new(0),
        })
    }

    /// Publishes messages, all due at `due` if deferred. On error nothing
    /// was acknowledged; some channels may have a copy (at least once).
    /// The returned sync must complete before the publisher is answered.
    pub fn publish(
        &self,
        messages: Vec<Message>,
        due: Option<Instant>,
    ) -> Result<PendingSync, PublishError> {
        let bytes: usize = messages.iter().map(|m| m.body.len()).sum();
        let mut state = self.state.lock();
        if self.is_exiting() {
            return Err(PublishError::Exiting);
        }
        self.message_count
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        self.message_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        if state.channels.is_empty() || self.is_paused() || state.disk_waiting() {
            Ok(self.hold(&mut state, messages, due))
        } else {
            Ok(fan_out(state.channels.values(), messages, due))
        }
    }

    /// Keeps messages in the backlog: memory while it has room and nothing
    /// waits on disk, the rest on disk (an ephemeral topic drops them).
    fn hold(
        &self,
        state: &mut TopicState,
        messages: Vec<Message>,
        due: Option<Instant>,
    ) -> PendingSync {
        let mut pending = PendingSync::default();
        let room = memory_room(self.memory_limit, state.backlog.len(), state.disk_waiting());
        let mut messages = messages;
        let rest = messages.split_off(room.min(messages.len()));
        state
            .backlog
            .extend(messages.into_iter().map(|message| Pending { message, due }));
        pending.extend(state.backing.append(&rest, due.map(due_to_unix_nanos)));
        self.wake_pump(state);
        pending
    }

    /// Starts the pump if the disk backlog can go to channels now.
    fn wake_pump(&self, state: &mut TopicState) {
        if state.pumping || !state.disk_waiting() || state.channels.is_empty() || self.is_paused() {
            return;
        }
        if let (Some(topic), Ok(runtime)) =
            (self.me.upgrade(), tokio::runtime::Handle::try_current())
        {
            state.pumping = true;
            runtime.spawn(pump::run(Arc::downgrade(&topic)));
        }
    }

    /// The pump stopped (called with the state locked).
    pub(super) fn pump_stopped(&self, state: &mut TopicState) {
        state.pumping = false;
        self.pump_idle.notify_waiters();
    }

    /// Waits until no pump runs (shutdown, after [`Topic::stop`]).
    async fn pump_finished(&self) {
        loop {
            let idle = self.pump_idle.notified();
            if !self.state.lock().pumping {
                return;
            }
            idle.await;
        }
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
        let channel = Channel::new(&self.name, name, &self.queues);
        state.channels.insert(name.to_string(), channel.clone());
        if !self.is_paused() {
            drain_backlog(&mut state);
            self.wake_pump(&mut state);
        }
        Ok((channel, true))
    }

    pub fn existing_channel(&self, name: &str) -> Option<Arc<Channel>> {
        self.state.lock().channels.get(name).cloned()
    }

    pub fn channels(&self) -> Vec<Arc<Channel>> {
        self.state.lock().channels.values().cloned().collect()
    }

    /// Deletes a channel (closing its consumers). Returns how many
    /// channels remain and the deletion of its files, or `None` if there
    /// was no such channel.
    pub fn delete_channel(&self, name: &str) -> Option<(usize, Cleared)> {
        let (channel, remaining) = {
            let mut state = self.state.lock();
            let channel = state.channels.remove(name)?;
            (channel, state.channels.len())
        };
        Some((remaining, channel.close()))
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
        // Ephemeral: nothing on disk to wait for.
        drop(channel.close());
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
            self.wake_pump(&mut state);
        }
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    /// Shutdown: refuses publishes and stops the pump, keeping all data.
    pub fn stop(&self) {
        let _state = self.state.lock();
        self.exiting.store(true, Ordering::Release);
    }

    pub fn is_exiting(&self) -> bool {
        self.exiting.load(Ordering::Acquire)
    }

    /// Drops the topic's own backlog, on disk too (nsqd's topic /empty;
    /// channels keep theirs); the files are gone once the result completes.
    pub fn empty(&self) -> Cleared {
        let mut state = self.state.lock();
        state.backlog.clear();
        state.stash = None;
        let mut cleared = Cleared::default();
        cleared.push(state.backing.clear());
        cleared
    }

    /// Deletes the topic and all its channels, with their files (gone once
    /// the result completes).
    pub fn close(&self) -> Cleared {
        let (channels, mut cleared) = {
            let mut state = self.state.lock();
            self.exiting.store(true, Ordering::Release);
            state.backlog.clear();
            state.stash = None;
            let mut cleared = Cleared::default();
            cleared.push(state.backing.clear());
            (std::mem::take(&mut state.channels), cleared)
        };
        for channel in channels.values() {
            cleared.append(channel.close());
        }
        cleared
    }

    /// Shutdown, after [`Topic::stop`]: waits for the pump to put down
    /// its batch, then hands over the in-memory backlog for the
    /// held-messages file. A batch the pump had read but not handed on
    /// stays unfinished on disk, delivered after restart.
    pub async fn persist(&self) -> Held {
        self.pump_finished().await;
        let mut state = self.state.lock();
        let TopicState {
            backlog, backing, ..
        } = &mut *state;
        let held = backlog
            .drain(..)
            .map(|p| (p.message, p.due.map(due_to_unix_nanos)))
            .collect();
        Held::take(backing.as_mut(), self.ephemeral, held, Vec::new())
    }

    /// Start-up: the messages this topic held at the last shutdown go back
    /// on its disk, and the pump hands them on.
    pub fn put_back_held(&self, messages: Vec<StoredMessage>) -> PendingWork<()> {
        let mut state = self.state.lock();
        let written = state.backing.put_back(held_records(messages));
        self.wake_pump(&mut state);
        written
    }

    /// Fsyncs the disk backlog if needed and saves its read checkpoint;
    /// wait for it outside the lock.
    pub fn sync(&self) -> PendingWork<()> {
        self.state.lock().backing.sync()
    }

    /// Completes once the disk backlog did everything asked of it so far
    /// (the recovery scan of a restored topic).
    pub fn settled(&self) -> PendingWork<()> {
        self.state.lock().backing.settled()
    }

    /// Messages in the backlog, in memory and on disk.
    pub fn depth(&self) -> usize {
        self.state.lock().depth()
    }

    pub fn stats(&self, channel_filter: Option<&str>, include_clients: bool) -> TopicStats {
        let (depth, backend_depth, channels) = {
            let state = self.state.lock();
            (
                state.depth(),
                state.backing.depth(),
                state.channels.values().cloned().collect::<Vec<_>>(),
            )
        };
        // nsqd's topic figure: all its channels' samples together.
        let latency = self.queues.latency.as_ref().map(|settings| {
            let mut merged = latency::merged();
            for channel in &channels {
                channel.merge_latency(&mut merged);
            }
            latency::summarize(&merged, &settings.percentiles)
        });
        let channels = channels
            .iter()
            .filter(|c| channel_filter.is_none_or(|name| name == c.name))
            .map(|c| c.stats(include_clients))
            .collect();
        TopicStats {
            topic_name: self.name.clone(),
            channels,
            depth: depth as i64,
            backend_depth: backend_depth as i64,
            message_count: self.message_count.load(Ordering::Relaxed),
            message_bytes: self.message_bytes.load(Ordering::Relaxed),
            paused: self.is_paused(),
            e2e_processing_latency: latency.unwrap_or_default(),
        }
    }
}

impl TopicState {
    /// Messages wait on disk (or in a batch the pump read but could not
    /// hand on): what is published now must queue behind them.
    fn disk_waiting(&self) -> bool {
        !self.backing.is_empty() || self.stash.is_some()
    }

    /// The backlog, in memory and on disk (a stashed batch counts in the
    /// backing's depth until it is handed on).
    fn depth(&self) -> usize {
        self.backlog.len() + self.backing.depth() as usize
    }
}

/// Gives each channel its copy of `messages` (bodies shared, not copied).
pub(super) fn fan_out<'a>(
    channels: impl Iterator<Item = &'a Arc<Channel>>,
    mut messages: Vec<Message>,
    due: Option<Instant>,
) -> PendingSync {
    let mut pending = PendingSync::default();
    let mut channels = channels.peekable();
    while let Some(channel) = channels.next() {
        // The last channel takes the messages themselves: a body's first
        // clone allocates its shared count, which a topic with one channel
        // (the common case) so never pays.
        let theirs = if channels.peek().is_some() {
            messages.clone()
        } else {
            std::mem::take(&mut messages)
        };
        pending.extend([match due {
            Some(due) if due > Instant::now() => channel.put_deferred(theirs, due),
            _ => channel.put(theirs),
        }]);
    }
    pending
}

/// Hands the in-memory backlog to the channels (first channel, unpause).
/// Channels take it in memory unless their own disk queue is in use; a
/// failure to write there is logged, as no publisher waits for these.
fn drain_backlog(state: &mut TopicState) {
    let backlog = std::mem::take(&mut state.backlog);
    let mut immediate = Vec::new();
    let mut pending = PendingSync::default();
    for held in backlog {
        match held.due {
            Some(due) => pending.extend([fan_out(
                state.channels.values(),
                vec![held.message],
                Some(due),
            )]),
            None => immediate.push(held.message),
        }
    }
    pending.extend([fan_out(state.channels.values(), immediate, None)]);
    if !pending.is_empty()
        && let Ok(runtime) = tokio::runtime::Handle::try_current()
    {
        runtime.spawn(async move {
            if let Err(e) = pending.wait().await {
                tracing::error!(error = %e, "TOPIC: cannot hand its backlog to a channel");
            }
        });
    }
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
        let topic = Topic::new("t", &QueueSettings::memory_only());
        assert!(
            topic
                .publish(vec![message("a"), message("b")], None)
                .unwrap()
                .is_empty()
        );
        assert_eq!(topic.depth(), 2);
        let (c1, created) = topic.channel("c1").unwrap();
        assert!(created);
        assert_eq!(c1.depth(), 2);
        assert_eq!(topic.depth(), 0);
        let (c2, _) = topic.channel("c2").unwrap();
        assert!(topic.publish(vec![message("c")], None).unwrap().is_empty());
        assert_eq!(c1.depth(), 3);
        assert_eq!(c2.depth(), 1);
    }

    #[tokio::test]
    async fn paused_topics_keep_messages_until_unpaused() {
        let topic = Topic::new("t", &QueueSettings::memory_only());
        let (c, _) = topic.channel("c").unwrap();
        topic.pause();
        assert!(topic.publish(vec![message("a")], None).unwrap().is_empty());
        assert_eq!(c.depth(), 0);
        assert_eq!(topic.depth(), 1);
        topic.unpause();
        assert_eq!(c.depth(), 1);
    }

    #[tokio::test]
    async fn closed_topics_refuse_messages() {
        let topic = Topic::new("t", &QueueSettings::memory_only());
        topic.close().wait().await;
        assert!(matches!(
            topic.publish(vec![message("a")], None),
            Err(PublishError::Exiting)
        ));
        assert!(topic.channel("c").is_err());
    }
}
