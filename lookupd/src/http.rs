//! nsqlookupd's HTTP API: /ping, /info, /lookup, /topics, /channels,
//! /nodes, /debug and the topic/channel create, delete and tombstone
//! actions, with nsqlookupd's JSON shapes and status codes.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde_json::json;
use wasq_nsq::http_v1::{ApiError, ApiResponse, ApiResult, Query};
use wasq_nsq::names::is_valid_name;

use crate::NSQ_VERSION;
use crate::registry::{Category, Registration, keys, subkeys};
use crate::server::Lookupd;

pub fn router(lookupd: Arc<Lookupd>) -> Router {
    Router::new()
        .route("/ping", get(|| async { ApiResponse::Text("OK".into()) }))
        .route(
            "/info",
            get(|| async { ApiResponse::Json(json!({ "version": NSQ_VERSION })) }),
        )
        .route("/lookup", get(lookup))
        .route("/topics", get(topics))
        .route("/channels", get(channels))
        .route("/nodes", get(nodes))
        .route("/debug", get(debug))
        .route("/topic/create", post(create_topic))
        .route("/topic/delete", post(delete_topic))
        .route("/topic/tombstone", post(tombstone))
        .route("/channel/create", post(create_channel))
        .route("/channel/delete", post(delete_channel))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED")
        })
        .with_state(lookupd)
}

fn required<'q>(query: &'q Query, key: &str, missing: &'static str) -> Result<&'q str, ApiError> {
    query.get(key).ok_or_else(|| ApiError::bad_request(missing))
}

async fn lookup(State(lookupd): State<Arc<Lookupd>>, RawQuery(raw): RawQuery) -> ApiResult {
    let query = Query::parse(raw.as_deref());
    let topic = required(&query, "topic", "MISSING_ARG_TOPIC")?;
    let registry = &lookupd.registry;
    if registry
        .find_registrations(Category::Topic, topic, "")
        .is_empty()
    {
        return Err(ApiError::not_found("TOPIC_NOT_FOUND"));
    }
    let now = Instant::now();
    let producers: Vec<_> = registry
        .find_producers(Category::Topic, topic, "")
        .into_iter()
        .filter(|p| {
            p.is_active(
                now,
                lookupd.inactive_producer_timeout,
                lookupd.tombstone_lifetime,
            )
        })
        .map(|p| p.peer.info.clone())
        .collect();
    let channels = subkeys(&registry.find_registrations(Category::Channel, topic, "*"));
    Ok(ApiResponse::Json(
        json!({ "channels": channels, "producers": producers }),
    ))
}

async fn topics(State(lookupd): State<Arc<Lookupd>>) -> ApiResult {
    let topics = keys(
        &lookupd
            .registry
            .find_registrations(Category::Topic, "*", ""),
    );
    Ok(ApiResponse::Json(json!({ "topics": topics })))
}

async fn channels(State(lookupd): State<Arc<Lookupd>>, RawQuery(raw): RawQuery) -> ApiResult {
    let query = Query::parse(raw.as_deref());
    let topic = required(&query, "topic", "MISSING_ARG_TOPIC")?;
    let channels = subkeys(
        &lookupd
            .registry
            .find_registrations(Category::Channel, topic, "*"),
    );
    Ok(ApiResponse::Json(json!({ "channels": channels })))
}

async fn nodes(State(lookupd): State<Arc<Lookupd>>) -> ApiResult {
    let registry = &lookupd.registry;
    let now = Instant::now();
    let nodes: Vec<_> = registry
        .find_producers(Category::Client, "", "")
        .into_iter()
        .filter(|p| {
            p.is_active(
                now,
                lookupd.inactive_producer_timeout,
                std::time::Duration::ZERO,
            )
        })
        .map(|p| {
            let topics = keys(
                &registry
                    .lookup_registrations(&p.peer.id)
                    .into_iter()
                    .filter(|r| r.category == Category::Topic)
                    .collect::<Vec<_>>(),
            );
            let tombstones: Vec<bool> = topics
                .iter()
                .map(|t| {
                    registry
                        .find_producers(Category::Topic, t, "")
                        .iter()
                        .find(|tp| tp.peer.id == p.peer.id)
                        .is_some_and(|tp| tp.is_tombstoned(now, lookupd.tombstone_lifetime))
                })
                .collect();
            let info = &p.peer.info;
            json!({
                "remote_address": info.remote_address,
                "hostname": info.hostname,
                "broadcast_address": info.broadcast_address,
                "tcp_port": info.tcp_port,
                "http_port": info.http_port,
                "version": info.version,
                "tombstones": tombstones,
                "topics": topics,
            })
        })
        .collect();
    Ok(ApiResponse::Json(json!({ "producers": nodes })))
}

/// The raw registration database, as nsqlookupd's /debug.
async fn debug(State(lookupd): State<Arc<Lookupd>>) -> ApiResult {
    let mut data = serde_json::Map::new();
    for category in [Category::Client, Category::Topic, Category::Channel] {
        for registration in lookupd.registry.find_registrations(category, "*", "*") {
            let name = match category {
                Category::Client => "client",
                Category::Topic => "topic",
                Category::Channel => "channel",
            };
            let key = format!("{name}:{}:{}", registration.key, registration.subkey);
            let producers: Vec<_> = lookupd
                .registry
                .find_producers(category, &registration.key, &registration.subkey)
                .into_iter()
                .map(|p| json!({ "id": p.peer.id, "hostname": p.peer.info.hostname,
                    "broadcast_address": p.peer.info.broadcast_address, "tcp_port": p.peer.info.tcp_port,
                    "http_port": p.peer.info.http_port, "version": p.peer.info.version,
                    "tombstoned": p.is_tombstoned(Instant::now(), lookupd.tombstone_lifetime) }))
                .collect();
            data.insert(key, json!(producers));
        }
    }
    Ok(ApiResponse::Json(serde_json::Value::Object(data)))
}

async fn create_topic(State(lookupd): State<Arc<Lookupd>>, RawQuery(raw): RawQuery) -> ApiResult {
    let query = Query::parse(raw.as_deref());
    let topic = required(&query, "topic", "MISSING_ARG_TOPIC")?;
    if !is_valid_name(topic) {
        return Err(ApiError::bad_request("INVALID_ARG_TOPIC"));
    }
    tracing::info!(topic, "DB: adding topic");
    lookupd
        .registry
        .add_registration(Registration::topic(topic));
    Ok(ApiResponse::Empty)
}

async fn delete_topic(State(lookupd): State<Arc<Lookupd>>, RawQuery(raw): RawQuery) -> ApiResult {
    let query = Query::parse(raw.as_deref());
    let topic = required(&query, "topic", "MISSING_ARG_TOPIC")?;
    let registry = &lookupd.registry;
    for registration in registry.find_registrations(Category::Channel, topic, "*") {
        registry.remove_registration(&registration);
    }
    for registration in registry.find_registrations(Category::Topic, topic, "") {
        registry.remove_registration(&registration);
    }
    tracing::info!(topic, "DB: removed topic");
    Ok(ApiResponse::Empty)
}

async fn tombstone(State(lookupd): State<Arc<Lookupd>>, RawQuery(raw): RawQuery) -> ApiResult {
    let query = Query::parse(raw.as_deref());
    let topic = required(&query, "topic", "MISSING_ARG_TOPIC")?;
    let node = required(&query, "node", "MISSING_ARG_NODE")?;
    tracing::info!(topic, node, "DB: setting tombstone");
    lookupd.registry.tombstone(topic, node);
    Ok(ApiResponse::Empty)
}

/// nsqd's `GetTopicChannelArgs`.
fn topic_and_channel(query: &Query) -> Result<(&str, &str), ApiError> {
    let topic = required(query, "topic", "MISSING_ARG_TOPIC")?;
    if !is_valid_name(topic) {
        return Err(ApiError::bad_request("INVALID_ARG_TOPIC"));
    }
    let channel = required(query, "channel", "MISSING_ARG_CHANNEL")?;
    if !is_valid_name(channel) {
        return Err(ApiError::bad_request("INVALID_ARG_CHANNEL"));
    }
    Ok((topic, channel))
}

async fn create_channel(State(lookupd): State<Arc<Lookupd>>, RawQuery(raw): RawQuery) -> ApiResult {
    let query = Query::parse(raw.as_deref());
    let (topic, channel) = topic_and_channel(&query)?;
    lookupd
        .registry
        .add_registration(Registration::channel(topic, channel));
    lookupd
        .registry
        .add_registration(Registration::topic(topic));
    Ok(ApiResponse::Empty)
}

async fn delete_channel(State(lookupd): State<Arc<Lookupd>>, RawQuery(raw): RawQuery) -> ApiResult {
    let query = Query::parse(raw.as_deref());
    let (topic, channel) = topic_and_channel(&query)?;
    let registrations = lookupd
        .registry
        .find_registrations(Category::Channel, topic, channel);
    if registrations.is_empty() {
        return Err(ApiError::not_found("CHANNEL_NOT_FOUND"));
    }
    for registration in registrations {
        lookupd.registry.remove_registration(&registration);
    }
    Ok(ApiResponse::Empty)
}
