//! `webhook`: POSTs each message body to a URL, as NSQ's `nsq_to_http`
//! does, with the answer deciding the message's fate.
//!
//! - 2xx: finished.
//! - 429 or 5xx: retried, after `Retry-After` seconds if the endpoint
//!   says (else after the broker's backoff delay).
//! - a timeout, DNS or connection failure: retried.
//! - any other status (4xx, a 3xx not followed), or a request the broker
//!   refuses (outside the allowlist, invalid): dead-lettered.
//!
//! Its manifest (`plugins/webhook.toml`):
//!
//! ```toml
//! topic = "events"
//! concurrency = 100                  # requests in flight
//! allowed_outbound_hosts = ["https://hooks.example.com"]
//! required_config = ["url"]
//! [config]
//! url = "https://hooks.example.com/in"
//! authorization = "Bearer ${WEBHOOK_TOKEN}"   # optional
//! content_type = "application/json"          # optional, default application/octet-stream
//! ```

use wasq_guest::http::{HttpError, Request, Response};
use wasq_guest::{Message, Outcome, config, log_warn};

pub fn handle(message: &Message) -> Outcome {
    let Some(url) = config("url") else {
        log_warn("webhook: [config] url is not set");
        return Outcome::Retry;
    };
    let content_type = config("content_type");
    let mut request = Request::post(&url, message.body).header(
        "Content-Type",
        content_type
            .as_deref()
            .unwrap_or("application/octet-stream"),
    );
    if let Some(authorization) = config("authorization") {
        request = request.header("Authorization", &authorization);
    }
    let outcome = outcome_of(&request.send());
    if outcome != Outcome::Finish {
        log_warn(&format!("webhook: POST {url}: {outcome:?}"));
    }
    outcome
}

/// What an answer (or its absence) means for the message.
pub fn outcome_of(answer: &Result<Response, HttpError>) -> Outcome {
    match answer {
        Ok(response) if response.is_success() => Outcome::Finish,
        Ok(response) if response.status == 429 || response.status >= 500 => response
            .retry_after()
            .map_or(Outcome::Retry, Outcome::RetryAfter),
        Ok(_) => Outcome::Fatal,
        Err(error) if error.is_temporary() => Outcome::Retry,
        Err(_) => Outcome::Fatal,
    }
}

wasq_guest::plugin!(handle);

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use wasq_guest::testing::{set_config, set_http_handler};

    fn message(body: &[u8]) -> Message<'_> {
        Message {
            id: b"0123456789abcdef",
            attempts: 1,
            timestamp: 0,
            topic: "events",
            channel: "webhook",
            body,
        }
    }

    fn answer(status: u16, headers: &[(&str, &str)]) -> Result<Response, HttpError> {
        Ok(Response {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
        })
    }

    #[test]
    fn answers_map_to_outcomes() {
        assert_eq!(outcome_of(&answer(200, &[])), Outcome::Finish);
        assert_eq!(outcome_of(&answer(204, &[])), Outcome::Finish);
        assert_eq!(outcome_of(&answer(503, &[])), Outcome::Retry);
        assert_eq!(
            outcome_of(&answer(429, &[("retry-after", "7")])),
            Outcome::RetryAfter(Duration::from_secs(7))
        );
        assert_eq!(outcome_of(&answer(404, &[])), Outcome::Fatal);
        assert_eq!(outcome_of(&answer(301, &[])), Outcome::Fatal);
        assert_eq!(outcome_of(&Err(HttpError::Timeout)), Outcome::Retry);
        assert_eq!(outcome_of(&Err(HttpError::Connect)), Outcome::Retry);
        assert_eq!(outcome_of(&Err(HttpError::NotAllowed)), Outcome::Fatal);
    }

    #[test]
    fn posts_the_body_with_the_configured_headers() {
        set_config("url", "http://sink/in");
        set_config("authorization", "Bearer t");
        set_http_handler(|request| {
            assert_eq!(request.method, "POST");
            assert_eq!(request.url, "http://sink/in");
            assert_eq!(request.body, b"hello");
            let header = |name: &str| {
                request
                    .headers
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
            };
            assert_eq!(header("authorization").as_deref(), Some("Bearer t"));
            assert_eq!(
                header("content-type").as_deref(),
                Some("application/octet-stream")
            );
            Ok(Response {
                status: 200,
                ..Response::default()
            })
        });
        assert_eq!(handle(&message(b"hello")), Outcome::Finish);
    }
}
