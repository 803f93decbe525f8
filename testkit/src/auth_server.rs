//! A small auth server speaking nsqd's auth protocol (`GET /auth?...`),
//! answering each request with what the test's function returns and
//! remembering every request it got.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

/// One request's query parameters (`secret`, `remote_ip`, `tls`, `common_name`).
pub type AuthQuery = HashMap<String, String>;

/// The answer: HTTP status and JSON body.
pub type Answer = (u16, String);

pub struct AuthServer {
    pub address: SocketAddr,
    requests: Arc<Mutex<Vec<AuthQuery>>>,
}

impl AuthServer {
    /// Serves until the test process exits.
    pub fn start(answer: impl Fn(&AuthQuery) -> Answer + Send + Sync + 'static) -> AuthServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the auth server");
        let address = listener.local_addr().expect("its address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let answer = Arc::new(answer);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = seen.clone();
                let answer = answer.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(&stream);
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).is_err() {
                        return;
                    }
                    // Skip the headers.
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                        line.clear();
                    }
                    let target = request_line.split(' ').nth(1).unwrap_or("");
                    let query: AuthQuery = target
                        .split_once('?')
                        .map(|(_, q)| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                        .unwrap_or_default();
                    let (status, body) = if target.starts_with("/auth") {
                        answer(&query)
                    } else {
                        (404, r#"{"message":"NOT_FOUND"}"#.to_string())
                    };
                    seen.lock().unwrap().push(query);
                    let _ = write!(
                        &stream,
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        AuthServer { address, requests }
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<AuthQuery> {
        self.requests.lock().unwrap().clone()
    }
}

/// An answer granting `permissions` on topics matching `topic` and
/// channels matching `channel` for `ttl` seconds.
pub fn grant(identity: &str, topic: &str, channel: &str, permissions: &[&str], ttl: u64) -> Answer {
    let body = serde_json::json!({
        "ttl": ttl,
        "identity": identity,
        "identity_url": format!("https://example.test/{identity}"),
        "authorizations": [{"topic": topic, "channels": [channel], "permissions": permissions}],
    });
    (200, body.to_string())
}
