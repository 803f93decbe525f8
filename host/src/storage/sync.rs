//! Group commit: one fsync covers every write made before it started.
//!
//! Each disk queue counts its appends. A publisher that must not be
//! answered before its write is on stable storage waits for
//! [`SyncState::sync_to`] with its append's number. The first waiter
//! becomes the leader and fsyncs; whoever arrives meanwhile queues behind
//! it and usually finds, once it gets the lock, that the next fsync (or the
//! one just finished) already covers its write. So a burst of publishes
//! pays for one or two fsyncs, not one each.

use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

#[derive(Debug, Default)]
pub struct SyncState {
    /// The segment being appended to, and appends made so far.
    current: Mutex<(Option<Arc<File>>, u64)>,
    /// Appends known to be on stable storage.
    synced: AtomicU64,
    leader: tokio::sync::Mutex<()>,
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
        if !current.0.as_ref().is_some_and(|f| Arc::ptr_eq(f, file)) {
            current.0 = Some(file.clone());
        }
        current.1 += 1;
        current.1
    }

    /// The segment written so far was fsynced (on roll-over, or by a
    /// synchronous flush); later waiters need not fsync for it.
    pub fn mark_synced_through(&self, seq: u64) {
        self.synced.fetch_max(seq, Ordering::AcqRel);
    }

    pub fn written(&self) -> u64 {
        self.current.lock().1
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
    pub async fn sync_to(&self, seq: u64) -> std::io::Result<()> {
        if self.synced.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let _leader = self.leader.lock().await;
        if self.synced.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        // Let publishes that are being handled right now append first, so
        // this fsync covers them too instead of leaving them the next one.
        tokio::task::yield_now().await;
        let (file, upto) = self.snapshot();
        if let Some(file) = file {
            tokio::task::spawn_blocking(move || file.sync_data())
                .await
                .map_err(std::io::Error::other)??;
        }
        self.mark_synced_through(upto);
        Ok(())
    }

    /// Fsyncs everything written so far, blocking (shutdown, roll-over).
    pub fn sync_now(&self) -> std::io::Result<()> {
        let (file, upto) = self.snapshot();
        if let Some(file) = file {
            file.sync_data()?;
        }
        self.mark_synced_through(upto);
        Ok(())
    }

    /// Everything appended before this call is in the returned file or in
    /// earlier segments, which were fsynced when they were rolled over.
    fn snapshot(&self) -> (Option<Arc<File>>, u64) {
        let current = self.current.lock();
        (current.0.clone(), current.1)
    }
}

/// Waits for several tickets (one publish fanned out to several channels).
#[derive(Debug, Default)]
#[must_use = "a durable publish is acknowledged only after its sync"]
pub struct PendingSync(Vec<SyncTicket>);

impl PendingSync {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub async fn wait(self) -> std::io::Result<()> {
        for ticket in self.0 {
            ticket.wait().await?;
        }
        Ok(())
    }
}

impl Extend<SyncTicket> for PendingSync {
    fn extend<I: IntoIterator<Item = SyncTicket>>(&mut self, tickets: I) {
        self.0.extend(tickets);
    }
}

impl IntoIterator for PendingSync {
    type Item = SyncTicket;
    type IntoIter = std::vec::IntoIter<SyncTicket>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
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
}
