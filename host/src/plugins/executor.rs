//! The threads guests run on: a multi-threaded tokio runtime of its own,
//! one thread per CPU, apart from the broker's.
//!
//! Every instance of every plugin is a task here (see consumer.rs), and
//! every call into a guest runs on a fiber polled by one of these threads.
//! A guest that waits for the network is a suspended task, not a blocked
//! thread; a guest that computes holds one of these threads, never one of
//! the broker's, so connections and timers stay on time whatever plugins
//! do (the house rule: Wasm never on the broker's async threads).

use std::future::Future;

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::task::JoinHandle;

pub struct WasmExecutor {
    /// `Some` until dropped: shut down in the background, since the last
    /// handle may go from within another runtime, where blocking is not
    /// allowed.
    runtime: Option<Runtime>,
    handle: Handle,
}

impl WasmExecutor {
    pub fn start() -> std::io::Result<WasmExecutor> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let runtime = Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("wasm")
            .enable_all()
            .build()?;
        Ok(WasmExecutor {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }

    /// Runs `future` (a plugin's instance, its calls) on the guest threads.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    /// Runs `future` to completion from a thread outside every runtime
    /// (loading a version, `wasq plugin test`), with these threads' timers
    /// and I/O behind it.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.handle.block_on(future)
    }
}

impl Drop for WasmExecutor {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
