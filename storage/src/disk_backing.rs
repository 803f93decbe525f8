//! The broker's handle on a disk queue: [`DiskBacking`], a
//! [`BackingQueue`] whose every method returns at once. File work is a job
//! for the queue's [`Worker`] (in order, on a blocking thread); what the
//! owner must know without waiting (how many messages are held, which
//! locations are outstanding) is kept here, behind leaf locks that no I/O
//! ever holds.
//!
//! [`DiskStore`] opens them: it knows the settings, which queue names may
//! have files (those that had when the broker started, or were closed
//! without being cleared; only those are scanned when opened, any other
//! queue opens with no I/O at all), and the worker of every name in use.
//! Dropping a handle closes its queue; the worker goes with the last one.

use std::collections::BTreeSet;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::oneshot;
use wasq_wire::Message;

use crate::backing::BackingQueue;
use crate::checkpoint::Location;
use crate::disk_queue::{DiskQueue, DiskSettings, Outstanding};
use crate::files::scan_queues;
use crate::pending::{PendingRead, PendingWork, PendingWrite, ReadBatch};
use crate::worker::{Registry, Worker};

/// Opens disk queues for a broker.
#[derive(Debug)]
pub struct DiskStore {
    settings: Arc<DiskSettings>,
    runtime: tokio::runtime::Handle,
    registry: Arc<Mutex<Registry>>,
    next_incarnation: AtomicU64,
}

impl DiskStore {
    pub fn new(settings: Arc<DiskSettings>, runtime: tokio::runtime::Handle) -> DiskStore {
        DiskStore {
            settings,
            runtime,
            registry: Arc::default(),
            next_incarnation: AtomicU64::new(1),
        }
    }

    pub fn settings(&self) -> &DiskSettings {
        &self.settings
    }

    /// Makes everything every queue wrote durable, with one sync of the
    /// filesystem (after a shutdown's write-backs, which do not fsync).
    pub async fn sync_all(&self) -> io::Result<()> {
        let dir = self.settings.dir.clone();
        tokio::task::spawn_blocking(move || crate::files::sync_filesystem(&dir))
            .await
            .map_err(io::Error::other)?
    }

    /// Lists the queues that have files, with one read of the directory
    /// (blocking: call it at start-up on a blocking thread, before any
    /// queue is opened), and remembers their segments for their opening.
    pub fn scan(&self) -> BTreeSet<String> {
        let queues = scan_queues(&self.settings.dir);
        let names = queues.keys().cloned().collect();
        self.registry.lock().may_have_files = queues
            .into_iter()
            .map(|(name, segments)| (name, Some(segments)))
            .collect();
        names
    }

    /// Opens queue `name`: at once if it cannot have files, else by a
    /// recovery scan on its worker (until which it counts as non-empty,
    /// so whatever arrives meanwhile queues behind what is on disk).
    pub fn open(&self, name: &str) -> DiskBacking {
        let incarnation = self.next_incarnation.fetch_add(1, Ordering::Relaxed);
        let outstanding = Outstanding::default();
        let (worker, fresh, listed) = {
            let mut registry = self.registry.lock();
            match registry.workers.get(name) {
                // Still closing an earlier incarnation: list the files
                // after it.
                Some(worker) => (worker.clone(), false, None),
                None => {
                    // A name with no files and no worker: its queue opens
                    // with no I/O, installed before anyone can submit work.
                    // The new incarnation owns what the scan listed.
                    let listed = registry.may_have_files.remove(name);
                    let fresh = listed.is_none();
                    let listed = listed.flatten();
                    let queue = fresh.then(|| {
                        let queue =
                            DiskQueue::fresh(name, self.settings.clone(), outstanding.clone());
                        (incarnation, queue)
                    });
                    let registry_handle = Arc::downgrade(&self.registry);
                    let worker = Worker::new(name, self.runtime.clone(), registry_handle, queue);
                    registry.workers.insert(name.to_string(), worker.clone());
                    (worker, fresh, listed)
                }
            }
        };
        let counts = Arc::new(Mutex::new(Counts {
            opening: !fresh,
            ..Counts::default()
        }));
        if !fresh {
            let (name, settings, outstanding, counts) = (
                name.to_string(),
                self.settings.clone(),
                outstanding.clone(),
                counts.clone(),
            );
            worker.submit(Box::new(move |slot| {
                let queue = DiskQueue::open_sharing(&name, settings, outstanding, listed);
                let depth = queue.depth();
                slot.install(incarnation, queue);
                let mut counts = counts.lock();
                counts.on_disk = depth;
                counts.opening = false;
            }));
        }
        DiskBacking {
            worker,
            incarnation,
            counts,
            outstanding,
            changed: false,
        }
    }
}

/// How many messages a queue holds, as its owner sees them.
#[derive(Debug, Default)]
struct Counts {
    /// Bumped by every clear; work asked for before it is stale.
    generation: u64,
    /// In append jobs not yet done.
    queued: u64,
    /// On disk and unread, as of the last job done.
    on_disk: u64,
    /// Read by a job, not yet taken by the owner.
    in_transit: u64,
    /// The recovery scan has not finished.
    opening: bool,
}

impl Counts {
    /// Messages held and not yet taken by the owner.
    fn total(&self) -> u64 {
        self.queued + self.on_disk + self.in_transit
    }

    /// An append of `count` messages was done; `depth` is what is on disk.
    /// Both move in one step (under the lock), so the messages are never
    /// counted nowhere.
    fn appended(&mut self, generation: u64, count: u64, depth: u64) {
        if self.generation == generation {
            self.on_disk = depth;
            self.queued -= count.min(self.queued);
        }
    }

    /// A read took `count` messages off the disk, now in transit.
    fn read(&mut self, generation: u64, count: u64, depth: u64) {
        if self.generation == generation {
            self.in_transit += count;
            self.on_disk = depth;
        }
    }
}

/// A disk queue seen from its owner; see the module doc.
#[derive(Debug)]
pub struct DiskBacking {
    worker: Arc<Worker>,
    incarnation: u64,
    counts: Arc<Mutex<Counts>>,
    outstanding: Outstanding,
    /// Appended to, read or finished since the last [`BackingQueue::sync`]:
    /// only such a queue has anything to fsync or a checkpoint to move, so
    /// the periodic sync of thousands of idle queues costs no file work.
    changed: bool,
}

impl Drop for DiskBacking {
    /// The owner (a deleted topic or channel, or the broker at shutdown)
    /// is gone: close the queue after the work already asked for.
    fn drop(&mut self) {
        self.worker.close(self.incarnation);
    }
}

impl DiskBacking {
    /// Runs `write`, which adds `count` messages to the queue, counting
    /// them in the depth from now on (queued until it is done, then on
    /// disk, in one step).
    fn counted_write<T: Send + 'static>(
        &mut self,
        count: usize,
        write: impl FnOnce(&mut DiskQueue) -> io::Result<T> + Send + 'static,
    ) -> PendingWork<T> {
        self.changed = true;
        let count = count as u64;
        let generation = {
            let mut counts = self.counts.lock();
            counts.queued += count;
            counts.generation
        };
        let counts = self.counts.clone();
        self.work(
            move |queue| {
                let result = write(queue);
                counts.lock().appended(generation, count, queue.depth());
                result
            },
            || Err(deleted()),
        )
    }

    /// Runs `work` on this incarnation's queue, in order, and answers.
    fn work<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut DiskQueue) -> io::Result<T> + Send + 'static,
        if_gone: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> PendingWork<T> {
        submit_work(&self.worker, self.incarnation, work, if_gone)
    }
}

/// Queues `work` for incarnation `incarnation` of the worker's queue
/// (`if_gone` answers if another incarnation is open by then).
fn submit_work<T: Send + 'static>(
    worker: &Arc<Worker>,
    incarnation: u64,
    work: impl FnOnce(&mut DiskQueue) -> io::Result<T> + Send + 'static,
    if_gone: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> PendingWork<T> {
    let (tx, rx) = oneshot::channel();
    worker.submit(Box::new(move |slot| {
        let result = match slot.queue(incarnation) {
            Some(queue) => work(queue),
            None => if_gone(),
        };
        let _ = tx.send(result);
    }));
    PendingWork(rx)
}

fn deleted() -> io::Error {
    io::Error::other("the queue was deleted")
}

impl BackingQueue for DiskBacking {
    fn append(
        &mut self,
        messages: &[Message],
        due_unix_nanos: Option<i64>,
    ) -> Option<PendingWrite> {
        if messages.is_empty() {
            return None;
        }
        let messages = messages.to_vec();
        let written = self.counted_write(messages.len(), move |queue| {
            queue.append(&messages, due_unix_nanos)
        });
        Some(PendingWrite(written))
    }

    fn read(&mut self, max: usize) -> Option<PendingRead> {
        if self.is_empty() || max == 0 {
            return None;
        }
        self.changed = true;
        let generation = self.counts.lock().generation;
        let counts = self.counts.clone();
        let read = self.work(
            move |queue| {
                let records = queue.read(max);
                counts
                    .lock()
                    .read(generation, records.len() as u64, queue.depth());
                Ok(ReadBatch {
                    generation,
                    records,
                })
            },
            move || {
                Ok(ReadBatch {
                    generation,
                    records: Vec::new(),
                })
            },
        );
        Some(PendingRead(read))
    }

    fn delivered(&mut self, batch: &ReadBatch) -> bool {
        let mut counts = self.counts.lock();
        if batch.generation != counts.generation {
            return false;
        }
        let taken = batch.records.len() as u64;
        counts.in_transit -= taken.min(counts.in_transit);
        true
    }

    fn finish(&mut self, location: &Location) {
        self.changed = true;
        self.outstanding.remove(location);
    }

    fn depth(&self) -> u64 {
        self.counts.lock().total()
    }

    fn saved_checkpoint(&self) -> Option<Location> {
        self.outstanding.durable_checkpoint()
    }

    fn is_empty(&self) -> bool {
        let counts = self.counts.lock();
        !counts.opening && counts.total() == 0
    }

    fn sync(&mut self) -> PendingWork<()> {
        if !std::mem::take(&mut self.changed) {
            return PendingWork::ready(Ok(()));
        }
        // The fsync is group commit's (it never holds up the worker's
        // appends); then the checkpoint, on the worker.
        let state = self.work(|queue| Ok(Some(queue.sync_state())), || Ok(None));
        let worker = self.worker.clone();
        let incarnation = self.incarnation;
        let (tx, rx) = oneshot::channel();
        let task = async move {
            let result = async {
                let Some(state) = state.wait().await? else {
                    return Ok(()); // deleted meanwhile: nothing to keep
                };
                if state.is_dirty() {
                    state.sync_to(state.written()).await?;
                }
                submit_work(&worker, incarnation, DiskQueue::save_checkpoint, || Ok(()))
                    .wait()
                    .await
            }
            .await;
            let _ = tx.send(result);
        };
        self.worker.runtime().spawn(task);
        PendingWork(rx)
    }

    fn write_back(
        &mut self,
        messages: Vec<(Message, Option<i64>)>,
        forget: Vec<Location>,
    ) -> PendingWork<usize> {
        // Most queues of a large broker have nothing on disk to write or
        // move: no job for those.
        if messages.is_empty() && forget.is_empty() && !self.changed {
            return PendingWork::ready(Ok(0));
        }
        self.work(move |queue| queue.write_back(&messages, &forget), || Ok(0))
    }

    fn put_back(&mut self, messages: Vec<(Message, Option<i64>)>) -> PendingWork<()> {
        if messages.is_empty() {
            return PendingWork::ready(Ok(()));
        }
        self.counted_write(messages.len(), move |queue| {
            let records: Vec<(&Message, Option<i64>)> =
                messages.iter().map(|(m, due)| (m, *due)).collect();
            queue.put_back(&records)
        })
    }

    fn clear(&mut self) -> PendingWork<()> {
        {
            let mut counts = self.counts.lock();
            *counts = Counts {
                generation: counts.generation + 1,
                opening: counts.opening,
                ..Counts::default()
            };
        }
        self.work(
            |queue| {
                queue.clear();
                Ok(())
            },
            || Ok(()),
        )
    }

    fn settled(&mut self) -> PendingWork<()> {
        self.work(|_| Ok(()), || Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use wasq_wire::MessageId;

    fn store(dir: &std::path::Path) -> DiskStore {
        DiskStore::new(
            Arc::new(DiskSettings {
                dir: dir.to_path_buf(),
                max_bytes_per_file: 1 << 20,
                sync_every: 2500,
                max_payload: 1 << 20,
            }),
            tokio::runtime::Handle::current(),
        )
    }

    fn message(n: u8) -> Message {
        Message::new(MessageId([b'0' + n; 16]), Bytes::from(vec![b'a' + n]))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_and_reads_happen_in_order_off_the_caller_and_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let mut queue = store.open("t");
        // A queue made in this run is open (and empty) at once.
        assert!(queue.is_empty());
        let write = queue.append(&[message(0), message(1)], None).unwrap();
        // Counted from the moment it is asked for, before it is written.
        assert_eq!(queue.depth(), 2);
        let read = queue.read(10).unwrap();
        write.wait().await.unwrap();
        let batch = read.wait().await;
        // The read came after the append: it saw both.
        assert_eq!(batch.records.len(), 2);
        assert_eq!(queue.depth(), 2, "in transit until delivered");
        assert!(queue.delivered(&batch));
        assert!(queue.is_empty());
        for (_, location) in &batch.records {
            queue.finish(location);
        }
        queue.sync().wait().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_clear_makes_earlier_reads_stale_and_a_reopen_waits_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let mut queue = store.open("t");
        let _ = queue.append(&[message(0)], None).unwrap();
        let read = queue.read(10).unwrap();
        let cleared = queue.clear();
        assert_eq!(queue.depth(), 0);
        let batch = read.wait().await;
        assert!(!queue.delivered(&batch), "a batch from before the clear");
        cleared.wait().await.unwrap();
        // Created again: opened after the old files were deleted.
        let mut again = store.open("t");
        again.settled().wait().await.unwrap();
        assert!(again.is_empty());
        assert!(crate::files::queue_names(dir.path()).is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_queue_with_files_is_recovered_on_its_worker() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut queue = DiskQueue::open("t", store(dir.path()).settings.clone());
            queue.append(&[message(0), message(1)], None).unwrap();
            queue.flush().unwrap();
        }
        let store = store(dir.path());
        assert!(store.scan().contains("t"));
        let mut queue = store.open("t");
        queue.settled().wait().await.unwrap();
        assert_eq!(queue.depth(), 2);
        let batch = queue.read(1).unwrap().wait().await;
        assert_eq!(batch.records[0].0.message.body, "a");
        // Written back unforgotten: still outstanding, so the checkpoint
        // stays before it and a restart delivers it again.
        queue
            .write_back(Vec::new(), Vec::new())
            .wait()
            .await
            .unwrap();
        drop(queue);
        let mut reopened = DiskQueue::open("t", store.settings.clone());
        assert_eq!(reopened.depth(), 2);
        assert_eq!(reopened.read(10).len(), 2);
    }

    /// Waits until no worker serves `name` any more.
    async fn worker_gone(store: &DiskStore, name: &str) {
        for _ in 0..500 {
            if !store.registry.lock().workers.contains_key(name) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the worker of {name} is still registered");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deleted_queue_takes_its_worker_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let mut queue = store.open("t");
        let _ = queue.append(&[message(0)], None).unwrap();
        queue.clear().wait().await.unwrap();
        drop(queue);
        worker_gone(&store, "t").await;
        assert!(!store.registry.lock().may_have_files.contains_key("t"));
        // Made again: no files, so open at once.
        let again = store.open("t");
        assert!(again.is_empty());
        assert!(!again.counts.lock().opening);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_queue_closed_with_messages_is_recovered_when_opened_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let mut queue = store.open("t");
        let write = queue.append(&[message(0), message(1)], None).unwrap();
        write.wait().await.unwrap();
        drop(queue);
        worker_gone(&store, "t").await;
        assert!(store.registry.lock().may_have_files.contains_key("t"));
        let mut again = store.open("t");
        again.settled().wait().await.unwrap();
        assert_eq!(again.depth(), 2);
        let batch = again.read(10).unwrap().wait().await;
        assert_eq!(batch.records.len(), 2);
    }
}
