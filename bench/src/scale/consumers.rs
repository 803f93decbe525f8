//! The consumer part: idle TCP consumers connected at once.

use std::net::SocketAddr;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wasq_testkit::memory::resident_bytes;

use super::broker::{Broker, post_once, time_get};
use super::{Figure, per_item, seconds, total};

/// The consumer part at one size (see the module doc).
pub(super) async fn consumers(broker: &Broker, count: usize) -> anyhow::Result<Vec<Figure>> {
    let data = tempfile::tempdir()?;
    let (running, _) = broker.start(data.path(), &[])?;
    for path in [
        "/topic/create?topic=scale",
        "/channel/create?topic=scale&channel=c",
    ] {
        let (status, _) = post_once(running.http(), path)?;
        anyhow::ensure!(status == 200, "{path} answered {status}");
    }
    let before = resident_bytes(running.pid())?;
    let started = Instant::now();
    let connections = connect_consumers(running.tcp(), count).await?;
    let connect = started.elapsed();
    let rss = resident_bytes(running.pid())?.saturating_sub(before);
    let stats = time_get(running.http(), "/stats?format=json")?;
    let stop = running.stop()?;
    drop(connections);
    Ok(vec![
        per_item("connect", count as f64 / seconds(connect), "conns/s"),
        per_item(
            "rss_per_connection",
            rss as f64 / count as f64 / 1024.0,
            "KiB",
        ),
        total("stats", seconds(stats) * 1e3, "ms"),
        total("stop", seconds(stop), "s"),
    ])
}

/// Connects `count` consumers of `scale/c`, each subscribed with RDY 1,
/// at most a few hundred handshakes at a time.
async fn connect_consumers(tcp: SocketAddr, count: usize) -> anyhow::Result<Vec<TcpStream>> {
    let mut hello = wasq_wire::MAGIC_V2.to_vec();
    hello.extend(wasq_wire::command::encode(|out| {
        wasq_wire::command::sub(out, "scale", "c")
    }));
    wasq_wire::command::rdy(&mut hello, 1);
    let mut connections = Vec::with_capacity(count);
    for wave in (0..count).collect::<Vec<_>>().chunks(256) {
        let mut tasks = Vec::new();
        for _ in wave {
            let hello = hello.clone();
            tasks.push(tokio::spawn(async move {
                let mut stream = TcpStream::connect(tcp).await?;
                stream.write_all(&hello).await?;
                // The SUB's OK: size, frame type, "OK".
                let mut ok = [0u8; 10];
                stream.read_exact(&mut ok).await?;
                anyhow::ensure!(&ok[8..] == b"OK", "SUB answered {ok:?}");
                anyhow::Ok(stream)
            }));
        }
        for task in tasks {
            connections.push(task.await??);
        }
    }
    Ok(connections)
}
