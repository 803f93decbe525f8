//! webhook, as a component: POSTs each body to `[config] url` through
//! `wasi:http` (wstd's client), as the core-module webhook does through
//! ABI v1's `http_request`, with the same answers meaning the same:
//! 2xx finishes; 429 and 5xx retry (after `Retry-After` seconds when
//! given); a failure to connect or a timeout retries; any other status,
//! or a request the broker refuses, dead-letters.
//!
//! Manifest: as examples/webhook's (`allowed_outbound_hosts`,
//! `required_config = ["url"]`, `[config] url`, optional `authorization`
//! and `content_type`).

wit_bindgen::generate!({ path: "../../../guest-sdk/wit", world: "consumer" });

use wasq::plugin::host::{Level, get_config, log};
use wstd::http::error::ErrorCode;
use wstd::http::{Body, Client, Method, Request};

struct Webhook;

impl Guest for Webhook {
    fn handle(message: Message) -> Result<(), Failure> {
        let Some(url) = get_config("url") else {
            log(Level::Warn, "webhook: [config] url is not set");
            return Err(Failure::Retry);
        };
        let outcome = wstd::runtime::block_on(post(&url, message.body));
        if let Err(failure) = &outcome {
            log(Level::Warn, &format!("webhook: POST {url}: {failure:?}"));
        }
        outcome
    }
}

async fn post(url: &str, body: Vec<u8>) -> Result<(), Failure> {
    let content_type =
        get_config("content_type").unwrap_or_else(|| "application/octet-stream".into());
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(url)
        .header("content-type", content_type);
    if let Some(authorization) = get_config("authorization") {
        request = request.header("authorization", authorization);
    }
    let request = request
        .body(Body::from(body))
        .map_err(|e| Failure::Fatal(format!("bad request: {e}")))?;
    let response = match Client::new().send(request).await {
        Ok(response) => response,
        Err(error) => return Err(failure_of(&error)),
    };
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else if status.as_u16() == 429 || status.is_server_error() {
        let after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u32>().ok());
        Err(after.map_or(Failure::Retry, |seconds| {
            Failure::RetryAfter(seconds.saturating_mul(1000))
        }))
    } else {
        Err(Failure::Fatal(format!("answered {status}")))
    }
}

/// A refused or malformed request will not get better: dead-letter it;
/// anything else (timeouts, connections, DNS) may: retry.
fn failure_of(error: &wstd::http::Error) -> Failure {
    match error.downcast_ref::<ErrorCode>() {
        Some(ErrorCode::HttpRequestDenied)
        | Some(ErrorCode::HttpRequestUriInvalid)
        | Some(ErrorCode::HttpResponseBodySize(_)) => Failure::Fatal(format!("{error}")),
        _ => Failure::Retry,
    }
}

export!(Webhook);
