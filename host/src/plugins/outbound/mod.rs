//! Outbound HTTP for plugins, written once for both kinds of guest: ABI
//! v1's `http_request` (core_module.rs) and components' wasi:http
//! ([`wasi_http`]) are thin adapters over [`Outbound::send_http`].
//!
//! - [`allowlist`]: `allowed_outbound_hosts` and which addresses a name may reach
//! - [`connector`]: the connector that resolves and checks before connecting
//! - [`stats`]: responses by class, failures by kind, latency
//! - [`wasi_http`]: `wasi:http/outgoing-handler`'s hook for components
//!
//! One [`Outbound`] per plugin version: its allowlist, its limits
//! (`http_timeout_ms`, `http_max_response_kib`, `http_max_concurrent`),
//! its TLS roots (the system's and `tls_root_ca_file`'s) and a pooled
//! hyper client, so a plugin posting to one endpoint reuses connections
//! instead of opening one per message. A request waits without a thread:
//! it is a future the guest's fiber is suspended on.

pub mod allowlist;
pub mod connector;
pub mod stats;
pub mod wasi_http;

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::CertificateDer;

use allowlist::{AllowList, Host, Scheme};
use connector::{CheckedConnector, ConnectError};

use super::executor::{current_lane, lane_count};
pub use stats::{OutboundSnapshot, OutboundStats};

/// Redirects followed for one request before its 3xx is the answer.
pub const MAX_REDIRECTS: usize = 5;

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(30);

/// Why a request got no response, as the guest sees it: one ABI v1
/// status each (ABI.md, "Outbound HTTP").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundError {
    /// Outside `allowed_outbound_hosts` (the URL, an address, a redirect).
    NotAllowed = 0,
    Timeout,
    Dns,
    Connect,
    /// The response body is over `http_max_response_kib`.
    TooLarge,
    InvalidRequest,
    Io,
}

impl OutboundError {
    pub const ALL: [OutboundError; 7] = [
        OutboundError::NotAllowed,
        OutboundError::Timeout,
        OutboundError::Dns,
        OutboundError::Connect,
        OutboundError::TooLarge,
        OutboundError::InvalidRequest,
        OutboundError::Io,
    ];

    /// The name /plugins, /metrics and the log use.
    pub fn kind(self) -> &'static str {
        match self {
            OutboundError::NotAllowed => "refused",
            OutboundError::Timeout => "timeout",
            OutboundError::Dns => "dns",
            OutboundError::Connect => "connect",
            OutboundError::TooLarge => "too_large",
            OutboundError::InvalidRequest => "invalid_request",
            OutboundError::Io => "io",
        }
    }
}

/// A request as the guest described it.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    pub method: Vec<u8>,
    pub url: Vec<u8>,
    /// `Name: value` lines (ABI.md's format).
    pub headers: Vec<u8>,
    pub body: Bytes,
}

/// A whole response.
#[derive(Debug, Clone)]
pub struct OutboundResponse {
    pub status: u16,
    /// `name: value\n` lines, names in lower case.
    pub headers: Vec<u8>,
    pub body: Bytes,
}

/// The manifest's limits on a plugin's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub timeout: Duration,
    pub max_response_bytes: usize,
    pub max_concurrent: usize,
}

type HttpClient = Client<hyper_rustls::HttpsConnector<CheckedConnector>, Full<Bytes>>;

/// One plugin version's outbound HTTP.
pub struct Outbound {
    plugin: Arc<str>,
    allow: Arc<AllowList>,
    limits: HttpLimits,
    /// One pooled client per executor lane (executor.rs), so a request
    /// and its connection's task run on one thread: a connection shared
    /// across lanes woke the other thread twice per request. Empty with
    /// an empty allowlist: nothing to connect to.
    clients: Vec<HttpClient>,
    permits: tokio::sync::Semaphore,
    pub stats: Arc<OutboundStats>,
    /// `Some` when each exchange is kept for a report (`wasq plugin test`).
    exchanges: parking_lot::Mutex<Option<Vec<Exchange>>>,
}

/// One request and what came of it, as `wasq plugin test` reports it.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    pub url: String,
    /// The status and body of the response, or why there was none.
    pub result: Result<(u16, Bytes), OutboundError>,
    pub took: Duration,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("allow", &self.allow)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Outbound {
    /// The plugin's outbound HTTP; `Err` when `tls_root_ca_file` cannot
    /// be read (the version does not load).
    pub fn new(
        plugin: &str,
        allow: AllowList,
        limits: HttpLimits,
        extra_roots: Option<&Path>,
        stats: Arc<OutboundStats>,
    ) -> anyhow::Result<Outbound> {
        let allow = Arc::new(allow);
        let clients = if allow.is_empty() {
            Vec::new()
        } else {
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(system_roots().iter().cloned());
            if let Some(file) = extra_roots {
                for certificate in crate::tls::read_certificates(file, "tls_root_ca_file")? {
                    roots
                        .add(certificate)
                        .map_err(|e| anyhow::anyhow!("tls_root_ca_file {}: {e}", file.display()))?;
                }
            }
            let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_or_http()
                .enable_http1()
                .wrap_connector(CheckedConnector {
                    allow: allow.clone(),
                });
            let mut builder = Client::builder(TokioExecutor::new());
            builder
                .pool_idle_timeout(POOL_IDLE)
                .pool_timer(TokioTimer::new());
            (0..lane_count())
                .map(|_| builder.build(connector.clone()))
                .collect()
        };
        Ok(Outbound {
            plugin: plugin.into(),
            allow,
            limits,
            clients,
            permits: tokio::sync::Semaphore::new(limits.max_concurrent),
            stats,
            exchanges: parking_lot::Mutex::new(None),
        })
    }

    /// Keeps every exchange from now on, for [`Outbound::take_exchanges`].
    pub fn record_exchanges(&self) {
        *self.exchanges.lock() = Some(Vec::new());
    }

    /// The exchanges kept since the last call.
    pub fn take_exchanges(&self) -> Vec<Exchange> {
        self.exchanges
            .lock()
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    fn keep_exchange(
        &self,
        method: &Method,
        url: &Uri,
        result: Result<(u16, Bytes), OutboundError>,
        took: Duration,
    ) {
        if let Some(exchanges) = self.exchanges.lock().as_mut() {
            exchanges.push(Exchange {
                method: method.to_string(),
                url: url.to_string(),
                result,
                took,
            });
        }
    }

    /// `http_request` (ABI v1): the guest's method, URL and header lines
    /// parsed, then [`Outbound::send_http`] following allowed redirects.
    pub async fn send(
        &self,
        request: OutboundRequest,
        deadline: Instant,
    ) -> Result<OutboundResponse, OutboundError> {
        let parsed = parse_request(&request).map_err(|why| {
            let url = String::from_utf8_lossy(&request.url);
            self.failed(&url, OutboundError::InvalidRequest, &why, Duration::ZERO)
        })?;
        let response = self
            .send_http(parsed, deadline, Redirects::FollowAllowed)
            .await?;
        let (parts, body) = response.into_parts();
        Ok(OutboundResponse {
            status: parts.status.as_u16(),
            headers: format_headers(&parts.headers),
            body,
        })
    }

    /// Sends `request` and reads the whole response, by `deadline` at the
    /// latest (the handler's own) and within `http_timeout_ms`; counted
    /// and, when it fails, logged with the plugin and the URL.
    pub async fn send_http(
        &self,
        request: http::Request<Bytes>,
        deadline: Instant,
        redirects: Redirects,
    ) -> Result<http::Response<Bytes>, OutboundError> {
        let started = Instant::now();
        // Kept for the log and the exchanges: a request that succeeds
        // needs its URL as text only when exchanges are kept.
        let uri = request.uri().clone();
        let method = request.method().clone();
        let deadline = deadline.min(started + self.limits.timeout);
        let sent = self.send_within(request, redirects);
        let result = match tokio::time::timeout_at(deadline.into(), sent).await {
            Ok(result) => result,
            Err(_) => Err((OutboundError::Timeout, "no whole response in time".into())),
        };
        let took = started.elapsed();
        match result {
            Ok(response) => {
                let status = response.status().as_u16();
                self.stats.record(Ok(status), took);
                self.keep_exchange(&method, &uri, Ok((status, response.body().clone())), took);
                Ok(response)
            }
            Err((error, why)) => {
                self.keep_exchange(&method, &uri, Err(error), took);
                Err(self.failed(&uri.to_string(), error, &why, took))
            }
        }
    }

    /// Counts and logs a failed request.
    fn failed(&self, url: &str, error: OutboundError, why: &str, took: Duration) -> OutboundError {
        self.stats.record(Err(error), took);
        tracing::warn!(plugin = %self.plugin, url = %url, error = %error.kind(), "PLUGIN: outbound request failed: {why}");
        error
    }

    async fn send_within(
        &self,
        request: http::Request<Bytes>,
        redirects: Redirects,
    ) -> Result<http::Response<Bytes>, (OutboundError, String)> {
        let Some(client) = self.clients.get(current_lane() % self.clients.len().max(1)) else {
            return Err((
                OutboundError::NotAllowed,
                "allowed_outbound_hosts is empty: no network".into(),
            ));
        };
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| (OutboundError::Io, "closed".into()))?;
        let (parts, mut body) = request.into_parts();
        let (mut method, mut uri, headers) = (parts.method, parts.uri, parts.headers);
        for hops in 0.. {
            self.check_url(&uri)?;
            let mut outgoing = http::Request::new(Full::new(body.clone()));
            *outgoing.method_mut() = method.clone();
            *outgoing.uri_mut() = uri.clone();
            *outgoing.headers_mut() = headers.clone();
            let response = client.request(outgoing).await.map_err(classify)?;
            let status = response.status();
            let location = response
                .headers()
                .get(http::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| resolve_location(&uri, l));
            if redirects == Redirects::FollowAllowed
                && hops < MAX_REDIRECTS
                && [301, 302, 303, 307, 308].contains(&status.as_u16())
                && let Some(next) = location
            {
                if status == 303
                    || (method == Method::POST && [301, 302].contains(&status.as_u16()))
                {
                    method = Method::GET;
                    body = Bytes::new();
                }
                uri = next;
                continue;
            }
            let (parts, incoming) = response.into_parts();
            let body = self.read_body(incoming, &parts.headers).await?;
            return Ok(http::Response::from_parts(parts, body));
        }
        unreachable!("the loop returns")
    }

    /// The URL's scheme, host and port against the allowlist.
    fn check_url(&self, uri: &Uri) -> Result<(), (OutboundError, String)> {
        let invalid = || {
            (
                OutboundError::InvalidRequest,
                format!("not an http(s) URL with a host: {uri}"),
            )
        };
        let scheme = uri
            .scheme_str()
            .and_then(Scheme::parse)
            .ok_or_else(invalid)?;
        let host = uri.host().and_then(Host::parse).ok_or_else(invalid)?;
        let port = uri.port_u16().unwrap_or(scheme.default_port());
        if self.allow.allows(scheme, &host, port) {
            Ok(())
        } else {
            Err((
                OutboundError::NotAllowed,
                format!("{uri} is not in allowed_outbound_hosts"),
            ))
        }
    }

    async fn read_body(
        &self,
        mut incoming: hyper::body::Incoming,
        headers: &HeaderMap,
    ) -> Result<Bytes, (OutboundError, String)> {
        let limit = self.limits.max_response_bytes;
        let too_large = || {
            (
                OutboundError::TooLarge,
                format!("response body over {limit} bytes"),
            )
        };
        let declared = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let mut body = Vec::with_capacity(declared.unwrap_or(0) as usize);
        while let Some(frame) = incoming.frame().await {
            let frame = frame.map_err(|e| (OutboundError::Io, format!("reading the body: {e}")))?;
            if let Ok(data) = frame.into_data() {
                if body.len() + data.len() > limit {
                    return Err(too_large());
                }
                body.extend_from_slice(&data);
            }
        }
        Ok(body.into())
    }
}

/// The system's root certificates, read once per process.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::warn!(%error, "PLUGINS: a system root certificate could not be read");
        }
        found.certs
    })
}

/// Whether the host follows redirects (ABI v1's `http_request`, when the
/// target is allowed) or hands them to the guest (wasi:http, whose
/// clients follow them themselves, each hop checked anew).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    FollowAllowed,
    ToGuest,
}

/// The guest's method, URL, header lines and body as a request.
fn parse_request(request: &OutboundRequest) -> Result<http::Request<Bytes>, String> {
    let method = Method::from_bytes(&request.method)
        .map_err(|_| format!("bad method {:?}", String::from_utf8_lossy(&request.method)))?;
    let uri: Uri = std::str::from_utf8(&request.url)
        .ok()
        .and_then(|u| u.parse().ok())
        .ok_or("not a URL")?;
    let mut parsed = http::Request::new(request.body.clone());
    *parsed.method_mut() = method;
    *parsed.uri_mut() = uri;
    *parsed.headers_mut() = parse_headers(&request.headers)?;
    Ok(parsed)
}

/// Sorts the client's error by the connector's reason, if it had one.
fn classify(error: hyper_util::client::legacy::Error) -> (OutboundError, String) {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(current) = source {
        if let Some(reason) = current.downcast_ref::<ConnectError>() {
            let kind = match reason {
                ConnectError::NotAllowed(_) => OutboundError::NotAllowed,
                ConnectError::Dns { .. } => OutboundError::Dns,
                ConnectError::Connect { .. } => OutboundError::Connect,
                ConnectError::BadUrl(_) => OutboundError::InvalidRequest,
            };
            return (kind, reason.to_string());
        }
        source = current.source();
    }
    // Otherwise a connect error is hyper-rustls' handshake failing (an
    // untrusted certificate).
    let kind = if error.is_connect() {
        OutboundError::Connect
    } else {
        OutboundError::Io
    };
    (kind, format!("{:#}", anyhow::Error::from(error)))
}

/// ABI.md's header lines; the host's own headers are dropped.
fn parse_headers(text: &[u8]) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    for line in text.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let colon = line.iter().position(|&b| b == b':').ok_or_else(|| {
            format!(
                "header line without a colon: {:?}",
                String::from_utf8_lossy(line)
            )
        })?;
        let name = HeaderName::from_bytes(line[..colon].trim_ascii()).map_err(|_| {
            format!(
                "bad header name {:?}",
                String::from_utf8_lossy(&line[..colon])
            )
        })?;
        if [
            http::header::HOST,
            http::header::CONTENT_LENGTH,
            http::header::TRANSFER_ENCODING,
            http::header::CONNECTION,
        ]
        .contains(&name)
        {
            continue;
        }
        let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii())
            .map_err(|_| format!("bad value for header {name}"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

fn format_headers(headers: &HeaderMap) -> Vec<u8> {
    let mut text = Vec::new();
    for (name, value) in headers {
        text.extend_from_slice(name.as_str().as_bytes());
        text.extend_from_slice(b": ");
        text.extend_from_slice(value.as_bytes());
        text.push(b'\n');
    }
    text
}

/// A redirect's `Location` made absolute against the URL it came from.
fn resolve_location(base: &Uri, location: &str) -> Option<Uri> {
    if location.contains("://") {
        return location.parse().ok();
    }
    let scheme = base.scheme_str()?;
    if let Some(rest) = location.strip_prefix("//") {
        return format!("{scheme}://{rest}").parse().ok();
    }
    let authority = base.authority()?;
    if location.starts_with('/') {
        return format!("{scheme}://{authority}{location}").parse().ok();
    }
    let path = base.path();
    let directory = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    format!("{scheme}://{authority}{directory}{location}")
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lines_parse_and_skip_the_hosts_own() {
        let headers = parse_headers(
            b"Authorization: Bearer x\r\nContent-Type:  text/plain \n\nHost: evil\nContent-Length: 9\nX-Many: 1\nX-Many: 2",
        )
        .unwrap();
        assert_eq!(headers["authorization"], "Bearer x");
        assert_eq!(headers["content-type"], "text/plain");
        assert!(!headers.contains_key("host") && !headers.contains_key("content-length"));
        assert_eq!(headers.get_all("x-many").iter().count(), 2);
        assert!(
            parse_headers(b"no colon here")
                .unwrap_err()
                .contains("without a colon")
        );
        assert!(parse_headers(b"bad name: v").is_err());
        let text = format_headers(&headers);
        assert!(
            String::from_utf8(text)
                .unwrap()
                .contains("authorization: Bearer x\n")
        );
    }

    #[test]
    fn locations_resolve_against_their_url() {
        let base: Uri = "http://a.example:8080/hooks/in?x=1".parse().unwrap();
        let cases = [
            ("https://b.example/x", "https://b.example/x"),
            ("//c.example/y", "http://c.example/y"),
            ("/root", "http://a.example:8080/root"),
            ("next", "http://a.example:8080/hooks/next"),
        ];
        for (location, expected) in cases {
            assert_eq!(
                resolve_location(&base, location).unwrap().to_string(),
                expected
            );
        }
    }
}
