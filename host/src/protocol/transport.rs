//! The byte stream under a V2 connection and its in-band upgrades.
//!
//! A connection starts as plain TCP. After IDENTIFY's response the client
//! may upgrade it, in nsqd's order: TLS on the same socket first, then
//! snappy or deflate inside it. The connection loop reads and writes
//! whole buffers through [`Transport`] and never sees which layers are on.

use std::io;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::compression::Compression;
use crate::broker::client::TlsSession;

/// How long a client may take over the TLS handshake (nsqd's deadline).
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only while a failed upgrade leaves nothing to talk over.
    Closed,
}

pub struct Transport {
    stream: Stream,
    compression: Option<Compression>,
    /// Compressed bytes as read off the stream, before decompression.
    received: Vec<u8>,
}

impl Transport {
    pub fn new(stream: TcpStream) -> Transport {
        Transport {
            stream: Stream::Plain(stream),
            compression: None,
            received: Vec::new(),
        }
    }

    /// Reads what the client sent, appending the plain bytes to `plain`.
    /// Returns the number of bytes read off the socket (0 at its end);
    /// with compression that may be a partial chunk adding nothing yet.
    /// Cancel-safe: nothing is lost if the future is dropped.
    pub async fn read(&mut self, plain: &mut BytesMut) -> io::Result<usize> {
        let Transport {
            stream,
            compression,
            received,
        } = self;
        let Some(compression) = compression else {
            return stream.read_buf(plain).await;
        };
        if received.capacity() == 0 {
            received.reserve(16 * 1024);
        }
        received.clear();
        let n = stream.read_buf(received).await?;
        compression.decompress(received, plain)?;
        Ok(n)
    }

    /// Sends `plain`, compressed if negotiated, and flushes every layer.
    pub async fn write_all(&mut self, plain: &[u8]) -> io::Result<()> {
        let Transport {
            stream,
            compression,
            ..
        } = self;
        let bytes = match compression {
            Some(compression) => compression.compress(plain)?,
            None => plain,
        };
        stream.write_all(bytes).await
    }

    pub async fn shutdown(&mut self) {
        let _ = match &mut self.stream {
            Stream::Plain(s) => s.shutdown().await,
            Stream::Tls(s) => s.shutdown().await,
            Stream::Closed => Ok(()),
        };
    }

    /// Runs the TLS handshake on the socket (the client starts it once it
    /// has read IDENTIFY's response).
    pub async fn upgrade_to_tls(&mut self, acceptor: &TlsAcceptor) -> io::Result<TlsSession> {
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Closed) else {
            return Err(io::Error::other("TLS is already on"));
        };
        let tls = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        let session = session_of(tls.get_ref().1);
        self.stream = Stream::Tls(Box::new(tls));
        Ok(session)
    }

    /// Turns compression on; `unread` is what was already read past the
    /// IDENTIFY (compressed by a client that did not wait for the answer),
    /// decompressed into the same buffer.
    pub fn compress(
        &mut self,
        mut compression: Compression,
        unread: &mut BytesMut,
    ) -> io::Result<()> {
        let already = unread.split();
        if !already.is_empty() {
            compression.decompress(&already, unread)?;
        }
        self.compression = Some(compression);
        Ok(())
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// The subject common name of the client's certificate, if it sent one
    /// (passed to the auth server as nsqd does).
    pub fn peer_common_name(&self) -> Option<String> {
        let Stream::Tls(tls) = &self.stream else {
            return None;
        };
        let certificate = tls.get_ref().1.peer_certificates()?.first()?;
        crate::tls::common_name(certificate)
    }
}

impl Stream {
    async fn read_buf<B: bytes::BufMut>(&mut self, buf: &mut B) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read_buf(buf).await,
            Stream::Tls(s) => s.read_buf(buf).await,
            Stream::Closed => Ok(0),
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(bytes).await,
            Stream::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Stream::Closed => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }
}

/// nsqd's names for the negotiated version and cipher suite.
fn session_of(connection: &rustls::ServerConnection) -> TlsSession {
    let version = match connection.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS1.2".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS1.3".to_string(),
        Some(other) => format!("Unknown {}", u16::from(other)),
        None => String::new(),
    };
    let cipher_suite = connection
        .negotiated_cipher_suite()
        .map(|suite| crate::tls::go_cipher_suite_name(suite.suite()))
        .unwrap_or_default();
    TlsSession {
        version,
        cipher_suite,
    }
}
