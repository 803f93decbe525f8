//! nsqd's HTTP API on axum.
//!
//! Every handler returns nsqd's "V1" shape: 200 with a text or JSON body,
//! or an error status with `{"message":"CODE"}`, always with the
//! `X-NSQ-Content-Type: nsq; version=1.0` header that clients look for.

mod authorize;
mod config;
mod dashboard;
pub mod https;
mod info;
mod metrics;
mod plugins;
mod publish;
mod quick;
mod stats;
mod topic_channel;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::config::{LogLevel, TlsRequired};
use crate::plugins::PluginHost;
use crate::security::Security;
use https::{Peer, TlsListener};
use quick::QuickListener;

/// Changes the process's log level (PUT /config/log_level).
pub type LogControl = Arc<dyn Fn(LogLevel) -> Result<(), String> + Send + Sync>;

#[derive(Clone)]
pub struct AppState {
    pub broker: Arc<Broker>,
    pub security: Arc<Security>,
    pub plugins: Arc<PluginHost>,
    pub log_control: LogControl,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(dashboard::index))
        .route("/dashboard/app.js", get(dashboard::script))
        .route("/dashboard/style.css", get(dashboard::style))
        .route("/ping", get(info::ping))
        .route("/info", get(info::info))
        .route("/pub", post(publish::publish))
        .route("/mpub", post(publish::multi_publish))
        .route("/stats", get(stats::stats))
        .route("/metrics", get(metrics::metrics))
        .route("/topic/create", post(topic_channel::create_topic))
        .route("/topic/delete", post(topic_channel::delete_topic))
        .route("/topic/empty", post(topic_channel::empty_topic))
        .route("/topic/pause", post(topic_channel::pause_topic))
        .route("/topic/unpause", post(topic_channel::unpause_topic))
        .route("/channel/create", post(topic_channel::create_channel))
        .route("/channel/delete", post(topic_channel::delete_channel))
        .route("/channel/empty", post(topic_channel::empty_channel))
        .route("/channel/pause", post(topic_channel::pause_channel))
        .route("/channel/unpause", post(topic_channel::unpause_channel))
        .route(
            "/config/{opt}",
            get(config::get_option).put(config::put_option),
        )
        .route("/plugins", get(plugins::list))
        .route("/plugins/{name}/reload", post(plugins::reload))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED")
        })
        .with_state(state)
}

/// Serves the plain HTTP API on a thread of its own, with a single-thread
/// Tokio runtime, until `shutdown`; the returned task (on the calling
/// runtime) ends when it has stopped.
///
/// Why a thread of its own: hyper hands a request's body to the handler
/// through a channel inside the connection's task, and the handler asking
/// for it wakes that same task while it runs. Tokio's multi-thread
/// scheduler treats such a wake as a yield and wakes a second worker to
/// take the task over: two more context switches per request, most of the
/// cost of an HTTP /pub on this kind of machine (bench/README.md: one
/// keep-alive connection, 15-20 k req/s before, 74-83 k after with the
/// CPUs awake). A single-thread runtime has no worker to wake. Handlers
/// still run "in" the main runtime ([`in_main_runtime`]): whatever they
/// spawn (a new channel's tasks, a plugin compile) lives there, not here.
pub fn spawn_serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let main = tokio::runtime::Handle::current();
    let listener = listener.into_std()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (stopped, wait_stopped) = tokio::sync::oneshot::channel::<()>();
    let main_for_handlers = main.clone();
    std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            runtime.block_on(async move {
                let served = match TcpListener::from_std(listener) {
                    Ok(listener) => serve(listener, state, shutdown, main_for_handlers).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = served {
                    tracing::error!(error = %e, "HTTP server failed");
                }
            });
            let _ = stopped.send(());
        })?;
    Ok(main.spawn(async move {
        let _ = wait_stopped.await;
    }))
}

/// Runs every handler future entered into the main runtime (see
/// [`spawn_serve`]), poll by poll.
async fn in_main_runtime(
    axum::extract::State(main): axum::extract::State<tokio::runtime::Handle>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    Entered {
        main,
        future: Box::pin(next.run(request)),
    }
    .await
}

/// A future polled with the main runtime entered.
struct Entered<F> {
    main: tokio::runtime::Handle,
    future: std::pin::Pin<Box<F>>,
}

impl<F: Future> Future for Entered<F> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let this = &mut *self;
        let _main = this.main.enter();
        this.future.as_mut().poll(cx)
    }
}

/// Serves the API on the plain HTTP port until `shutdown`. With
/// `--tls-required=true` every request there is answered as nsqd does:
/// 403 and where the HTTPS port is.
async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
    main: tokio::runtime::Handle,
) -> std::io::Result<()> {
    let app = if state.security.tls_required == TlsRequired::Yes {
        let https_port = state
            .broker
            .listen_addresses()
            .https
            .map(|a| a.port())
            .unwrap_or(0);
        Router::new().fallback(move || async move { tls_required(https_port) })
    } else {
        router(state)
    };
    let app = app.layer(axum::middleware::from_fn_with_state(main, in_main_runtime));
    axum::serve(
        QuickListener(listener),
        app.into_make_service_with_connect_info::<Peer>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await
}

/// Serves the same API over TLS (`--https-address`) until `shutdown`.
pub async fn serve_https(
    listener: TlsListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<Peer>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await
}

/// nsqd's answer on plain HTTP when TLS is required (its exact bytes).
fn tls_required(https_port: u16) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        StatusCode::FORBIDDEN,
        [
            ("X-NSQ-Content-Type", "nsq; version=1.0"),
            ("Content-Type", "application/json; charset=utf-8"),
        ],
        format!(r#"{{"message": "TLS_REQUIRED", "https_port": {https_port}}}"#),
    )
        .into_response()
}

pub use wasq_nsq::http_v1::{ApiError, ApiResponse, ApiResult, Query, parse_bool_param};
