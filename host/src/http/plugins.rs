//! GET /plugins: every plugin the host knows, running, failed or removed,
//! with counters, handler-time percentiles and reload history (GET
//! /plugins/NAME: one of them); and
//! POST /plugins/NAME/reload for operators who run with --plugins-watch=false.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::json;

use super::{ApiError, ApiResponse, ApiResult, AppState};
use crate::plugins::{SyncResult, Trigger, is_plugin_name};

pub async fn list(State(state): State<AppState>) -> ApiResult {
    Ok(ApiResponse::Json(
        json!({ "plugins": state.plugins.status() }),
    ))
}

/// One plugin's status, as in GET /plugins; 404 if the host knows no
/// plugin by that name.
pub async fn one(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult {
    match state.plugins.status_of(&name) {
        Some(status) => Ok(ApiResponse::Json(json!(status))),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "PLUGIN_NOT_FOUND")),
    }
}

/// Reloads one plugin from its files now. 200 with the outcome and status
/// (a rejected version is reported with `"result":"failed"` and the old one
/// stays live), 404 if there is no such plugin and no files for it.
pub async fn reload(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult {
    if !is_plugin_name(&name) {
        return Err(ApiError::bad_request("INVALID_PLUGIN_NAME"));
    }
    let (result, error) = match state.plugins.sync_plugin(&name, Trigger::Http).await {
        SyncResult::Unknown => {
            return Err(ApiError::new(StatusCode::NOT_FOUND, "PLUGIN_NOT_FOUND"));
        }
        SyncResult::Loaded => ("loaded", None),
        SyncResult::Reloaded => ("reloaded", None),
        SyncResult::Unchanged => ("unchanged", None),
        SyncResult::Removed => ("removed", None),
        SyncResult::Failed(why) => ("failed", Some(why)),
    };
    Ok(ApiResponse::Json(json!({
        "result": result,
        "error": error,
        "plugin": state.plugins.status_of(&name),
    })))
}
