//! HTTP publishing load: `/pub` and `/mpub` over keep-alive HTTP/1.1
//! connections, one request outstanding per connection.
//!
//! The request bytes are built once and the response is only parsed for
//! its status and length (httparse), so the load tool's own cost per
//! request stays small next to the broker's: both run on the same cores.

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Messages per second published by `connections` connections, each
/// sending `requests_per_connection` copies of `request` and waiting for
/// each 200; every request carries `messages_per_request` messages.
pub async fn publish(
    addr: SocketAddr,
    request: Vec<u8>,
    messages_per_request: usize,
    connections: usize,
    requests_per_connection: usize,
) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut connection = KeepAlive::connect(addr).await?;
            for _ in 0..requests_per_connection {
                connection.round_trip(&request).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let messages = connections * requests_per_connection * messages_per_request;
    Ok(messages as f64 / start.elapsed().as_secs_f64())
}

/// `POST /pub?topic=TOPIC` with one body of `size` bytes.
pub fn pub_request(topic: &str, size: usize) -> Vec<u8> {
    post(&format!("/pub?topic={topic}"), &vec![b'x'; size])
}

/// `POST /mpub?topic=TOPIC` with `count` bodies of `size` bytes, one per
/// line (nsqd's text form).
pub fn mpub_request(topic: &str, size: usize, count: usize) -> Vec<u8> {
    post(&format!("/mpub?topic={topic}"), &mpub_body(size, count))
}

/// The body of an `/mpub` of `count` bodies of `size` bytes, one per line.
pub fn mpub_body(size: usize, count: usize) -> Vec<u8> {
    vec![vec![b'x'; size]; count].join(&b'\n')
}

/// A whole `POST` request for `path` with `body`.
pub(crate) fn post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// One keep-alive HTTP/1.1 connection, a request at a time.
pub(crate) struct KeepAlive {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl KeepAlive {
    pub(crate) async fn connect(addr: SocketAddr) -> anyhow::Result<KeepAlive> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(KeepAlive {
            stream,
            buffer: Vec::with_capacity(4096),
        })
    }

    /// Sends `request` and reads its whole response, which must be a 200.
    pub(crate) async fn round_trip(&mut self, request: &[u8]) -> anyhow::Result<()> {
        self.stream.write_all(request).await?;
        loop {
            if let Some(length) = complete_response(&self.buffer)? {
                self.buffer.drain(..length);
                return Ok(());
            }
            let mut chunk = [0u8; 4096];
            let read = self.stream.read(&mut chunk).await?;
            if read == 0 {
                bail!("the server closed the connection");
            }
            self.buffer.extend_from_slice(&chunk[..read]);
        }
    }
}

/// The length of the first response in `buffer` once it is complete.
pub fn complete_response(buffer: &[u8]) -> anyhow::Result<Option<usize>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head) = response.parse(buffer)? else {
        return Ok(None);
    };
    let code = response.code.unwrap_or(0);
    let body_length = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| {
            std::str::from_utf8(h.value)
                .ok()?
                .trim()
                .parse::<usize>()
                .ok()
        })
        .context("a response without Content-Length")?;
    if buffer.len() < head + body_length {
        return Ok(None);
    }
    if code != 200 {
        let body = String::from_utf8_lossy(&buffer[head..head + body_length]);
        bail!("HTTP {code}: {body}");
    }
    Ok(Some(head + body_length))
}
