//! Authorizing HTTP /pub and /mpub with an auth secret.
//!
//! nsqd v1.3.0 leaves its HTTP API open even with `--auth-http-address`
//! (its docs expect the HTTP port to stay private). Wasq asks the same
//! auth servers, with the same request and the same rules as TCP PUB, for
//! the two routes that publish: the secret comes as `?secret=` (the
//! parameter nsqauth-contrib's HTTP filters use) or as
//! `Authorization: Bearer <secret>`. Granted answers are cached for their
//! TTL per secret and peer, so a keep-alive publisher costs one auth
//! query per TTL, not one per message. The other routes stay as nsqd's.

use axum::http::{HeaderMap, StatusCode, header};

use super::https::Peer;
use super::{ApiError, AppState, Query};
use crate::auth::AuthRequest;
use crate::protocol::authorize::remote_ip;

/// Checks that the request's secret may publish to `topic`.
pub async fn authorize_publish(
    state: &AppState,
    peer: &Peer,
    headers: &HeaderMap,
    query: &Query,
    topic: &str,
) -> Result<(), ApiError> {
    let Some(servers) = &state.security.auth else {
        return Ok(());
    };
    let Some(secret) = secret(headers, query) else {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "AUTH_FIRST"));
    };
    let request = AuthRequest {
        remote_ip: remote_ip(&peer.address.to_string()),
        tls: peer.tls,
        secret,
        common_name: peer.common_name.clone().unwrap_or_default(),
    };
    let state = servers.query_cached(request).await.map_err(|reason| {
        tracing::warn!(client = %peer.address, "HTTP: AUTH failed {reason}");
        ApiError::new(StatusCode::UNAUTHORIZED, "AUTH_FAILED")
    })?;
    if !state.has_authorizations() {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "AUTH_FAILED"));
    }
    if !state.is_allowed(topic, "") {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "UNAUTHORIZED"));
    }
    Ok(())
}

fn secret(headers: &HeaderMap, query: &Query) -> Option<String> {
    if let Some(secret) = query.get("secret") {
        return Some(secret.to_string());
    }
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(|s| s.trim().to_string())
}
