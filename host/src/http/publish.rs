//! POST /pub and POST /mpub.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;

use super::authorize::authorize_publish;
use super::https::Peer;
use super::{ApiError, ApiResponse, ApiResult, AppState, Query};
use crate::broker::Broker;
use crate::broker::message::IntoBody;
use crate::broker::names::is_valid_name;
use crate::broker::topic::PublishError;
use crate::protocol::command::{Limits, parse_mpub_body};

fn too_big(message: &str) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, message)
}

/// The request's Content-Length, if it declares one.
fn declared_length(headers: &HeaderMap) -> Option<i64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Reads at most `max` bytes of body; `None` if there was more.
async fn read_body(headers: &HeaderMap, body: Body, max: i64) -> Result<Option<Bytes>, ApiError> {
    if declared_length(headers).is_some_and(|len| len > max) {
        return Ok(None);
    }
    match axum::body::to_bytes(body, max as usize).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if is_length_limit(&e) => Ok(None),
        Err(_) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
        )),
    }
}

fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// The topic named in the query, checked as nsqd's `getTopicFromQuery`.
pub(super) fn topic_from_query(query: &Query) -> Result<&str, ApiError> {
    let topic = query
        .get("topic")
        .ok_or_else(|| ApiError::bad_request("MISSING_ARG_TOPIC"))?;
    if !is_valid_name(topic) {
        return Err(ApiError::bad_request("INVALID_TOPIC"));
    }
    Ok(topic)
}

pub async fn publish(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let broker = &state.broker;
    let max = broker.options.max_msg_size;
    let body = read_body(&headers, body, max)
        .await?
        .ok_or_else(|| too_big("MSG_TOO_BIG"))?;
    if body.is_empty() {
        return Err(ApiError::bad_request("MSG_EMPTY"));
    }
    let query = Query::parse(raw.as_deref());
    let topic = topic_from_query(&query)?;
    authorize_publish(&state, &peer, &headers, &query, topic).await?;
    let mut defer = Duration::ZERO;
    if let Some(value) = query.get("defer") {
        let ms: i64 = value
            .parse()
            .map_err(|_| ApiError::bad_request("INVALID_DEFER"))?;
        if ms < 0 || ms as u128 > broker.options.max_req_timeout.as_millis() {
            return Err(ApiError::bad_request("INVALID_DEFER"));
        }
        defer = Duration::from_millis(ms as u64);
    }
    publish_and_wait(broker, topic, &[body], defer).await
}

pub async fn multi_publish(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let broker = &state.broker;
    let options = &broker.options;
    // nsqd refuses a declared oversize body before it looks at the query.
    if declared_length(&headers).is_some_and(|len| len > options.max_body_size) {
        return Err(too_big("BODY_TOO_BIG"));
    }
    let query = Query::parse(raw.as_deref());
    let topic = topic_from_query(&query)?;
    authorize_publish(&state, &peer, &headers, &query, topic).await?;
    // nsqd creates the topic here, before the body is read.
    broker.topic(topic);
    // Text mode is the default; an unrecognised value of `binary` means true.
    let binary = query
        .get("binary")
        .map(|v| super::parse_bool_param(Some(v)).unwrap_or(true))
        .unwrap_or(false);
    let body = read_body(&headers, body, options.max_body_size)
        .await?
        .ok_or_else(|| too_big("BODY_TOO_BIG"))?;
    if binary {
        let limits = Limits::from_options(options);
        // nsqd answers binary-mode errors with 413 and the code minus "E_".
        let messages = parse_mpub_body(body, &limits).map_err(|e| too_big(&e.code[2..]))?;
        publish_and_wait(broker, topic, messages.iter(), Duration::ZERO).await
    } else {
        let messages = split_lines(&body, options.max_msg_size)?;
        publish_and_wait(broker, topic, &messages, Duration::ZERO).await
    }
}

/// Publishes and answers OK once the messages are as safe as the
/// configuration promises (after the group fsync in durable mode). A topic
/// being deleted is nsqd's 503 EXITING; a storage failure (disk full,
/// permissions) is a 500 naming the cause, and is logged.
async fn publish_and_wait<I>(broker: &Broker, topic: &str, bodies: I, defer: Duration) -> ApiResult
where
    I: IntoIterator<Item: IntoBody, IntoIter: ExactSizeIterator>,
{
    let failed = |e: &dyn std::fmt::Display| {
        tracing::error!(topic, error = %e, "HTTP: publish failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("PUB_FAILED: {e}"),
        )
    };
    let pending = broker.publish(topic, bodies, defer).map_err(|e| match e {
        PublishError::Exiting => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "EXITING"),
        PublishError::Storage(e) => failed(&e),
    })?;
    pending.wait().await.map_err(|e| failed(&e))?;
    Ok(ApiResponse::Text("OK".into()))
}

/// Text-mode /mpub: one message per line; empty lines are skipped, as nsqd does.
/// Lines are found with `memchr` (a byte-at-a-time split was 14 % of the
/// HTTP thread's time at 200-byte messages) and borrowed: publishing
/// copies each into its own allocation anyway.
fn split_lines(body: &[u8], max_msg_size: i64) -> Result<Vec<&[u8]>, ApiError> {
    let mut messages = Vec::new();
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', body).chain([body.len()]) {
        let line = &body[start..end];
        start = end + 1;
        if line.is_empty() {
            continue;
        }
        if line.len() as i64 > max_msg_size {
            return Err(too_big("MSG_TOO_BIG"));
        }
        messages.push(line);
    }
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_mpub_skips_empty_lines() {
        let body = b"a\n\nbc\n";
        assert_eq!(split_lines(body, 10).unwrap(), vec![&b"a"[..], b"bc"]);
        assert_eq!(split_lines(body, 1).unwrap_err().message, "MSG_TOO_BIG");
        // The last line needs no newline; no lines at all is no messages.
        assert_eq!(split_lines(b"x\nyz", 10).unwrap(), vec![&b"x"[..], b"yz"]);
        assert!(split_lines(b"\n\n", 10).unwrap().is_empty());
    }
}
