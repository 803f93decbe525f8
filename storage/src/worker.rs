//! A queue's disk work, done in order on blocking threads.
//!
//! The owner of a queue (a topic or channel, under its own lock) only
//! *submits* jobs: an append, a read, a sync, a clear. Submitting pushes
//! onto this worker's list and, if nobody is working it, starts a runner
//! on Tokio's blocking pool, which does the jobs one by one in the order
//! they came. So the owner's lock is never held across file I/O, no file
//! I/O runs on an async worker thread, and a read never overtakes the
//! append before it.
//!
//! One worker serves every incarnation of a queue name (a topic deleted
//! and created again), so the new one's files are opened only after the
//! old one's were deleted. Each job names the incarnation it is for and
//! is skipped if that incarnation is no longer the one open.
//!
//! A worker lives as long as its queue: once the last incarnation is
//! closed (its owner, a deleted topic or channel, is gone) and no job
//! waits, the worker leaves the [`Registry`], so a broker that creates and
//! deletes topics all day does not keep a worker for every name it ever
//! used.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::disk_queue::DiskQueue;

/// The worker of every queue name in use, and the names whose files may
/// exist (opening one of those scans its files; any other opens with no
/// I/O). Always locked before a worker's job list, never while a job runs
/// file I/O.
#[derive(Debug, Default)]
pub struct Registry {
    pub workers: HashMap<String, Arc<Worker>>,
    /// Names whose files may exist, with their segments where the start-up
    /// scan listed them (`None`: closed in this run without being cleared;
    /// its segments are listed when it opens again).
    pub may_have_files: HashMap<String, Option<Vec<u64>>>,
}

/// The queue a job finds open, if it is still the job's incarnation.
pub type Job = Box<dyn FnOnce(&mut Slot) + Send>;

/// The open incarnation of the queue, if any.
#[derive(Debug, Default)]
pub struct Slot {
    open: Option<(u64, DiskQueue)>,
}

impl Slot {
    /// The queue, if `incarnation` is the one open.
    pub fn queue(&mut self, incarnation: u64) -> Option<&mut DiskQueue> {
        match &mut self.open {
            Some((open, queue)) if *open == incarnation => Some(queue),
            _ => None,
        }
    }

    /// Makes `queue` the open incarnation.
    pub fn install(&mut self, incarnation: u64, queue: DiskQueue) {
        self.open = Some((incarnation, queue));
    }

    /// Closes the queue if `incarnation` is the one open, returning it.
    fn close(&mut self, incarnation: u64) -> Option<DiskQueue> {
        match &self.open {
            Some((open, _)) if *open == incarnation => self.open.take().map(|(_, queue)| queue),
            _ => None,
        }
    }
}

#[derive(Default)]
struct Jobs {
    waiting: VecDeque<Job>,
    /// A runner is working the list.
    running: bool,
}

pub struct Worker {
    name: String,
    jobs: Mutex<Jobs>,
    /// Locked only by the runner, on a blocking thread.
    slot: Mutex<Slot>,
    runtime: tokio::runtime::Handle,
    registry: Weak<Mutex<Registry>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("name", &self.name).finish()
    }
}

impl Worker {
    /// A worker for queue `name`, with `open` installed if its queue needed
    /// no I/O to open (it has no files yet).
    pub fn new(
        name: &str,
        runtime: tokio::runtime::Handle,
        registry: Weak<Mutex<Registry>>,
        open: Option<(u64, DiskQueue)>,
    ) -> Arc<Worker> {
        Arc::new(Worker {
            name: name.to_string(),
            jobs: Mutex::new(Jobs::default()),
            slot: Mutex::new(Slot { open }),
            runtime,
            registry,
        })
    }

    /// Queues a job; it runs after every job submitted before it.
    pub fn submit(self: &Arc<Self>, job: Job) {
        let mut jobs = self.jobs.lock();
        jobs.waiting.push_back(job);
        if !jobs.running {
            jobs.running = true;
            let worker = self.clone();
            drop(jobs);
            self.runtime.spawn_blocking(move || worker.run());
        }
    }

    /// Closes incarnation `incarnation` after every job submitted before,
    /// noting in the registry whether files of the name may remain (a queue
    /// dropped without being cleared, at shutdown for example).
    pub fn close(self: &Arc<Self>, incarnation: u64) {
        let worker = self.clone();
        self.submit(Box::new(move |slot| {
            if let Some(queue) = slot.close(incarnation)
                && let Some(registry) = worker.registry.upgrade()
            {
                let mut registry = registry.lock();
                if queue.may_have_files() {
                    registry.may_have_files.insert(worker.name.clone(), None);
                } else {
                    registry.may_have_files.remove(&worker.name);
                }
            }
        }));
    }

    /// Works the list until it is empty.
    fn run(self: &Arc<Self>) {
        loop {
            let next = self.jobs.lock().waiting.pop_front();
            match next {
                Some(job) => job(&mut self.slot.lock()),
                None if self.stop() => return,
                None => {}
            }
        }
    }

    /// Ends the runner unless a job came in meanwhile (false then). With
    /// no queue open the worker leaves the registry too; the registry is
    /// locked before the job list, as `DiskStore::open` does, so no job can
    /// reach this worker through it in between. Jobs of a closed
    /// incarnation may still come from its owner's handle; they find no
    /// queue open and touch no file.
    fn stop(self: &Arc<Self>) -> bool {
        let closed = self.slot.lock().open.is_none();
        let registry = self.registry.upgrade().filter(|_| closed);
        let mut registry = registry.as_ref().map(|r| r.lock());
        let mut jobs = self.jobs.lock();
        if !jobs.waiting.is_empty() {
            return false;
        }
        jobs.running = false;
        if let Some(registry) = registry.as_mut()
            && registry
                .workers
                .get(&self.name)
                .is_some_and(|w| Arc::ptr_eq(w, self))
        {
            registry.workers.remove(&self.name);
        }
        true
    }

    /// The runtime whose blocking pool runs the jobs.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_run_one_at_a_time_in_order() {
        let worker = Worker::new("q", tokio::runtime::Handle::current(), Weak::new(), None);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let running = Arc::new(AtomicUsize::new(0));
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let mut done_tx = Some(done_tx);
        for n in 0..100 {
            let (seen, running) = (seen.clone(), running.clone());
            let done = (n == 99).then(|| done_tx.take().unwrap());
            worker.submit(Box::new(move |_slot| {
                assert_eq!(running.fetch_add(1, Ordering::SeqCst), 0, "overlap");
                seen.lock().push(n);
                running.fetch_sub(1, Ordering::SeqCst);
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }));
        }
        done_rx.await.unwrap();
        assert_eq!(*seen.lock(), (0..100).collect::<Vec<_>>());
    }
}
