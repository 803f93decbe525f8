//! A server that answers every PUB (protocol V2) or every HTTP request
//! with OK and does nothing else, one blocking thread per connection (the
//! OKs to the PUBs of one read in one write).
//!
//! It does no work, so with the same client in the same round it shows
//! what a round-trip row costs apart from the broker: the client, the
//! loopback, and waking a thread that slept in the kernel between two
//! requests. On idle vCPUs that wake-up dominates, and a broker that spins
//! before sleeping (nsqd through Go's scheduler; wasqd for quick clients,
//! see host/src/quick_client.rs) beats this do-nothing server
//! (bench/README.md).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the OK server speaks.
#[derive(Clone, Copy)]
pub enum Protocol {
    /// NSQ's TCP protocol V2: `  V2`, then `PUB topic\n` + size + body, each answered `OK`.
    NsqPub,
    /// HTTP/1.1 keep-alive: every request answered `200 OK` with body `OK`.
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
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    match protocol {
        Protocol::NsqPub => {
            let mut magic = [0; 4];
            reader.read_exact(&mut magic)?;
            let mut line = Vec::new();
            let mut body = Vec::new();
            let mut answers = Vec::new();
            loop {
                line.clear();
                if reader.read_until(b'\n', &mut line)? == 0 {
                    return Ok(());
                }
                let mut size = [0; 4];
                reader.read_exact(&mut size)?;
                body.resize(u32::from_be_bytes(size) as usize, 0);
                reader.read_exact(&mut body)?;
                answers.extend_from_slice(b"\0\0\0\x06\0\0\0\0OK");
                // The answers to every PUB of one read go out in one write,
                // as a broker's do (wasqd's; nsqd writes one per PUB): a
                // pipelining client's row then shows what the client and
                // the loopback cost at the fewest system calls.
                if reader.buffer().is_empty() {
                    writer.write_all(&answers)?;
                    answers.clear();
                }
            }
        }
        Protocol::Http => {
            let mut line = Vec::new();
            let mut body = Vec::new();
            loop {
                let mut content_length = 0;
                loop {
                    line.clear();
                    if reader.read_until(b'\n', &mut line)? == 0 {
                        return Ok(());
                    }
                    if line == b"\r\n" {
                        break;
                    }
                    let text = String::from_utf8_lossy(&line);
                    if let Some((name, value)) = text.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        content_length = value.trim().parse().unwrap_or(0);
                    }
                }
                body.resize(content_length, 0);
                reader.read_exact(&mut body)?;
                writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")?;
            }
        }
    }
}
