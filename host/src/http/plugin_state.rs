//! A plugin's key-value store for operators: `GET /plugins/NAME/state`
//! (`?prefix=&limit=`) lists keys and values, `GET
//! /plugins/NAME/state/KEY` shows one, `DELETE /plugins/NAME/state`
//! deletes them all. State is kept by plugin name, so it can be read and
//! deleted after the plugin was removed. Keys and values are shown as text
//! when they are UTF-8, else in base64 (`key_base64`, `value_base64`);
//! a KEY in the path is percent-decoded UTF-8.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::{ApiError, ApiResponse, ApiResult, AppState, Query};
use crate::plugins::is_plugin_name;
use crate::plugins::state::call::MAX_SCAN;
use crate::plugins::state::store::StateStore;

/// Entries listed when `limit` is not given.
const DEFAULT_LIMIT: usize = 100;

/// `bytes` under `field`: text if UTF-8, else `field_base64`.
fn put_bytes(entry: &mut Map<String, Value>, field: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => entry.insert(field.into(), text.into()),
        Err(_) => entry.insert(
            format!("{field}_base64"),
            data_encoding::BASE64.encode(bytes).into(),
        ),
    };
}

fn entry(key: &[u8], value: &[u8]) -> Value {
    let mut entry = Map::new();
    put_bytes(&mut entry, "key", key);
    put_bytes(&mut entry, "value", value);
    Value::Object(entry)
}

/// The store, for plugin `name`: 400 for a bad name, 404 if no state was
/// ever kept on this node.
fn store_for(state: &AppState, name: &str) -> Result<Arc<StateStore>, ApiError> {
    if !is_plugin_name(name) {
        return Err(ApiError::bad_request("INVALID_PLUGIN_NAME"));
    }
    match state.plugins.state_store().existing() {
        None => Err(ApiError::not_found("NO_STATE")),
        Some(Ok(store)) => Ok(store),
        Some(Err(e)) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("STATE_UNAVAILABLE: {e:#}"),
        )),
    }
}

/// Runs store work on a blocking thread; a store error is a 500.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, crate::plugins::state::limits::StateError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("STATE_IO: {e}")))
}

pub async fn list(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let store = store_for(&state, &name)?;
    let query = Query::parse(query.as_deref());
    let prefix = query.get("prefix").unwrap_or("").as_bytes().to_vec();
    let limit = match query.get("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(limit) if limit <= MAX_SCAN => limit,
            _ => return Err(ApiError::bad_request("INVALID_LIMIT")),
        },
    };
    let (entries, totals) = blocking(move || {
        // One more than asked, to tell whether there are more.
        let entries = store.scan(&name, &prefix, limit + 1)?;
        Ok((entries, store.totals(&name)?))
    })
    .await?;
    let more = entries.len() > limit;
    let shown: Vec<Value> = entries
        .iter()
        .take(limit)
        .map(|(k, v)| entry(k, v))
        .collect();
    Ok(ApiResponse::Json(json!({
        "keys": totals.keys,
        "bytes": totals.bytes,
        "entries": shown,
        "more": more,
    })))
}

pub async fn get_one(
    State(state): State<AppState>,
    Path((name, key)): Path<(String, String)>,
) -> ApiResult {
    let store = store_for(&state, &name)?;
    let key = key.into_bytes();
    let lookup = key.clone();
    match blocking(move || store.get(&name, &lookup)).await? {
        Some(value) => Ok(ApiResponse::Json(entry(&key, &value))),
        None => Err(ApiError::not_found("KEY_NOT_FOUND")),
    }
}

/// Deletes a plugin's state. Refused (409) while a version of the plugin
/// is consuming: its handlers' writes would race the deletion.
pub async fn delete(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult {
    let store = store_for(&state, &name)?;
    if state.plugins.uses_state(&name) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "PLUGIN_RUNNING: remove the plugin (or its manifest's state = true) first",
        ));
    }
    let plugin = name.clone();
    let deleted = blocking(move || store.clear(&plugin)).await?;
    tracing::warn!(plugin = %name, keys = deleted, "STATE: deleted by DELETE /plugins/NAME/state");
    Ok(ApiResponse::Json(json!({ "deleted_keys": deleted })))
}
