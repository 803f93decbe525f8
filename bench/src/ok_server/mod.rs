//! A server that answers every publish (protocol V2) or every HTTP
//! request with OK and does nothing else, one blocking thread per
//! connection (the OKs to the PUBs of one read in one write); or, for a
//! consumer, sends the same message over and over as its RDY allows.
//!
//! It does no work, so with the same client in the same round it shows
//! what a round-trip row costs apart from the broker: the client, the
//! loopback, and waking a thread that slept in the kernel between two
//! requests. On idle vCPUs that wake-up dominates, and a broker that spins
//! before sleeping (nsqd through Go's scheduler; wasqd for quick clients,
//! see host/src/quick_client.rs) beats this do-nothing server
//! (bench/README.md).

mod http;
mod nsq;

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the OK server speaks.
#[derive(Clone, Copy)]
pub enum Protocol {
    /// NSQ's TCP protocol V2 for a publisher: `  V2`, then `IDENTIFY`,
    /// `PUB`, `MPUB` or `DPUB` with a body, each answered `OK`.
    NsqPub,
    /// NSQ's TCP protocol V2 for a consumer: `IDENTIFY` and `SUB` answered
    /// `OK`, then one message of `body_size` bytes sent again and
    /// again, as many in flight as the last `RDY` allows (a `FIN` frees one).
    NsqSub { body_size: usize },
    /// HTTP keep-alive (1.1, or 1.0 asking for it): every request answered
    /// `200 OK` with body `OK`.
    Http,
}

/// A running OK server; stops accepting when dropped.
pub struct OkServer {
    pub address: SocketAddr,
    stopped: Arc<AtomicBool>,
}

impl OkServer {
    pub fn start(protocol: Protocol) -> io::Result<OkServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let stopped = Arc::new(AtomicBool::new(false));
        let stop = stopped.clone();
        std::thread::Builder::new()
            .name("ok-server".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let _ = std::thread::Builder::new().spawn(move || {
                        // A client going away ends its thread; nothing to report.
                        let _ = serve(protocol, stream);
                    });
                }
            })?;
        Ok(OkServer { address, stopped })
    }
}

impl Drop for OkServer {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Release);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.address);
    }
}

fn serve(protocol: Protocol, stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    match protocol {
        Protocol::NsqPub => nsq::answer_publishes(stream),
        Protocol::NsqSub { body_size } => nsq::stream_messages(stream, body_size),
        Protocol::Http => http::answer_requests(stream),
    }
}
