//! IDENTIFY: per-client settings and feature negotiation, then the
//! in-band upgrades it negotiated (TLS, snappy, deflate).

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::compression::Compression;
use super::connection::{Connection, Suspend};
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

/// What IDENTIFY negotiated, done after its response has gone out plain.
pub(super) struct Upgrade {
    tls: bool,
    compression: Option<Negotiated>,
}

#[derive(Clone, Copy)]
enum Negotiated {
    Snappy,
    Deflate(u32),
}

fn identify_failed(error: impl std::fmt::Display) -> ClientError {
    ClientError::fatal("E_IDENTIFY_FAILED", format!("IDENTIFY failed {error}"))
}

impl Connection {
    pub(super) fn identify(&mut self, body: &Bytes) -> Result<Option<Suspend>, ClientError> {
        if self.state() != ClientState::Init {
            return Err(ClientError::invalid("cannot IDENTIFY in current state"));
        }
        let data: IdentifyData = serde_json::from_slice(body)
            .map_err(|_| ClientError::fatal("E_BAD_BODY", "IDENTIFY failed to decode JSON body"))?;
        tracing::debug!(client = %self.client.remote_address, ?data, "IDENTIFY");
        self.apply_identify(&data)
            .map_err(|e| ClientError::fatal("E_BAD_BODY", format!("IDENTIFY {e}")))?;

        if !data.feature_negotiation {
            self.respond(frame::OK);
            return Ok(None);
        }
        let options = &self.broker.options;
        let tls = self.security.tls.is_some() && data.tls_v1 && !self.transport.is_tls();
        let deflate = options.deflate && data.deflate;
        let mut deflate_level = 6;
        if deflate && data.deflate_level > 0 {
            deflate_level = data.deflate_level;
        }
        deflate_level = deflate_level.min(options.max_deflate_level);
        let snappy = options.snappy && data.snappy;
        if deflate && snappy {
            return Err(ClientError::fatal(
                "E_IDENTIFY_FAILED",
                "cannot enable both deflate and snappy compression",
            ));
        }
        let response = IdentifyResponse {
            max_rdy_count: options.max_rdy_count,
            version: NSQ_VERSION,
            max_msg_timeout: options.max_msg_timeout.as_millis() as i64,
            msg_timeout: self.msg_timeout.as_millis() as i64,
            tls_v1: tls,
            deflate,
            deflate_level,
            max_deflate_level: options.max_deflate_level,
            snappy,
            sample_rate: self.sample_rate,
            auth_required: self.security.auth_enabled(),
            output_buffer_size: self.output_buffer_size,
            output_buffer_timeout: self.output_buffer_timeout.as_millis() as i64,
        };
        let json = serde_json::to_vec(&response).expect("plain struct serializes");
        self.respond(&json);
        let compression = if snappy {
            Some(Negotiated::Snappy)
        } else if deflate {
            Some(Negotiated::Deflate(deflate_level as u32))
        } else {
            None
        };
        if !tls && compression.is_none() {
            return Ok(None);
        }
        Ok(Some(Suspend::Upgrade(Upgrade { tls, compression })))
    }

    /// Upgrades the connection in nsqd's order, TLS then compression,
    /// each followed by an OK sent over the upgraded stream.
    pub(super) async fn upgrade(&mut self, upgrade: Upgrade) -> Result<(), ClientError> {
        let client = self.client.remote_address.clone();
        if upgrade.tls {
            tracing::info!(client = %client, "PROTOCOL(V2): upgrading connection to TLS");
            if !self.read_buf.is_empty() {
                // nsqd's buffered reader would swallow these too.
                return Err(identify_failed("data arrived before the TLS handshake"));
            }
            let acceptor = self
                .security
                .tls
                .clone()
                .expect("TLS offered only when configured");
            let session = self
                .transport
                .upgrade_to_tls(&acceptor)
                .await
                .map_err(identify_failed)?;
            tracing::debug!(client = %client, version = %session.version, suite = %session.cipher_suite, "TLS handshake done");
            self.client.meta.lock().tls = Some(session);
            self.respond(frame::OK);
            self.flush().await.map_err(identify_failed)?;
        }
        if let Some(negotiated) = upgrade.compression {
            let compression = match negotiated {
                Negotiated::Snappy => Compression::snappy(),
                Negotiated::Deflate(level) => Compression::deflate(level),
            };
            match negotiated {
                Negotiated::Snappy => {
                    tracing::info!(client = %client, "PROTOCOL(V2): upgrading connection to snappy")
                }
                Negotiated::Deflate(level) => {
                    tracing::info!(client = %client, "PROTOCOL(V2): upgrading connection to deflate (level {level})")
                }
            }
            self.transport
                .compress(compression, &mut self.read_buf)
                .map_err(identify_failed)?;
            {
                let mut meta = self.client.meta.lock();
                meta.snappy = matches!(negotiated, Negotiated::Snappy);
                meta.deflate = matches!(negotiated, Negotiated::Deflate(_));
            }
            self.respond(frame::OK);
            self.flush().await.map_err(identify_failed)?;
        }
        Ok(())
    }

    /// Validates the client's settings and applies them.
    fn apply_identify(&mut self, data: &IdentifyData) -> Result<(), String> {
        let settings = Negotiation::from_options(&self.broker.options).validate(data)?;
        {
            let mut meta = self.client.meta.lock();
            meta.client_id = data.client_id.clone();
            meta.hostname = data.hostname.clone();
            meta.user_agent = data.user_agent.clone();
            meta.topology_region = data.topology_region.clone();
            meta.topology_zone = data.topology_zone.clone();
            meta.sample_rate = settings.sample_rate;
        }
        if let Some(heartbeat) = settings.heartbeat_interval {
            self.heartbeat_interval = heartbeat;
        }
        if let Some(timeout) = settings.output_buffer_timeout {
            self.output_buffer_timeout = timeout;
        }
        if let Some(size) = settings.output_buffer_size {
            self.output_buffer_size = size;
        }
        if let Some(timeout) = settings.msg_timeout {
            self.msg_timeout = timeout;
        }
        self.sample_rate = settings.sample_rate;
        Ok(())
    }
}

/// The bounds IDENTIFY's values are checked against (from the options).
#[derive(Debug, Clone)]
pub struct Negotiation {
    max_heartbeat_ms: i64,
    min_output_buffer_timeout_ms: i64,
    max_output_buffer_timeout_ms: i64,
    max_output_buffer_size: i64,
    max_msg_timeout_ms: i64,
}

/// What a valid IDENTIFY changes; `None` keeps the connection's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// `Some(None)`: heartbeats disabled.
    pub heartbeat_interval: Option<Option<Duration>>,
    pub output_buffer_timeout: Option<Duration>,
    pub output_buffer_size: Option<usize>,
    pub sample_rate: i32,
    pub msg_timeout: Option<Duration>,
}

impl Negotiation {
    pub fn from_options(options: &crate::config::Options) -> Negotiation {
        Negotiation {
            max_heartbeat_ms: options.max_heartbeat_interval.as_millis() as i64,
            min_output_buffer_timeout_ms: options.min_output_buffer_timeout.as_millis() as i64,
            max_output_buffer_timeout_ms: options.max_output_buffer_timeout.as_millis() as i64,
            max_output_buffer_size: options.max_output_buffer_size,
            max_msg_timeout_ms: options.max_msg_timeout.as_millis() as i64,
        }
    }

    /// nsqd's defaults.
    pub fn defaults() -> Negotiation {
        use clap::Parser;
        Negotiation::from_options(&crate::config::Options::parse_from(["wasqd"]))
    }

    /// Checks the settings in nsqd's order, with nsqd's error texts.
    pub fn validate(&self, data: &IdentifyData) -> Result<ClientSettings, String> {
        let mut settings = ClientSettings {
            heartbeat_interval: None,
            output_buffer_timeout: None,
            output_buffer_size: None,
            sample_rate: 0,
            msg_timeout: None,
        };
        match data.heartbeat_interval {
            -1 => settings.heartbeat_interval = Some(None),
            0 => {}
            ms if (1000..=self.max_heartbeat_ms).contains(&ms) => {
                settings.heartbeat_interval = Some(Some(Duration::from_millis(ms as u64)));
            }
            ms => return Err(format!("heartbeat interval ({ms}) is invalid")),
        }
        let timeouts = self.min_output_buffer_timeout_ms..=self.max_output_buffer_timeout_ms;
        match data.output_buffer_timeout {
            -1 => settings.output_buffer_timeout = Some(Duration::ZERO),
            0 => {}
            ms if timeouts.contains(&ms) => {
                settings.output_buffer_timeout = Some(Duration::from_millis(ms as u64));
            }
            ms => return Err(format!("output buffer timeout ({ms}) is invalid")),
        }
        match data.output_buffer_size {
            -1 => {
                settings.output_buffer_size = Some(1);
                settings.output_buffer_timeout = Some(Duration::ZERO);
            }
            0 => {}
            size if (64..=self.max_output_buffer_size).contains(&size) => {
                settings.output_buffer_size = Some(size as usize);
            }
            size => return Err(format!("output buffer size ({size}) is invalid")),
        }
        if !(0..=99).contains(&data.sample_rate) {
            return Err(format!("sample rate ({}) is invalid", data.sample_rate));
        }
        settings.sample_rate = data.sample_rate;
        match data.msg_timeout {
            0 => {}
            ms if (1000..=self.max_msg_timeout_ms).contains(&ms) => {
                settings.msg_timeout = Some(Duration::from_millis(ms as u64))
            }
            ms => return Err(format!("msg timeout ({ms}) is invalid")),
        }
        Ok(settings)
    }
}
