//! The HTTP and HTTPS API's threads: one single-thread Tokio runtime per
//! CPU for each listener, each serving the connections an acceptor on the
//! main runtime hands it in turn (over TLS: handshaking them first).
//!
//! Why single-thread runtimes: hyper hands a request's body to the handler
//! through a channel inside the connection's task, and the handler asking
//! for it wakes that same task while it runs. Tokio's multi-thread
//! scheduler treats such a wake as a yield and wakes a second worker to
//! take the task over: two more context switches per request, most of the
//! cost of an HTTP /pub on this kind of machine (bench/README.md: one
//! keep-alive connection, 15-20 k req/s before, 74-83 k after with the
//! CPUs awake). A single-thread runtime has no worker to wake.
//!
//! Why one per CPU: a single such thread caps the whole HTTP API at one
//! core, whatever the number of publishers (HTTP /mpub from 4 connections
//! kept it busy while the other core idled half the time). A connection
//! stays on the thread it was handed to, so one keep-alive connection is
//! served exactly as by a single thread.
//!
//! Handlers still run "in" the main runtime ([`in_main_runtime`]):
//! whatever they spawn (a new channel's tasks, a plugin compile) lives
//! there, not on an HTTP thread.

use std::io;
use std::net::SocketAddr;

use axum::serve::Listener;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::AppState;
use super::https::TlsListener;
use super::quick::QuickListener;
use tokio_rustls::TlsAcceptor;

/// A connection handed from the acceptor to an HTTP thread.
pub type Accepted = (std::net::TcpStream, SocketAddr);

/// What an HTTP thread speaks to its connections.
#[derive(Clone)]
pub enum Scheme {
    Http,
    Https(TlsAcceptor),
}

impl Scheme {
    fn name(&self) -> &'static str {
        match self {
            Scheme::Http => "HTTP",
            Scheme::Https(_) => "HTTPS",
        }
    }
}

/// Serves the API on [`http_threads`] threads until `shutdown`; the
/// returned task (on the calling runtime) ends when all have stopped.
pub fn spawn_serve(
    mut listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
    scheme: Scheme,
) -> io::Result<tokio::task::JoinHandle<()>> {
    let main = tokio::runtime::Handle::current();
    let local = listener.local_addr()?;
    let mut threads = Vec::new();
    let mut stopped = Vec::new();
    for index in 0..http_threads() {
        let (hand, incoming) = mpsc::unbounded_channel::<Accepted>();
        // Sockets and timers only: a runtime with the process driver looks
        // for exited child processes every time it parks (1.6 % of the
        // HTTP threads' time under `ab -k -c 4`, bench/README.md).
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let (done, wait_done) = oneshot::channel::<()>();
        let (state, shutdown, main) = (state.clone(), shutdown.clone(), main.clone());
        let scheme = scheme.clone();
        std::thread::Builder::new()
            .name(format!("{}-{index}", scheme.name().to_lowercase()))
            .spawn(move || {
                let name = scheme.name();
                let listener = QuickListener::new(incoming, local);
                let served = runtime.block_on(async move {
                    match scheme {
                        Scheme::Http => super::serve(listener, state, shutdown, main).await,
                        Scheme::Https(acceptor) => {
                            let listener = TlsListener::new(listener, acceptor, shutdown.clone());
                            super::serve_https(listener, state, shutdown, main).await
                        }
                    }
                });
                if let Err(e) = served {
                    tracing::error!(error = %e, "{name} server failed");
                }
                let _ = done.send(());
            })?;
        threads.push(hand);
        stopped.push(wait_done);
    }
    let acceptor = main.spawn(async move {
        let mut next = 0;
        loop {
            let (stream, address) = tokio::select! {
                // axum's accept retries on errors (after a pause when the
                // process is out of file descriptors) and never fails.
                accepted = Listener::accept(&mut listener) => accepted,
                () = shutdown.cancelled() => return,
            };
            let stream = match stream.into_std() {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::warn!(peer = %address, error = %e, "cannot hand an {} connection to a thread", scheme.name());
                    continue;
                }
            };
            // A thread only stops at shutdown, so a closed channel is one.
            if threads[next].send((stream, address)).is_err() {
                return;
            }
            next = (next + 1) % threads.len();
        }
    });
    Ok(main.spawn(async move {
        let _ = acceptor.await;
        for thread in stopped {
            let _ = thread.await;
        }
    }))
}

/// One HTTP thread per CPU the process may use.
fn http_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs every handler future entered into the main runtime (see the
/// module doc), poll by poll.
pub async fn in_main_runtime(
    axum::extract::State(main): axum::extract::State<tokio::runtime::Handle>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    Entered {
        main,
        future: Box::pin(next.run(request)),
    }
    .await
}

/// A future polled with the main runtime entered.
struct Entered<F> {
    main: tokio::runtime::Handle,
    future: std::pin::Pin<Box<F>>,
}

impl<F: Future> Future for Entered<F> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let this = &mut *self;
        let _main = this.main.enter();
        this.future.as_mut().poll(cx)
    }
}
