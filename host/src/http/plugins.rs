//! GET /plugins: every plugin the host knows, loaded or failed, with its
//! counters and handler-time percentiles.

use axum::extract::State;
use serde_json::json;

use super::{ApiResponse, ApiResult, AppState};

pub async fn list(State(state): State<AppState>) -> ApiResult {
    Ok(ApiResponse::Json(
        json!({ "plugins": state.plugins.status() }),
    ))
}
