//! GET /ping and GET /info.

use axum::extract::State;
use serde_json::json;

use super::{ApiResponse, ApiResult, AppState};
use crate::config::{NSQ_VERSION, hostname};

pub async fn ping(State(state): State<AppState>) -> ApiResult {
    let _ = state;
    Ok(ApiResponse::Text("OK".into()))
}

pub async fn info(State(state): State<AppState>) -> ApiResult {
    let broker = &state.broker;
    let options = &broker.options;
    let addresses = broker.listen_addresses();
    Ok(ApiResponse::Json(json!({
        "version": NSQ_VERSION,
        "broadcast_address": options.broadcast_address(),
        "hostname": hostname(),
        "http_port": addresses.http.port(),
        "tcp_port": addresses.tcp.port(),
        "start_time": broker.start_time(),
        "max_heartbeat_interval": options.max_heartbeat_interval.as_nanos() as u64,
        "max_output_buffer_size": options.max_output_buffer_size,
        "max_output_buffer_timeout": options.max_output_buffer_timeout.as_nanos() as u64,
        "max_deflate_level": options.max_deflate_level,
    })))
}
