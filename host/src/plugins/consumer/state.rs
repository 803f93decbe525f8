//! A running plugin with state: its rounds of messages commit each call's
//! writes before their FINs (state/), a conflict handles the call's
//! messages again, and messages whose writes already committed are
//! finished without their handler.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::PluginRun;
use crate::broker::channel::Channel;
use crate::broker::message::{Message, MessageId};
use crate::plugins::abi::Outcome;
use crate::plugins::instance::{GuestError, GuestInstance};
use crate::plugins::state::PluginState;
use crate::plugins::state::call::CallWrites;
use crate::plugins::state::commit::{Committed, Marker};
use crate::plugins::stats::PluginStats;
use wasq_storage::Location;

/// How many times a message whose state commit conflicted is handled
/// again at once before it goes back to the channel as a retry.
const MAX_RERUNS: u32 = 16;

/// How often a plugin with state forgets the markers of messages that
/// can no longer be delivered again.
const MARKER_UPKEEP: Duration = Duration::from_secs(5);

/// What a plugin with state needs while it handles a round of messages.
pub(super) struct Committing<'a> {
    state: &'a PluginState,
    /// Where each message of the round sits in the channel's disk queue
    /// (its marker; `None`: in memory only).
    locations: &'a [Option<Location>],
    /// Messages whose commit conflicted, with their locations: handled
    /// again next round.
    conflicted: &'a mut Vec<(Message, Option<Location>)>,
    /// Messages whose writes committed without a marker (not from disk).
    unmarked: &'a mut Vec<MessageId>,
}

impl PluginRun {
    /// Every [`MARKER_UPKEEP`], forgets the markers of messages the
    /// channel can no longer deliver again (before its durably saved read
    /// checkpoint), so they do not pile up.
    pub(super) async fn forget_old_markers(self: Arc<Self>) {
        let Some(state) = self.link.state.clone() else {
            return;
        };
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(MARKER_UPKEEP) => {}
            }
            let channel = self.subscription.lock().1.clone();
            let Some(checkpoint) = channel.saved_checkpoint() else {
                continue;
            };
            let (state, channel_name) = (state.clone(), self.link.manifest.channel.clone());
            let forgotten = tokio::task::spawn_blocking(move || {
                state
                    .store
                    .forget_applied_before(&state.name, &channel_name, checkpoint)
            })
            .await;
            match forgotten {
                Ok(Ok(count)) if count > 0 => {
                    tracing::debug!(plugin = %self.link.name, count, "STATE: forgot the markers of messages that cannot come back")
                }
                Ok(Err(e)) => {
                    tracing::warn!(plugin = %self.link.name, error = %e, "STATE: cannot forget old markers")
                }
                _ => {}
            }
        }
    }

    /// [`PluginRun::handle_taken`] for a plugin with state: rounds of
    /// calls, each committing before its messages' FINs, until no commit
    /// conflicts (or [`MAX_RERUNS`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn handle_taken_with_state(
        &self,
        channel: &Arc<Channel>,
        state: &Arc<PluginState>,
        messages: Vec<Message>,
        locations: Vec<Option<Location>>,
        instance: &mut Option<GuestInstance>,
        successes: &mut Vec<MessageId>,
        results: &mut Vec<Result<Outcome, GuestError>>,
    ) {
        let (mut round, mut locations) = self.skip_applied(state, messages, locations, successes);
        let mut unmarked = Vec::new();
        let mut reruns = 0;
        while !round.is_empty() {
            let mut conflicted = Vec::new();
            let committing = Committing {
                state,
                locations: &locations,
                conflicted: &mut conflicted,
                unmarked: &mut unmarked,
            };
            self.handle_round(
                channel,
                &round,
                instance,
                successes,
                results,
                Some(committing),
            )
            .await;
            if conflicted.is_empty() {
                break;
            }
            reruns += 1;
            if reruns > MAX_RERUNS {
                // Handled again and again while other instances change the
                // same keys: back to the channel, with the usual delay.
                for (message, _) in &conflicted {
                    self.settle(channel, message, Ok(Outcome::Retry), successes)
                        .await;
                }
                break;
            }
            // One of them may have been committed meanwhile by the worker
            // it timed out from: not again.
            let (messages, places) = conflicted.into_iter().unzip();
            (round, locations) = self.skip_applied(state, messages, places, successes);
        }
        self.finish_successes(channel, successes, &unmarked);
        self.client.wake.notify_waiters();
    }

    /// A plugin with state: the messages whose writes already committed
    /// (delivered again after a crash, or after their FIN was refused) are
    /// finished without calling the handler; the rest are returned, each
    /// with where it sits in the channel's disk queue (`locations`).
    fn skip_applied(
        &self,
        state: &PluginState,
        messages: Vec<Message>,
        locations: Vec<Option<Location>>,
        successes: &mut Vec<MessageId>,
    ) -> (Vec<Message>, Vec<Option<Location>>) {
        let mut from_memory = self.applied_from_memory.lock();
        if from_memory.is_empty() && locations.iter().all(Option::is_none) {
            // In memory only, none remembered: none can have committed.
            return (messages, locations);
        }
        // No message past the last marker has committed: only those
        // delivered again are looked up (all of them if it cannot be read).
        let last_marked = state
            .store
            .last_marked(&state.name, &self.link.manifest.channel)
            .inspect_err(|e| tracing::error!(plugin = %self.link.name, error = %e, "STATE: cannot read the last marker; looking up every message"))
            .ok();
        let mut rest = Vec::with_capacity(messages.len());
        let mut rest_locations = Vec::with_capacity(messages.len());
        for (message, location) in messages.into_iter().zip(locations) {
            let applied = match location {
                None => from_memory.remove(&message.id),
                Some(location) if last_marked.is_some_and(|last| Some(location) > last) => false,
                Some(location) => {
                    let marker = self.marker(message.id, location);
                    state
                        .store
                        .was_applied(&state.name, &marker)
                        .unwrap_or_else(|e| {
                            tracing::error!(plugin = %self.link.name, error = %e, "STATE: cannot look up whether a message was applied");
                            false
                        })
                }
            };
            if applied {
                PluginStats::bump(&self.link.stats.state.replayed);
                if location.is_some() {
                    tracing::info!(plugin = %self.link.name, id = %message.id, "STATE: delivered again after its writes committed; finished without calling the handler");
                }
                successes.push(message.id);
                continue;
            }
            rest.push(message);
            rest_locations.push(location);
        }
        (rest, rest_locations)
    }

    fn marker(&self, id: MessageId, location: Location) -> Marker {
        Marker {
            channel: self.link.manifest.channel.clone(),
            location,
            id,
        }
    }

    /// Commits the writes of a call's successful messages (before their
    /// FINs) and turns the results: a conflict takes them all out (to be
    /// handled again: each saw the call's view), a failed commit makes
    /// them retries.
    pub(super) async fn commit_state(
        &self,
        committing: &mut Committing<'_>,
        offset: usize,
        done: &[Message],
        results: &mut [Result<Outcome, GuestError>],
        writes: CallWrites,
    ) -> Vec<bool> {
        let mut keep = vec![true; done.len()];
        let successes: Vec<usize> = results
            .iter()
            .enumerate()
            .filter(|(_, result)| matches!(result, Ok(Outcome::Success)))
            .map(|(index, _)| index)
            .collect();
        // `done` starts at `offset` in the round.
        let location_of = |index: usize| committing.locations[offset + index];
        let marker_of = |index: usize| Some(self.marker(done[index].id, location_of(index)?));
        let Some((commit, writers)) = writes.commit(committing.state, &successes, marker_of) else {
            return keep;
        };
        let stats = &self.link.stats.state;
        match committing.state.committer.commit(vec![commit]).await {
            Ok(outcomes) if outcomes.first() == Some(&Committed::Conflict) => {
                let rerun = successes.len() as u64;
                stats.conflicts.fetch_add(rerun, Ordering::Relaxed);
                for &index in &successes {
                    let message = done[index].clone();
                    committing.conflicted.push((message, location_of(index)));
                    keep[index] = false;
                }
            }
            Ok(_) => {
                stats
                    .committed
                    .fetch_add(writers.len() as u64, Ordering::Relaxed);
                let unmarked = writers
                    .into_iter()
                    .filter(|&index| location_of(index).is_none());
                committing
                    .unmarked
                    .extend(unmarked.map(|index| done[index].id));
            }
            Err(error) => {
                *self.last_error.lock() = Some(format!("state commit failed: {error}"));
                for &index in &successes {
                    results[index] = Ok(Outcome::Retry);
                }
            }
        }
        keep
    }
}
