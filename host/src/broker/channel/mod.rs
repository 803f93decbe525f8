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
//!
//! Here: the channel's state and the publish and take paths. Beside it:
//! `acknowledge` (FIN, REQ, TOUCH), `consumers` (join, leave), `disk`
//! (refills, /empty, write-back, sync), `timekeeper` (timeouts and due
//! times) and `stats`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::sync::futures::Notified;
use tokio_util::sync::CancellationToken;

use super::client::Client;
use super::deferred::DeferredQueue;
use super::disk_place::DiskPlace;
use super::in_flight::{InFlight, InFlightQueue};
use super::latency::LatencyWindow;
use super::message::Message;
use super::names::is_ephemeral;
use super::queues::{Cleared, QueueSettings, channel_queue_name, memory_room};
use super::spare_room::ReleaseSpare;
use wasq_storage::{BackingQueue, Location, PendingSync, due_to_unix_nanos};

mod acknowledge;
pub mod consumers;
mod disk;
mod stats;
#[cfg(test)]
mod tests;
mod timekeeper;

pub use stats::ChannelStats;

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
    in_flight: InFlightQueue,
    deferred: DeferredQueue<Queued>,
    /// Messages beyond the memory limit (on disk; dropped if ephemeral).
    backing: Box<dyn BackingQueue>,
    /// When the timekeeper is due to wake next; `None` when it sleeps idle.
    timer_due: Option<Instant>,
    /// A refill (a read from the backing) is under way.
    refilling: bool,
    /// Shutdown wrote everything back: take nothing more into memory.
    stopped: bool,
    /// Publish-to-FIN times, with `--e2e-processing-latency-percentile`.
    latency: Option<LatencyWindow>,
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
            backing: queues.open_backing(&channel_queue_name(topic_name, name), ephemeral),
            timer_due: None,
            refilling: false,
            stopped: false,
            latency: queues
                .latency
                .clone()
                .map(|settings| LatencyWindow::new(settings, Instant::now())),
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
        tokio::spawn(timekeeper::run_timekeeper(
            Arc::downgrade(&channel),
            channel.closed.clone(),
        ));
        channel
    }

    /// Appends messages: to memory while it has room and nothing waits on
    /// disk, the rest to disk. An ephemeral channel drops what does not
    /// fit, as nsqd does. Answer the publisher only once the returned
    /// writes are done (written, and fsynced in durable mode).
    pub fn put(&self, messages: impl Into<Vec<Message>>) -> PendingSync {
        let mut messages = messages.into();
        let mut pending = PendingSync::default();
        let count = messages.len() as u64;
        if count == 0 {
            return pending;
        }
        let (had_nothing, written) = {
            let mut state = self.state.lock();
            let had_nothing = state.ready.is_empty() && state.backing.is_empty();
            let older = !state.backing.is_empty();
            let room = memory_room(self.memory_limit, state.ready.len(), older);
            let rest = messages.split_off(room.min(messages.len()));
            state
                .ready
                .extend(messages.into_iter().map(Queued::published));
            let written = state.backing.append(&rest, None);
            (had_nothing, written)
        };
        self.message_count.fetch_add(count, Ordering::Relaxed);
        if had_nothing {
            self.messages_ready.notify_waiters();
        }
        pending.extend(written);
        pending
    }

    /// Holds messages back until `due` (DPUB). In durable mode
    /// (`--mem-queue-size=0`) they go to disk with their due time.
    pub fn put_deferred(&self, messages: impl Into<Vec<Message>>, due: Instant) -> PendingSync {
        let messages = messages.into();
        let count = messages.len() as u64;
        let mut pending = PendingSync::default();
        let had_nothing = {
            let mut state = self.state.lock();
            let had_nothing = state.ready.is_empty() && state.backing.is_empty();
            // Only a durable queue has no memory (an ephemeral one keeps
            // EPHEMERAL_MIN_MEMORY).
            if self.memory_limit == 0 {
                pending.extend(
                    state
                        .backing
                        .append(&messages, Some(due_to_unix_nanos(due))),
                );
            } else {
                for message in messages {
                    state.deferred.push(due, Queued::published(message));
                }
                self.schedule_timer(&mut state, due);
            }
            had_nothing
        };
        self.message_count.fetch_add(count, Ordering::Relaxed);
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
        let mut taken = Vec::new();
        self.take_into(client, max, timeout, sample_rate, &mut taken, None);
        taken
    }

    /// [`Channel::take`] for a consumer that needs where each message sits
    /// in the disk queue (a plugin with state marks its writes with it):
    /// the messages, and beside each its location (`None`: in memory only).
    pub fn take_located(
        &self,
        client: &Arc<Client>,
        max: usize,
        timeout: Duration,
    ) -> (Vec<Message>, Vec<Option<Location>>) {
        let (mut taken, mut located) = (Vec::new(), Vec::new());
        self.take_into(client, max, timeout, 0, &mut taken, Some(&mut located));
        (taken, located)
    }

    fn take_into(
        &self,
        client: &Arc<Client>,
        max: usize,
        timeout: Duration,
        sample_rate: i32,
        taken: &mut Vec<Message>,
        mut located: Option<&mut Vec<Option<Location>>>,
    ) {
        if max == 0 || self.is_paused() {
            return;
        }
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock();
        let room = max.min(state.ready.len());
        taken.reserve(room);
        if let Some(located) = located.as_deref_mut() {
            located.reserve(room);
        }
        while taken.len() < max {
            let Some(Queued { mut message, disk }) = state.ready.pop_front() else {
                break;
            };
            let disk = disk.get();
            if sample_rate > 0 && fastrand::i32(0..100) > sample_rate {
                state.release(disk);
                continue;
            }
            message.attempts = message.attempts.saturating_add(1);
            let entry = InFlight {
                message: message.clone(),
                disk,
                owner_id: client.id,
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
            if let Some(located) = located.as_deref_mut() {
                located.push(disk);
            }
        }
        state.ready.release_spare();
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
}

impl ChannelState {
    /// A message is finished (or dropped): its disk copy, if it came from
    /// disk, no longer holds back the read checkpoint.
    fn release(&mut self, location: Option<Location>) {
        if let Some(location) = location {
            self.backing.finish(&location);
        }
    }

    /// A consumer finished `entry`: its disk copy goes, and its time from
    /// publish to FIN counts towards the latency percentiles. `now` is
    /// taken once per batch: (monotonic, wall-clock nanoseconds).
    fn finished(&mut self, entry: InFlight, now: (Instant, i64)) {
        self.release(entry.disk);
        if let Some(latency) = &mut self.latency {
            latency.record(
                now.0,
                now.1.saturating_sub(entry.message.timestamp).max(0) as u64,
            );
        }
    }
}

/// The clocks a finish is timed by (see [`ChannelState::finished`]).
fn finish_time() -> (Instant, i64) {
    (Instant::now(), super::message::now_nanos())
}

/// A message the channel holds (ready or deferred), with where it sits in
/// the channel's disk queue if it was read from there: until it is
/// finished, the disk checkpoint must not pass that location.
#[derive(Debug)]
struct Queued {
    message: Message,
    disk: DiskPlace,
}

const _: () = assert!(std::mem::size_of::<Queued>() == 80);

impl Queued {
    /// A published message, the channel's own (not on its disk).
    fn published(message: Message) -> Queued {
        Queued {
            message,
            disk: DiskPlace::NONE,
        }
    }

    /// A message read back from the channel's disk queue at `location`.
    fn read_back(message: Message, location: Location) -> Queued {
        Queued {
            message,
            disk: Some(location).into(),
        }
    }

    /// A message back from a consumer (requeue, timeout, disconnect).
    fn returned(entry: InFlight) -> Queued {
        Queued {
            message: entry.message,
            disk: entry.disk.into(),
        }
    }
}
