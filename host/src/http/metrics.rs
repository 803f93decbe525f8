//! GET /metrics: the Prometheus scrape endpoint (see [`crate::metrics`]).

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::metrics::{self, Snapshot};

pub async fn metrics(State(state): State<AppState>) -> Response {
    let snapshot = Snapshot {
        stats: state.broker.stats(None, None, false),
        plugins: state.plugins.status(),
        start_time: state.broker.start_time(),
        resident_bytes: metrics::resident_bytes(),
    };
    (
        [(CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::render(snapshot),
    )
        .into_response()
}
