//! Errors sent to a TCP client as an error frame, `CODE description`.
//!
//! Whether an error closes the connection follows nsqd exactly: only
//! E_FIN_FAILED, E_REQ_FAILED and E_TOUCH_FAILED leave it open, since a client
//! that acknowledges a message it no longer holds is not out of sync.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    pub code: &'static str,
    pub description: String,
    /// The connection closes after the error frame.
    pub fatal: bool,
}

impl ClientError {
    pub fn fatal(code: &'static str, description: impl Into<String>) -> ClientError {
        ClientError {
            code,
            description: description.into(),
            fatal: true,
        }
    }

    pub fn recoverable(code: &'static str, description: impl Into<String>) -> ClientError {
        ClientError {
            code,
            description: description.into(),
            fatal: false,
        }
    }

    pub fn invalid(description: impl Into<String>) -> ClientError {
        ClientError::fatal("E_INVALID", description)
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.description)
    }
}

impl std::error::Error for ClientError {}
