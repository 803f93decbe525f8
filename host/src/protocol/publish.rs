//! PUB, MPUB and DPUB. Framing and size checks happened in `command`; here
//! the messages enter their topic.

use std::time::Duration;

use super::connection::Connection;
use super::error::ClientError;
use crate::broker::message::IntoBody;
use crate::broker::topic::PublishError;
use wasq_wire::frame;

impl Connection {
    pub(super) fn publish<I>(
        &mut self,
        command: &'static str,
        topic: &str,
        bodies: I,
        defer_ms: i64,
    ) -> Result<(), ClientError>
    where
        I: IntoIterator<Item: IntoBody, IntoIter: ExactSizeIterator>,
    {
        if command != "MPUB" {
            // nsqd authorizes PUB and DPUB once their body is read (MPUB
            // was authorized before its body, in `command`).
            self.check_auth(command, topic, "")?;
        }
        let bodies = bodies.into_iter();
        let count = bodies.len() as u64;
        let defer = Duration::from_millis(defer_ms.max(0) as u64);
        let pending = self
            .broker
            .publish(topic, bodies, defer)
            .map_err(|e| publish_failed(command, topic, &e))?;
        self.client.record_published(topic, count);
        self.respond_after_sync(frame::OK, pending, command, topic);
        Ok(())
    }
}

/// nsqd's fatal error for a failed publish; storage failures are logged
/// (a topic being deleted is the operator's doing, not a fault).
pub(super) fn publish_failed(
    command: &'static str,
    topic: &str,
    error: &PublishError,
) -> ClientError {
    let code = match command {
        "MPUB" => "E_MPUB_FAILED",
        "DPUB" => "E_DPUB_FAILED",
        _ => "E_PUB_FAILED",
    };
    if let PublishError::Storage(e) = error {
        tracing::error!(topic, error = %e, "{command} failed");
    }
    ClientError::fatal(code, format!("{command} failed {error}"))
}
