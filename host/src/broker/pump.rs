//! A topic's pump: moves the topic's disk backlog to its channels, one
//! batch at a time.
//!
//! The read is the topic's backing queue's work (its worker, a blocking
//! thread); the pump waits for it with no lock held, then fans the batch
//! out under the topic's lock, and waits again (for the channels' writes)
//! before finishing the batch on the topic's disk. So a batch leaves the
//! topic's disk (its checkpoint passes it) only once every channel has it,
//! synced in durable mode. The pump ends when the backlog is empty, the
//! topic is paused, deleted or stopped, or its last channel goes.

use std::sync::Weak;
use std::time::Duration;

use wasq_storage::{Location, PendingSync, ReadBatch, due_from_unix_nanos};

use super::message::now_nanos;
use super::topic::{Topic, fan_out};

/// Messages the pump moves from the topic's disk to its channels per turn.
const PUMP_BATCH: usize = 1024;

/// The pump's task.
pub(super) async fn run(topic: Weak<Topic>) {
    loop {
        let Some(read) = topic.upgrade().and_then(|t| next_batch(&t)) else {
            return;
        };
        let batch = match read {
            Next::Stashed(batch) => batch,
            Next::Reading(read) => read.wait().await,
        };
        let Some(strong) = topic.upgrade() else {
            return;
        };
        let Some((pending, locations)) = hand_on(&strong, batch) else {
            return;
        };
        drop(strong);
        let result = pending.wait().await;
        let Some(strong) = topic.upgrade() else {
            return;
        };
        match result {
            Ok(()) => {
                let mut state = strong.state.lock();
                for location in &locations {
                    state.backing.finish(location);
                }
            }
            Err(e) => {
                // The batch stays unfinished on the topic's disk, so a
                // restart delivers it again; try the next batch later.
                tracing::error!(topic = %strong.name, error = %e, "TOPIC: cannot move messages to its channels");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        drop(strong);
        tokio::task::yield_now().await;
    }
}

enum Next {
    /// A batch kept from before, when no channel was there to take it.
    Stashed(ReadBatch),
    Reading(wasq_storage::PendingRead),
}

/// Asks for the next batch, or stops the pump (`None`).
fn next_batch(topic: &Topic) -> Option<Next> {
    let mut state = topic.state.lock();
    let can_move = !topic.is_exiting() && !topic.is_paused() && !state.channels.is_empty();
    let next = if can_move {
        match state.stash.take() {
            Some(batch) => Some(Next::Stashed(batch)),
            None => state.backing.read(PUMP_BATCH).map(Next::Reading),
        }
    } else {
        None
    };
    if next.is_none() {
        topic.pump_stopped(&mut state);
    }
    next
}

/// Fans a batch out to the channels; returns their writes to wait for and
/// the batch's locations to finish after them, or `None` to stop. A stale
/// batch (the topic was emptied) is dropped; with no channel left it is
/// stashed for the next one; a stopped or deleted topic keeps it
/// unfinished on disk.
fn hand_on(topic: &Topic, batch: ReadBatch) -> Option<(PendingSync, Vec<Location>)> {
    let mut state = topic.state.lock();
    if topic.is_exiting() {
        topic.pump_stopped(&mut state);
        return None;
    }
    if state.channels.is_empty() {
        state.stash = Some(batch);
        topic.pump_stopped(&mut state);
        return None;
    }
    if !state.backing.delivered(&batch) {
        return Some((PendingSync::default(), Vec::new()));
    }
    let now = now_nanos();
    let mut pending = PendingSync::default();
    let mut locations = Vec::with_capacity(batch.records.len());
    let mut immediate = Vec::with_capacity(batch.records.len());
    for (stored, location) in batch.records {
        locations.push(location);
        match stored.due_unix_nanos {
            Some(due) if due > now => {
                let due = Some(due_from_unix_nanos(due));
                pending.extend([fan_out(state.channels.values(), vec![stored.message], due)]);
            }
            _ => immediate.push(stored.message),
        }
    }
    pending.extend([fan_out(state.channels.values(), immediate, None)]);
    Some((pending, locations))
}
