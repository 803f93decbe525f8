//! A protocol V2 client for load (the bench): Tokio, buffered reads,
//! commands pipelined by the caller into one write.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use wasq_wire::frame::{self, Frame};
use wasq_wire::{Message, command};

pub struct AsyncClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl AsyncClient {
    /// Connects and sends the V2 magic.
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<AsyncClient> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        let mut client = AsyncClient {
            reader: BufReader::with_capacity(256 * 1024, read),
            writer: write,
        };
        client.send(wasq_wire::MAGIC_V2).await?;
        Ok(client)
    }

    pub async fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.writer.write_all(bytes).await?;
        Ok(())
    }

    pub async fn read_frame(&mut self) -> anyhow::Result<Frame> {
        Ok(frame::read_async(&mut self.reader).await?)
    }

    /// FINs a message.
    pub async fn finish(&mut self, message: &Message) -> anyhow::Result<()> {
        self.send(&command::encode(|out| command::fin(out, &message.id.0)))
            .await
    }

    /// True if a whole frame is already buffered (reading it will not wait).
    pub fn has_buffered_frame(&self) -> bool {
        frame::complete_frame_len(self.reader.buffer()).is_some()
    }

    /// Reads until OK, answering heartbeats; anything else is an error.
    pub async fn expect_ok(&mut self) -> anyhow::Result<()> {
        loop {
            let frame = self.read_frame().await?;
            if frame.is_ok() {
                return Ok(());
            }
            if frame.is_heartbeat() {
                self.send(&command::encode(command::nop)).await?;
                continue;
            }
            bail!("unexpected frame {:?}: {}", frame.frame_type, frame.text());
        }
    }
}
