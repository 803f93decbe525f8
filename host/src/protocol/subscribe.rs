//! SUB, RDY and CLS: becoming a consumer and steering flow control.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::connection::Connection;
use super::error::ClientError;
use super::go_text::{go_quote, lossy, parse_base10};
use crate::broker::channel::consumers::JoinError;
use crate::broker::client::ClientState;
use crate::broker::names::is_valid_name;
use wasq_wire::frame;

impl Connection {
    pub(super) fn subscribe(&mut self, params: &[Bytes]) -> Result<(), ClientError> {
        if self.state() != ClientState::Init {
            return Err(ClientError::invalid("cannot SUB in current state"));
        }
        if self.heartbeat_interval.is_none() {
            return Err(ClientError::invalid("cannot SUB with heartbeats disabled"));
        }
        if params.len() < 2 {
            return Err(ClientError::invalid(
                "SUB insufficient number of parameters",
            ));
        }
        let topic = valid_name(&params[0]).ok_or_else(|| {
            ClientError::fatal(
                "E_BAD_TOPIC",
                format!("SUB topic name {} is not valid", go_quote(&params[0])),
            )
        })?;
        let channel = valid_name(&params[1]).ok_or_else(|| {
            ClientError::fatal(
                "E_BAD_CHANNEL",
                format!("SUB channel name {} is not valid", go_quote(&params[1])),
            )
        })?;
        self.check_auth("SUB", topic, channel)?;
        let limit = self.broker.options.max_channel_consumers as usize;
        let subscription = self
            .broker
            .subscribe(topic, channel, &self.client, limit)
            .map_err(|e| match e {
                JoinError::Exiting => {
                    ClientError::fatal("E_SUB_FAILED", "SUB failed to deleted topic/channel")
                }
                full => ClientError::fatal("E_SUB_FAILED", format!("SUB failed {full}")),
            })?;
        self.subscription = Some(subscription);
        self.set_state(ClientState::Subscribed);
        self.respond(frame::OK);
        Ok(())
    }

    pub(super) fn ready(&mut self, params: &[Bytes]) -> Result<(), ClientError> {
        match self.state() {
            ClientState::Closing => return Ok(()),
            ClientState::Subscribed => {}
            _ => return Err(ClientError::invalid("cannot RDY in current state")),
        }
        let count = match params.first() {
            Some(raw) => parse_base10(raw).ok_or_else(|| {
                ClientError::invalid(format!("RDY could not parse count {}", lossy(raw)))
            })? as i64,
            None => 1,
        };
        let max = self.broker.options.max_rdy_count;
        if count < 0 || count > max {
            return Err(ClientError::invalid(format!(
                "RDY count {count} out of range 0-{max}"
            )));
        }
        self.client.ready_count.store(count, Ordering::Release);
        Ok(())
    }

    /// CLS: stop sending messages; the client closes once it has settled
    /// what it holds.
    pub(super) fn start_close(&mut self) -> Result<(), ClientError> {
        if self.state() != ClientState::Subscribed {
            return Err(ClientError::invalid("cannot CLS in current state"));
        }
        self.client.ready_count.store(0, Ordering::Release);
        self.set_state(ClientState::Closing);
        self.respond(frame::CLOSE_WAIT);
        Ok(())
    }
}

fn valid_name(raw: &[u8]) -> Option<&str> {
    std::str::from_utf8(raw)
        .ok()
        .filter(|name| is_valid_name(name))
}
