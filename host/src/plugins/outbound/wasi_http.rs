//! `wasi:http/outgoing-handler` for components: wasmtime-wasi-http does
//! the WIT side (requests, fields, streams, futures) and hands every
//! request to [`GuestEgress::send_request`], which sends it through the
//! plugin's [`Outbound`], so a component's `fetch` meets the same
//! allowlist, address check, TLS roots, limits, pool, counters and log
//! lines as a core module's `http_request`. Redirects go back to the
//! guest (its client follows them, each hop a new, checked request).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::{Outbound, OutboundError, Redirects};

/// The largest request body a component may send (a message is at most
/// `--max-msg-size`, 1 MiB by default).
const MAX_REQUEST_BODY: usize = 16 << 20;

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

/// One instance's outbound HTTP: the plugin's [`Outbound`], and when the
/// handler call under way must end.
pub struct GuestEgress {
    pub outbound: Arc<Outbound>,
    pub call_deadline: Instant,
}

impl WasiHttpHooks for GuestEgress {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _body_written: IoFuture,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send> {
        let outbound = self.outbound.clone();
        let deadline = self.call_deadline;
        Box::new(async move {
            let (parts, body) = request.into_parts();
            let body = read_request_body(body).await?;
            let request = http::Request::from_parts(parts, body);
            let response = outbound
                .send_http(request, deadline, Redirects::ToGuest)
                .await
                .map_err(wasi_error)?;
            let response = response.map(|body| {
                Full::new(body)
                    .map_err(|never| match never {})
                    .boxed_unsync()
            });
            let nothing_left: IoFuture = Box::new(async { Ok(()) });
            Ok((response, nothing_left))
        })
    }
}

/// The guest's body, whole (it is streamed in as the guest writes it).
async fn read_request_body(mut body: WasiBody) -> Result<Bytes, Error> {
    let mut whole = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if whole.len() + data.len() > MAX_REQUEST_BODY {
                return Err(Error::HttpRequestBodySize(Some(MAX_REQUEST_BODY as u64)));
            }
            whole.extend_from_slice(&data);
        }
    }
    Ok(whole.into())
}

/// wasi:http's error code for each of ours.
fn wasi_error(error: OutboundError) -> Error {
    match error {
        OutboundError::NotAllowed => Error::HttpRequestDenied,
        OutboundError::Timeout => Error::HttpResponseTimeout,
        OutboundError::Dns => Error::DnsError {
            rcode: Some("name does not resolve".into()),
            info_code: None,
        },
        OutboundError::Connect => Error::ConnectionRefused,
        OutboundError::TooLarge => Error::HttpResponseBodySize(None),
        OutboundError::InvalidRequest => Error::HttpRequestUriInvalid,
        OutboundError::Io => Error::ConnectionTerminated,
    }
}
