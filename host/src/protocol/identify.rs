//! IDENTIFY (feature negotiation and per-client settings) and AUTH.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::connection::Connection;
use super::error::ClientError;
use crate::broker::client::ClientState;
use crate::config::NSQ_VERSION;
use wasq_wire::frame;

/// What a client may send with IDENTIFY. As with Go's decoder, unknown
/// fields are ignored and `null` means "not given" (tokio-nsq sends
/// `"sample_rate":null`).
#[derive(Debug, Default, Deserialize)]
pub struct IdentifyData {
    #[serde(default, deserialize_with = "null_as_default")]
    pub client_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub hostname: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub heartbeat_interval: i64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub output_buffer_size: i64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub output_buffer_timeout: i64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub feature_negotiation: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tls_v1: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub deflate: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub deflate_level: i64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub snappy: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub sample_rate: i32,
    #[serde(default, deserialize_with = "null_as_default")]
    pub user_agent: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub msg_timeout: i64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub topology_region: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub topology_zone: String,
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// nsqd's IDENTIFY response when `feature_negotiation` is set; field order as nsqd.
#[derive(Debug, Serialize)]
struct IdentifyResponse<'a> {
    max_rdy_count: i64,
    version: &'a str,
    max_msg_timeout: i64,
    msg_timeout: i64,
    tls_v1: bool,
    deflate: bool,
    deflate_level: i64,
    max_deflate_level: i64,
    snappy: bool,
    sample_rate: i32,
    auth_required: bool,
    output_buffer_size: usize,
    output_buffer_timeout: i64,
}

/// nsqd's `--max-deflate-level` default; deflate itself comes with its own issue.
const MAX_DEFLATE_LEVEL: i64 = 6;

impl Connection {
    pub(super) fn identify(&mut self, body: &Bytes) -> Result<(), ClientError> {
        if self.state() != ClientState::Init {
            return Err(ClientError::invalid("cannot IDENTIFY in current state"));
        }
        let data: IdentifyData = serde_json::from_slice(body)
            .map_err(|_| ClientError::fatal("E_BAD_BODY", "IDENTIFY failed to decode JSON body"))?;
        tracing::debug!(client = %self.client.remote_address, ?data, "IDENTIFY");
        self.apply_identify(&data)
            .map_err(|e| ClientError::fatal("E_BAD_BODY", format!("IDENTIFY {e}")))?;

        if data.tls_v1 || data.snappy || data.deflate {
            // Answered `false` below, so clients fall back to a plain stream.
            tracing::info!(
                client = %self.client.remote_address,
                tls_v1 = data.tls_v1,
                snappy = data.snappy,
                deflate = data.deflate,
                deflate_level = data.deflate_level,
                "client asked for TLS/compression, which this build does not offer yet"
            );
        }
        if !data.feature_negotiation {
            self.respond(frame::OK);
            return Ok(());
        }
        let options = &self.broker.options;
        let response = IdentifyResponse {
            max_rdy_count: options.max_rdy_count,
            version: NSQ_VERSION,
            max_msg_timeout: options.max_msg_timeout.as_millis() as i64,
            msg_timeout: self.msg_timeout.as_millis() as i64,
            tls_v1: false,
            deflate: false,
            deflate_level: MAX_DEFLATE_LEVEL,
            max_deflate_level: MAX_DEFLATE_LEVEL,
            snappy: false,
            sample_rate: self.sample_rate,
            auth_required: false,
            output_buffer_size: self.output_buffer_size,
            output_buffer_timeout: self.output_buffer_timeout.as_millis() as i64,
        };
        let json = serde_json::to_vec(&response).expect("plain struct serializes");
        self.respond(&json);
        Ok(())
    }

    /// Validates and applies the client's settings in nsqd's order, with
    /// nsqd's error texts.
    fn apply_identify(&mut self, data: &IdentifyData) -> Result<(), String> {
        let options = &self.broker.options;
        {
            let mut meta = self.client.meta.lock();
            meta.client_id = data.client_id.clone();
            meta.hostname = data.hostname.clone();
            meta.user_agent = data.user_agent.clone();
            meta.topology_region = data.topology_region.clone();
            meta.topology_zone = data.topology_zone.clone();
        }

        let max_heartbeat = options.max_heartbeat_interval.as_millis() as i64;
        match data.heartbeat_interval {
            -1 => self.heartbeat_interval = None,
            0 => {}
            ms if (1000..=max_heartbeat).contains(&ms) => {
                self.heartbeat_interval = Some(Duration::from_millis(ms as u64));
            }
            ms => return Err(format!("heartbeat interval ({ms}) is invalid")),
        }

        let min_timeout = options.min_output_buffer_timeout.as_millis() as i64;
        let max_timeout = options.max_output_buffer_timeout.as_millis() as i64;
        match data.output_buffer_timeout {
            -1 => self.output_buffer_timeout = Duration::ZERO,
            0 => {}
            ms if (min_timeout..=max_timeout).contains(&ms) => {
                self.output_buffer_timeout = Duration::from_millis(ms as u64);
            }
            ms => return Err(format!("output buffer timeout ({ms}) is invalid")),
        }
        match data.output_buffer_size {
            -1 => {
                self.output_buffer_size = 1;
                self.output_buffer_timeout = Duration::ZERO;
            }
            0 => {}
            size if (64..=options.max_output_buffer_size).contains(&size) => {
                self.output_buffer_size = size as usize;
            }
            size => return Err(format!("output buffer size ({size}) is invalid")),
        }

        if !(0..=99).contains(&data.sample_rate) {
            return Err(format!("sample rate ({}) is invalid", data.sample_rate));
        }
        self.sample_rate = data.sample_rate;
        self.client.meta.lock().sample_rate = data.sample_rate;

        let max_msg_timeout = options.max_msg_timeout.as_millis() as i64;
        match data.msg_timeout {
            0 => {}
            ms if (1000..=max_msg_timeout).contains(&ms) => {
                self.msg_timeout = Duration::from_millis(ms as u64)
            }
            ms => return Err(format!("msg timeout ({ms}) is invalid")),
        }
        Ok(())
    }

    /// AUTH: no auth server can be configured yet, so it is refused as nsqd
    /// refuses it without `--auth-http-address`.
    pub(super) fn auth(&mut self, _body: &Bytes) -> Result<(), ClientError> {
        if self.state() != ClientState::Init {
            return Err(ClientError::invalid("cannot AUTH in current state"));
        }
        Err(ClientError::fatal("E_AUTH_DISABLED", "AUTH disabled"))
    }
}
