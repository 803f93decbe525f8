//! A consumer's answers about a message it holds: FIN (one, or a plugin's
//! batch), REQ (at once or after a delay) and TOUCH.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Channel, Queued};
use crate::broker::client::Client;
use crate::broker::in_flight::InFlightError;
use crate::broker::message::MessageId;

impl Channel {
    /// FIN: the consumer is done with the message.
    pub fn finish(&self, client: &Client, id: &MessageId) -> Result<(), InFlightError> {
        let mut refused = Ok(());
        self.finish_many(client, std::slice::from_ref(id), |_, e| refused = Err(e));
        refused
    }

    /// FIN for many messages of one consumer under one lock (a plugin's
    /// batch, or the FINs a connection read in one go). Returns how many
    /// were still in flight; `refused` hears about the others, in order.
    pub fn finish_many(
        &self,
        client: &Client,
        ids: &[MessageId],
        mut refused: impl FnMut(&MessageId, InFlightError),
    ) -> usize {
        let now = super::finish_time();
        let finished = {
            let mut state = self.state.lock();
            ids.iter()
                .filter(|id| match state.in_flight.remove(client.id, id) {
                    Ok(entry) => {
                        state.finished(entry, now);
                        true
                    }
                    Err(e) => {
                        refused(id, e);
                        false
                    }
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
        client: &Client,
        id: &MessageId,
        delay: Duration,
    ) -> Result<(), InFlightError> {
        let was_empty = {
            let mut state = self.state.lock();
            let entry = state.in_flight.remove(client.id, id)?;
            client.in_flight.fetch_sub(1, Ordering::AcqRel);
            client.requeue_count.fetch_add(1, Ordering::Relaxed);
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
}
