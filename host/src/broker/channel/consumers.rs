//! The consumers of a channel: joining, leaving (what they held goes back
//! at once) and the race-free retirement of an unused ephemeral channel.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Channel, Queued};
use crate::broker::client::Client;

/// Why a consumer could not join a channel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// The channel is being deleted (nsqd's text).
    #[error("exiting")]
    Exiting,
    /// `--max-channel-consumers` reached (nsqd's text).
    #[error("consumers for {topic}:{channel} exceeds limit of {limit}")]
    Full {
        topic: String,
        channel: String,
        limit: usize,
    },
}

impl Channel {
    /// Adds a consumer unless the channel is exiting or already has
    /// `limit` consumers (0: no limit).
    pub fn add_client(&self, client: Arc<Client>, limit: usize) -> Result<(), JoinError> {
        let mut clients = self.clients.lock();
        if self.is_exiting() {
            return Err(JoinError::Exiting);
        }
        if limit != 0 && clients.len() >= limit && !clients.contains_key(&client.id) {
            return Err(JoinError::Full {
                topic: self.topic_name.to_string(),
                channel: self.name.to_string(),
                limit,
            });
        }
        clients.insert(client.id, client);
        Ok(())
    }

    /// Removes a consumer and returns what it held to the front of the queue
    /// at once (nsqd waits for the timeout; nobody can FIN them any more).
    /// Returns how many consumers remain.
    pub fn remove_client(&self, client_id: u64) -> usize {
        let (leaving, remaining) = {
            let mut clients = self.clients.lock();
            let leaving = clients.remove(&client_id);
            (leaving, clients.len())
        };
        let returned = {
            let mut state = self.state.lock();
            let held = state.in_flight.remove_owner(client_id);
            let was_empty = state.ready.is_empty();
            let returned = !held.is_empty();
            if !held.is_empty()
                && let Some(client) = &leaving
            {
                client
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

    /// Tells consumers that `count` of the messages they held are no longer
    /// theirs (timed out, or the channel was emptied). A consumer that has
    /// left already needs no telling.
    pub(super) fn owners_lost(&self, lost: impl IntoIterator<Item = (u64, i64)>) {
        let clients = self.clients.lock();
        for (owner_id, count) in lost {
            if let Some(client) = clients.get(&owner_id) {
                client.lost_in_flight(count);
            }
        }
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
}
