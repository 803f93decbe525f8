//! Server-to-client frames of protocol V2: `[size u32][type u32][data]`,
//! big-endian, where size counts the type and the data.
//!
//! Writing appends to an output buffer (the server batches frames and
//! flushes on size or time). Reading is offered three ways over one rule:
//! [`parse`] takes a complete frame off the front of a buffer and leaves an
//! incomplete one for later (a connection that reads in chunks); [`read`]
//! and `read_async` (feature `tokio`) block or wait for one frame.

use std::io::{self, Read};

use bytes::{Buf, Bytes, BytesMut};

use crate::WireError;
use crate::message::Message;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum FrameType {
    /// A response: `OK`, `CLOSE_WAIT`, `_heartbeat_`, IDENTIFY's JSON.
    Response = 0,
    /// An error: `E_CODE description`.
    Error = 1,
    /// A message for a consumer.
    Message = 2,
}

impl FrameType {
    pub fn from_u32(value: u32) -> Result<FrameType, WireError> {
        match value {
            0 => Ok(FrameType::Response),
            1 => Ok(FrameType::Error),
            2 => Ok(FrameType::Message),
            other => Err(WireError::UnknownFrameType(other)),
        }
    }
}

/// The response a server sends to say "done".
pub const OK: &[u8] = b"OK";
/// The response a server sends to check a client is alive; it answers NOP.
pub const HEARTBEAT: &[u8] = b"_heartbeat_";
/// The response to CLS.
pub const CLOSE_WAIT: &[u8] = b"CLOSE_WAIT";

/// Bytes before a frame's data: size and type.
pub const FRAME_HEADER_LEN: usize = 8;

/// Appends one frame to `out`.
pub fn write_frame(out: &mut Vec<u8>, frame_type: FrameType, data: &[u8]) {
    out.reserve(FRAME_HEADER_LEN + data.len());
    out.extend_from_slice(&(4 + data.len() as u32).to_be_bytes());
    out.extend_from_slice(&(frame_type as u32).to_be_bytes());
    out.extend_from_slice(data);
}

/// Appends a message frame to `out`.
pub fn write_message(out: &mut Vec<u8>, message: &Message) {
    out.reserve(FRAME_HEADER_LEN + message.encoded_len());
    out.extend_from_slice(&(4 + message.encoded_len() as u32).to_be_bytes());
    out.extend_from_slice(&(FrameType::Message as u32).to_be_bytes());
    message.encode_into(out);
}

/// One frame as a client receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub frame_type: FrameType,
    pub data: Bytes,
}

impl Frame {
    pub fn is_heartbeat(&self) -> bool {
        self.frame_type == FrameType::Response && self.data == HEARTBEAT
    }

    pub fn is_ok(&self) -> bool {
        self.frame_type == FrameType::Response && self.data == OK
    }

    /// The data as text (responses and errors are ASCII).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }

    /// The message a message frame carries.
    pub fn message(&self) -> Result<Message, WireError> {
        Message::decode(&self.data)
    }

    /// Builds a frame from its size-counted part (`[type][data]`).
    fn from_body(mut body: Bytes) -> Result<Frame, WireError> {
        let size = body.len() as u32;
        if body.len() < 4 {
            return Err(WireError::FrameTooSmall(size));
        }
        let frame_type = FrameType::from_u32(body.get_u32())?;
        Ok(Frame {
            frame_type,
            data: body,
        })
    }
}

/// The whole length (header included) of the frame at the front of `buf`,
/// if all of it has arrived.
pub fn complete_frame_len(buf: &[u8]) -> Option<usize> {
    let size = u32::from_be_bytes(buf.get(..4)?.try_into().ok()?) as usize;
    (buf.len() >= 4 + size).then_some(4 + size)
}

/// Takes the frame at the front of `buf` if it is complete; `Ok(None)`
/// leaves `buf` as it was, to be called again when more has arrived.
pub fn parse(buf: &mut BytesMut) -> Result<Option<Frame>, WireError> {
    let Some(len) = complete_frame_len(buf) else {
        return Ok(None);
    };
    let mut frame = buf.split_to(len);
    frame.advance(4);
    Frame::from_body(frame.freeze()).map(Some)
}

/// Reads one frame from a blocking reader.
pub fn read(reader: &mut impl Read) -> io::Result<Frame> {
    let mut size = [0u8; 4];
    reader.read_exact(&mut size)?;
    let mut body = vec![0u8; u32::from_be_bytes(size) as usize];
    reader.read_exact(&mut body)?;
    Frame::from_body(body.into()).map_err(invalid_data)
}

/// Reads one frame from an async reader.
#[cfg(feature = "tokio")]
pub async fn read_async(reader: &mut (impl tokio::io::AsyncRead + Unpin)) -> io::Result<Frame> {
    use tokio::io::AsyncReadExt;
    let size = reader.read_u32().await? as usize;
    let mut body = vec![0u8; size];
    reader.read_exact(&mut body).await?;
    Frame::from_body(body.into()).map_err(invalid_data)
}

pub(crate) fn invalid_data(error: WireError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::MessageId;

    #[test]
    fn frames_carry_size_and_type() {
        let mut out = Vec::new();
        write_frame(&mut out, FrameType::Response, OK);
        assert_eq!(out, [0, 0, 0, 6, 0, 0, 0, 0, b'O', b'K']);
    }

    #[test]
    fn parse_waits_for_a_whole_frame_and_reads_it_back() {
        let message = Message::new(MessageId(*b"0123456789abcdef"), Bytes::from_static(b"x"));
        let mut out = Vec::new();
        write_frame(&mut out, FrameType::Error, b"E_INVALID nope");
        write_message(&mut out, &message);
        let mut buf = BytesMut::new();
        for (i, byte) in out.iter().enumerate() {
            buf.extend_from_slice(&[*byte]);
            let frame = parse(&mut buf).unwrap();
            // Only the last byte of each frame completes it.
            assert_eq!(frame.is_some(), i == 21 || i == out.len() - 1, "at {i}");
            if let Some(frame) = frame {
                match frame.frame_type {
                    FrameType::Error => assert_eq!(frame.text(), "E_INVALID nope"),
                    FrameType::Message => assert_eq!(frame.message().unwrap(), message),
                    FrameType::Response => panic!("no response was written"),
                }
            }
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn read_reports_bad_frames() {
        let mut out = Vec::new();
        out.extend_from_slice(&4u32.to_be_bytes());
        out.extend_from_slice(&7u32.to_be_bytes());
        let error = read(&mut out.as_slice()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        let short = [0, 0, 0, 2, 0, 0];
        assert!(read(&mut short.as_slice()).is_err());
        let mut ok = Vec::new();
        write_frame(&mut ok, FrameType::Response, HEARTBEAT);
        assert!(read(&mut ok.as_slice()).unwrap().is_heartbeat());
    }
}
