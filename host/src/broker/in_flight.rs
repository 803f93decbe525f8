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
//!
//! The map's slots are most of what a held message costs beyond its body
//! (a hash table is 45-90 % full, so each message pays for 1.1-2.3
//! slots), so an entry is kept packed ([`Stored`]): the id only inside the
//! message (a `HashTable`, not a map with the id again as its key), the
//! deadline as nanoseconds from the queue's own origin, the disk place
//! without an `Option`'s tag ([`DiskPlace`]): 104 bytes instead of 136.

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use hashbrown::HashTable;

use super::disk_place::DiskPlace;
use super::message::{Message, MessageId};
use super::spare_room::shrunk_capacity;
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

/// An [`InFlight`] as the queue keeps it (see the module doc).
#[derive(Debug)]
struct Stored {
    message: Message,
    disk: DiskPlace,
    owner_id: u64,
    /// [`InFlight::deadline`] in nanoseconds from the queue's origin.
    deadline: i64,
    group: u64,
}

const _: () = assert!(std::mem::size_of::<Stored>() == 104);

/// Deadlines as the queue keeps them: nanoseconds before or after its
/// origin (±292 years).
#[derive(Debug, Clone, Copy)]
struct Clock {
    origin: Instant,
}

impl Clock {
    fn to_nanos(self, at: Instant) -> i64 {
        match at.checked_duration_since(self.origin) {
            Some(after) => after.as_nanos() as i64,
            None => -(self.origin.duration_since(at).as_nanos() as i64),
        }
    }

    fn to_instant(self, nanos: i64) -> Instant {
        let offset = Duration::from_nanos(nanos.unsigned_abs());
        if nanos >= 0 {
            self.origin + offset
        } else {
            self.origin - offset
        }
    }
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

#[derive(Debug)]
pub struct InFlightQueue {
    by_id: HashTable<Stored>,
    hasher: foldhash::fast::RandomState,
    clock: Clock,
    /// Every group but the open one, by (deadline, number).
    by_deadline: BTreeMap<GroupKey, Group>,
    /// The group made last, kept out of `by_deadline`: the messages of a
    /// take join it without a B-tree search (one search a message was 3 %
    /// of the broker's instructions, callgrind). It goes into the index
    /// when the next group is made, or before the index is walked.
    open: Option<(GroupKey, Group)>,
    next_group: u64,
}

impl Default for InFlightQueue {
    fn default() -> InFlightQueue {
        InFlightQueue {
            by_id: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
            clock: Clock {
                origin: Instant::now(),
            },
            by_deadline: BTreeMap::new(),
            open: None,
            next_group: 0,
        }
    }
}

impl InFlightQueue {
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    fn hash(&self, id: &MessageId) -> u64 {
        self.hasher.hash_one(id)
    }

    fn find(&self, id: &MessageId) -> Option<&Stored> {
        self.by_id.find(self.hash(id), |s| s.message.id == *id)
    }

    /// `stored`'s group key.
    fn key_of(&self, stored: &Stored) -> GroupKey {
        (self.clock.to_instant(stored.deadline), stored.group)
    }

    /// The entry `stored` stands for.
    fn unpack(&self, stored: Stored) -> InFlight {
        InFlight {
            deadline: self.clock.to_instant(stored.deadline),
            disk: stored.disk.get(),
            owner_id: stored.owner_id,
            message: stored.message,
        }
    }

    pub fn insert(&mut self, entry: InFlight) -> Result<(), InFlightError> {
        let id = entry.message.id;
        let hash = self.hash(&id);
        let hasher = &self.hasher;
        // One hash lookup: the vacant slot is filled after joining a group.
        let hashbrown::hash_table::Entry::Vacant(vacant) = self.by_id.entry(
            hash,
            |s| s.message.id == id,
            |s| hasher.hash_one(s.message.id),
        ) else {
            return Err(InFlightError::AlreadyInFlight);
        };
        let group = join_group_of(
            &mut self.by_deadline,
            &mut self.open,
            &mut self.next_group,
            id,
            entry.deadline,
        );
        vacant.insert(Stored {
            deadline: self.clock.to_nanos(entry.deadline),
            disk: entry.disk.into(),
            owner_id: entry.owner_id,
            message: entry.message,
            group,
        });
        Ok(())
    }

    /// Puts the open group into the index, before the index is walked.
    fn close_open_group(&mut self) {
        if let Some((key, group)) = self.open.take() {
            self.by_deadline.insert(key, group);
        }
    }

    /// Counts a message out of its group `key`; drops the group once none
    /// is left, compacts its list once mostly stale.
    fn leave_group(&mut self, key: GroupKey) {
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
            let (by_id, hasher) = (&self.by_id, &self.hasher);
            let in_group = |id: &MessageId| {
                by_id
                    .find(hasher.hash_one(id), |s| s.message.id == *id)
                    .is_some_and(|s| s.group == key.1)
            };
            members.ids.retain(in_group);
            members.ids.shrink_to_fit();
        }
    }

    /// Removes the entry of `id` if `accept` takes it.
    fn take_if(
        &mut self,
        id: &MessageId,
        accept: impl FnOnce(&Stored) -> Result<(), InFlightError>,
    ) -> Result<Stored, InFlightError> {
        let hash = self.hash(id);
        let found = self
            .by_id
            .find_entry(hash, |s| s.message.id == *id)
            .map_err(|_| InFlightError::NotInFlight)?;
        accept(found.get())?;
        Ok(found.remove().0)
    }

    /// Gives the table's room back once it is mostly empty (as
    /// [`super::spare_room`] does for the other queues).
    fn release_spare(&mut self) {
        if let Some(capacity) = shrunk_capacity(self.by_id.len(), self.by_id.capacity()) {
            let hasher = &self.hasher;
            self.by_id
                .shrink_to(capacity, |s| hasher.hash_one(s.message.id));
        }
    }

    /// Removes a message its owner acknowledges (FIN or REQ).
    pub fn remove(&mut self, owner_id: u64, id: &MessageId) -> Result<InFlight, InFlightError> {
        let stored = self.take_if(id, |s| {
            if s.owner_id == owner_id {
                Ok(())
            } else {
                Err(InFlightError::NotOwner)
            }
        })?;
        self.leave_group(self.key_of(&stored));
        self.release_spare();
        Ok(self.unpack(stored))
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
        let stored = self.find(id).ok_or(InFlightError::NotInFlight)?;
        if stored.owner_id != owner_id {
            return Err(InFlightError::NotOwner);
        }
        let old = self.key_of(stored);
        let group = self.join_group(*id, deadline);
        let nanos = self.clock.to_nanos(deadline);
        let hash = self.hash(id);
        if let Some(stored) = self.by_id.find_mut(hash, |s| s.message.id == *id) {
            stored.deadline = nanos;
            stored.group = group;
        }
        self.leave_group(old);
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
                let in_group = |s: &Stored| {
                    if s.group == group {
                        Ok(())
                    } else {
                        Err(InFlightError::NotInFlight)
                    }
                };
                if let Ok(stored) = self.take_if(&id, in_group) {
                    expired.push(self.unpack(stored));
                }
            }
        }
        self.release_spare();
        expired
    }

    /// Removes and returns every message held by one owner (it went away),
    /// oldest deadline first, and in delivery order within a deadline.
    pub fn remove_owner(&mut self, owner_id: u64) -> Vec<InFlight> {
        self.close_open_group();
        let this = &*self;
        let ids: Vec<MessageId> = this
            .by_deadline
            .iter()
            .flat_map(|(&(_, group), members)| {
                members.ids.iter().filter(move |id| {
                    this.find(id)
                        .is_some_and(|s| s.group == group && s.owner_id == owner_id)
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
        let all = std::mem::take(&mut self.by_id);
        all.into_iter().map(|stored| self.unpack(stored)).collect()
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
    fn an_entry_comes_back_as_it_went_in() {
        let t0 = Instant::now();
        let mut q = InFlightQueue::default();
        let mut on_disk = entry(b'd', 3, t0 + Duration::from_nanos(1_234_567_891));
        on_disk.disk = Some(Location {
            segment: 4,
            offset: 160,
        });
        let id = on_disk.message.id;
        q.insert(on_disk).unwrap();
        q.insert(entry(b'm', 3, t0)).unwrap();
        let back = q.remove(3, &id).unwrap();
        assert_eq!(back.deadline, t0 + Duration::from_nanos(1_234_567_891));
        assert_eq!(back.disk.map(|l| (l.segment, l.offset)), Some((4, 160)));
        let earlier = q.remove(3, &entry(b'm', 3, t0).message.id).unwrap();
        assert_eq!(
            (earlier.deadline, earlier.disk),
            (t0, None),
            "a deadline before the queue's origin"
        );
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
