//! One task per channel wakes at the earliest in-flight deadline or
//! deferred due time and moves what is due back to the ready queue; no
//! timer per message.

use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{Channel, ChannelState, Queued};

impl Channel {
    /// Makes sure the timekeeper wakes no later than `at`.
    pub(super) fn schedule_timer(&self, state: &mut ChannelState, at: Instant) {
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
            let expired: Vec<_> = state
                .in_flight
                .pop_expired(now)
                .into_iter()
                .map(|entry| {
                    let owner = entry.owner_id;
                    state.ready.push_back(Queued::returned(entry));
                    owner
                })
                .collect();
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
        self.owners_lost(expired.into_iter().map(|owner| (owner, 1)));
        if became_ready {
            self.messages_ready.notify_waiters();
        }
        next
    }
}

/// One task per channel: sleeps until the earliest in-flight deadline or
/// deferred due time, then requeues what is due. Ends when the channel closes.
pub(super) async fn run_timekeeper(channel: Weak<Channel>, closed: CancellationToken) {
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
