//! FIN, REQ and TOUCH: a consumer settling the messages it holds.
//!
//! A refused acknowledgement (the message timed out and went to someone
//! else, or was never ours) is not fatal: nsqd answers E_FIN_FAILED,
//! E_REQ_FAILED or E_TOUCH_FAILED and keeps the connection.

use std::time::Duration;

use bytes::Bytes;

use super::connection::Connection;
use super::error::ClientError;
use super::go_text::{lossy, parse_base10};
use crate::broker::channel::Channel;
use crate::broker::client::ClientState;
use crate::broker::message::MessageId;
use std::sync::Arc;

impl Connection {
    /// FIN: checked now, done with the FINs after it in the same read
    /// (see [`Connection::finish_pending`]).
    pub(super) fn finish(&mut self, params: &[Bytes]) -> Result<(), ClientError> {
        let checked = self.held_message("FIN", params, 1);
        let (_, id) = match checked {
            Ok(held) => held,
            Err(e) => {
                // Earlier FINs' errors go out first.
                self.finish_pending();
                return Err(e);
            }
        };
        self.pending_fins.push(id);
        Ok(())
    }

    /// Finishes the FINs gathered from the read buffer under one channel
    /// lock, instead of one lock per message, and writes nsqd's
    /// E_FIN_FAILED for each refused one in order. Runs before any other
    /// command and once the buffer holds no complete command, so every
    /// answer keeps its place.
    pub(super) fn finish_pending(&mut self) {
        if self.pending_fins.is_empty() {
            return;
        }
        let mut ids = std::mem::take(&mut self.pending_fins);
        if let Some((_, channel)) = &self.subscription {
            let mut errors = Vec::new();
            channel.finish_many(&self.client, &ids, |id, e| {
                errors.push(ClientError::recoverable(
                    "E_FIN_FAILED",
                    format!("FIN {id} failed {e}"),
                ))
            });
            for error in &errors {
                self.refuse(error);
            }
        }
        ids.clear();
        self.pending_fins = ids; // its allocation serves the next read
    }

    pub(super) fn requeue(&mut self, params: &[Bytes]) -> Result<(), ClientError> {
        let (channel, id) = self.held_message("REQ", params, 2)?;
        let raw = &params[1];
        let timeout_ms = parse_base10(raw).ok_or_else(|| {
            ClientError::invalid(format!("REQ could not parse timeout {}", lossy(raw)))
        })? as i64;
        let max = self.broker.options.max_req_timeout;
        let delay = Duration::from_millis(timeout_ms.max(0) as u64).min(max);
        if delay.as_millis() as i64 != timeout_ms {
            tracing::info!(client = %self.client.remote_address, timeout_ms, clamped_ms = delay.as_millis() as u64, "REQ timeout out of range, clamped");
        }
        channel
            .requeue(&self.client, &id, delay)
            .map_err(|e| ClientError::recoverable("E_REQ_FAILED", format!("REQ {id} failed {e}")))
    }

    pub(super) fn touch(&mut self, params: &[Bytes]) -> Result<(), ClientError> {
        let (channel, id) = self.held_message("TOUCH", params, 1)?;
        channel
            .touch(self.client.id, &id, self.msg_timeout)
            .map_err(|e| {
                ClientError::recoverable("E_TOUCH_FAILED", format!("TOUCH {id} failed {e}"))
            })
    }

    /// The checks FIN, REQ and TOUCH share, in nsqd's order: state, number
    /// of parameters, then the id's length.
    fn held_message(
        &self,
        command: &str,
        params: &[Bytes],
        needed: usize,
    ) -> Result<(Arc<Channel>, MessageId), ClientError> {
        let subscribed = matches!(self.state(), ClientState::Subscribed | ClientState::Closing);
        let channel = match (&self.subscription, subscribed) {
            (Some((_, channel)), true) => channel.clone(),
            _ => {
                return Err(ClientError::invalid(format!(
                    "cannot {command} in current state"
                )));
            }
        };
        if params.len() < needed {
            return Err(ClientError::invalid(format!(
                "{command} insufficient number of params"
            )));
        }
        let id = MessageId::from_slice(&params[0])
            .ok_or_else(|| ClientError::invalid("invalid message ID"))?;
        Ok((channel, id))
    }
}
