//! The plain HTTP listener, whose connections look for a quick client's
//! next request for a moment before they sleep, as TCP connections do
//! (why and when: [`crate::quick_client`]).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::threads::Accepted;
use crate::quick_client::{QUICK_SPIN, SpinPolicy, give_way};

/// The connections one HTTP thread serves, as the acceptor hands them over
/// ([`super::threads`]).
pub struct QuickListener {
    incoming: mpsc::UnboundedReceiver<Accepted>,
    /// The address of the listening socket they came in on.
    local: SocketAddr,
}

impl QuickListener {
    pub fn new(incoming: mpsc::UnboundedReceiver<Accepted>, local: SocketAddr) -> QuickListener {
        QuickListener { incoming, local }
    }

    /// The address of the listening socket.
    pub fn address(&self) -> SocketAddr {
        self.local
    }
}

impl Listener for QuickListener {
    type Io = QuickStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (QuickStream, SocketAddr) {
        loop {
            let Some((stream, address)) = self.incoming.recv().await else {
                // The acceptor stopped: the server is shutting down, and
                // its graceful shutdown ends the serving, not this.
                return std::future::pending().await;
            };
            match TcpStream::from_std(stream) {
                Ok(inner) => {
                    let stream = QuickStream {
                        inner,
                        policy: SpinPolicy::default(),
                        answered: false,
                        wait: None,
                        yielding: None,
                    };
                    return (stream, address);
                }
                Err(e) => {
                    tracing::warn!(peer = %address, error = %e, "cannot serve an HTTP connection");
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// A connection that spins, when its [`SpinPolicy`] says so, between an
/// answer and the next request: never while a request is being served.
pub struct QuickStream {
    inner: TcpStream,
    policy: SpinPolicy,
    /// Something was written since the last read: the wait ahead is for
    /// the client's next request.
    answered: bool,
    wait: Option<Wait>,
    /// The yield of the look under way (it lets the runtime poll its sockets).
    yielding: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

/// The wait for the next request that is under way.
struct Wait {
    since: Instant,
    /// Spinning until then, if it spins.
    spin_until: Option<Instant>,
}

impl AsyncRead for QuickStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let read = Pin::new(&mut this.inner).poll_read(cx, buf);
            if let Poll::Ready(result) = read {
                if let Some(wait) = this.wait.take() {
                    this.policy
                        .record(wait.spin_until.is_some(), wait.since.elapsed());
                }
                this.answered = false;
                this.yielding = None;
                return Poll::Ready(result);
            }
            if !this.answered {
                return Poll::Pending;
            }
            let now = Instant::now();
            let wait = this.wait.get_or_insert_with(|| Wait {
                since: now,
                spin_until: this.policy.should_spin().then_some(now + QUICK_SPIN),
            });
            if wait.spin_until.is_none_or(|until| now >= until) {
                // Sleeps: the read above registered the task's waker.
                this.yielding = None;
                return Poll::Pending;
            }
            if this.yielding.is_none() {
                give_way(now - wait.since);
            }
            let yielding = this
                .yielding
                .get_or_insert_with(|| Box::pin(tokio::task::yield_now()));
            if yielding.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.yielding = None;
        }
    }
}

impl AsyncWrite for QuickStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.answered = true;
        Pin::new(&mut this.inner).poll_write(cx, bytes)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.answered = true;
        Pin::new(&mut this.inner).poll_write_vectored(cx, bytes)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
