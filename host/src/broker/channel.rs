//! A channel: one copy of every message of its topic, shared by its consumers.
//!
//! Each channel owns its queues behind its own lock, so publishing to or
//! consuming from one channel never waits on another. Consumers pull: a
//! consumer with spare RDY takes a batch with [`Channel::take`]; when the
//! ready queue is empty it waits on [`Channel::messages_ready`], which fires
//! when the queue stops being empty or the channel is unpaused. One
//! timekeeper task per channel moves timed-out in-flight messages and due
//! deferred messages back to the ready queue.
//!
//! The ready queue holds up to `--mem-queue-size` messages in memory; the
//! rest go to the channel's backing queue (a disk queue, `wasq_storage`)
//! and are read back, in order, when memory runs low. Once anything waits
//! on disk new messages queue behind it there, so a channel stays first
//! in, first out. The backing only takes requests under the channel's
//! lock: a read is done by its worker and delivered by a refill task,
//! which pushes the batch into the ready queue and wakes the consumers.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::Notify;
use tokio::sync::futures::Notified;
use tokio_util::sync::CancellationToken;

use super::client::{Client, ClientStats};
use super::deferred::DeferredQueue;
use super::in_flight::{InFlight, InFlightError, InFlightQueue};
use super::message::{Message, MessageId, now_nanos};
use super::names::is_ephemeral;
use super::queues::{Cleared, QueueSettings, memory_room};
use wasq_storage::{
    BackingQueue, Location, PendingSync, PendingWork, ReadBatch, due_from_unix_nanos,
    due_to_unix_nanos,
};

/// Messages a refill reads from disk at least: enough that a consumer with
/// a small RDY does not wait on the disk for every message.
const REFILL_BATCH: usize = 1024;

/// The channel is being deleted; nsqd's error text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("exiting")]
pub struct Exiting;

#[derive(Debug)]
pub struct Channel {
    me: Weak<Channel>,
    /// Where refill tasks run (plugin threads call in from outside it).
    runtime: tokio::runtime::Handle,
    pub name: String,
    pub topic_name: String,
    pub ephemeral: bool,
    /// Messages kept in memory before the rest go to disk.
    memory_limit: usize,
    state: Mutex<ChannelState>,
    messages_ready: Notify,
    timer: Notify,
    paused: AtomicBool,
    exiting: AtomicBool,
    closed: CancellationToken,
    clients: Mutex<HashMap<u64, Arc<Client>>>,
    message_count: AtomicU64,
    requeue_count: AtomicU64,
    timeout_count: AtomicU64,
}

#[derive(Debug)]
struct ChannelState {
    ready: VecDeque<Queued>,
    in_flight: InFlightQueue<Arc<Client>>,
    deferred: DeferredQueue<Queued>,
    /// Messages beyond the memory limit (on disk; dropped if ephemeral).
    backing: Box<dyn BackingQueue>,
    /// When the timekeeper is due to wake next; `None` when it sleeps idle.
    timer_due: Option<Instant>,
    /// A refill (a read from the backing) is under way.
    refilling: bool,
    /// Shutdown wrote everything back: take nothing more into memory.
    stopped: bool,
}

impl Channel {
    /// Creates the channel, opening (and recovering) its disk queue, and
    /// starts its timekeeper (needs a Tokio runtime).
    pub fn new(topic_name: &str, name: &str, queues: &QueueSettings) -> Arc<Channel> {
        let ephemeral = is_ephemeral(name);
        let state = ChannelState {
            ready: VecDeque::new(),
            in_flight: InFlightQueue::default(),
            deferred: DeferredQueue::default(),
            backing: queues.open_backing(&format!("{topic_name}:{name}"), ephemeral),
            timer_due: None,
            refilling: false,
            stopped: false,
        };
        let channel = Arc::new_cyclic(|me| Channel {
            me: me.clone(),
            runtime: tokio::runtime::Handle::current(),
            name: name.to_string(),
            topic_name: topic_name.to_string(),
            ephemeral,
            memory_limit: queues.memory_limit(ephemeral),
            state: Mutex::new(state),
            messages_ready: Notify::new(),
            timer: Notify::new(),
            paused: AtomicBool::new(false),
            exiting: AtomicBool::new(false),
            closed: CancellationToken::new(),
            clients: Mutex::new(HashMap::new()),
            message_count: AtomicU64::new(0),
            requeue_count: AtomicU64::new(0),
            timeout_count: AtomicU64::new(0),
        });
        tokio::spawn(run_timekeeper(
            Arc::downgrade(&channel),
            channel.closed.clone(),
        ));
        channel
    }

    /// Appends messages: to memory while it has room and nothing waits on
    /// disk, the rest to disk. An ephemeral channel drops what does not
    /// fit, as nsqd does. Answer the publisher only once the returned
    /// writes are done (written, and fsynced in durable mode).
    pub fn put(&self, messages: &[Message]) -> PendingSync {
        let mut pending = PendingSync::default();
        if messages.is_empty() {
            return pending;
        }
        let (had_nothing, written) = {
            let mut state = self.state.lock();
            let had_nothing = state.ready.is_empty() && state.backing.is_empty();
            let room = memory_room(self.memory_limit, state.ready.len(), &*state.backing);
            let (memory, rest) = messages.split_at(room.min(messages.len()));
            state.ready.extend(memory.iter().map(Queued::copy_of));
            let written = state.backing.append(rest, None);
            (had_nothing, written)
        };
        self.message_count
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        if had_nothing {
            self.messages_ready.notify_waiters();
        }
        pending.extend(written);
        pending
    }

    /// Holds messages back until `due` (DPUB). In durable mode
    /// (`--mem-queue-size=0`) they go to disk with their due time.
    pub fn put_deferred(&self, messages: &[Message], due: Instant) -> PendingSync {
        let mut pending = PendingSync::default();
        let had_nothing = {
            let mut state = self.state.lock();
            let had_nothing = state.ready.is_empty() && state.backing.is_empty();
            // Only a durable queue has no memory (an ephemeral one keeps
            // EPHEMERAL_MIN_MEMORY).
            if self.memory_limit == 0 {
                pending.extend(state.backing.append(messages, Some(due_to_unix_nanos(due))));
            } else {
                for message in messages {
                    state.deferred.push(due, Queued::copy_of(message));
                }
                self.schedule_timer(&mut state, due);
            }
            had_nothing
        };
        self.message_count
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        // On disk, a deferred message sits in the queue a consumer reads
        // (and moves aside when it is not due): a waiting consumer must
        // look, or later messages queued behind it would never wake it.
        if had_nothing && self.memory_limit == 0 {
            self.messages_ready.notify_waiters();
        }
        pending
    }

    /// A future that completes when messages may have become available.
    ///
    /// Create it (and `enable` it) *before* calling [`Channel::take`] so a
    /// message put in between is not missed.
    pub fn messages_ready(&self) -> Notified<'_> {
        self.messages_ready.notified()
    }

    /// Delivers up to `max` ready messages to `client`, marking them in flight
    /// until `timeout` from now. With a `sample_rate` (1-99), each message is
    /// kept with that probability and the rest skip this channel, as in nsqd.
    pub fn take(
        &self,
        client: &Arc<Client>,
        max: usize,
        timeout: Duration,
        sample_rate: i32,
    ) -> Vec<Message> {
        if max == 0 || self.is_paused() {
            return Vec::new();
        }
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock();
        let mut taken = Vec::with_capacity(max.min(state.ready.len()));
        while taken.len() < max {
            let Some(Queued { mut message, disk }) = state.ready.pop_front() else {
                break;
            };
            if sample_rate > 0 && fastrand::i32(0..100) > sample_rate {
                state.release(disk);
                continue;
            }
            message.attempts = message.attempts.saturating_add(1);
            let entry = InFlight {
                message: message.clone(),
                disk,
                owner_id: client.id,
                owner: client.clone(),
                deadline,
            };
            if state.in_flight.insert(entry).is_err() {
                // The same id is already out: a second copy, as a restart
                // after a crash may redeliver (at least once). Never deliver
                // one id twice at once; the copy out stands for both.
                state.release(disk);
                continue;
            }
            taken.push(message);
        }
        // Memory running low while more waits on disk: read ahead, so the
        // next take finds it (waiting consumers are woken when it arrives).
        if state.ready.len() < REFILL_BATCH / 2 {
            self.refill(&mut state, max.max(REFILL_BATCH));
        }
        if !taken.is_empty() {
            self.schedule_timer(&mut state, deadline);
            client
                .in_flight
                .fetch_add(taken.len() as i64, Ordering::AcqRel);
            client
                .message_count
                .fetch_add(taken.len() as u64, Ordering::Relaxed);
        }
        taken
    }

    /// Asks the backing for up to `want` messages, unless a read is under
    /// way or nothing waits there; a task takes the batch into memory.
    fn refill(&self, state: &mut ChannelState, want: usize) {
        if state.refilling || state.stopped {
            return;
        }
        let Some(read) = state.backing.read(want) else {
            return;
        };
        state.refilling = true;
        let channel = self.me.clone();
        self.runtime.spawn(async move {
            let batch = read.wait().await;
            if let Some(channel) = channel.upgrade() {
                channel.take_in(batch);
            }
        });
    }

    /// A refill's batch arrived: into the ready queue (deferred ones not
    /// yet due into the deferred queue), and the consumers are woken. A
    /// stale batch (the channel was emptied since) or one after shutdown is
    /// dropped; its messages stay unfinished on disk.
    fn take_in(&self, batch: ReadBatch) {
        {
            let mut state = self.state.lock();
            state.refilling = false;
            if state.stopped || !state.backing.delivered(&batch) {
                return;
            }
            let now = now_nanos();
            for (stored, location) in batch.records {
                let message = Queued {
                    message: stored.message,
                    disk: Some(location),
                };
                match stored.due_unix_nanos {
                    Some(due) if due > now => {
                        let due = due_from_unix_nanos(due);
                        state.deferred.push(due, message);
                        self.schedule_timer(&mut state, due);
                    }
                    _ => state.ready.push_back(message),
                }
            }
        }
        self.messages_ready.notify_waiters();
    }

    /// FIN: the consumer is done with the message.
    pub fn finish(&self, client_id: u64, id: &MessageId) -> Result<(), InFlightError> {
        let entry = {
            let mut state = self.state.lock();
            let entry = state.in_flight.remove(client_id, id)?;
            state.release(entry.disk);
            entry
        };
        entry.owner.in_flight.fetch_sub(1, Ordering::AcqRel);
        entry.owner.finish_count.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// FIN for many messages of one consumer under one lock (plugins settle
    /// a batch at once). Returns how many were still in flight.
    pub fn finish_many(&self, client: &Client, ids: &[MessageId]) -> usize {
        let finished = {
            let mut state = self.state.lock();
            ids.iter()
                .filter(|id| match state.in_flight.remove(client.id, id) {
                    Ok(entry) => {
                        state.release(entry.disk);
                        true
                    }
                    Err(_) => false,
                })
                .count()
        };
        client
            .in_flight
            .fetch_sub(finished as i64, Ordering::AcqRel);
        client
            .finish_count
            .fetch_add(finished as u64, Ordering::Relaxed);
        finished
    }

    /// REQ: put the message back, at once or after `delay`.
    pub fn requeue(
        &self,
        client_id: u64,
        id: &MessageId,
        delay: Duration,
    ) -> Result<(), InFlightError> {
        let was_empty = {
            let mut state = self.state.lock();
            let entry = state.in_flight.remove(client_id, id)?;
            entry.owner.in_flight.fetch_sub(1, Ordering::AcqRel);
            entry.owner.requeue_count.fetch_add(1, Ordering::Relaxed);
            if delay.is_zero() {
                let was_empty = state.ready.is_empty();
                state.ready.push_back(Queued::returned(entry));
                was_empty
            } else {
                let due = Instant::now() + delay;
                state.deferred.push(due, Queued::returned(entry));
                self.schedule_timer(&mut state, due);
                false
            }
        };
        self.requeue_count.fetch_add(1, Ordering::Relaxed);
        if was_empty {
            self.messages_ready.notify_waiters();
        }
        Ok(())
    }

    /// TOUCH: give the consumer another `timeout` from now.
    pub fn touch(
        &self,
        client_id: u64,
        id: &MessageId,
        timeout: Duration,
    ) -> Result<(), InFlightError> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock();
        state.in_flight.touch(client_id, id, deadline)?;
        self.schedule_timer(&mut state, deadline);
        Ok(())
    }

    pub fn add_client(&self, client: Arc<Client>) -> Result<(), Exiting> {
        let mut clients = self.clients.lock();
        if self.is_exiting() {
            return Err(Exiting);
        }
        clients.insert(client.id, client);
        Ok(())
    }

    /// Removes a consumer and returns what it held to the front of the queue
    /// at once (nsqd waits for the timeout; nobody can FIN them any more).
    /// Returns how many consumers remain.
    pub fn remove_client(&self, client_id: u64) -> usize {
        let remaining = {
            let mut clients = self.clients.lock();
            clients.remove(&client_id);
            clients.len()
        };
        let returned = {
            let mut state = self.state.lock();
            let held = state.in_flight.remove_owner(client_id);
            let was_empty = state.ready.is_empty();
            let returned = !held.is_empty();
            if let Some(first) = held.first() {
                first
                    .owner
                    .in_flight
                    .fetch_sub(held.len() as i64, Ordering::AcqRel);
            }
            for entry in held.into_iter().rev() {
                state.ready.push_front(Queued::returned(entry));
            }
            was_empty && returned
        };
        if returned {
            self.messages_ready.notify_waiters();
        }
        remaining
    }

    /// Marks the channel as exiting if it has no consumer, atomically with
    /// respect to [`Channel::add_client`], so a consumer arriving at the same
    /// moment is refused (and subscribes to the successor) rather than lost.
    pub fn retire_if_unused(&self) -> bool {
        let clients = self.clients.lock();
        if !clients.is_empty() || self.is_exiting() {
            return false;
        }
        self.exiting.store(true, Ordering::Release);
        true
    }

    pub fn client_count(&self) -> usize {
        self.clients.lock().len()
    }

    pub fn pause(&self) {
        self.paused.store(true, Ordering::Release);
    }

    pub fn unpause(&self) {
        self.paused.store(false, Ordering::Release);
        self.messages_ready.notify_waiters();
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    pub fn is_exiting(&self) -> bool {
        self.exiting.load(Ordering::Acquire)
    }

    /// Drops every queued, deferred and in-flight message (operator's
    /// /empty); the disk files are gone once the result completes.
    pub fn empty(&self) -> Cleared {
        let mut cleared = Cleared::default();
        let in_flight = {
            let mut state = self.state.lock();
            state.ready.clear();
            state.deferred.clear();
            cleared.push(state.backing.clear());
            state.in_flight.drain()
        };
        let mut per_owner: HashMap<u64, (Arc<Client>, i64)> = HashMap::new();
        for entry in in_flight {
            per_owner
                .entry(entry.owner_id)
                .or_insert_with(|| (entry.owner.clone(), 0))
                .1 += 1;
        }
        for (owner, count) in per_owner.into_values() {
            owner.lost_in_flight(count);
        }
        cleared
    }

    /// Writes every message held in memory (ready, in flight, deferred with
    /// its due time) to the disk queue and flushes it, so that a restart
    /// finds them all; in-flight ones are delivered again. Completes with
    /// how many were written. Only for shutdown: the channel holds nothing
    /// after, and takes nothing more from disk.
    pub fn persist(&self) -> PendingWork<usize> {
        let mut state = self.state.lock();
        state.stopped = true;
        let ChannelState {
            ready,
            in_flight,
            deferred,
            backing,
            ..
        } = &mut *state;
        let mut held = Vec::new();
        let mut forget = Vec::new();
        let mut keep = |message: Message, due: Option<Instant>, disk: Option<Location>| {
            held.push((message, due.map(due_to_unix_nanos)));
            forget.extend(disk);
        };
        for entry in in_flight.drain() {
            keep(entry.message, None, entry.disk);
        }
        for queued in ready.drain(..) {
            keep(queued.message, None, queued.disk);
        }
        for (due, queued) in deferred.drain() {
            keep(queued.message, Some(due), queued.disk);
        }
        backing.write_back(held, forget)
    }

    /// Fsyncs the disk queue if it has unsynced writes and saves its read
    /// checkpoint (every `--sync-timeout`); wait for it outside the lock.
    pub fn sync(&self) -> PendingWork<()> {
        self.state.lock().backing.sync()
    }

    /// Completes once the disk queue did everything asked of it so far
    /// (the recovery scan of a restored channel).
    pub fn settled(&self) -> PendingWork<()> {
        self.state.lock().backing.settled()
    }

    /// Deletes the channel: stops the timekeeper, disconnects its consumers
    /// and drops its messages, on disk too (gone once the result completes).
    pub fn close(&self) -> Cleared {
        self.exiting.store(true, Ordering::Release);
        self.closed.cancel();
        let clients: Vec<Arc<Client>> = self.clients.lock().drain().map(|(_, c)| c).collect();
        for client in clients {
            client.kick();
        }
        self.empty()
    }

    /// Messages waiting for a consumer, in memory and on disk (nsqd's `depth`).
    pub fn depth(&self) -> usize {
        let state = self.state.lock();
        state.ready.len() + state.backing.depth() as usize
    }

    pub fn stats(&self, include_clients: bool) -> ChannelStats {
        let (depth, backend_depth, in_flight_count, deferred_count) = {
            let state = self.state.lock();
            (
                state.ready.len() + state.backing.depth() as usize,
                state.backing.depth(),
                state.in_flight.len(),
                state.deferred.len(),
            )
        };
        let clients = self.clients.lock();
        let client_count = clients.len();
        let mut client_stats: Vec<ClientStats> = if include_clients {
            clients.values().map(|c| c.stats(None)).collect()
        } else {
            Vec::new()
        };
        drop(clients);
        client_stats.sort_by_key(|c| c.connect_ts);
        ChannelStats {
            channel_name: self.name.clone(),
            depth: depth as i64,
            backend_depth: backend_depth as i64,
            in_flight_count,
            deferred_count,
            message_count: self.message_count.load(Ordering::Relaxed),
            requeue_count: self.requeue_count.load(Ordering::Relaxed),
            timeout_count: self.timeout_count.load(Ordering::Relaxed),
            client_count,
            clients: client_stats,
            paused: self.is_paused(),
            e2e_processing_latency: LatencyStats::default(),
        }
    }

    /// Makes sure the timekeeper wakes no later than `at`.
    fn schedule_timer(&self, state: &mut ChannelState, at: Instant) {
        if state.timer_due.is_none_or(|due| at < due) {
            state.timer_due = Some(at);
            self.timer.notify_one();
        }
    }

    /// Moves expired in-flight and due deferred messages to the ready queue;
    /// returns when to look again.
    fn expire(&self, now: Instant) -> Option<Instant> {
        let (expired, became_ready, next) = {
            let mut state = self.state.lock();
            let was_empty = state.ready.is_empty();
            let expired = state.in_flight.pop_expired(now);
            for entry in &expired {
                state.ready.push_back(Queued {
                    message: entry.message.clone(),
                    disk: entry.disk,
                });
            }
            let due = state.deferred.pop_due(now);
            state.ready.extend(due);
            let next = match (state.in_flight.next_deadline(), state.deferred.next_due()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            state.timer_due = next;
            (expired, was_empty && !state.ready.is_empty(), next)
        };
        self.timeout_count
            .fetch_add(expired.len() as u64, Ordering::Relaxed);
        for entry in &expired {
            entry.owner.lost_in_flight(1);
        }
        if became_ready {
            self.messages_ready.notify_waiters();
        }
        next
    }
}

impl ChannelState {
    /// A message is finished (or dropped): its disk copy, if it came from
    /// disk, no longer holds back the read checkpoint.
    fn release(&mut self, location: Option<Location>) {
        if let Some(location) = location {
            self.backing.finish(&location);
        }
    }
}

/// A message the channel holds (ready or deferred), with where it sits in
/// the channel's disk queue if it was read from there: until it is
/// finished, the disk checkpoint must not pass that location.
#[derive(Debug)]
struct Queued {
    message: Message,
    disk: Option<Location>,
}

impl Queued {
    /// The channel's own copy of a published message (not on its disk).
    fn copy_of(message: &Message) -> Queued {
        Queued {
            message: message.clone(),
            disk: None,
        }
    }

    /// A message back from a consumer (requeue, timeout, disconnect).
    fn returned(entry: InFlight<Arc<Client>>) -> Queued {
        Queued {
            message: entry.message,
            disk: entry.disk,
        }
    }
}

/// One task per channel: sleeps until the earliest in-flight deadline or
/// deferred due time, then requeues what is due. Ends when the channel closes.
async fn run_timekeeper(channel: std::sync::Weak<Channel>, closed: CancellationToken) {
    loop {
        let Some(strong) = channel.upgrade() else {
            return;
        };
        let next = strong.expire(Instant::now());
        let sleep = match next {
            Some(at) => tokio::time::sleep_until(at.into()),
            None => tokio::time::sleep(Duration::from_secs(3600)),
        };
        tokio::select! {
            _ = closed.cancelled() => return,
            _ = strong.timer.notified() => {}
            _ = sleep => {}
        }
    }
}

/// nsqd's end-to-end latency block; Wasq does not sample it yet, so it
/// reports what nsqd reports with percentiles disabled.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencyStats {
    pub count: u64,
    pub percentiles: Option<Vec<serde_json::Value>>,
}

/// Field names and order as nsqd's `ChannelStats`.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelStats {
    pub channel_name: String,
    pub depth: i64,
    pub backend_depth: i64,
    pub in_flight_count: usize,
    pub deferred_count: usize,
    pub message_count: u64,
    pub requeue_count: u64,
    pub timeout_count: u64,
    pub client_count: usize,
    pub clients: Vec<ClientStats>,
    pub paused: bool,
    pub e2e_processing_latency: LatencyStats,
}

#[cfg(test)]
mod tests {
    use super::*;
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

        channel.requeue(1, &taken[0].id, Duration::ZERO).unwrap();
        assert_eq!(channel.finish_many(&c, &[taken[1].id, taken[1].id]), 1);
        assert_eq!(
            channel.finish(1, &taken[1].id),
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
        channel.add_client(a.clone()).unwrap();
        assert!(channel.put(&[message(1), message(2)]).is_empty());
        assert_eq!(channel.take(&a, 2, Duration::from_secs(60), 0).len(), 2);
        assert_eq!(channel.remove_client(1), 0);
        assert_eq!(channel.depth(), 2);
        let b = client(2);
        let again = channel.take(&b, 2, Duration::from_secs(60), 0);
        assert_eq!(again[0].body, Bytes::from("m1"));
        assert_eq!(
            channel.finish(1, &again[0].id),
            Err(InFlightError::NotOwner)
        );
    }

    fn durable(dir: &std::path::Path) -> QueueSettings {
        QueueSettings {
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
            .put(&(1..=5).map(message).collect::<Vec<_>>())
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
}
