//! A real HTTP endpoint for the plugins' outbound requests: it records
//! every request (and every connection, so a test can show that nothing
//! even connected) and answers as the test says: at once, with a 500 or
//! a 429 and `Retry-After`, slowly, or never. Plain HTTP, or HTTPS with a
//! certificate from a CA made for the test ([`crate::certs`]).
//!
//! hyper serves it on a thread and runtime of its own (keep-alive,
//! pipelining, many connections), so it keeps up with a broker's pooled
//! client. One thread: a sink whose two threads woke each other for every
//! request took a third more CPU, which on two cores the broker under
//! test lacks (bench/README.md, "Outbound HTTP").

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::certs::Certificates;

/// One request the sink got.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How to answer one request.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Waited before answering (a slow endpoint; a long one hangs).
    pub delay: Duration,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn ok() -> Answer {
        Answer::status(200)
    }

    /// No answer for an hour: the client's timeout ends it.
    pub fn hang() -> Answer {
        Answer::ok().after(Duration::from_secs(3600))
    }

    pub fn header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Answer {
        self.body = body.into();
        self
    }

    pub fn after(mut self, delay: Duration) -> Answer {
        self.delay = delay;
        self
    }
}

type Answering = Arc<dyn Fn(&Recorded) -> Answer + Send + Sync>;

struct State {
    requests: Mutex<Vec<Recorded>>,
    connections: AtomicU64,
    answering: RwLock<Answering>,
    /// Requests seen, including those not answered yet.
    count: AtomicU64,
}

pub struct HttpSink {
    pub address: SocketAddr,
    scheme: &'static str,
    state: Arc<State>,
    /// The sink's thread serves until this is dropped.
    _serving: tokio::sync::oneshot::Sender<()>,
}

impl HttpSink {
    /// A plain HTTP sink answering 200 to everything.
    pub fn start() -> HttpSink {
        Self::serve(None)
    }

    /// An HTTPS sink, its certificate (for `localhost` and 127.0.0.1)
    /// signed by `certificates`' CA (`ca.pem`).
    pub fn start_tls(certificates: &Certificates) -> HttpSink {
        Self::serve(Some(certificates))
    }

    fn serve(certificates: Option<&Certificates>) -> HttpSink {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("the sink's runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind the sink");
        let address = listener.local_addr().expect("its address");
        let state = Arc::new(State {
            requests: Mutex::new(Vec::new()),
            connections: AtomicU64::new(0),
            answering: RwLock::new(Arc::new(|_: &Recorded| Answer::ok())),
            count: AtomicU64::new(0),
        });
        let acceptor = certificates.map(tls_acceptor);
        let serving = state.clone();
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                serving.connections.fetch_add(1, Ordering::SeqCst);
                let _ = stream.set_nodelay(true);
                let state = serving.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(stream).await {
                                serve_connection(TokioIo::new(tls), state).await;
                            }
                        }
                        None => serve_connection(TokioIo::new(stream), state).await,
                    }
                });
            }
        });
        let (serving, dropped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("http-sink".into())
            .spawn(move || {
                let _ = runtime.block_on(dropped);
            })
            .expect("the sink's thread");
        HttpSink {
            address,
            scheme: if certificates.is_some() {
                "https"
            } else {
                "http"
            },
            state,
            _serving: serving,
        }
    }

    /// `http://127.0.0.1:PORT` (or https), as an allowlist entry names it.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.address)
    }

    /// The URL of `path` on the sink.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }

    /// Answers every request from now on with what `answering` returns.
    pub fn answer_with(&self, answering: impl Fn(&Recorded) -> Answer + Send + Sync + 'static) {
        *self.state.answering.write().unwrap() = Arc::new(answering);
    }

    /// Every request answered so far (and those still waiting for their answer).
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Requests seen, answered or not.
    pub fn count(&self) -> u64 {
        self.state.count.load(Ordering::SeqCst)
    }

    /// TCP connections accepted.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
    }
}

async fn serve_connection<I>(io: TokioIo<I>, state: Arc<State>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let state = state.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes().to_vec())
                .unwrap_or_default();
            let recorded = Recorded {
                method: parts.method.to_string(),
                path: parts
                    .uri
                    .path_and_query()
                    .map_or("/".into(), |p| p.to_string()),
                headers: parts
                    .headers
                    .iter()
                    .map(|(n, v)| {
                        (
                            n.as_str().to_string(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
                body,
                at: Instant::now(),
            };
            state.count.fetch_add(1, Ordering::SeqCst);
            let answering = state.answering.read().unwrap().clone();
            let answer = answering(&recorded);
            state.requests.lock().unwrap().push(recorded);
            if !answer.delay.is_zero() {
                tokio::time::sleep(answer.delay).await;
            }
            let mut response = hyper::Response::builder().status(answer.status);
            for (name, value) in &answer.headers {
                response = response.header(name, value);
            }
            Ok::<_, std::convert::Infallible>(
                response
                    .body(Full::new(Bytes::from(answer.body)))
                    .expect("a valid answer"),
            )
        }
    });
    let _ = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service)
        .await;
}

fn tls_acceptor(certificates: &Certificates) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(certificates.path("server.pem"))
            .expect("server.pem")
            .collect::<Result<_, _>>()
            .expect("server.pem parses");
    let key = PrivateKeyDer::from_pem_file(certificates.path("server.key")).expect("server.key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("the sink's certificate");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}
