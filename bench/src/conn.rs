//! A minimal protocol V2 client for the bench: magic sent on connect,
//! buffered reads, no allocation beyond each frame.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A minimal V2 connection: magic sent, buffered reads.
pub struct Conn {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        let mut conn = Conn {
            reader: BufReader::with_capacity(256 * 1024, read),
            writer: write,
        };
        conn.send(b"  V2").await?;
        Ok(conn)
    }

    pub async fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.writer.write_all(bytes).await?;
        Ok(())
    }

    pub async fn read_frame(&mut self) -> anyhow::Result<(u32, Vec<u8>)> {
        let size = self.reader.read_u32().await? as usize;
        let frame_type = self.reader.read_u32().await?;
        let mut data = vec![0u8; size - 4];
        self.reader.read_exact(&mut data).await?;
        Ok((frame_type, data))
    }

    /// FINs the message whose frame data (timestamp, attempts, id, body) is given.
    pub async fn finish(&mut self, message: &[u8]) -> anyhow::Result<()> {
        let mut fin = b"FIN ".to_vec();
        fin.extend_from_slice(&message[10..26]);
        fin.push(b'\n');
        self.send(&fin).await
    }

    pub fn has_buffered_frame(&self) -> bool {
        let buffered = self.reader.buffer();
        buffered.len() >= 4
            && buffered.len() >= 4 + u32::from_be_bytes(buffered[..4].try_into().unwrap()) as usize
    }

    pub async fn expect_ok(&mut self) -> anyhow::Result<()> {
        loop {
            let (frame_type, data) = self.read_frame().await?;
            match (frame_type, data.as_slice()) {
                (0, b"OK") => return Ok(()),
                (0, b"_heartbeat_") => self.send(b"NOP\n").await?,
                _ => bail!(
                    "unexpected frame {frame_type}: {}",
                    String::from_utf8_lossy(&data)
                ),
            }
        }
    }
}
