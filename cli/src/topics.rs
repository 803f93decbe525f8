//! `wasq pub` (stdin lines to a topic, as `to_nsq`) and `wasq tail` (a
//! topic's messages to stdout, as `nsq_tail`).

use std::io::{BufRead, Write};
use std::sync::mpsc;
use std::time::Duration;

use crate::nsq_tcp::{Connection, lookup};

/// Most lines sent in one MPUB when stdin has them ready at once.
const BATCH: usize = 200;

/// Where to find nsqd nodes.
pub struct Nodes {
    pub nsqd_tcp_addresses: Vec<String>,
    pub lookupd_http_addresses: Vec<String>,
}

impl Nodes {
    /// The nodes to talk to about `topic`; with lookupds, waits (up to
    /// `patience`) for one to know a node.
    fn resolve(&self, topic: &str, patience: Duration) -> Result<Vec<String>, String> {
        if self.nsqd_tcp_addresses.is_empty() && self.lookupd_http_addresses.is_empty() {
            return Err("give --nsqd-tcp-address or --lookupd-http-address".into());
        }
        let mut nodes = self.nsqd_tcp_addresses.clone();
        if self.lookupd_http_addresses.is_empty() {
            return Ok(nodes);
        }
        let deadline = std::time::Instant::now() + patience;
        loop {
            for node in lookup(&self.lookupd_http_addresses, Some(topic))? {
                if !nodes.contains(&node) {
                    nodes.push(node);
                }
            }
            if !nodes.is_empty() || std::time::Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        if nodes.is_empty() {
            return Err(format!(
                "no nsqd node registered with {}",
                self.lookupd_http_addresses.join(", ")
            ));
        }
        Ok(nodes)
    }
}

/// Publishes each line of stdin (without its newline; empty lines skipped,
/// as NSQ refuses empty bodies) to `topic` on every node. Lines that arrive
/// together go in one MPUB. Returns how many were published.
pub fn publish_stdin(topic: &str, nodes: &Nodes, delimiter: u8) -> Result<u64, String> {
    let addresses = nodes.resolve(topic, Duration::ZERO)?;
    let mut connections = addresses
        .iter()
        .map(|a| Connection::open(a))
        .collect::<Result<Vec<_>, _>>()?;
    let mut input = std::io::BufReader::with_capacity(1 << 16, std::io::stdin().lock());
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut published = 0u64;
    let mut flush = |batch: &mut Vec<Vec<u8>>| -> Result<(), String> {
        for connection in &mut connections {
            connection.publish(topic, batch)?;
        }
        published += batch.len() as u64;
        batch.clear();
        Ok(())
    };
    loop {
        let mut line = Vec::new();
        let read = input
            .read_until(delimiter, &mut line)
            .map_err(|e| format!("stdin: {e}"))?;
        if read == 0 {
            break;
        }
        if line.last() == Some(&delimiter) {
            line.pop();
        }
        if !line.is_empty() {
            batch.push(line);
        }
        // Send what we have as soon as stdin has nothing more ready: an
        // interactive line goes out at once, a piped file in batches.
        if batch.len() >= BATCH || (input.buffer().is_empty() && !batch.is_empty()) {
            flush(&mut batch)?;
        }
    }
    if !batch.is_empty() {
        flush(&mut batch)?;
    }
    Ok(published)
}

pub struct Tail {
    pub topic: String,
    pub channel: Option<String>,
    pub max_in_flight: u64,
    /// Stop after this many messages (0: never).
    pub total: u64,
    pub print_topic: bool,
}

/// Prints each message body of the topic on its own line, FINishing it.
pub fn tail(tail: Tail, nodes: &Nodes) -> Result<(), String> {
    let addresses = nodes.resolve(&tail.topic, Duration::from_secs(60))?;
    let channel = tail
        .channel
        .clone()
        .unwrap_or_else(|| format!("tail{:06}#ephemeral", fastrand::u32(..1_000_000)));
    let (sender, received) = mpsc::sync_channel::<Result<Vec<u8>, String>>(1024);
    for address in addresses {
        let mut connection = Connection::open(&address)?;
        connection.subscribe(&tail.topic, &channel, tail.max_in_flight)?;
        let sender = sender.clone();
        std::thread::spawn(move || {
            loop {
                let next = connection.next_message().and_then(|message| {
                    connection.finish(&message)?;
                    Ok(message.body.to_vec())
                });
                let failed = next.is_err();
                if sender.send(next).is_err() || failed {
                    return;
                }
            }
        });
    }
    drop(sender);
    let stdout = std::io::stdout();
    let mut shown = 0u64;
    for body in received {
        let body = body?;
        let mut out = stdout.lock();
        let written = (|| {
            if tail.print_topic {
                write!(out, "{} | ", tail.topic)?;
            }
            out.write_all(&body)?;
            out.write_all(b"\n")?;
            out.flush()
        })();
        if written.is_err() {
            // stdout closed (`wasq tail t | head`): done.
            return Ok(());
        }
        shown += 1;
        if tail.total > 0 && shown >= tail.total {
            return Ok(());
        }
    }
    Ok(())
}
