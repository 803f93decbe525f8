//! GET and PUT /config/:opt: options by their nsqd config name (the flag
//! name with `_` for `-`). As in nsqd, only `nsqlookupd_tcp_addresses` and
//! `log_level` can be changed at run time.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{ApiError, ApiResponse, ApiResult, AppState};
use crate::broker::Broker;
use crate::config::LogLevel;

pub async fn get_option(State(state): State<AppState>, Path(opt): Path<String>) -> ApiResult {
    option_value(&state.broker, &opt)
        .map(ApiResponse::Json)
        .ok_or_else(|| ApiError::bad_request("INVALID_OPTION"))
}

pub async fn put_option(
    State(state): State<AppState>,
    Path(opt): Path<String>,
    body: Body,
) -> ApiResult {
    let max = state.broker.options.max_msg_size as usize;
    let body = axum::body::to_bytes(body, max)
        .await
        .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "INVALID_VALUE"))?;
    if body.is_empty() {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "INVALID_VALUE",
        ));
    }
    match opt.as_str() {
        "nsqlookupd_tcp_addresses" => {
            let addresses: Vec<String> = serde_json::from_slice(&body)
                .map_err(|_| ApiError::bad_request("INVALID_VALUE"))?;
            state.broker.settings.write().lookupd_tcp_addresses = addresses;
        }
        "log_level" => {
            let text =
                std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("INVALID_VALUE"))?;
            let level =
                LogLevel::parse(text).ok_or_else(|| ApiError::bad_request("INVALID_VALUE"))?;
            (state.log_control)(level)
                .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR"))?;
            state.broker.settings.write().log_level = level;
        }
        _ => return Err(ApiError::bad_request("INVALID_OPTION")),
    }
    tracing::info!(option = %opt, "config changed through HTTP");
    get_option(State(state), Path(opt)).await
}

/// An option's value as nsqd's JSON shows it (durations in nanoseconds,
/// log level as nsqd's number: 1 debug .. 5 fatal).
fn option_value(broker: &Broker, name: &str) -> Option<Value> {
    let o = &broker.options;
    let nanos = |d: std::time::Duration| json!(d.as_nanos() as u64);
    let addresses = broker.listen_addresses();
    Some(match name {
        "tcp_address" => json!(addresses.tcp.to_string()),
        "http_address" => json!(addresses.http.to_string()),
        "broadcast_address" => json!(o.broadcast_address()),
        "data_path" => json!(
            o.data_path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ),
        "mem_queue_size" => json!(o.mem_queue_size),
        "max_msg_size" => json!(o.max_msg_size),
        "max_body_size" => json!(o.max_body_size),
        "msg_timeout" => nanos(o.msg_timeout),
        "max_msg_timeout" => nanos(o.max_msg_timeout),
        "max_req_timeout" => nanos(o.max_req_timeout),
        "max_rdy_count" => json!(o.max_rdy_count),
        "max_heartbeat_interval" => nanos(o.max_heartbeat_interval),
        "max_output_buffer_size" => json!(o.max_output_buffer_size),
        "max_output_buffer_timeout" => nanos(o.max_output_buffer_timeout),
        "min_output_buffer_timeout" => nanos(o.min_output_buffer_timeout),
        "output_buffer_timeout" => nanos(o.output_buffer_timeout),
        "nsqlookupd_tcp_addresses" => json!(broker.settings.read().lookupd_tcp_addresses),
        "statsd_address" => json!(o.statsd_address.clone().unwrap_or_default()),
        // As nsqd reports it: with the host put in, as pushed.
        "statsd_prefix" => json!(crate::statsd::StatsdSettings::expanded_prefix(broker)),
        "statsd_interval" => nanos(o.statsd_interval),
        "statsd_mem_stats" => json!(o.statsd_mem_stats),
        "statsd_udp_packet_size" => json!(o.statsd_udp_packet_size),
        "statsd_exclude_ephemeral" => json!(o.statsd_exclude_ephemeral),
        "e2e_processing_latency_percentiles" => json!(o.e2e_processing_latency_percentiles),
        "e2e_processing_latency_window_time" => nanos(o.e2e_processing_latency_window_time),
        "log_level" => json!(match broker.settings.read().log_level {
            LogLevel::Debug => 1,
            LogLevel::Info => 2,
            LogLevel::Warn => 3,
            LogLevel::Error => 4,
            LogLevel::Fatal => 5,
        }),
        _ => return None,
    })
}
