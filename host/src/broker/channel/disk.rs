//! The channel's disk side: reading its backlog back (a refill asks the
//! backing queue under the lock; a task takes the batch in when it
//! arrives), /empty, the shutdown write-back, and the periodic sync.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use wasq_storage::{
    Location, PendingWork, ReadBatch, StoredMessage, due_from_unix_nanos, due_to_unix_nanos,
};

use super::{Channel, ChannelState, Queued};
use crate::broker::message::{Message, now_nanos};
use crate::broker::queues::{Cleared, Held, held_records};

impl Channel {
    /// Asks the backing for up to `want` messages, unless a read is under
    /// way or nothing waits there; a task takes the batch into memory.
    pub(super) fn refill(&self, state: &mut ChannelState, want: usize) {
        if state.refilling || state.stopped {
            return;
        }
        let Some(read) = state.backing.read(want) else {
            return;
        };
        state.refilling = true;
        let channel = self.me.clone();
        self.runtime.spawn(async move {
            let batch = read.wait().await;
            if let Some(channel) = channel.upgrade() {
                channel.take_in(batch);
            }
        });
    }

    /// A refill's batch arrived: into the ready queue (deferred ones not
    /// yet due into the deferred queue), and the consumers are woken. A
    /// stale batch (the channel was emptied since) or one after shutdown is
    /// dropped; its messages stay unfinished on disk.
    fn take_in(&self, batch: ReadBatch) {
        {
            let mut state = self.state.lock();
            state.refilling = false;
            if state.stopped || !state.backing.delivered(&batch) {
                return;
            }
            let now = now_nanos();
            for (stored, location) in batch.records {
                let message = Queued::read_back(stored.message, location);
                match stored.due_unix_nanos {
                    Some(due) if due > now => {
                        let due = due_from_unix_nanos(due);
                        state.deferred.push(due, message);
                        self.schedule_timer(&mut state, due);
                    }
                    _ => state.ready.push_back(message),
                }
            }
        }
        self.messages_ready.notify_waiters();
    }

    /// Drops every queued, deferred and in-flight message (operator's
    /// /empty); the disk files are gone once the result completes.
    pub fn empty(&self) -> Cleared {
        let mut cleared = Cleared::default();
        let in_flight = {
            let mut state = self.state.lock();
            state.ready = VecDeque::new();
            state.deferred.clear();
            cleared.push(state.backing.clear());
            state.in_flight.drain()
        };
        let mut per_owner: HashMap<u64, i64> = HashMap::new();
        for entry in in_flight {
            *per_owner.entry(entry.owner_id).or_default() += 1;
        }
        self.owners_lost(per_owner);
        cleared
    }

    /// Hands over every message held in memory (ready, in flight, deferred
    /// with its due time) for the held-messages file, so that a restart
    /// finds them all; in-flight ones are delivered again. Those read from
    /// disk are forgotten there (the file has them now). Only for
    /// shutdown: the channel holds nothing after, and takes nothing more
    /// from disk.
    pub fn persist(&self) -> Held {
        let mut state = self.state.lock();
        state.stopped = true;
        let ChannelState {
            ready,
            in_flight,
            deferred,
            backing,
            ..
        } = &mut *state;
        let mut held = Vec::new();
        let mut forget = Vec::new();
        let mut keep = |message: Message, due: Option<Instant>, disk: Option<Location>| {
            held.push((message, due.map(due_to_unix_nanos)));
            forget.extend(disk);
        };
        for entry in in_flight.drain() {
            keep(entry.message, None, entry.disk);
        }
        for queued in ready.drain(..) {
            keep(queued.message, None, queued.disk.get());
        }
        for (due, queued) in deferred.drain() {
            keep(queued.message, Some(due), queued.disk.get());
        }
        Held::take(backing.as_mut(), self.ephemeral, held, forget)
    }

    /// Start-up: the messages this channel held at the last shutdown go
    /// back on its disk, read in as consumers ask for them.
    pub fn put_back_held(&self, messages: Vec<StoredMessage>) -> PendingWork<()> {
        let written = self.state.lock().backing.put_back(held_records(messages));
        self.messages_ready.notify_waiters();
        written
    }

    /// The read checkpoint last saved to disk: after a crash, messages
    /// before it are never delivered again. `None` without a disk queue.
    pub fn saved_checkpoint(&self) -> Option<Location> {
        self.state.lock().backing.saved_checkpoint()
    }

    /// Fsyncs the disk queue if it has unsynced writes and saves its read
    /// checkpoint (every `--sync-timeout`); wait for it outside the lock.
    pub fn sync(&self) -> PendingWork<()> {
        self.state.lock().backing.sync()
    }

    /// Completes once the disk queue did everything asked of it so far
    /// (the recovery scan of a restored channel).
    pub fn settled(&self) -> PendingWork<()> {
        self.state.lock().backing.settled()
    }
}
