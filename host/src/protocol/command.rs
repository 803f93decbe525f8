//! Client-to-server framing of protocol V2: a command line ending in `\n`,
//! and for IDENTIFY, AUTH, PUB, MPUB and DPUB a 4-byte big-endian length
//! and a body.
//!
//! [`parse`] works on the connection's read buffer and consumes a command
//! only once all of it has arrived, so the caller can parse every complete
//! command in the buffer before reading again. Everything nsqd checks before
//! it reads a body (parameters, topic name, body length) is checked here in
//! nsqd's order, so a bad length is refused before we would buffer it.
//! Parameters of body-less commands are checked where the command is
//! applied, after the state checks, as nsqd does.
//!
//! What nsqd checks before it reads a body but that depends on the
//! connection (TLS policy, MPUB's authorization) is asked of an
//! [`Admission`]. MPUB's inner messages are checked as they arrive, as
//! nsqd reads them one by one: a bad size is refused at once, not after
//! the rest of a declared 5 MiB body has been buffered.

use bytes::{Buf, Bytes, BytesMut};

use super::error::ClientError;
use super::go_text::{go_quote, lossy, parse_base10};
use crate::broker::names::is_valid_name;

/// The longest command line accepted (nsqd's read buffer size).
pub const MAX_LINE_LEN: usize = 16 * 1024;

/// Size limits from the options, in nsqd's units.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_msg_size: i64,
    pub max_body_size: i64,
    pub max_req_timeout_ms: i64,
}

impl Limits {
    pub fn from_options(options: &crate::config::Options) -> Limits {
        Limits {
            max_msg_size: options.max_msg_size,
            max_body_size: options.max_body_size,
            max_req_timeout_ms: options.max_req_timeout.as_millis() as i64,
        }
    }
}

/// Commands without a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Sub,
    Rdy,
    Fin,
    Req,
    Touch,
    Cls,
    Nop,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Identify(Bytes),
    Auth(Bytes),
    Pub {
        topic: String,
        body: Bytes,
    },
    Mpub {
        topic: String,
        bodies: MpubBodies,
    },
    Dpub {
        topic: String,
        defer_ms: i64,
        body: Bytes,
    },
    /// A body-less command and its parameters (without the verb).
    Line(Verb, Vec<Bytes>),
}

impl Command {
    /// The verb as it appears on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Identify(_) => "IDENTIFY",
            Command::Auth(_) => "AUTH",
            Command::Pub { .. } => "PUB",
            Command::Mpub { .. } => "MPUB",
            Command::Dpub { .. } => "DPUB",
            Command::Line(verb, _) => match verb {
                Verb::Sub => "SUB",
                Verb::Rdy => "RDY",
                Verb::Fin => "FIN",
                Verb::Req => "REQ",
                Verb::Touch => "TOUCH",
                Verb::Cls => "CLS",
                Verb::Nop => "NOP",
            },
        }
    }
}

/// Checks nsqd makes before it reads a command's body, which depend on
/// the connection.
pub trait Admission {
    /// Every command but IDENTIFY, as soon as its verb is read (nsqd's
    /// `--tls-required` policy comes before anything else).
    fn command(&self, verb: &[u8]) -> Result<(), ClientError>;
    /// MPUB once its topic name is valid: nsqd authorizes MPUB before
    /// reading its body (PUB and DPUB after).
    fn mpub(&self, topic: &str) -> Result<(), ClientError>;
}

/// Admits everything: a connection without TLS policy or auth.
pub struct Open;

impl Admission for Open {
    fn command(&self, _verb: &[u8]) -> Result<(), ClientError> {
        Ok(())
    }
    fn mpub(&self, _topic: &str) -> Result<(), ClientError> {
        Ok(())
    }
}

/// A connection's command parser: the limits, and how far the MPUB at the
/// front of the buffer has been checked while its body streams in.
#[derive(Debug)]
pub struct Parser {
    pub limits: Limits,
    mpub: MpubScan,
}

/// Progress through a partly received MPUB body.
#[derive(Debug, Default, Clone, Copy)]
struct MpubScan {
    /// Offset in the body of the next unchecked size header (0: the count).
    next: usize,
    /// Index of the message whose size header is at `next`.
    index: i32,
}

impl Parser {
    pub fn new(limits: Limits) -> Parser {
        Parser {
            limits,
            mpub: MpubScan::default(),
        }
    }

    /// Takes one complete command off the front of `buf`, `Ok(None)` if
    /// more bytes are needed. Every error is fatal to the connection.
    pub fn parse(
        &mut self,
        buf: &mut BytesMut,
        admission: &impl Admission,
    ) -> Result<Option<Command>, ClientError> {
        let parsed = self.parse_front(buf, admission);
        if !matches!(parsed, Ok(None)) {
            self.mpub = MpubScan::default();
        }
        parsed
    }

    fn parse_front(
        &mut self,
        buf: &mut BytesMut,
        admission: &impl Admission,
    ) -> Result<Option<Command>, ClientError> {
        let limits = &self.limits;
        let Some(newline) = memchr::memchr(b'\n', buf) else {
            if buf.len() > MAX_LINE_LEN {
                return Err(ClientError::invalid(format!(
                    "command line longer than {MAX_LINE_LEN} bytes"
                )));
            }
            return Ok(None);
        };
        let line_len = newline + 1;
        let line = strip_cr(&buf[..newline]);
        let params: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        if params[0] != b"IDENTIFY" {
            admission.command(params[0])?;
        }
        let verb = match params[0] {
            b"IDENTIFY" => {
                return body_command(
                    buf,
                    line_len,
                    LengthRule::body("IDENTIFY", limits),
                    Command::Identify,
                );
            }
            b"AUTH" => {
                if params.len() != 1 {
                    return Err(ClientError::invalid("AUTH invalid number of parameters"));
                }
                return body_command(
                    buf,
                    line_len,
                    LengthRule::body("AUTH", limits),
                    Command::Auth,
                );
            }
            b"PUB" => {
                let topic = topic_param(&params, 2, "PUB", "PUB")?;
                return body_command(buf, line_len, LengthRule::message("PUB", limits), |body| {
                    Command::Pub { topic, body }
                });
            }
            b"DPUB" => {
                let topic = topic_param(&params, 3, "DPUB", "DPUB")?;
                let defer_ms = parse_base10(params[2]).ok_or_else(|| {
                    ClientError::invalid(format!(
                        "DPUB could not parse timeout {}",
                        lossy(params[2])
                    ))
                })? as i64;
                if defer_ms < 0 || defer_ms > limits.max_req_timeout_ms {
                    return Err(ClientError::invalid(format!(
                        "DPUB timeout {defer_ms} out of range 0-{}",
                        limits.max_req_timeout_ms
                    )));
                }
                return body_command(buf, line_len, LengthRule::message("DPUB", limits), |body| {
                    Command::Dpub {
                        topic,
                        defer_ms,
                        body,
                    }
                });
            }
            b"MPUB" => {
                // nsqd's message repeats the code here; kept so clients match it.
                let topic = topic_param(&params, 2, "MPUB", "E_BAD_TOPIC MPUB")?;
                admission.mpub(&topic)?;
                let limits = *limits;
                let Some(body) = self.take_mpub_body(buf, line_len)? else {
                    return Ok(None);
                };
                let bodies = parse_mpub_body(body, &limits)?;
                return Ok(Some(Command::Mpub { topic, bodies }));
            }
            b"SUB" => Verb::Sub,
            b"RDY" => Verb::Rdy,
            b"FIN" => Verb::Fin,
            b"REQ" => Verb::Req,
            b"TOUCH" => Verb::Touch,
            b"CLS" => Verb::Cls,
            b"NOP" => Verb::Nop,
            other => {
                return Err(ClientError::invalid(format!(
                    "invalid command {}",
                    lossy(other)
                )));
            }
        };
        let param_count = params.len() - 1;
        let line = buf.split_to(line_len).freeze();
        let line = strip_cr_bytes(line.slice(..newline));
        let params: Vec<Bytes> = line
            .split(|&b| b == b' ')
            .skip(1)
            .map(|p| line.slice_ref(p))
            .collect();
        debug_assert_eq!(params.len(), param_count);
        Ok(Some(Command::Line(verb, params)))
    }

    /// MPUB's body once all of it is here; until then, checks the count
    /// and each size header as they arrive (from where the last call
    /// stopped), so a bad one is refused without waiting for the rest.
    fn take_mpub_body(
        &mut self,
        buf: &mut BytesMut,
        line_len: usize,
    ) -> Result<Option<Bytes>, ClientError> {
        let limits = self.limits;
        let rule = LengthRule::mpub(&limits);
        if buf.len() < line_len + 4 {
            return Ok(None);
        }
        let len = read_i32(&buf[line_len..]);
        rule.check(len)?;
        let body_start = line_len + 4;
        let total = body_start + len as usize;
        if buf.len() >= total {
            buf.advance(body_start);
            return Ok(Some(buf.split_to(len as usize).freeze()));
        }
        let arrived = &buf[body_start..];
        let scan = &mut self.mpub;
        if scan.next == 0 {
            if arrived.len() < 4 {
                return Ok(None);
            }
            check_mpub_count(read_i32(arrived), &limits)?;
            scan.next = 4;
        }
        while arrived.len() >= scan.next + 4 {
            let size = read_i32(&arrived[scan.next..]);
            check_mpub_message_size(scan.index, size, &limits)?;
            scan.next += 4 + size as usize;
            scan.index += 1;
        }
        buf.reserve(total - buf.len());
        Ok(None)
    }
}

fn read_i32(bytes: &[u8]) -> i32 {
    i32::from_be_bytes(bytes[..4].try_into().expect("four bytes"))
}

fn check_mpub_count(count: i32, limits: &Limits) -> Result<(), ClientError> {
    let max_messages = (limits.max_body_size - 4) / 5;
    if count <= 0 || i64::from(count) > max_messages {
        return Err(ClientError::fatal(
            "E_BAD_BODY",
            format!("MPUB invalid message count {count}"),
        ));
    }
    Ok(())
}

fn check_mpub_message_size(index: i32, size: i32, limits: &Limits) -> Result<(), ClientError> {
    if size <= 0 {
        return Err(ClientError::fatal(
            "E_BAD_MESSAGE",
            format!("MPUB invalid message({index}) body size {size}"),
        ));
    }
    if i64::from(size) > limits.max_msg_size {
        return Err(ClientError::fatal(
            "E_BAD_MESSAGE",
            format!("MPUB message too big {size} > {}", limits.max_msg_size),
        ));
    }
    Ok(())
}

/// Parses one command with no connection policy (tests, fuzzing).
pub fn parse(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Command>, ClientError> {
    Parser::new(*limits).parse(buf, &Open)
}

/// MPUB's messages, each a span of the one body they arrived in: a
/// `Bytes` per message would count a reference up and down for each of
/// them, and they are copied out as they are published anyway
/// (`broker::message::owned_body`).
#[derive(Debug, Clone)]
pub struct MpubBodies {
    body: Bytes,
    spans: Vec<(usize, usize)>,
}

impl MpubBodies {
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.spans
            .iter()
            .map(|&(start, end)| &self.body[start..end])
    }
}

impl PartialEq for MpubBodies {
    fn eq(&self, other: &MpubBodies) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for MpubBodies {}

/// The bodies laid end to end in one buffer, as an MPUB would bring them.
impl<T: AsRef<[u8]>> FromIterator<T> for MpubBodies {
    fn from_iter<I: IntoIterator<Item = T>>(bodies: I) -> MpubBodies {
        let mut body = Vec::new();
        let mut spans = Vec::new();
        for one in bodies {
            let start = body.len();
            body.extend_from_slice(one.as_ref());
            spans.push((start, body.len()));
        }
        MpubBodies {
            body: body.into(),
            spans,
        }
    }
}

/// Parses MPUB's body: `[count u32]` then `[size u32][bytes]` per message,
/// with nsqd's error codes. Also used by HTTP /mpub?binary=true.
pub fn parse_mpub_body(body: Bytes, limits: &Limits) -> Result<MpubBodies, ClientError> {
    if body.len() < 4 {
        return Err(ClientError::fatal(
            "E_BAD_BODY",
            "MPUB failed to read message count",
        ));
    }
    let count = read_i32(&body);
    check_mpub_count(count, limits)?;
    let mut spans = Vec::with_capacity(count as usize);
    let mut at = 4;
    for i in 0..count {
        if body.len() - at < 4 {
            return Err(ClientError::fatal(
                "E_BAD_MESSAGE",
                format!("MPUB failed to read message({i}) body size"),
            ));
        }
        let size = read_i32(&body[at..]);
        check_mpub_message_size(i, size, limits)?;
        at += 4;
        if body.len() - at < size as usize {
            return Err(ClientError::fatal(
                "E_BAD_MESSAGE",
                "MPUB failed to read message body",
            ));
        }
        spans.push((at, at + size as usize));
        at += size as usize;
    }
    if at != body.len() {
        return Err(ClientError::fatal(
            "E_BAD_BODY",
            format!(
                "MPUB body has {} bytes beyond its {count} messages",
                body.len() - at
            ),
        ));
    }
    Ok(MpubBodies { body, spans })
}

fn topic_param(
    params: &[&[u8]],
    needed: usize,
    command: &str,
    prefix: &str,
) -> Result<String, ClientError> {
    if params.len() < needed {
        return Err(ClientError::invalid(format!(
            "{command} insufficient number of parameters"
        )));
    }
    let topic = params[1];
    match std::str::from_utf8(topic) {
        Ok(name) if is_valid_name(name) => Ok(name.to_string()),
        _ => Err(ClientError::fatal(
            "E_BAD_TOPIC",
            format!("{prefix} topic name {} is not valid", go_quote(topic)),
        )),
    }
}

/// One command's body-length check, worded and ordered as nsqd's.
struct LengthRule {
    code: &'static str,
    command: &'static str,
    /// What nsqd calls the length in "invalid ... size" (`body`, `message body`).
    what: &'static str,
    /// The noun in "... too big" (`body`, `message`).
    big: &'static str,
    max: i64,
}

impl LengthRule {
    /// IDENTIFY and AUTH bodies.
    fn body(command: &'static str, limits: &Limits) -> LengthRule {
        let max = limits.max_body_size;
        LengthRule {
            code: "E_BAD_BODY",
            command,
            what: "body",
            big: "body",
            max,
        }
    }

    /// A single message (PUB, DPUB).
    fn message(command: &'static str, limits: &Limits) -> LengthRule {
        let max = limits.max_msg_size;
        LengthRule {
            code: "E_BAD_MESSAGE",
            command,
            what: "message body",
            big: "message",
            max,
        }
    }

    /// The whole MPUB body.
    fn mpub(limits: &Limits) -> LengthRule {
        let max = limits.max_body_size;
        LengthRule {
            code: "E_BAD_BODY",
            command: "MPUB",
            what: "body",
            big: "body",
            max,
        }
    }

    fn check(&self, len: i32) -> Result<(), ClientError> {
        // The two bounds never both fail, so their order does not matter.
        if i64::from(len) > self.max {
            return Err(ClientError::fatal(
                self.code,
                format!("{} {} too big {len} > {}", self.command, self.big, self.max),
            ));
        }
        if len <= 0 {
            return Err(ClientError::fatal(
                self.code,
                format!("{} invalid {} size {len}", self.command, self.what),
            ));
        }
        Ok(())
    }
}

fn body_command(
    buf: &mut BytesMut,
    line_len: usize,
    rule: LengthRule,
    make: impl FnOnce(Bytes) -> Command,
) -> Result<Option<Command>, ClientError> {
    Ok(take_body(buf, line_len, rule)?.map(make))
}

/// Checks the length after the command line and, once the whole body has
/// arrived, consumes line, length and body, returning the body.
fn take_body(
    buf: &mut BytesMut,
    line_len: usize,
    rule: LengthRule,
) -> Result<Option<Bytes>, ClientError> {
    if buf.len() < line_len + 4 {
        return Ok(None);
    }
    let len = read_i32(&buf[line_len..]);
    rule.check(len)?;
    let total = line_len + 4 + len as usize;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    buf.advance(line_len + 4);
    Ok(Some(buf.split_to(len as usize).freeze()))
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn strip_cr_bytes(line: Bytes) -> Bytes {
    if line.ends_with(b"\r") {
        line.slice(..line.len() - 1)
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_msg_size: 100,
        max_body_size: 1000,
        max_req_timeout_ms: 3_600_000,
    };

    fn parse_all(input: &[u8]) -> (Vec<Command>, Option<ClientError>, usize) {
        let mut buf = BytesMut::from(input);
        let mut commands = Vec::new();
        loop {
            match parse(&mut buf, &LIMITS) {
                Ok(Some(c)) => commands.push(c),
                Ok(None) => return (commands, None, buf.len()),
                Err(e) => return (commands, Some(e), buf.len()),
            }
        }
    }

    fn framed(line: &str, body: &[u8]) -> Vec<u8> {
        let mut v = line.as_bytes().to_vec();
        v.extend_from_slice(&(body.len() as u32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn parses_several_commands_from_one_buffer() {
        let mut input = framed("PUB t\n", b"hello");
        input.extend_from_slice(b"NOP\nRDY 10\r\nFIN 0123456789abcdef\n");
        let (commands, err, left) = parse_all(&input);
        assert!(err.is_none());
        assert_eq!(left, 0);
        assert_eq!(
            commands[0],
            Command::Pub {
                topic: "t".into(),
                body: Bytes::from_static(b"hello")
            }
        );
        assert_eq!(commands[1], Command::Line(Verb::Nop, vec![]));
        assert_eq!(
            commands[2],
            Command::Line(Verb::Rdy, vec![Bytes::from_static(b"10")])
        );
        assert_eq!(
            commands[3],
            Command::Line(Verb::Fin, vec![Bytes::from_static(b"0123456789abcdef")])
        );
    }

    #[test]
    fn waits_for_a_complete_frame_at_every_split_point() {
        let input = framed("PUB topic\n", b"some body");
        for split in 0..input.len() {
            let mut buf = BytesMut::from(&input[..split]);
            assert_eq!(parse(&mut buf, &LIMITS), Ok(None), "split at {split}");
            assert_eq!(buf.len(), split, "nothing consumed at {split}");
            buf.extend_from_slice(&input[split..]);
            assert!(matches!(
                parse(&mut buf, &LIMITS),
                Ok(Some(Command::Pub { .. }))
            ));
        }
    }

    #[test]
    fn refuses_bad_lengths_before_the_body_arrives() {
        let mut huge = b"PUB t\n".to_vec();
        huge.extend_from_slice(&i32::MAX.to_be_bytes());
        let (_, err, _) = parse_all(&huge);
        assert_eq!(
            err.unwrap().to_string(),
            "E_BAD_MESSAGE PUB message too big 2147483647 > 100"
        );

        let mut negative = b"PUB t\n".to_vec();
        negative.extend_from_slice(&(-5i32).to_be_bytes());
        let (_, err, _) = parse_all(&negative);
        assert_eq!(
            err.unwrap().to_string(),
            "E_BAD_MESSAGE PUB invalid message body size -5"
        );

        let mut identify = b"IDENTIFY\n".to_vec();
        identify.extend_from_slice(&2000i32.to_be_bytes());
        let (_, err, _) = parse_all(&identify);
        assert_eq!(
            err.unwrap().to_string(),
            "E_BAD_BODY IDENTIFY body too big 2000 > 1000"
        );
    }

    #[test]
    fn errors_carry_nsqd_texts() {
        let cases: &[(&[u8], &str)] = &[
            (b"WAT\n", "E_INVALID invalid command WAT"),
            (b"PUB\n", "E_INVALID PUB insufficient number of parameters"),
            (
                b"PUB bad!name\n",
                "E_BAD_TOPIC PUB topic name \"bad!name\" is not valid",
            ),
            (
                b"MPUB bad!name\n",
                "E_BAD_TOPIC E_BAD_TOPIC MPUB topic name \"bad!name\" is not valid",
            ),
            (
                b"DPUB t\n",
                "E_INVALID DPUB insufficient number of parameters",
            ),
            (b"DPUB t x\n", "E_INVALID DPUB could not parse timeout x"),
            (
                b"DPUB t 3600001\n",
                "E_INVALID DPUB timeout 3600001 out of range 0-3600000",
            ),
            (b"AUTH x\n", "E_INVALID AUTH invalid number of parameters"),
        ];
        for (input, expected) in cases {
            let (_, err, _) = parse_all(input);
            let err = err.expect("an error");
            assert!(err.fatal);
            assert_eq!(err.to_string(), *expected);
        }
    }

    #[test]
    fn long_lines_without_newline_are_refused() {
        let (_, err, _) = parse_all(&vec![b'A'; MAX_LINE_LEN + 1]);
        assert_eq!(err.unwrap().code, "E_INVALID");
    }

    #[test]
    fn mpub_bodies_are_checked() {
        let mut body = 2i32.to_be_bytes().to_vec();
        for m in [&b"ab"[..], b"c"] {
            body.extend_from_slice(&(m.len() as i32).to_be_bytes());
            body.extend_from_slice(m);
        }
        let (commands, err, _) = parse_all(&framed("MPUB t\n", &body));
        assert!(err.is_none());
        assert_eq!(
            commands[0],
            Command::Mpub {
                topic: "t".into(),
                bodies: [&b"ab"[..], b"c"].into_iter().collect()
            }
        );

        let zero = 0i32.to_be_bytes();
        let (_, err, _) = parse_all(&framed("MPUB t\n", &zero));
        assert_eq!(
            err.unwrap().to_string(),
            "E_BAD_BODY MPUB invalid message count 0"
        );

        let mut short = 1i32.to_be_bytes().to_vec();
        short.extend_from_slice(&10i32.to_be_bytes());
        short.extend_from_slice(b"abc");
        let (_, err, _) = parse_all(&framed("MPUB t\n", &short));
        assert_eq!(
            err.unwrap().to_string(),
            "E_BAD_MESSAGE MPUB failed to read message body"
        );
    }

    #[test]
    fn mpub_sizes_are_refused_as_they_arrive() {
        // Declares a 900-byte body (under max_body_size 1000), then a first
        // message of 10 bytes and a second of 101 (over max_msg_size 100):
        // refused once that header is in, with 700 bytes still to come.
        let mut input = b"MPUB t\n".to_vec();
        input.extend_from_slice(&900i32.to_be_bytes());
        input.extend_from_slice(&3i32.to_be_bytes());
        input.extend_from_slice(&10i32.to_be_bytes());
        input.extend_from_slice(&[b'a'; 10]);
        input.extend_from_slice(&101i32.to_be_bytes());
        let mut parser = Parser::new(LIMITS);
        let mut buf = BytesMut::new();
        let mut result = Ok(None);
        for byte in &input {
            buf.extend_from_slice(&[*byte]);
            result = parser.parse(&mut buf, &Open);
            if result != Ok(None) {
                break;
            }
        }
        assert_eq!(
            result.unwrap_err().to_string(),
            "E_BAD_MESSAGE MPUB message too big 101 > 100"
        );

        let mut zero = b"MPUB t\n".to_vec();
        zero.extend_from_slice(&900i32.to_be_bytes());
        zero.extend_from_slice(&2i32.to_be_bytes());
        zero.extend_from_slice(&0i32.to_be_bytes());
        assert_eq!(
            parse_all(&zero).1.unwrap().to_string(),
            "E_BAD_MESSAGE MPUB invalid message(0) body size 0"
        );

        let mut count = b"MPUB t\n".to_vec();
        count.extend_from_slice(&900i32.to_be_bytes());
        count.extend_from_slice(&0i32.to_be_bytes());
        assert_eq!(
            parse_all(&count).1.unwrap().to_string(),
            "E_BAD_BODY MPUB invalid message count 0"
        );
    }

    #[test]
    fn a_streamed_mpub_parses_whole_once_complete_and_the_next_starts_fresh() {
        let bodies: Vec<Vec<u8>> = (0..20).map(|i| vec![b'0' + i as u8; 1 + i % 7]).collect();
        let mut body = (bodies.len() as i32).to_be_bytes().to_vec();
        for b in &bodies {
            body.extend_from_slice(&(b.len() as i32).to_be_bytes());
            body.extend_from_slice(b);
        }
        let mut input = framed("MPUB t\n", &body);
        input.extend_from_slice(&framed("MPUB u\n", &body));
        let mut parser = Parser::new(LIMITS);
        let mut buf = BytesMut::new();
        let mut parsed = Vec::new();
        for chunk in input.chunks(3) {
            buf.extend_from_slice(chunk);
            while let Some(command) = parser.parse(&mut buf, &Open).unwrap() {
                parsed.push(command);
            }
        }
        assert_eq!(parsed.len(), 2);
        for (command, topic) in parsed.iter().zip(["t", "u"]) {
            let Command::Mpub {
                topic: t,
                bodies: got,
            } = command
            else {
                panic!("{command:?}");
            };
            assert_eq!(t, topic);
            assert_eq!(got.iter().map(|b| b.to_vec()).collect::<Vec<_>>(), bodies);
        }
    }

    struct Refuse;
    impl Admission for Refuse {
        fn command(&self, verb: &[u8]) -> Result<(), ClientError> {
            Err(ClientError::invalid(format!(
                "cannot {} in current state (TLS required)",
                lossy(verb)
            )))
        }
        fn mpub(&self, _topic: &str) -> Result<(), ClientError> {
            Ok(())
        }
    }

    #[test]
    fn admission_comes_before_parameters_and_identify_is_always_admitted() {
        let mut parser = Parser::new(LIMITS);
        let mut bad_topic = BytesMut::from(&b"PUB bad!name\n"[..]);
        assert_eq!(
            parser
                .parse(&mut bad_topic, &Refuse)
                .unwrap_err()
                .to_string(),
            "E_INVALID cannot PUB in current state (TLS required)"
        );
        let mut identify = BytesMut::from(&framed("IDENTIFY\n", b"{}")[..]);
        assert!(matches!(
            parser.parse(&mut identify, &Refuse),
            Ok(Some(Command::Identify(_)))
        ));
    }
}
