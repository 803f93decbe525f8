//! GET /: a live dashboard of topics, channels, clients and plugins.
//!
//! Three static files compiled into the binary (no build step, no CDN, works
//! offline); the page polls /stats every second and draws from it, so it
//! shows exactly what nsqadmin and /metrics see.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/app.js");
const STYLE: &str = include_str!("dashboard/style.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    // Short-lived: a new wasqd may serve a new page under the same name.
    (
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "max-age=60")],
        body,
    )
        .into_response()
}

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}
