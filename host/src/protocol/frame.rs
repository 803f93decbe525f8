//! Server-to-client frames: `[size u32][type u32][data]`, big-endian, where
//! size counts the type and the data.

use crate::broker::message::Message;

pub const FRAME_TYPE_RESPONSE: u32 = 0;
pub const FRAME_TYPE_ERROR: u32 = 1;
pub const FRAME_TYPE_MESSAGE: u32 = 2;

pub const HEARTBEAT: &[u8] = b"_heartbeat_";
pub const OK: &[u8] = b"OK";

/// Appends one frame to `out`.
pub fn write_frame(out: &mut Vec<u8>, frame_type: u32, data: &[u8]) {
    out.reserve(8 + data.len());
    out.extend_from_slice(&(4 + data.len() as u32).to_be_bytes());
    out.extend_from_slice(&frame_type.to_be_bytes());
    out.extend_from_slice(data);
}

/// Appends a message frame to `out`.
pub fn write_message(out: &mut Vec<u8>, message: &Message) {
    out.reserve(8 + message.encoded_len());
    out.extend_from_slice(&(4 + message.encoded_len() as u32).to_be_bytes());
    out.extend_from_slice(&FRAME_TYPE_MESSAGE.to_be_bytes());
    message.encode_into(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_size_and_type() {
        let mut out = Vec::new();
        write_frame(&mut out, FRAME_TYPE_RESPONSE, OK);
        assert_eq!(out, [0, 0, 0, 6, 0, 0, 0, 0, b'O', b'K']);
    }
}
