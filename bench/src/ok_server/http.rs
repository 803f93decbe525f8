//! The do-nothing HTTP server: `200 OK` to every request.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// Answers every request on `stream` until the client goes away. The
/// answer says `Connection: keep-alive` for ApacheBench: `ab -k` sends
/// HTTP/1.0 and keeps a connection only when the answer says so.
pub(super) fn answer_requests(stream: TcpStream) -> io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
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
        writer.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nOK",
        )?;
    }
}
