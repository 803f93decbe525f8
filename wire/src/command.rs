//! Client-to-server commands of protocol V2, encoded: a line ending in
//! `\n`, and for IDENTIFY, AUTH, PUB, MPUB and DPUB a 4-byte big-endian
//! length and a body. Each function appends one command to `out`, so a
//! client can pipeline many into one write.

/// Appends `line` (without its `\n`) and a length-prefixed body.
pub fn with_body(out: &mut Vec<u8>, line: &str, body: &[u8]) {
    out.reserve(line.len() + 5 + body.len());
    out.extend_from_slice(line.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
}

/// Appends a body-less command line.
pub fn line(out: &mut Vec<u8>, line: &str) {
    out.extend_from_slice(line.as_bytes());
    out.push(b'\n');
}

pub fn identify(out: &mut Vec<u8>, json: &[u8]) {
    with_body(out, "IDENTIFY", json);
}

pub fn auth(out: &mut Vec<u8>, secret: &[u8]) {
    with_body(out, "AUTH", secret);
}

pub fn sub(out: &mut Vec<u8>, topic: &str, channel: &str) {
    line(out, &format!("SUB {topic} {channel}"));
}

pub fn publish(out: &mut Vec<u8>, topic: &str, body: &[u8]) {
    with_body(out, &format!("PUB {topic}"), body);
}

pub fn mpub<B: AsRef<[u8]>>(out: &mut Vec<u8>, topic: &str, bodies: &[B]) {
    with_body(out, &format!("MPUB {topic}"), &mpub_body(bodies));
}

pub fn dpub(out: &mut Vec<u8>, topic: &str, defer_ms: u64, body: &[u8]) {
    with_body(out, &format!("DPUB {topic} {defer_ms}"), body);
}

pub fn rdy(out: &mut Vec<u8>, count: u64) {
    line(out, &format!("RDY {count}"));
}

/// FIN for a message id (16 bytes, as received).
pub fn fin(out: &mut Vec<u8>, id: &[u8]) {
    with_id(out, "FIN ", id, None);
}

/// REQ for a message id, with the delay before it is delivered again.
pub fn req(out: &mut Vec<u8>, id: &[u8], timeout_ms: u64) {
    with_id(out, "REQ ", id, Some(timeout_ms));
}

pub fn touch(out: &mut Vec<u8>, id: &[u8]) {
    with_id(out, "TOUCH ", id, None);
}

pub fn nop(out: &mut Vec<u8>) {
    line(out, "NOP");
}

pub fn cls(out: &mut Vec<u8>) {
    line(out, "CLS");
}

fn with_id(out: &mut Vec<u8>, verb: &str, id: &[u8], number: Option<u64>) {
    out.extend_from_slice(verb.as_bytes());
    out.extend_from_slice(id);
    if let Some(number) = number {
        out.extend_from_slice(format!(" {number}").as_bytes());
    }
    out.push(b'\n');
}

/// MPUB's body (and HTTP `/mpub?binary=true`'s): a count, then each
/// message as a length and its bytes.
pub fn mpub_body<B: AsRef<[u8]>>(bodies: &[B]) -> Vec<u8> {
    let len = 4 + bodies.iter().map(|b| 4 + b.as_ref().len()).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&(bodies.len() as u32).to_be_bytes());
    for body in bodies {
        out.extend_from_slice(&(body.as_ref().len() as u32).to_be_bytes());
        out.extend_from_slice(body.as_ref());
    }
    out
}

/// Convenience: one command as its own buffer.
pub fn encode(write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    write(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_nsqds_bytes() {
        assert_eq!(encode(|o| publish(o, "t", b"hi")), b"PUB t\n\0\0\0\x02hi");
        assert_eq!(
            encode(|o| mpub(o, "t", &[b"a".as_slice(), b"bc"])),
            b"MPUB t\n\0\0\0\x0f\0\0\0\x02\0\0\0\x01a\0\0\0\x02bc"
        );
        assert_eq!(encode(|o| dpub(o, "t", 250, b"")), b"DPUB t 250\n\0\0\0\0");
        assert_eq!(encode(|o| sub(o, "t", "c")), b"SUB t c\n");
        assert_eq!(encode(|o| rdy(o, 10)), b"RDY 10\n");
        assert_eq!(
            encode(|o| req(o, b"0123456789abcdef", 5)),
            b"REQ 0123456789abcdef 5\n"
        );
        assert_eq!(
            encode(|o| fin(o, b"0123456789abcdef")),
            b"FIN 0123456789abcdef\n"
        );
        assert_eq!(encode(nop), b"NOP\n");
    }
}
