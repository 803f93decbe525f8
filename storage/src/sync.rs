//! Group commit: one fsync covers every write made before it started.
//!
//! Each disk queue counts its appends. A publisher that must not be
//! answered before its write is on stable storage waits for
//! [`SyncState::sync_to`] with its append's number. The first waiter
//! becomes the leader and fsyncs; whoever arrives meanwhile queues behind
//! it and usually finds, once it gets the lock, that the next fsync (or the
//! one just finished) already covers its write. So a burst of publishes
//! pays for one or two fsyncs, not one each.
//!
//! Publishers that each wait for their OK before sending again arrive
//! staggered, a round trip apart, so an fsync started at the first arrival
//! would leave the others to the next one. The leader therefore gives as
//! many waiters as the previous fsync released up to [`GATHER_LIMIT`] to
//! arrive before it fsyncs (as PostgreSQL's `commit_delay` does when other
//! transactions are active); with a single publisher it never waits.

use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// Longest a leader waits for the rest of the previous group.
const GATHER_LIMIT: Duration = Duration::from_micros(100);

#[derive(Debug, Default)]
pub struct SyncState {
    /// The files with unsynced appends and the appends made so far.
    current: Mutex<Written>,
    /// Appends known to be on stable storage.
    synced: AtomicU64,
    leader: tokio::sync::Mutex<()>,
    /// Tasks in [`SyncState::sync_to`] waiting for an fsync.
    waiting: AtomicU64,
    /// Waiters the last fsync covered: the group the next leader expects.
    last_group: AtomicU64,
    /// Signalled when a waiter arrives, for a gathering leader.
    arrivals: (Mutex<()>, Condvar),
}

/// What was written and not yet known to be synced.
#[derive(Debug, Default)]
struct Written {
    /// The segment being appended to.
    file: Option<Arc<File>>,
    /// Segments rolled over since the last fsync: an fsync covers them
    /// before the current one, so a roll-over itself never fsyncs (it
    /// happens inside an append, under its owner's lock).
    retired: Vec<Arc<File>>,
    /// Appends made so far.
    appends: u64,
}

impl Written {
    /// Every file the next fsync must cover, oldest first.
    fn files(&self) -> Vec<Arc<File>> {
        self.retired.iter().chain(&self.file).cloned().collect()
    }
}

/// Counts a waiter for as long as it waits.
struct Waiting<'a>(&'a SyncState);

impl<'a> Waiting<'a> {
    fn arrive(state: &'a SyncState) -> Waiting<'a> {
        state.waiting.fetch_add(1, Ordering::AcqRel);
        let _lock = state.arrivals.0.lock();
        state.arrivals.1.notify_all();
        Waiting(state)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A write a publisher waits for before answering.
#[derive(Debug, Clone)]
pub struct SyncTicket {
    state: Arc<SyncState>,
    seq: u64,
}

impl SyncTicket {
    pub async fn wait(self) -> std::io::Result<()> {
        self.state.sync_to(self.seq).await
    }
}

impl SyncState {
    /// Records one append to `file` and returns its number.
    pub fn appended(&self, file: &Arc<File>) -> u64 {
        let mut current = self.current.lock();
        if !current.file.as_ref().is_some_and(|f| Arc::ptr_eq(f, file)) {
            current.file = Some(file.clone());
        }
        current.appends += 1;
        current.appends
    }

    /// The segment being appended to is full; the next fsync covers it
    /// before the new one.
    pub fn retire(&self, file: Arc<File>) {
        let mut current = self.current.lock();
        if current.file.as_ref().is_some_and(|f| Arc::ptr_eq(f, &file)) {
            current.file = None;
        }
        current.retired.push(file);
    }

    /// Appends up to `seq` are on stable storage; later waiters need not
    /// fsync for them.
    fn mark_synced_through(&self, seq: u64) {
        self.synced.fetch_max(seq, Ordering::AcqRel);
    }

    pub fn written(&self) -> u64 {
        self.current.lock().appends
    }

    pub fn is_dirty(&self) -> bool {
        self.synced.load(Ordering::Acquire) < self.written()
    }

    pub fn ticket(self: &Arc<Self>, seq: u64) -> SyncTicket {
        SyncTicket {
            state: self.clone(),
            seq,
        }
    }

    /// Waits until append `seq` is on stable storage, fsyncing if nobody is.
    pub async fn sync_to(self: &Arc<Self>, seq: u64) -> std::io::Result<()> {
        if self.synced.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let _waiting = Waiting::arrive(self);
        let _leader = self.leader.lock().await;
        if self.synced.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let state = self.clone();
        let group = tokio::task::spawn_blocking(move || {
            state.gather();
            let group = state.waiting.load(Ordering::Acquire);
            state.sync_now().map(|()| group)
        })
        .await
        .map_err(std::io::Error::other)??;
        self.last_group.store(group, Ordering::Release);
        Ok(())
    }

    /// Waits (briefly) until as many waiters as the last fsync covered are
    /// here, so one fsync covers them all.
    fn gather(&self) {
        let expected = self.last_group.load(Ordering::Acquire);
        if expected <= 1 {
            return;
        }
        let deadline = Instant::now() + GATHER_LIMIT;
        let mut lock = self.arrivals.0.lock();
        while self.waiting.load(Ordering::Acquire) < expected {
            if self.arrivals.1.wait_until(&mut lock, deadline).timed_out() {
                return;
            }
        }
    }

    /// Fsyncs everything written so far, blocking: call it where blocking
    /// is allowed (a blocking thread, shutdown).
    pub fn sync_now(&self) -> std::io::Result<()> {
        // Everything appended before this point is in these files.
        let (files, upto) = {
            let current = self.current.lock();
            (current.files(), current.appends)
        };
        for file in &files {
            file.sync_data()?;
        }
        // Rolled-over segments now synced need no fsync again.
        self.current
            .lock()
            .retired
            .retain(|f| !files.iter().any(|synced| Arc::ptr_eq(f, synced)));
        self.mark_synced_through(upto);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_fsync_covers_every_earlier_append() {
        let file = Arc::new(tempfile::tempfile().unwrap());
        let state = Arc::new(SyncState::default());
        let first = state.appended(&file);
        let second = state.appended(&file);
        assert!(state.is_dirty());
        state.sync_to(first).await.unwrap();
        // The first sync covered both appends.
        assert!(!state.is_dirty());
        state.ticket(second).wait().await.unwrap();
    }

    #[tokio::test]
    async fn a_roll_over_is_synced_by_the_next_fsync_not_by_itself() {
        let (old, new) = (
            Arc::new(tempfile::tempfile().unwrap()),
            Arc::new(tempfile::tempfile().unwrap()),
        );
        let state = Arc::new(SyncState::default());
        state.appended(&old);
        state.retire(old.clone());
        let seq = state.appended(&new);
        assert!(state.is_dirty());
        assert_eq!(state.current.lock().files().len(), 2);
        state.ticket(seq).wait().await.unwrap();
        assert!(!state.is_dirty());
        assert!(state.current.lock().retired.is_empty());
    }

    #[tokio::test]
    async fn a_leader_expecting_a_group_goes_ahead_alone_after_a_moment() {
        let file = Arc::new(tempfile::tempfile().unwrap());
        let state = Arc::new(SyncState::default());
        state.last_group.store(4, Ordering::Release);
        let seq = state.appended(&file);
        let started = std::time::Instant::now();
        state.sync_to(seq).await.unwrap();
        assert!(!state.is_dirty());
        // Nobody else came: the next leader does not wait at all.
        assert_eq!(state.last_group.load(Ordering::Acquire), 1);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
