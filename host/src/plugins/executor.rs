//! The threads guests run on: one per CPU, apart from the broker's, each
//! driving a single-threaded tokio runtime of its own (a lane).
//!
//! Every instance of every plugin is a task here (see consumer.rs), and
//! every call into a guest runs on a fiber polled by one of these threads.
//! A guest that waits for the network is a suspended task, not a blocked
//! thread; a guest that computes holds its lane's thread, never one of
//! the broker's, so connections and timers stay on time whatever plugins
//! do (the house rule: Wasm never on the broker's async threads). A guest
//! computing for long yields its lane every few milliseconds
//! ([`super::instance::end_of_slice`]), so the other tasks there keep going.
//!
//! Why lanes and not one multi-threaded runtime: a webhook plugin wakes
//! tasks for every message (its worker, its HTTP connection's task), and a
//! work-stealing runtime wakes a parked sibling thread for most of them,
//! an interrupt and a context switch each. On a lane, a worker and its
//! connection (outbound HTTP keeps a pool per lane) wake each other on
//! one thread without a system call (bench/README.md, "Outbound HTTP":
//! wasqd's CPU per message against a 20 ms sink at concurrency 1000 fell
//! by a third). New tasks are dealt to the lanes in turn, so a plugin's
//! workers spread over every CPU; what a work-stealing runtime gave
//! besides, an idle thread taking over the tasks queued behind a guest
//! that computes, the guest's time slices give instead.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

thread_local! {
    /// The lane this thread drives; 0 on every other thread.
    static LANE: Cell<usize> = const { Cell::new(0) };
}

/// How many lanes an executor has: one per CPU.
pub fn lane_count() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// The lane of the calling thread (0 outside every lane), so that what a
/// task keeps per lane (outbound HTTP's connection pools) is its own lane's.
pub fn current_lane() -> usize {
    LANE.get()
}

pub struct WasmExecutor {
    lanes: Vec<Lane>,
    /// The lane the next task goes to, modulo their number.
    next: AtomicUsize,
}

struct Lane {
    handle: Handle,
    /// Dropped with the executor: the lane's thread then leaves its
    /// `block_on` and drops its runtime with every task on it, on its own
    /// (the last handle may go from within another runtime, where a
    /// runtime must not be dropped).
    _running: oneshot::Sender<()>,
}

impl WasmExecutor {
    pub fn start() -> std::io::Result<WasmExecutor> {
        let lanes = (0..lane_count())
            .map(|index| {
                let runtime = Builder::new_current_thread().enable_all().build()?;
                let handle = runtime.handle().clone();
                let (running, stopped) = oneshot::channel::<()>();
                std::thread::Builder::new()
                    .name(format!("wasm-{index}"))
                    .spawn(move || {
                        LANE.set(index);
                        let _ = runtime.block_on(stopped);
                    })?;
                Ok(Lane {
                    handle,
                    _running: running,
                })
            })
            .collect::<std::io::Result<Vec<Lane>>>()?;
        Ok(WasmExecutor {
            lanes,
            next: AtomicUsize::new(0),
        })
    }

    /// Runs `future` (a plugin's instance, its calls) on the next lane.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let lane = self.next.fetch_add(1, Ordering::Relaxed) % self.lanes.len();
        self.lanes[lane].handle.spawn(future)
    }

    /// Runs `future` to completion from a thread outside every runtime
    /// (loading a version, `wasq plugin test`), with the first lane's
    /// timers and I/O behind it (its thread drives them meanwhile).
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.lanes[0].handle.block_on(future)
    }
}
