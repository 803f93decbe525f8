//! Messages sent to a consumer and not yet acknowledged, ordered by deadline.
//!
//! A map by id answers FIN/REQ/TOUCH; an ordered set of (deadline, id) lets
//! the channel's timekeeper find expired messages without a timer per
//! message. Both shrink on every acknowledgement, so the structure stays as
//! small as the number of messages really in flight (bounded by the sum of
//! the consumers' RDY counts).

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use super::message::{Message, MessageId};
use super::spare_room::ReleaseSpare;
use wasq_storage::Location;

/// Why an acknowledgement was refused; the text is nsqd's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InFlightError {
    NotInFlight,
    NotOwner,
    AlreadyInFlight,
}

impl InFlightError {
    pub fn as_str(self) -> &'static str {
        match self {
            InFlightError::NotInFlight => "ID not in flight",
            InFlightError::NotOwner => "client does not own message",
            InFlightError::AlreadyInFlight => "ID already in flight",
        }
    }
}

impl std::fmt::Display for InFlightError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One delivered message, with who holds it (`O`) and until when.
#[derive(Debug)]
pub struct InFlight<O> {
    pub message: Message,
    /// Where the message sits in its queue's disk file, if it was read
    /// from there; the disk checkpoint does not pass it until it is done.
    pub disk: Option<Location>,
    pub owner_id: u64,
    pub owner: O,
    pub deadline: Instant,
}

#[derive(Debug)]
pub struct InFlightQueue<O> {
    by_id: HashMap<MessageId, InFlight<O>>,
    by_deadline: BTreeSet<(Instant, MessageId)>,
}

impl<O> Default for InFlightQueue<O> {
    fn default() -> Self {
        InFlightQueue {
            by_id: HashMap::new(),
            by_deadline: BTreeSet::new(),
        }
    }
}

impl<O> InFlightQueue<O> {
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn insert(&mut self, entry: InFlight<O>) -> Result<(), InFlightError> {
        let id = entry.message.id;
        if self.by_id.contains_key(&id) {
            return Err(InFlightError::AlreadyInFlight);
        }
        self.by_deadline.insert((entry.deadline, id));
        self.by_id.insert(id, entry);
        Ok(())
    }

    /// Removes a message its owner acknowledges (FIN or REQ).
    pub fn remove(&mut self, owner_id: u64, id: &MessageId) -> Result<InFlight<O>, InFlightError> {
        let entry = self.by_id.get(id).ok_or(InFlightError::NotInFlight)?;
        if entry.owner_id != owner_id {
            return Err(InFlightError::NotOwner);
        }
        let entry = self.by_id.remove(id).ok_or(InFlightError::NotInFlight)?;
        self.by_deadline.remove(&(entry.deadline, *id));
        self.by_id.release_spare();
        Ok(entry)
    }

    /// Moves a message's deadline (TOUCH).
    pub fn touch(
        &mut self,
        owner_id: u64,
        id: &MessageId,
        deadline: Instant,
    ) -> Result<(), InFlightError> {
        let entry = self.by_id.get_mut(id).ok_or(InFlightError::NotInFlight)?;
        if entry.owner_id != owner_id {
            return Err(InFlightError::NotOwner);
        }
        self.by_deadline.remove(&(entry.deadline, *id));
        entry.deadline = deadline;
        self.by_deadline.insert((deadline, *id));
        Ok(())
    }

    /// The earliest deadline, if any message is in flight.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.by_deadline.first().map(|(deadline, _)| *deadline)
    }

    /// Removes and returns every message whose deadline is at or before `now`.
    pub fn pop_expired(&mut self, now: Instant) -> Vec<InFlight<O>> {
        let mut expired = Vec::new();
        while let Some(&(deadline, id)) = self.by_deadline.first() {
            if deadline > now {
                break;
            }
            self.by_deadline.pop_first();
            if let Some(entry) = self.by_id.remove(&id) {
                expired.push(entry);
            }
        }
        self.by_id.release_spare();
        expired
    }

    /// Removes and returns every message held by one owner (it went away),
    /// oldest deadline first, and among equal deadlines in id order, which
    /// for the ids we make is publish order.
    pub fn remove_owner(&mut self, owner_id: u64) -> Vec<InFlight<O>> {
        let ids: Vec<MessageId> = self
            .by_deadline
            .iter()
            .map(|(_, id)| *id)
            .filter(|id| self.by_id.get(id).is_some_and(|e| e.owner_id == owner_id))
            .collect();
        ids.iter()
            .filter_map(|id| self.remove(owner_id, id).ok())
            .collect()
    }

    /// Removes everything (channel emptied or deleted).
    pub fn drain(&mut self) -> Vec<InFlight<O>> {
        self.by_deadline.clear();
        std::mem::take(&mut self.by_id).into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::Duration;

    fn entry(n: u8, owner_id: u64, deadline: Instant) -> InFlight<()> {
        let mut id = [b'0'; 16];
        id[15] = n;
        InFlight {
            message: Message::new(MessageId(id), Bytes::from_static(b"x")),
            disk: None,
            owner_id,
            owner: (),
            deadline,
        }
    }

    #[test]
    fn expiry_is_by_deadline_and_acks_remove() {
        let t0 = Instant::now();
        let mut q = InFlightQueue::default();
        q.insert(entry(b'a', 1, t0 + Duration::from_secs(3)))
            .unwrap();
        q.insert(entry(b'b', 1, t0 + Duration::from_secs(1)))
            .unwrap();
        q.insert(entry(b'c', 2, t0 + Duration::from_secs(2)))
            .unwrap();
        assert_eq!(q.next_deadline(), Some(t0 + Duration::from_secs(1)));

        let b_id = entry(b'b', 1, t0).message.id;
        assert_eq!(q.remove(2, &b_id).unwrap_err(), InFlightError::NotOwner);
        q.remove(1, &b_id).unwrap();
        assert_eq!(q.remove(1, &b_id).unwrap_err(), InFlightError::NotInFlight);

        let expired = q.pop_expired(t0 + Duration::from_millis(2500));
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].owner_id, 2);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn touch_moves_the_deadline() {
        let t0 = Instant::now();
        let mut q = InFlightQueue::default();
        let e = entry(b'a', 7, t0 + Duration::from_secs(1));
        let id = e.message.id;
        q.insert(e).unwrap();
        q.touch(7, &id, t0 + Duration::from_secs(10)).unwrap();
        assert!(q.pop_expired(t0 + Duration::from_secs(5)).is_empty());
        assert_eq!(q.pop_expired(t0 + Duration::from_secs(10)).len(), 1);
        assert!(q.is_empty());
    }

    #[test]
    fn an_owner_leaving_returns_only_its_messages() {
        let t0 = Instant::now();
        let mut q = InFlightQueue::default();
        q.insert(entry(b'a', 1, t0)).unwrap();
        q.insert(entry(b'b', 2, t0)).unwrap();
        q.insert(entry(b'c', 1, t0)).unwrap();
        assert_eq!(q.remove_owner(1).len(), 2);
        assert_eq!(q.len(), 1);
        assert_eq!(q.next_deadline(), Some(t0));
    }
}
