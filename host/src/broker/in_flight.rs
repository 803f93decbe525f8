//! Messages sent to a consumer and not yet acknowledged, ordered by deadline.
//!
//! A map by id answers FIN/REQ/TOUCH; the deadline index lets the channel's
//! timekeeper find expired messages without a timer per message. Both
//! shrink on every acknowledgement, so the structure stays as small as the
//! number of messages really in flight (bounded by the consumers' RDY).
//!
//! The deadline index is kept per *group*, not per message: every message
//! one `take` hands out gets the same deadline, so they join one group
//! (ids in delivery order and a count of those still in flight), and the
//! groups are ordered by (deadline, number). Taking and finishing a message
//! then costs a hash insert and a hash remove plus a counter, instead of a
//! B-tree insert and remove of its own; a group leaves the index when its
//! last message is acknowledged. An acknowledged id stays in its group's
//! list (it is skipped on expiry, as its entry names another group or is
//! gone) until the list is compacted, which happens once fewer than a
//! quarter of it are live, so a consumer that keeps one message of each
//! batch does not pin the other ids. The map uses foldhash: ids are made
//! by the broker, not chosen by clients, so a keyed DoS-resistant hash
//! buys nothing here and SipHash cost a fifth of the delivery path.

use std::collections::{BTreeMap, HashMap};
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

/// One delivered message, with who holds it and until when.
#[derive(Debug)]
pub struct InFlight {
    pub message: Message,
    /// Where the message sits in its queue's disk file, if it was read
    /// from there; the disk checkpoint does not pass it until it is done.
    pub disk: Option<Location>,
    /// The consumer holding it (its client id).
    pub owner_id: u64,
    pub deadline: Instant,
}

/// A group's place in the deadline index: its deadline, then its number.
type GroupKey = (Instant, u64);

#[derive(Debug)]
struct Stored {
    entry: InFlight,
    group: u64,
}

/// Messages sharing one deadline.
#[derive(Debug, Default)]
struct Group {
    /// In delivery order; may include ids since acknowledged or moved.
    ids: Vec<MessageId>,
    /// How many of `ids` are still in flight in this group.
    live: usize,
}

/// Below this many ids a group's list is never compacted.
const COMPACT_MIN: usize = 64;

#[derive(Debug, Default)]
pub struct InFlightQueue {
    by_id: HashMap<MessageId, Stored, foldhash::fast::RandomState>,
    /// Every group but the open one, by (deadline, number).
    by_deadline: BTreeMap<GroupKey, Group>,
    /// The group made last, kept out of `by_deadline`: the messages of a
    /// take join it without a B-tree search (one search a message was 3 %
    /// of the broker's instructions, callgrind). It goes into the index
    /// when the next group is made, or before the index is walked.
    open: Option<(GroupKey, Group)>,
    next_group: u64,
}

impl InFlightQueue {
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn insert(&mut self, entry: InFlight) -> Result<(), InFlightError> {
        let id = entry.message.id;
        // One hash lookup: the vacant entry is filled after joining a group.
        let std::collections::hash_map::Entry::Vacant(vacant) = self.by_id.entry(id) else {
            return Err(InFlightError::AlreadyInFlight);
        };
        let group = join_group_of(
            &mut self.by_deadline,
            &mut self.open,
            &mut self.next_group,
            id,
            entry.deadline,
        );
        vacant.insert(Stored { entry, group });
        Ok(())
    }

    /// Puts the open group into the index, before the index is walked.
    fn close_open_group(&mut self) {
        if let Some((key, group)) = self.open.take() {
            self.by_deadline.insert(key, group);
        }
    }

    /// Counts `id` out of its group; drops the group once none is left,
    /// compacts its list once mostly stale.
    fn leave_group(&mut self, deadline: Instant, group: u64) {
        let key = (deadline, group);
        let (members, indexed) = match &mut self.open {
            Some((open, members)) if *open == key => (members, false),
            _ => match self.by_deadline.get_mut(&key) {
                Some(members) => (members, true),
                None => return,
            },
        };
        members.live -= 1;
        if members.live == 0 {
            if indexed {
                self.by_deadline.remove(&key);
            } else {
                self.open = None;
            }
        } else if members.ids.len() >= COMPACT_MIN && members.live * 4 < members.ids.len() {
            let by_id = &self.by_id;
            members
                .ids
                .retain(|id| by_id.get(id).is_some_and(|s| s.group == group));
            members.ids.shrink_to_fit();
        }
    }

    /// Removes a message its owner acknowledges (FIN or REQ).
    pub fn remove(&mut self, owner_id: u64, id: &MessageId) -> Result<InFlight, InFlightError> {
        // One hash lookup on the common path: remove, and put it back in
        // the rare case the owner is wrong.
        let stored = self.by_id.remove(id).ok_or(InFlightError::NotInFlight)?;
        if stored.entry.owner_id != owner_id {
            self.by_id.insert(*id, stored);
            return Err(InFlightError::NotOwner);
        }
        self.leave_group(stored.entry.deadline, stored.group);
        self.by_id.release_spare();
        Ok(stored.entry)
    }

    /// The message `owner_id` holds as `id`, if it does.
    pub fn get(&self, owner_id: u64, id: &MessageId) -> Option<&InFlight> {
        self.by_id
            .get(id)
            .map(|stored| &stored.entry)
            .filter(|entry| entry.owner_id == owner_id)
    }

    /// Adds `id` to the group of `deadline` ([`join_group_of`]).
    fn join_group(&mut self, id: MessageId, deadline: Instant) -> u64 {
        join_group_of(
            &mut self.by_deadline,
            &mut self.open,
            &mut self.next_group,
            id,
            deadline,
        )
    }

    /// Moves a message's deadline (TOUCH).
    pub fn touch(
        &mut self,
        owner_id: u64,
        id: &MessageId,
        deadline: Instant,
    ) -> Result<(), InFlightError> {
        let stored = self.by_id.get(id).ok_or(InFlightError::NotInFlight)?;
        if stored.entry.owner_id != owner_id {
            return Err(InFlightError::NotOwner);
        }
        let (old_deadline, old_group) = (stored.entry.deadline, stored.group);
        let group = self.join_group(*id, deadline);
        if let Some(stored) = self.by_id.get_mut(id) {
            stored.entry.deadline = deadline;
            stored.group = group;
        }
        self.leave_group(old_deadline, old_group);
        Ok(())
    }

    /// The earliest deadline, if any message is in flight.
    pub fn next_deadline(&self) -> Option<Instant> {
        let indexed = self.by_deadline.keys().next();
        let open = self.open.as_ref().map(|(key, _)| key);
        indexed
            .into_iter()
            .chain(open)
            .min()
            .map(|(deadline, _)| *deadline)
    }

    /// Removes and returns every message whose deadline is at or before `now`.
    pub fn pop_expired(&mut self, now: Instant) -> Vec<InFlight> {
        self.close_open_group();
        let mut expired = Vec::new();
        while let Some(entry) = self.by_deadline.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ((_, group), members) = entry.remove_entry();
            for id in members.ids {
                if self.by_id.get(&id).is_some_and(|s| s.group == group)
                    && let Some(stored) = self.by_id.remove(&id)
                {
                    expired.push(stored.entry);
                }
            }
        }
        self.by_id.release_spare();
        expired
    }

    /// Removes and returns every message held by one owner (it went away),
    /// oldest deadline first, and in delivery order within a deadline.
    pub fn remove_owner(&mut self, owner_id: u64) -> Vec<InFlight> {
        self.close_open_group();
        let by_id = &self.by_id;
        let ids: Vec<MessageId> = self
            .by_deadline
            .iter()
            .flat_map(|(&(_, group), members)| {
                members.ids.iter().filter(move |id| {
                    by_id
                        .get(*id)
                        .is_some_and(|s| s.group == group && s.entry.owner_id == owner_id)
                })
            })
            .copied()
            .collect();
        ids.iter()
            .filter_map(|id| self.remove(owner_id, id).ok())
            .collect()
    }

    /// Removes everything (channel emptied or deleted).
    pub fn drain(&mut self) -> Vec<InFlight> {
        self.by_deadline.clear();
        self.open = None;
        std::mem::take(&mut self.by_id)
            .into_values()
            .map(|stored| stored.entry)
            .collect()
    }
}

/// Adds `id` to the group of `deadline`: the open one if it has that
/// deadline (the common case: every message of a take has the same one),
/// or a new open group, the old one going into the index. A function of
/// the fields it needs, so that `insert` can hold the map's vacant entry.
fn join_group_of(
    by_deadline: &mut BTreeMap<GroupKey, Group>,
    open: &mut Option<(GroupKey, Group)>,
    next_group: &mut u64,
    id: MessageId,
    deadline: Instant,
) -> u64 {
    if let Some((key, members)) = open
        && key.0 == deadline
    {
        members.ids.push(id);
        members.live += 1;
        return key.1;
    }
    let key = (deadline, *next_group);
    *next_group += 1;
    let members = Group {
        ids: vec![id],
        live: 1,
    };
    if let Some((closed, old)) = open.replace((key, members)) {
        by_deadline.insert(closed, old);
    }
    key.1
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::Duration;

    fn entry(n: u8, owner_id: u64, deadline: Instant) -> InFlight {
        let mut id = [b'0'; 16];
        id[15] = n;
        InFlight {
            message: Message::new(MessageId(id), Bytes::from_static(b"x")),
            disk: None,
            owner_id,
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

    #[test]
    fn a_group_outlives_acknowledged_members_only_until_its_last_one() {
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs(1);
        let mut q = InFlightQueue::default();
        for n in 0..200u8 {
            q.insert(entry(n, 1, deadline)).unwrap();
        }
        assert!(
            q.by_deadline.is_empty(),
            "one take, one group: the open one"
        );
        for n in 0..199u8 {
            q.remove(1, &entry(n, 1, t0).message.id).unwrap();
        }
        let (_, group) = q.open.as_ref().unwrap();
        assert!(group.ids.len() < 64, "compacted: {} ids", group.ids.len());
        q.remove(1, &entry(199, 1, t0).message.id).unwrap();
        assert!(q.open.is_none() && q.by_deadline.is_empty() && q.next_deadline().is_none());
    }

    proptest::proptest! {
        /// The grouped index behaves as one (deadline, id) entry per message.
        #[test]
        fn matches_a_per_message_model(ops in proptest::collection::vec((0u8..6, 0u8..24, 1u64..3, 0u64..5), 1..300)) {
            let t0 = Instant::now();
            let at = |s: u64| t0 + Duration::from_secs(s);
            let mut q = InFlightQueue::default();
            let mut model: std::collections::BTreeMap<MessageId, (u64, Instant)> = Default::default();
            for (op, n, owner, secs) in ops {
                let id = entry(n, owner, t0).message.id;
                match op {
                    0 | 1 => {
                        let inserted = q.insert(entry(n, owner, at(secs))).is_ok();
                        proptest::prop_assert_eq!(inserted, !model.contains_key(&id));
                        model.entry(id).or_insert((owner, at(secs)));
                    }
                    2 => {
                        let expected = match model.get(&id) {
                            None => Err(InFlightError::NotInFlight),
                            Some((o, _)) if *o != owner => Err(InFlightError::NotOwner),
                            Some(_) => Ok(()),
                        };
                        proptest::prop_assert_eq!(q.remove(owner, &id).map(|_| ()), expected);
                        if expected.is_ok() { model.remove(&id); }
                    }
                    3 => {
                        let ok = q.touch(owner, &id, at(secs)).is_ok();
                        let expected = model.get(&id).is_some_and(|(o, _)| *o == owner);
                        proptest::prop_assert_eq!(ok, expected);
                        if ok { model.get_mut(&id).unwrap().1 = at(secs); }
                    }
                    4 => {
                        let mut got: Vec<MessageId> = q.pop_expired(at(secs)).iter().map(|e| e.message.id).collect();
                        got.sort();
                        let want: Vec<MessageId> = model.iter().filter(|(_, (_, d))| *d <= at(secs)).map(|(id, _)| *id).collect();
                        model.retain(|_, (_, d)| *d > at(secs));
                        proptest::prop_assert_eq!(got, want);
                    }
                    _ => {
                        let got = q.remove_owner(owner);
                        let deadlines: Vec<Instant> = got.iter().map(|e| e.deadline).collect();
                        proptest::prop_assert!(deadlines.is_sorted());
                        let mut got: Vec<MessageId> = got.iter().map(|e| e.message.id).collect();
                        got.sort();
                        let want: Vec<MessageId> = model.iter().filter(|(_, (o, _))| *o == owner).map(|(id, _)| *id).collect();
                        model.retain(|_, (o, _)| *o != owner);
                        proptest::prop_assert_eq!(got, want);
                    }
                }
                proptest::prop_assert_eq!(q.len(), model.len());
                proptest::prop_assert_eq!(q.next_deadline(), model.values().map(|(_, d)| *d).min());
            }
        }
    }
}
