//! nsqd's HTTP API on axum.
//!
//! Every handler returns nsqd's "V1" shape: 200 with a text or JSON body,
//! or an error status with `{"message":"CODE"}`, always with the
//! `X-NSQ-Content-Type: nsq; version=1.0` header that clients look for.

pub mod admin_access;
mod authorize;
mod cluster;
mod config;
mod dashboard;
pub mod https;
mod info;
mod metrics;
mod plugin_admin;
mod plugin_state;
mod plugins;
mod publish;
mod quick;
mod stats;
mod threads;
mod topic_channel;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::config::{LogLevel, TlsRequired};
use crate::plugins::PluginHost;
use crate::security::Security;
use admin_access::AdminAccess;
use https::{Peer, TlsListener};
use quick::QuickListener;
pub use threads::{Scheme, spawn_serve};

/// Changes the process's log level (PUT /config/log_level).
pub type LogControl = Arc<dyn Fn(LogLevel) -> Result<(), String> + Send + Sync>;

#[derive(Clone)]
pub struct AppState {
    pub broker: Arc<Broker>,
    pub security: Arc<Security>,
    pub plugins: Arc<PluginHost>,
    pub log_control: LogControl,
    /// The plugin API's guard; `None`: the API is off (`--plugin-admin`).
    pub plugin_admin: Option<Arc<AdminAccess>>,
    /// The largest module the plugin API takes.
    pub plugin_admin_max_module: usize,
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
        .route("/cluster", get(cluster::cluster))
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
        .route(
            "/plugins/{name}",
            get(plugins::one).delete(plugin_admin::delete).merge(
                put(plugin_admin::put).layer(DefaultBodyLimit::max(
                    state
                        .plugin_admin_max_module
                        .saturating_add(plugin_admin::FORM_OVERHEAD),
                )),
            ),
        )
        .route("/plugins/{name}/module", get(plugin_admin::module))
        .route("/plugins/{name}/manifest", get(plugin_admin::manifest))
        .route("/plugins/{name}/reload", post(plugins::reload))
        .route(
            "/plugins/{name}/state",
            get(plugin_state::list).delete(plugin_state::delete),
        )
        .route("/plugins/{name}/state/{*key}", get(plugin_state::get_one))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED")
        })
        .with_state(state)
}

/// Serves the API on the plain HTTP port's connections that one HTTP
/// thread is handed ([`threads`]) until `shutdown`. With
/// `--tls-required=true` every request there is answered as nsqd does:
/// 403 and where the HTTPS port is.
async fn serve(
    listener: QuickListener,
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
    axum::serve(
        listener,
        in_main_runtime(app, main).into_make_service_with_connect_info::<Peer>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await
}

async fn serve_https(
    listener: TlsListener,
    state: AppState,
    shutdown: CancellationToken,
    main: tokio::runtime::Handle,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        in_main_runtime(router(state), main).into_make_service_with_connect_info::<Peer>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await
}

/// `app` with every handler run in the main runtime ([`threads::in_main_runtime`]).
fn in_main_runtime(app: Router, main: tokio::runtime::Handle) -> Router {
    app.layer(axum::middleware::from_fn_with_state(
        main,
        threads::in_main_runtime,
    ))
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
