//! What the broker knows of a connected client: the part of a connection's
//! state that channels and /stats read while the connection's own task runs.
//!
//! A channel holds an `Arc<Client>` for each message in flight, so it can
//! give the client its capacity back when a message times out, and wake the
//! connection (or, later, a plugin worker) to deliver more.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, Ordering};

use serde::Serialize;
use tokio::sync::Notify;

/// nsqd's client states; /stats reports them by number, as nsqd does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ClientState {
    Init = 0,
    Disconnected = 1,
    Connected = 2,
    Subscribed = 3,
    Closing = 4,
}

impl ClientState {
    fn from_u8(value: u8) -> ClientState {
        match value {
            0 => ClientState::Init,
            1 => ClientState::Disconnected,
            2 => ClientState::Connected,
            3 => ClientState::Subscribed,
            _ => ClientState::Closing,
        }
    }
}

impl std::fmt::Display for ClientState {
    /// As nsqd's text /stats prints it: the number.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", *self as i32)
    }
}

impl Serialize for ClientState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i32(*self as i32)
    }
}

/// A [`ClientState`] the connection task sets and channels and /stats read.
#[derive(Debug)]
pub struct SharedClientState(AtomicU8);

impl SharedClientState {
    pub fn new(state: ClientState) -> SharedClientState {
        SharedClientState(AtomicU8::new(state as u8))
    }

    pub fn get(&self) -> ClientState {
        ClientState::from_u8(self.0.load(Ordering::Acquire))
    }

    pub fn set(&self, state: ClientState) {
        self.0.store(state as u8, Ordering::Release);
    }
}

/// Self-description a client sends with IDENTIFY.
#[derive(Debug, Clone, Default)]
pub struct ClientMeta {
    pub client_id: String,
    pub hostname: String,
    pub user_agent: String,
    pub sample_rate: i32,
    pub topology_zone: String,
    pub topology_region: String,
    /// What the connection negotiated after IDENTIFY.
    pub tls: Option<TlsSession>,
    pub snappy: bool,
    pub deflate: bool,
    /// Set once AUTH succeeded with at least one authorization.
    pub auth: Option<AuthIdentity>,
}

/// A TLS session as nsqd's /stats names it (`TLS1.3`, Go's suite names).
#[derive(Debug, Clone, Default)]
pub struct TlsSession {
    pub version: String,
    pub cipher_suite: String,
}

/// Who the auth server said the client is.
#[derive(Debug, Clone, Default)]
pub struct AuthIdentity {
    pub identity: String,
    pub identity_url: String,
}

#[derive(Debug)]
pub struct Client {
    pub id: u64,
    pub remote_address: String,
    /// Unix seconds at connect.
    pub connect_ts: i64,
    pub meta: Mutex<ClientMeta>,
    pub state: SharedClientState,
    pub ready_count: AtomicI64,
    pub in_flight: AtomicI64,
    pub message_count: AtomicU64,
    pub finish_count: AtomicU64,
    pub requeue_count: AtomicU64,
    /// Messages published per topic (a producer's part of /stats).
    pub pub_counts: Mutex<BTreeMap<String, u64>>,
    /// Wakes the connection: capacity came back or it must close.
    pub wake: Notify,
    kicked: AtomicBool,
}

impl Client {
    pub fn new(id: u64, remote_address: String, connect_ts: i64) -> Client {
        Client {
            id,
            remote_address,
            connect_ts,
            meta: Mutex::new(ClientMeta {
                hostname: String::new(),
                ..ClientMeta::default()
            }),
            state: SharedClientState::new(ClientState::Init),
            ready_count: AtomicI64::new(0),
            in_flight: AtomicI64::new(0),
            message_count: AtomicU64::new(0),
            finish_count: AtomicU64::new(0),
            requeue_count: AtomicU64::new(0),
            pub_counts: Mutex::new(BTreeMap::new()),
            wake: Notify::new(),
            kicked: AtomicBool::new(false),
        }
    }

    /// A message this client held went back to the channel (timeout, empty).
    pub fn lost_in_flight(&self, count: i64) {
        self.in_flight.fetch_sub(count, Ordering::AcqRel);
        self.wake.notify_one();
    }

    /// Asks the connection to close (its channel or topic was deleted).
    pub fn kick(&self) {
        self.kicked.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Clears a kick once the owner has subscribed again (plugins do).
    pub fn rearm(&self) {
        self.kicked.store(false, Ordering::Release);
    }

    pub fn is_kicked(&self) -> bool {
        self.kicked.load(Ordering::Acquire)
    }

    pub fn record_published(&self, topic: &str, count: u64) {
        let mut counts = self.pub_counts.lock();
        *counts.entry(topic.to_string()).or_default() += count;
    }

    /// nsqd's per-client stats record.
    pub fn stats(&self, topic_filter: Option<&str>) -> ClientStats {
        let meta = self.meta.lock().clone();
        let pub_counts = self
            .pub_counts
            .lock()
            .iter()
            .filter(|(topic, _)| topic_filter.is_none_or(|t| t == topic.as_str()))
            .map(|(topic, count)| PubCount {
                topic: topic.clone(),
                count: *count,
            })
            .collect();
        ClientStats {
            client_id: meta.client_id,
            hostname: meta.hostname,
            version: "V2",
            remote_address: self.remote_address.clone(),
            state: self.state.get(),
            ready_count: self.ready_count.load(Ordering::Relaxed),
            in_flight_count: self.in_flight.load(Ordering::Relaxed),
            message_count: self.message_count.load(Ordering::Relaxed),
            finish_count: self.finish_count.load(Ordering::Relaxed),
            requeue_count: self.requeue_count.load(Ordering::Relaxed),
            connect_ts: self.connect_ts,
            sample_rate: meta.sample_rate,
            deflate: meta.deflate,
            snappy: meta.snappy,
            user_agent: meta.user_agent,
            authed: meta.auth.is_some(),
            auth_identity: meta
                .auth
                .as_ref()
                .map(|a| a.identity.clone())
                .unwrap_or_default(),
            auth_identity_url: meta.auth.map(|a| a.identity_url).unwrap_or_default(),
            tls: meta.tls.is_some(),
            tls_cipher_suite: meta
                .tls
                .as_ref()
                .map(|t| t.cipher_suite.clone())
                .unwrap_or_default(),
            tls_version: meta.tls.map(|t| t.version).unwrap_or_default(),
            tls_negotiated_protocol: String::new(),
            tls_negotiated_protocol_is_mutual: false,
            topology_zone: meta.topology_zone,
            topology_region: meta.topology_region,
            pub_counts,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PubCount {
    pub topic: String,
    pub count: u64,
}

/// Field names and order as nsqd's `ClientV2Stats`.
#[derive(Debug, Clone, Serialize)]
pub struct ClientStats {
    pub client_id: String,
    pub hostname: String,
    pub version: &'static str,
    pub remote_address: String,
    pub state: ClientState,
    pub ready_count: i64,
    pub in_flight_count: i64,
    pub message_count: u64,
    pub finish_count: u64,
    pub requeue_count: u64,
    pub connect_ts: i64,
    pub sample_rate: i32,
    pub deflate: bool,
    pub snappy: bool,
    pub user_agent: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub authed: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub auth_identity: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub auth_identity_url: String,
    pub tls: bool,
    pub tls_cipher_suite: String,
    pub tls_version: String,
    pub tls_negotiated_protocol: String,
    pub tls_negotiated_protocol_is_mutual: bool,
    pub topology_zone: String,
    pub topology_region: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pub_counts: Vec<PubCount>,
}
