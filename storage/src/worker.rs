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

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::disk_queue::DiskQueue;

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
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("name", &self.name).finish()
    }
}

impl Worker {
    pub fn new(name: &str, runtime: tokio::runtime::Handle) -> Arc<Worker> {
        Arc::new(Worker {
            name: name.to_string(),
            jobs: Mutex::new(Jobs::default()),
            slot: Mutex::new(Slot::default()),
            runtime,
        })
    }

    /// Installs a queue that needs no I/O to open (no files yet), before
    /// any job of its incarnation; safe because nobody else has it yet.
    pub fn install_now(&self, incarnation: u64, queue: DiskQueue) {
        self.slot.lock().install(incarnation, queue);
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

    /// Works the list until it is empty.
    fn run(&self) {
        loop {
            let job = {
                let mut jobs = self.jobs.lock();
                match jobs.waiting.pop_front() {
                    Some(job) => job,
                    None => {
                        jobs.running = false;
                        return;
                    }
                }
            };
            job(&mut self.slot.lock());
        }
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
        let worker = Worker::new("q", tokio::runtime::Handle::current());
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
