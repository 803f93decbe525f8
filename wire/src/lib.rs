//! NSQ's wire formats, written once for everyone who speaks them: the
//! broker, the load tool and the tests (so a framing rule changes in one
//! place, and a test reads frames the way a client would, not the way the
//! server writes them).
//!
//! - [`frame`]: server-to-client frames of protocol V2 (`[size][type][data]`)
//! - [`message`]: a message and its encoding inside a message frame
//! - [`command`]: client-to-server commands of protocol V2, encoded
//! - [`lookup`]: the lookupd protocol V1's responses (`[size][data]`)
//!
//! Parsing the commands a server receives, with nsqd's error codes, stays
//! with the server (`wasq_host::protocol::command`): it is the server's
//! judgement of a client, not a shared format.

pub mod command;
pub mod frame;
pub mod lookup;
pub mod message;

pub use frame::{Frame, FrameType};
pub use message::{MESSAGE_HEADER_LEN, MESSAGE_ID_LEN, Message, MessageId};

/// The first bytes a protocol V2 client sends (nsqd).
pub const MAGIC_V2: &[u8; 4] = b"  V2";
/// The first bytes a protocol V1 client sends (nsqlookupd).
pub const MAGIC_V1: &[u8; 4] = b"  V1";

/// Bytes that are not what the format says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("frame size {0} is too small for a frame type")]
    FrameTooSmall(u32),
    #[error("frame size {size} exceeds the limit of {limit}")]
    FrameTooLarge { size: u32, limit: u32 },
    #[error("unknown frame type {0}")]
    UnknownFrameType(u32),
    #[error("message of {0} bytes is shorter than its header")]
    MessageTooShort(usize),
}
