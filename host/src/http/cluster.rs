//! GET /cluster: every node the `--lookupd-http-address` lookupds know,
//! each with its `/stats` (plugins included), for the dashboard's cluster
//! view: one page for a cluster, as nsqadmin is for NSQ's. `/metrics`
//! stays per node (Prometheus scrapes each).
//!
//! The nodes are asked in parallel, each for at most [`NODE_TIMEOUT`]; a
//! node that does not answer is listed with the error, so a dead node shows
//! as dead rather than holding up the page.

use std::time::Duration;

use axum::extract::State;
use serde_json::{Value, json};

use super::{ApiError, ApiResponse, ApiResult, AppState};
use crate::lookupd_nodes::{get_json_within, producers};

/// How long one node's /stats may take.
const NODE_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn cluster(State(state): State<AppState>) -> ApiResult {
    let lookupds = state.broker.options.lookupd_http_addresses.clone();
    if lookupds.is_empty() {
        return Ok(ApiResponse::Json(json!({ "lookupd": [], "nodes": [] })));
    }
    let nodes = tokio::task::spawn_blocking(move || nodes(&lookupds))
        .await
        .map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                format!("CLUSTER_FAILED: {e}"),
            )
        })?;
    Ok(ApiResponse::Json(nodes))
}

/// Asks the lookupds, then every node (blocking).
fn nodes(lookupds: &[String]) -> Value {
    let found = match producers(lookupds, None) {
        Ok(found) => found,
        Err(error) => return json!({ "lookupd": lookupds, "error": error, "nodes": [] }),
    };
    let nodes: Vec<Value> = std::thread::scope(|scope| {
        let asks: Vec<_> = found
            .iter()
            .map(|p| {
                let node = format!("{}:{}", p.broadcast_address, p.http_port);
                scope.spawn(move || {
                    let url = format!("http://{node}/stats?format=json");
                    match get_json_within(&url, NODE_TIMEOUT) {
                        Ok(stats) => json!({ "node": node, "stats": stats }),
                        Err(error) => json!({ "node": node, "error": error }),
                    }
                })
            })
            .collect();
        asks.into_iter()
            .map(|ask| {
                ask.join()
                    .unwrap_or_else(|_| json!({ "error": "panicked" }))
            })
            .collect()
    });
    json!({ "lookupd": lookupds, "nodes": nodes })
}
