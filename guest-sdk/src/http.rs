//! Outbound HTTP (ABI.md, "Outbound HTTP and configuration"): a request
//! builder, a whole response, and errors that say whether trying again
//! may help.
//!
//! ```no_run
//! use wasq_guest::http::Request;
//! use wasq_guest::{Message, Outcome};
//!
//! fn handle(message: &Message) -> Outcome {
//!     match Request::post("https://api.example.com/hook", message.body).send() {
//!         Ok(response) if response.is_success() => Outcome::Finish,
//!         Ok(_) | Err(_) => Outcome::Retry,
//!     }
//! }
//! ```
//!
//! The broker sends the request only where the manifest's
//! `allowed_outbound_hosts` allows, waits for the whole response without
//! holding a thread (the instance is suspended meanwhile), and ends it by
//! `http_timeout_ms` or the handler deadline. Off WebAssembly, requests go
//! to the handler set with `wasq_guest::testing::set_http_handler`.

use std::fmt;
use std::time::Duration;

/// One request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A whole response: any status (what a 4xx or 5xx means is yours to say).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    pub status: u16,
    /// Names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why a request got no response (the import's status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// Not in `allowed_outbound_hosts` (the URL, the address its host
    /// resolves to, or a redirect): nothing was sent.
    NotAllowed,
    /// No whole response within `http_timeout_ms` or the handler deadline.
    Timeout,
    /// The host name does not resolve.
    Dns,
    /// Connection refused or failed, or the TLS handshake failed.
    Connect,
    /// The response body is over `http_max_response_kib`.
    TooLarge,
    /// A method, URL or header the broker cannot send.
    InvalidRequest,
    /// The connection broke, or the answer was not HTTP.
    Io,
    /// Too many responses not read (cannot happen through this API).
    Busy,
    BadPointer,
    /// A status this SDK version does not know.
    Other(i32),
}

impl HttpError {
    /// The error an import status (ABI.md) stands for.
    pub fn from_status(status: i32) -> HttpError {
        match status {
            5 => HttpError::BadPointer,
            8 => HttpError::NotAllowed,
            9 => HttpError::Timeout,
            10 => HttpError::Dns,
            11 => HttpError::Connect,
            12 => HttpError::TooLarge,
            13 => HttpError::InvalidRequest,
            14 => HttpError::Io,
            15 => HttpError::Busy,
            other => HttpError::Other(other),
        }
    }

    /// Whether the same request may work later (timeouts, DNS, connection
    /// failures): a retry. The others need a change to the plugin or its
    /// manifest.
    pub fn is_temporary(self) -> bool {
        matches!(
            self,
            HttpError::Timeout
                | HttpError::Dns
                | HttpError::Connect
                | HttpError::Io
                | HttpError::Busy
        )
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::NotAllowed => f.write_str("not in allowed_outbound_hosts"),
            HttpError::Timeout => f.write_str("timed out"),
            HttpError::Dns => f.write_str("host name does not resolve"),
            HttpError::Connect => f.write_str("cannot connect"),
            HttpError::TooLarge => f.write_str("response too large"),
            HttpError::InvalidRequest => f.write_str("invalid request"),
            HttpError::Io => f.write_str("connection broken"),
            HttpError::Busy => f.write_str("too many unread responses"),
            HttpError::BadPointer => f.write_str("bad pointer"),
            HttpError::Other(status) => write!(f, "status {status}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl Request {
    pub fn new(method: &str, url: &str) -> Request {
        Request {
            method: method.to_string(),
            url: url.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn get(url: &str) -> Request {
        Request::new("GET", url)
    }

    pub fn post(url: &str, body: impl Into<Vec<u8>>) -> Request {
        Request::new("POST", url).body(body)
    }

    /// Adds a header (the broker sets `Host` and `Content-Length` itself).
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// Sends the request and waits for the whole response.
    pub fn send(&self) -> Result<Response, HttpError> {
        if let Some((name, _)) = self
            .headers
            .iter()
            .find(|(name, value)| !valid_header(name, value))
        {
            crate::log_warn(&format!("wasq-guest: header {name:?} cannot be sent"));
            return Err(HttpError::InvalidRequest);
        }
        let mut headers = String::new();
        for (name, value) in &self.headers {
            headers.push_str(name);
            headers.push_str(": ");
            headers.push_str(value);
            headers.push('\n');
        }
        imports::send(self, &headers)
    }
}

/// A header line the ABI can carry: no line breaks, a name without a colon.
fn valid_header(name: &str, value: &str) -> bool {
    !name.is_empty() && !name.contains([':', '\r', '\n']) && !value.contains(['\r', '\n'])
}

impl Response {
    /// 200–299.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `Retry-After` in seconds (the HTTP-date form is not read).
    pub fn retry_after(&self) -> Option<Duration> {
        let seconds = self.header("retry-after")?.trim().parse::<u64>().ok()?;
        Some(Duration::from_secs(seconds))
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Reads the ABI's header lines.
    fn parse_headers(text: &[u8]) -> Vec<(String, String)> {
        String::from_utf8_lossy(text)
            .lines()
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
            .collect()
    }
}

#[cfg(target_arch = "wasm32")]
mod imports {
    use super::{HttpError, Request, Response};

    #[link(wasm_import_module = "wasq")]
    unsafe extern "C" {
        fn http_request(
            method_ptr: i32,
            method_len: i32,
            url_ptr: i32,
            url_len: i32,
            headers_ptr: i32,
            headers_len: i32,
            body_ptr: i32,
            body_len: i32,
            response_ptr: i32,
        ) -> i32;
        fn http_response_read(
            handle: i32,
            headers_ptr: i32,
            headers_cap: i32,
            body_ptr: i32,
            body_cap: i32,
        ) -> i32;
    }

    fn parts(bytes: &[u8]) -> (i32, i32) {
        (bytes.as_ptr() as i32, bytes.len() as i32)
    }

    pub fn send(request: &Request, headers: &str) -> Result<Response, HttpError> {
        let (mp, ml) = parts(request.method.as_bytes());
        let (up, ul) = parts(request.url.as_bytes());
        let (hp, hl) = parts(headers.as_bytes());
        let (bp, bl) = parts(&request.body);
        let mut record = [0u32; 4];
        // SAFETY: the host reads the given ranges and writes 16 bytes at `record`.
        let status =
            unsafe { http_request(mp, ml, up, ul, hp, hl, bp, bl, record.as_mut_ptr() as i32) };
        if status != 0 {
            return Err(HttpError::from_status(status));
        }
        let [handle, code, headers_len, body_len] = record.map(u32::from_le);
        let mut headers = vec![0u8; headers_len as usize];
        let mut body = vec![0u8; body_len as usize];
        // SAFETY: the host writes at most the given capacities into the vectors.
        let status = unsafe {
            http_response_read(
                handle as i32,
                headers.as_mut_ptr() as i32,
                headers.len() as i32,
                body.as_mut_ptr() as i32,
                body.len() as i32,
            )
        };
        if status != 0 {
            return Err(HttpError::from_status(status));
        }
        Ok(Response {
            status: code as u16,
            headers: Response::parse_headers(&headers),
            body,
        })
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imports {
    use super::{HttpError, Request, Response, simulated::HTTP};

    pub fn send(request: &Request, headers: &str) -> Result<Response, HttpError> {
        // What the broker would see, so simulated handlers test the lines.
        let mut seen = request.clone();
        seen.headers = Response::parse_headers(headers.as_bytes());
        HTTP.with(|handler| match &*handler.borrow() {
            Some(handler) => handler(&seen),
            None => Err(HttpError::NotAllowed),
        })
    }
}

/// Natively, the endpoint requests go to (per thread, so tests stay apart).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod simulated {
    use std::cell::RefCell;

    use super::{HttpError, Request, Response};

    type Handler = Box<dyn Fn(&Request) -> Result<Response, HttpError>>;

    thread_local! {
        pub(crate) static HTTP: RefCell<Option<Handler>> = const { RefCell::new(None) };
    }

    /// Answers this thread's requests (without one, every request is
    /// `NotAllowed`, as with an empty allowlist).
    pub fn set_http_handler(handler: impl Fn(&Request) -> Result<Response, HttpError> + 'static) {
        HTTP.with(|http| *http.borrow_mut() = Some(Box::new(handler)));
    }
}
