//! A running plugin: an ordinary consumer of its channel.
//!
//! The plugin holds one `Client` (RDY = `max_in_flight`, lowered by
//! backoff) and runs `concurrency` workers, each a task on the Wasm
//! executor (executor.rs). Each worker owns one Wasm instance and pulls
//! for itself: it takes a batch from the channel (its share of the RDY),
//! calls the handler for each message, and settles the batch: the
//! successes' FINs under one channel lock, REQ or dead-letter for the
//! rest. No task sits between the channel and the workers, so a busy
//! plugin costs no wake-up per batch; an idle worker waits on the
//! channel's "messages ready" signal. A worker whose guest waits (an HTTP
//! response, an fsync) is a suspended task: a plugin may have thousands
//! waiting on the executor's few threads. Wasm never runs on the broker's
//! async threads, so a slow guest cannot stall connections.
//!
//! A plugin with state commits each call's writes before their FINs:
//! [`state`].

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

mod state;
use state::Committing;

use super::abi::Outcome;
use super::backoff::Backoff;
use super::executor::WasmExecutor;
use super::instance::{CompiledGuest, GuestError, GuestInstance};
use super::runtime::PluginLink;
use super::stats::PluginStats;
use crate::broker::channel::Channel;
use crate::broker::client::{Client, ClientState};
use crate::broker::message::{Message, MessageId};
use crate::broker::topic::Topic;
use wasq_storage::Location;

/// How long a worker waits before trying again to create an instance.
const INSTANCE_RETRY: Duration = Duration::from_millis(500);

/// How long the plugin waits before subscribing again after its channel
/// was deleted, as a reconnecting client would.
const RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);

/// What a stopping plugin does with the messages its workers hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Handle every message already taken, then stop (reload, removal):
    /// their FIN/REQ counts, nothing is redelivered.
    Drain,
    /// Finish only the call under way (one message, or one batch to a
    /// module exporting `wasq_handle_batch`); the rest go back to the
    /// channel (broker shutdown). A call waiting (an HTTP response, an
    /// fsync) is cut short instead: its instance is dropped and its
    /// messages go back too, so a hanging endpoint cannot hold the
    /// shutdown for its timeout.
    Requeue,
}

pub struct PluginRun {
    pub link: Arc<PluginLink>,
    guest: CompiledGuest,
    client: Arc<Client>,
    subscription: Mutex<(Arc<Topic>, Arc<Channel>)>,
    backoff: Mutex<Backoff>,
    /// Held while a worker checks the RDY and takes its batch, so two
    /// workers never both take the one trial message of a backoff.
    taking: Mutex<()>,
    /// Held by the worker that subscribes again after a channel deletion.
    resubscribing: tokio::sync::Mutex<()>,
    /// The broker's runtime: idle workers wait on its notifications and timers.
    runtime: tokio::runtime::Handle,
    shutdown: CancellationToken,
    /// Cancelled by a [`StopMode::Requeue`] stop: cuts waiting calls short.
    cut_short: CancellationToken,
    /// Set with `shutdown`, for the per-message check: asking the token
    /// takes a lock that both workers would fight over for every message.
    stopping: AtomicBool,
    live_instances: AtomicUsize,
    last_error: Mutex<Option<String>>,
    stopped: tokio::sync::Notify,
    finished: AtomicBool,
    drain: AtomicBool,
    /// Messages never on disk (so without a marker) whose state writes
    /// committed but whose FIN was refused (they timed out meanwhile):
    /// finished without their handler when delivered again.
    applied_from_memory: Mutex<HashSet<MessageId>>,
}

impl PluginRun {
    /// Subscribes the plugin and starts its workers (from the runtime).
    pub fn start(
        link: Arc<PluginLink>,
        guest: CompiledGuest,
        executor: &WasmExecutor,
    ) -> anyhow::Result<Arc<PluginRun>> {
        let broker = link.broker.clone();
        let manifest = &link.manifest;
        let client = broker.connect_client(format!("plugin:{}", link.name));
        {
            let mut meta = client.meta.lock();
            meta.client_id = link.name.to_string();
            meta.hostname = "wasq-plugin".into();
            meta.user_agent = format!("wasq-plugin/{}", link.name);
        }
        let subscription = broker
            .subscribe(&manifest.topic, &manifest.channel, &client, 0)
            .map_err(|_| {
                anyhow::anyhow!(
                    "cannot subscribe to {}/{}",
                    manifest.topic,
                    manifest.channel
                )
            })?;
        client.state.set(ClientState::Subscribed);
        client
            .ready_count
            .store(manifest.max_in_flight, Ordering::Release);
        let run = Arc::new(PluginRun {
            backoff: Mutex::new(Backoff::new(manifest.backoff_min, manifest.backoff_max)),
            link,
            guest,
            client,
            subscription: Mutex::new(subscription),
            taking: Mutex::new(()),
            resubscribing: tokio::sync::Mutex::new(()),
            runtime: tokio::runtime::Handle::current(),
            shutdown: CancellationToken::new(),
            cut_short: CancellationToken::new(),
            stopping: AtomicBool::new(false),
            live_instances: AtomicUsize::new(0),
            last_error: Mutex::new(None),
            stopped: tokio::sync::Notify::new(),
            finished: AtomicBool::new(false),
            drain: AtomicBool::new(false),
            applied_from_memory: Mutex::new(HashSet::new()),
        });
        let workers = (0..run.link.manifest.concurrency)
            .map(|_| executor.spawn(run.clone().work()))
            .collect();
        tokio::spawn(run.clone().supervise(workers));
        if run.link.state.is_some() {
            tokio::spawn(run.clone().forget_old_markers());
        }
        tracing::info!(
            plugin = %run.link.name,
            topic = %run.link.manifest.topic,
            channel = %run.link.manifest.channel,
            concurrency = run.link.manifest.concurrency,
            "PLUGIN: consuming"
        );
        Ok(run)
    }

    /// Stops taking messages and waits for the workers (see [`StopMode`]);
    /// then unsubscribes, which returns anything still held to the channel.
    pub async fn stop(&self, mode: StopMode) {
        let stopped = self.stopped.notified();
        self.drain.store(mode == StopMode::Drain, Ordering::Release);
        self.stopping.store(true, Ordering::Release);
        if mode == StopMode::Requeue {
            self.cut_short.cancel();
        }
        self.shutdown.cancel();
        if !self.finished.load(Ordering::Acquire) {
            stopped.await;
        }
    }

    pub fn live_instances(&self) -> usize {
        self.live_instances.load(Ordering::Relaxed)
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }

    pub fn backoff_level(&self) -> u32 {
        self.backoff.lock().level()
    }

    /// Waits for the stop, then for the workers, and leaves the channel.
    async fn supervise(self: Arc<Self>, workers: Vec<tokio::task::JoinHandle<()>>) {
        self.shutdown.cancelled().await;
        for worker in workers {
            let _ = worker.await;
        }
        let (topic, channel) = self.subscription.lock().clone();
        self.link
            .broker
            .unsubscribe(&topic, &channel, self.client.id);
        self.link.broker.disconnect_client(self.client.id);
        self.finished.store(true, Ordering::Release);
        self.stopped.notify_waiters();
        tracing::info!(plugin = %self.link.name, "PLUGIN: stopped");
    }

    /// A worker: takes its share of the RDY from the channel, handles the
    /// batch with its instance (reused until it fails), settles it, and
    /// takes again; waits while there is nothing to take.
    async fn work(self: Arc<Self>) {
        let manifest = &self.link.manifest;
        let msg_timeout = self.link.broker.options.msg_timeout;
        // Each worker takes at most its share, so the batches of all
        // workers together stay within the RDY.
        let share = (manifest.max_in_flight as usize)
            .div_ceil(manifest.concurrency)
            .max(1);
        let mut instance: Option<GuestInstance> = None;
        let mut successes = Vec::new();
        let mut results = Vec::new();
        while !self.shutdown.is_cancelled() {
            if self.client.is_kicked() {
                self.resubscribe().await;
                continue;
            }
            let channel = self.subscription.lock().1.clone();
            // Registered before looking, so a message put or a capacity
            // freed between the look and the wait still wakes this worker.
            let mut messages_ready = std::pin::pin!(channel.messages_ready());
            let mut capacity_freed = std::pin::pin!(self.client.wake.notified());
            messages_ready.as_mut().enable();
            capacity_freed.as_mut().enable();
            let ((messages, locations), pause_ends) = {
                let _taking = self.taking.lock();
                let (ready_count, pause_ends) = self
                    .backoff
                    .lock()
                    .ready_count(Instant::now(), manifest.max_in_flight);
                self.client
                    .ready_count
                    .store(ready_count, Ordering::Release);
                let capacity = ready_count - self.client.in_flight.load(Ordering::Acquire);
                let want = (capacity.max(0) as usize).min(share);
                let taken = match (want, &self.link.state) {
                    (0, _) => Default::default(),
                    (_, Some(_)) => channel.take_located(&self.client, want, msg_timeout),
                    (_, None) => (channel.take(&self.client, want, msg_timeout, 0), Vec::new()),
                };
                (taken, pause_ends)
            };
            if messages.is_empty() {
                let pause = async {
                    match pause_ends {
                        Some(at) => tokio::time::sleep_until(at.into()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = self.shutdown.cancelled() => {}
                    _ = capacity_freed => {}
                    _ = messages_ready => {}
                    _ = pause => {}
                }
                continue;
            }
            self.handle_taken(
                &channel,
                messages,
                locations,
                &mut instance,
                &mut successes,
                &mut results,
            )
            .await;
        }
        if instance.is_some() {
            self.live_instances.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Handles what the worker took (in calls of one message, or of many
    /// to a module exporting `wasq_handle_batch`) and settles it;
    /// statistics are added once per take, always before the broker sees
    /// the outcomes they count: whoever sees the channel settled sees the
    /// counters final.
    /// `locations`: where each message sits in the disk queue, for a
    /// plugin with state (empty for one without).
    async fn handle_taken(
        &self,
        channel: &Arc<Channel>,
        messages: Vec<Message>,
        locations: Vec<Option<Location>>,
        instance: &mut Option<GuestInstance>,
        successes: &mut Vec<MessageId>,
        results: &mut Vec<Result<Outcome, GuestError>>,
    ) {
        let Some(state) = self.link.state.clone() else {
            self.handle_round(channel, &messages, instance, successes, results, None)
                .await;
            self.finish_successes(channel, successes, &[]);
            // Capacity came back: a worker that found none may take now.
            self.client.wake.notify_waiters();
            return;
        };
        self.handle_taken_with_state(
            channel, &state, messages, locations, instance, successes, results,
        )
        .await;
    }

    /// Handles `messages` (in calls of one message, or of many to a
    /// module exporting `wasq_handle_batch`) and settles them, but for the
    /// successes, whose FINs go out together afterwards; a plugin with
    /// state commits each call's writes first (`committing`).
    async fn handle_round(
        &self,
        channel: &Arc<Channel>,
        messages: &[Message],
        instance: &mut Option<GuestInstance>,
        successes: &mut Vec<MessageId>,
        results: &mut Vec<Result<Outcome, GuestError>>,
        mut committing: Option<Committing<'_>>,
    ) {
        let manifest = &self.link.manifest;
        let mut handled = 0;
        let count_handled = |handled: &mut u64| {
            self.link
                .stats
                .handled
                .fetch_add(std::mem::take(handled), Ordering::Relaxed);
        };
        let mut rest = messages;
        while let Some(first) = rest.first() {
            if self.stopping.load(Ordering::Acquire) && !self.drain.load(Ordering::Acquire) {
                // Left in flight: unsubscribing returns them to the channel.
                break;
            }
            if instance.is_none() {
                *instance = self.new_instance().await;
            }
            let Some(guest) = instance.as_mut() else {
                let no_instance = Err(GuestError::Abi("no instance".into()));
                handled += 1;
                count_handled(&mut handled);
                self.settle(channel, first, no_instance, successes).await;
                rest = &rest[1..];
                continue;
            };
            let started = Instant::now();
            let called = tokio::select! {
                intact = guest.handle_many(rest, &manifest.topic, &manifest.channel, results) => Some(intact),
                () = self.cut_short.cancelled() => None,
            };
            let Some(intact) = called else {
                // Dropped while waiting: the instance is not to be trusted;
                // the messages stay in flight and go back on unsubscribe.
                results.clear();
                *instance = None;
                self.live_instances.fetch_sub(1, Ordering::Relaxed);
                tracing::info!(plugin = %self.link.name, "PLUGIN: a waiting call cut short by the shutdown; its messages go back to the channel");
                break;
            };
            // Taken before a failed instance is dropped: the messages of a
            // batch that succeeded before the failure still commit theirs.
            let writes = committing.is_some().then(|| guest.take_state_writes());
            self.link
                .stats
                .record_handler_time(started.elapsed(), results.len());
            if results.len() > 1 {
                let batched = &self.link.stats.batched;
                batched.fetch_add(results.len() as u64, Ordering::Relaxed);
            }
            if !intact {
                *instance = None;
                self.live_instances.fetch_sub(1, Ordering::Relaxed);
            } else if guest.needs_recycling() {
                // Between two calls, before it runs out: nothing retried.
                tracing::info!(plugin = %self.link.name, memory_bytes = guest.memory_bytes(), limit_bytes = manifest.memory_limit_bytes, "PLUGIN: instance replaced: its memory keeps growing");
                PluginStats::bump(&self.link.stats.recycled);
                *instance = None;
                self.live_instances.fetch_sub(1, Ordering::Relaxed);
            }
            // Those after the outcomes were not handled (the instance
            // failed first): the next instance gets them.
            let offset = messages.len() - rest.len();
            let (done, later) = rest.split_at(results.len());
            let keep = match (&mut committing, writes) {
                (Some(committing), Some(writes)) => {
                    self.commit_state(committing, offset, done, results, writes)
                        .await
                }
                _ => vec![true; done.len()],
            };
            for ((message, result), keep) in done.iter().zip(results.drain(..)).zip(keep) {
                handled += 1;
                if !keep {
                    // Handled again in the next round.
                    continue;
                }
                if !matches!(result, Ok(Outcome::Success)) {
                    // Settled at once (REQ or dead letter), not with the batch.
                    count_handled(&mut handled);
                }
                self.settle(channel, message, result, successes).await;
            }
            rest = later;
        }
        count_handled(&mut handled);
    }

    /// The channel was deleted under the plugin: subscribe again (creating
    /// it anew), as a reconnecting NSQ client would. One worker does it;
    /// the others wait for it and carry on.
    async fn resubscribe(&self) {
        let Ok(_resubscribing) = self.resubscribing.try_lock() else {
            drop(self.resubscribing.lock().await);
            return;
        };
        if !self.client.is_kicked() {
            return;
        }
        let manifest = &self.link.manifest;
        tracing::warn!(plugin = %self.link.name, "PLUGIN: channel deleted; subscribing again");
        let cancelled = tokio::select! {
            _ = self.shutdown.cancelled() => true,
            _ = tokio::time::sleep(RESUBSCRIBE_DELAY) => false,
        };
        if cancelled {
            return;
        }
        self.client.rearm();
        let subscribed = {
            // Subscribing may create the channel, which starts its tasks
            // on the broker's runtime.
            let _runtime = self.runtime.enter();
            self.link
                .broker
                .subscribe(&manifest.topic, &manifest.channel, &self.client, 0)
        };
        match subscribed {
            Ok(subscription) => *self.subscription.lock() = subscription,
            Err(_) => {
                *self.last_error.lock() =
                    Some("cannot subscribe again after channel deletion".into())
            }
        }
    }

    /// FINs `successes`. Those of `unmarked` (their state writes committed,
    /// and they carry no marker: they were never on disk) whose FIN is
    /// refused are remembered, to be finished without their handler when
    /// they come back.
    fn finish_successes(
        &self,
        channel: &Channel,
        successes: &mut Vec<MessageId>,
        unmarked: &[MessageId],
    ) {
        if successes.is_empty() {
            return;
        }
        let stats = &self.link.stats;
        // Counted first (see handle_taken); the few a FIN refuses (timed
        // out meanwhile, so delivered again) are taken back.
        let expected = successes.len();
        stats.finished.fetch_add(expected as u64, Ordering::Relaxed);
        let finished = channel.finish_many(&self.client, successes, |id, _| {
            if unmarked.contains(id) {
                self.applied_from_memory.lock().insert(*id);
            }
        });
        stats
            .finished
            .fetch_sub(expected.saturating_sub(finished) as u64, Ordering::Relaxed);
        successes.clear();
        self.backoff.lock().on_success(Instant::now());
    }

    async fn new_instance(&self) -> Option<GuestInstance> {
        match self.guest.instantiate(self.link.clone()).await {
            Ok(instance) => {
                self.live_instances.fetch_add(1, Ordering::Relaxed);
                Some(instance)
            }
            Err(e) => {
                tracing::error!(plugin = %self.link.name, error = %e, "PLUGIN: cannot create an instance");
                *self.last_error.lock() = Some(format!("cannot create an instance: {e}"));
                tokio::time::sleep(INSTANCE_RETRY).await;
                None
            }
        }
    }

    /// Turns a handler's result into FIN, REQ or dead-letter. Successes
    /// are only collected: the batch's FINs go out together afterwards.
    async fn settle(
        &self,
        channel: &Arc<Channel>,
        message: &Message,
        result: Result<Outcome, GuestError>,
        successes: &mut Vec<MessageId>,
    ) {
        let stats = &self.link.stats;
        let manifest = &self.link.manifest;
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(error) => {
                PluginStats::bump(if error == GuestError::Timeout {
                    &stats.timeouts
                } else {
                    &stats.traps
                });
                tracing::warn!(plugin = %self.link.name, id = %message.id, error = %error, "PLUGIN: handler failed; instance replaced");
                *self.last_error.lock() = Some(error.to_string());
                Outcome::Retry
            }
        };
        let delay = match outcome {
            Outcome::Success => {
                successes.push(message.id);
                return;
            }
            Outcome::Fatal => {
                self.dead_letter(channel, message, "the handler returned FATAL")
                    .await;
                return;
            }
            Outcome::Retry => Backoff::delay_for(
                manifest.backoff_min,
                manifest.backoff_max,
                u32::from(message.attempts),
            ),
            Outcome::RetryAfter(delay) => delay.min(self.link.broker.options.max_req_timeout),
        };
        self.backoff.lock().on_failure(Instant::now());
        if message.attempts >= manifest.max_attempts {
            let reason = format!(
                "retried {} times (max_attempts {})",
                message.attempts, manifest.max_attempts
            );
            self.dead_letter(channel, message, &reason).await;
        } else {
            PluginStats::bump(&stats.requeued);
            if channel.requeue(&self.client, &message.id, delay).is_err() {
                stats.requeued.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Publishes the body unchanged to the dead-letter topic, then FINs.
    /// If that publish fails the message is requeued: it is never dropped.
    async fn dead_letter(&self, channel: &Arc<Channel>, message: &Message, reason: &str) {
        let manifest = &self.link.manifest;
        let published = self
            .link
            .broker
            .publish_and_wait(
                &manifest.dead_letter_topic,
                &[&message.body],
                Duration::ZERO,
            )
            .await;
        match published {
            Ok(()) => {
                let dead_lettered = &self.link.stats.dead_lettered;
                PluginStats::bump(dead_lettered);
                if channel.finish(&self.client, &message.id).is_err() {
                    dead_lettered.fetch_sub(1, Ordering::Relaxed);
                }
                tracing::warn!(
                    plugin = %self.link.name,
                    id = %message.id,
                    dead_letter_topic = %manifest.dead_letter_topic,
                    "PLUGIN: dead-lettered: {reason}"
                );
            }
            Err(e) => {
                tracing::error!(plugin = %self.link.name, id = %message.id, error = %e, "PLUGIN: cannot dead-letter; requeued");
                let _ = channel.requeue(&self.client, &message.id, manifest.backoff_min);
            }
        }
    }
}
