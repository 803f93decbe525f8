//! Authorization against auth servers (`--auth-http-address`), nsqd's
//! protocol: `GET /auth?remote_ip=&tls=&secret=&common_name=` answered with
//! a TTL, an identity and authorizations (a topic regex, channel regexes,
//! `subscribe` and/or `publish`). The answer is kept for its TTL and asked
//! for again when a command needs it after that.
//!
//! Plugins are in-process consumers the operator installed: they are not
//! clients and need no secret.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use regex::Regex;
use serde::Deserialize;

use crate::config::Options;

/// What nsqd sends an auth server about a client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuthRequest {
    pub remote_ip: String,
    pub tls: bool,
    pub secret: String,
    pub common_name: String,
}

/// The auth servers and how to reach them.
pub struct AuthServers {
    addresses: Vec<String>,
    agent: ureq::Agent,
    /// Granted answers by request, until they expire (HTTP publishing).
    cache: parking_lot::Mutex<HashMap<AuthRequest, AuthState>>,
}

/// One client's authorizations, as an auth server granted them.
#[derive(Debug, Clone)]
pub struct AuthState {
    pub identity: String,
    pub identity_url: String,
    authorizations: Vec<Authorization>,
    expires: Instant,
}

#[derive(Debug, Clone)]
struct Authorization {
    topic: Regex,
    channels: Vec<Regex>,
    subscribe: bool,
    publish: bool,
}

/// An auth server's answer, as nsqd decodes it.
#[derive(Debug, Deserialize)]
struct Reply {
    #[serde(default)]
    ttl: i64,
    #[serde(default)]
    authorizations: Option<Vec<ReplyAuthorization>>,
    #[serde(default)]
    identity: Option<String>,
    #[serde(default)]
    identity_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ReplyAuthorization {
    #[serde(default)]
    topic: String,
    #[serde(default)]
    channels: Option<Vec<String>>,
    #[serde(default)]
    permissions: Option<Vec<String>>,
}

impl AuthServers {
    /// `None` when no `--auth-http-address` is given (AUTH is then disabled).
    pub fn from_options(options: &Options) -> anyhow::Result<Option<Arc<AuthServers>>> {
        if options.auth_http_addresses.is_empty() {
            return Ok(None);
        }
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(path) = &options.tls_root_ca_file {
            let certificates = crate::tls::read_certificates(path, "--tls-root-ca-file")?
                .into_iter()
                .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
                .collect();
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(certificates)));
        }
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(options.http_client_connect_timeout))
            .timeout_global(Some(options.http_client_request_timeout))
            .http_status_as_error(false)
            .tls_config(tls.build())
            .build()
            .into();
        Ok(Some(Arc::new(AuthServers {
            addresses: options.auth_http_addresses.clone(),
            agent,
            cache: parking_lot::Mutex::new(HashMap::new()),
        })))
    }

    /// Asks the auth servers in turn, from a random one, until one answers
    /// validly; the error names every server tried and why it failed.
    pub async fn query(self: &Arc<Self>, request: AuthRequest) -> Result<AuthState, String> {
        let servers = self.clone();
        tokio::task::spawn_blocking(move || servers.query_blocking(&request))
            .await
            .unwrap_or_else(|e| Err(format!("auth query panicked: {e}")))
    }

    /// [`query`](Self::query), answered from the cache while a granted
    /// answer to the same request is unexpired.
    pub async fn query_cached(self: &Arc<Self>, request: AuthRequest) -> Result<AuthState, String> {
        if let Some(state) = self.cache.lock().get(&request).filter(|s| !s.is_expired()) {
            return Ok(state.clone());
        }
        let state = self.query(request.clone()).await?;
        if state.has_authorizations() {
            let mut cache = self.cache.lock();
            cache.retain(|_, s| !s.is_expired());
            cache.insert(request, state.clone());
        }
        Ok(state)
    }

    fn query_blocking(&self, request: &AuthRequest) -> Result<AuthState, String> {
        let start = fastrand::usize(..self.addresses.len());
        let mut failures = Vec::new();
        for i in 0..self.addresses.len() {
            let address = &self.addresses[(start + i) % self.addresses.len()];
            match self.query_one(address, request) {
                Ok(state) => return Ok(state),
                Err(e) => failures.push(format!("failed to auth against {address} - {e}")),
            }
        }
        Err(failures.join("; "))
    }

    fn query_one(&self, address: &str, request: &AuthRequest) -> Result<AuthState, String> {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("common_name", &request.common_name)
            .append_pair("remote_ip", &request.remote_ip)
            .append_pair("secret", &request.secret)
            .append_pair("tls", if request.tls { "true" } else { "false" })
            .finish();
        let url = if address.contains("://") {
            format!("{address}?{query}")
        } else {
            format!("http://{address}/auth?{query}")
        };
        let mut response = self
            .agent
            .get(&url)
            .header("Accept", "application/vnd.nsq; version=1.0")
            .call()
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response
            .body_mut()
            .read_to_vec()
            .map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!(
                "got response {status} {:?}",
                String::from_utf8_lossy(&body)
            ));
        }
        let reply: Reply = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        AuthState::from_reply(reply)
    }
}

impl AuthState {
    /// Validates an answer as nsqd does: known permissions, compilable
    /// regexes, a positive TTL.
    fn from_reply(reply: Reply) -> Result<AuthState, String> {
        let mut authorizations = Vec::new();
        for entry in reply.authorizations.unwrap_or_default() {
            let mut subscribe = false;
            let mut publish = false;
            for permission in entry.permissions.unwrap_or_default() {
                match permission.as_str() {
                    "subscribe" => subscribe = true,
                    "publish" => publish = true,
                    other => return Err(format!("unknown permission {other}")),
                }
            }
            let topic = Regex::new(&entry.topic)
                .map_err(|e| format!("unable to compile topic {:?} {e}", entry.topic))?;
            let channels = entry
                .channels
                .unwrap_or_default()
                .iter()
                .map(|c| Regex::new(c).map_err(|e| format!("unable to compile channel {c:?} {e}")))
                .collect::<Result<_, _>>()?;
            authorizations.push(Authorization {
                topic,
                channels,
                subscribe,
                publish,
            });
        }
        if reply.ttl <= 0 {
            return Err(format!("invalid TTL {} (must be >0)", reply.ttl));
        }
        Ok(AuthState {
            identity: reply.identity.unwrap_or_default(),
            identity_url: reply.identity_url.unwrap_or_default(),
            authorizations,
            expires: Instant::now() + Duration::from_secs(reply.ttl as u64),
        })
    }

    pub fn has_authorizations(&self) -> bool {
        !self.authorizations.is_empty()
    }

    pub fn permission_count(&self) -> usize {
        self.authorizations.len()
    }

    pub fn is_expired(&self) -> bool {
        self.expires <= Instant::now()
    }

    /// nsqd's rule: an empty `channel` asks to publish, any other to
    /// subscribe; the topic must match the topic regex and the channel one
    /// of the channel regexes (so a publish grant needs a channel regex
    /// that matches the empty string, such as `.*`). Regexes match
    /// anywhere in the name unless anchored, as Go's `MatchString`.
    pub fn is_allowed(&self, topic: &str, channel: &str) -> bool {
        self.authorizations.iter().any(|a| {
            let permitted = if channel.is_empty() {
                a.publish
            } else {
                a.subscribe
            };
            permitted && a.topic.is_match(topic) && a.channels.iter().any(|c| c.is_match(channel))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(json: &str) -> Result<AuthState, String> {
        AuthState::from_reply(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn permissions_follow_nsqd() {
        let s = state(
            r#"{"ttl":60,"identity":"me","authorizations":[
                {"topic":"^orders$","channels":[".*"],"permissions":["publish"]},
                {"topic":"logs","channels":["^audit$"],"permissions":["subscribe"]}]}"#,
        )
        .unwrap();
        assert!(s.has_authorizations());
        assert!(s.is_allowed("orders", ""));
        assert!(
            !s.is_allowed("orders", "c"),
            "publish does not grant subscribe"
        );
        assert!(!s.is_allowed("orders2", ""), "anchored topic regex");
        assert!(s.is_allowed("app-logs", "audit"), "unanchored topic regex");
        assert!(!s.is_allowed("app-logs", "audit2"));
        assert!(
            !s.is_allowed("logs", ""),
            "subscribe does not grant publish"
        );
    }

    #[test]
    fn a_publish_grant_needs_a_channel_matching_empty() {
        let s = state(
            r#"{"ttl":60,"authorizations":[{"topic":".*","channels":["x"],"permissions":["publish"]}]}"#,
        )
        .unwrap();
        assert!(!s.is_allowed("t", ""));
    }

    #[test]
    fn bad_answers_are_refused_with_nsqds_reasons() {
        assert_eq!(
            state(r#"{"ttl":0,"authorizations":[]}"#).unwrap_err(),
            "invalid TTL 0 (must be >0)"
        );
        assert_eq!(
            state(r#"{"ttl":5,"authorizations":[{"topic":".*","channels":[".*"],"permissions":["admin"]}]}"#)
                .unwrap_err(),
            "unknown permission admin"
        );
        assert!(
            state(r#"{"ttl":5,"authorizations":[{"topic":"(","channels":[],"permissions":[]}]}"#)
                .unwrap_err()
                .starts_with("unable to compile topic \"(\"")
        );
        let empty = state(r#"{"ttl":5}"#).unwrap();
        assert!(!empty.has_authorizations());
    }
}
