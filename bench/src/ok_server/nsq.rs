//! The do-nothing server's two sides of NSQ's protocol V2: a publisher's
//! commands answered `OK`, and one message sent to a consumer again and
//! again, as fast as its `RDY` allows.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

const OK_FRAME: &[u8] = b"\0\0\0\x06\0\0\0\0OK";

/// Message frames sent in one write at most.
const MESSAGES_PER_WRITE: u64 = 512;

/// Answers every command with a body (`IDENTIFY`, `PUB`, `MPUB`, `DPUB`,
/// `AUTH`) with `OK`, until the client goes away.
pub(super) fn answer_publishes(stream: TcpStream) -> io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut commands = Commands::new(stream)?;
    let mut answers = Vec::new();
    while let Some(line) = commands.next()? {
        if has_body(line) {
            answers.extend_from_slice(OK_FRAME);
        }
        // The answers to every command of one read go out in one write,
        // as a broker's do (wasqd's; nsqd writes one per PUB): a
        // pipelining client's row then shows what the client and the
        // loopback cost at the fewest system calls.
        if commands.caught_up() && !answers.is_empty() {
            writer.write_all(&answers)?;
            answers.clear();
        }
    }
    Ok(())
}

/// A client's commands one by one, after its magic.
struct Commands {
    reader: BufReader<TcpStream>,
    line: Vec<u8>,
    body: Vec<u8>,
}

impl Commands {
    fn new(stream: TcpStream) -> io::Result<Commands> {
        let mut reader = BufReader::with_capacity(64 * 1024, stream);
        reader.read_exact(&mut [0; 4])?;
        Ok(Commands {
            reader,
            line: Vec::new(),
            body: Vec::new(),
        })
    }

    /// The next command's line (its body, if it has one, read and
    /// dropped); `None` once the client closed the connection.
    fn next(&mut self) -> io::Result<Option<&[u8]>> {
        self.line.clear();
        if self.reader.read_until(b'\n', &mut self.line)? == 0 {
            return Ok(None);
        }
        if has_body(&self.line) {
            read_body(&mut self.reader, &mut self.body)?;
        }
        Ok(Some(&self.line))
    }

    /// Whether every byte received so far has been read.
    fn caught_up(&self) -> bool {
        self.reader.buffer().is_empty()
    }
}

fn command_name(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.split(|&b| b == b' ').next().unwrap_or_default()
}

fn has_body(line: &[u8]) -> bool {
    matches!(
        command_name(line),
        b"IDENTIFY" | b"PUB" | b"MPUB" | b"DPUB" | b"AUTH"
    )
}

fn read_body(reader: &mut impl Read, body: &mut Vec<u8>) -> io::Result<()> {
    let mut size = [0; 4];
    reader.read_exact(&mut size)?;
    body.resize(u32::from_be_bytes(size) as usize, 0);
    reader.read_exact(body)
}

/// What the consumer asked for and what it holds.
#[derive(Default)]
struct Flow {
    /// Its last `RDY`.
    ready: u64,
    /// Messages sent and not yet finished.
    in_flight: u64,
    /// `OK`s owed (to `IDENTIFY` and `SUB`).
    oks: usize,
    closed: bool,
}

type SharedFlow = Arc<(Mutex<Flow>, Condvar)>;

/// Serves a consumer: its commands are read here, and a second thread
/// writes the `OK`s and the messages.
pub(super) fn stream_messages(stream: TcpStream, body_size: usize) -> io::Result<()> {
    let flow = SharedFlow::default();
    let writer = stream.try_clone()?;
    let sender = {
        let flow = flow.clone();
        std::thread::Builder::new()
            .name("ok-server-sender".into())
            .spawn(move || send(writer, body_size, &flow))?
    };
    let result = read_consumer_commands(stream, &flow);
    flow.0.lock().expect("flow").closed = true;
    flow.1.notify_one();
    // The client closing its end is how a run ends: a failed write then is
    // expected.
    let _ = sender.join();
    result
}

fn read_consumer_commands(stream: TcpStream, flow: &SharedFlow) -> io::Result<()> {
    let mut commands = Commands::new(stream)?;
    while let Some(line) = commands.next()? {
        let mut state = flow.0.lock().expect("flow");
        match command_name(line) {
            b"IDENTIFY" | b"SUB" => state.oks += 1,
            b"RDY" => {
                let count = line.strip_prefix(b"RDY ").unwrap_or_default();
                state.ready = String::from_utf8_lossy(count).trim().parse().unwrap_or(0);
            }
            b"FIN" | b"REQ" => state.in_flight = state.in_flight.saturating_sub(1),
            _ => continue,
        }
        drop(state);
        flow.1.notify_one();
    }
    Ok(())
}

/// Writes what the consumer is owed, as much as there is in one write.
fn send(mut writer: TcpStream, body_size: usize, flow: &SharedFlow) -> io::Result<()> {
    let mut message = message_frame(body_size);
    let id_at = 4 + 4 + 8 + 2;
    let mut next_id = 0u64;
    let mut out = Vec::new();
    loop {
        let (oks, messages) = {
            let mut state = flow
                .1
                .wait_while(flow.0.lock().expect("flow"), |state| {
                    !state.closed && state.oks == 0 && state.in_flight >= state.ready
                })
                .expect("flow");
            if state.closed {
                return Ok(());
            }
            let messages = state
                .ready
                .saturating_sub(state.in_flight)
                .min(MESSAGES_PER_WRITE);
            state.in_flight += messages;
            (std::mem::take(&mut state.oks), messages)
        };
        out.clear();
        for _ in 0..oks {
            out.extend_from_slice(OK_FRAME);
        }
        for _ in 0..messages {
            // Sixteen hex digits written in place: a string per message
            // would make this server, the yardstick, slower than it is.
            for (i, digit) in message[id_at..id_at + 16].iter_mut().enumerate() {
                *digit = b"0123456789abcdef"[(next_id >> (60 - 4 * i) & 0xf) as usize];
            }
            next_id += 1;
            out.extend_from_slice(&message);
        }
        writer.write_all(&out)?;
    }
}

/// A message frame: size, frame type 2, timestamp, attempts, id, body.
fn message_frame(body_size: usize) -> Vec<u8> {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let mut frame = Vec::with_capacity(34 + body_size);
    frame.extend_from_slice(&((4 + 8 + 2 + 16 + body_size) as u32).to_be_bytes());
    frame.extend_from_slice(&2u32.to_be_bytes());
    frame.extend_from_slice(&timestamp.to_be_bytes());
    frame.extend_from_slice(&1u16.to_be_bytes());
    frame.extend_from_slice(&[b'0'; 16]);
    frame.resize(frame.len() + body_size, b'x');
    frame
}
