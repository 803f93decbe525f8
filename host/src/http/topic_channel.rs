//! POST /topic/* and /channel/*: create, delete, empty, pause, unpause.
//! Argument checks and error codes per endpoint follow nsqd's http.go.

use std::sync::Arc;

use axum::extract::{RawQuery, State};

use super::publish::topic_from_query;
use super::{ApiError, ApiResponse, ApiResult, AppState, Query};
use crate::broker::Broker;
use crate::broker::channel::Channel;
use crate::broker::names::is_valid_name;
use crate::broker::topic::Topic;

pub async fn create_topic(State(state): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult {
    let query = Query::parse(raw.as_deref());
    state.broker.topic(topic_from_query(&query)?);
    Ok(ApiResponse::Empty)
}

pub async fn delete_topic(State(state): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult {
    let query = Query::parse(raw.as_deref());
    let name = query
        .get("topic")
        .ok_or_else(|| ApiError::bad_request("MISSING_ARG_TOPIC"))?;
    let Some(cleared) = state.broker.delete_topic(name) else {
        return Err(ApiError::not_found("TOPIC_NOT_FOUND"));
    };
    // Answered once its files are gone.
    cleared.wait().await;
    Ok(ApiResponse::Empty)
}

pub async fn empty_topic(State(state): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult {
    let query = Query::parse(raw.as_deref());
    let name = query
        .get("topic")
        .ok_or_else(|| ApiError::bad_request("MISSING_ARG_TOPIC"))?;
    if !is_valid_name(name) {
        return Err(ApiError::bad_request("INVALID_TOPIC"));
    }
    existing_topic(&state.broker, name)?.empty().wait().await;
    Ok(ApiResponse::Empty)
}

pub async fn pause_topic(state: State<AppState>, raw: RawQuery) -> ApiResult {
    set_topic_paused(state, raw, true)
}

pub async fn unpause_topic(state: State<AppState>, raw: RawQuery) -> ApiResult {
    set_topic_paused(state, raw, false)
}

fn set_topic_paused(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    paused: bool,
) -> ApiResult {
    let query = Query::parse(raw.as_deref());
    let name = query
        .get("topic")
        .ok_or_else(|| ApiError::bad_request("MISSING_ARG_TOPIC"))?;
    let topic = existing_topic(&state.broker, name)?;
    if paused {
        topic.pause()
    } else {
        topic.unpause()
    }
    state.broker.note_metadata_changed();
    tracing::info!(topic = name, paused, "TOPIC: pause state changed");
    Ok(ApiResponse::Empty)
}

pub async fn create_channel(State(state): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult {
    let query = Query::parse(raw.as_deref());
    let (topic, channel_name) = topic_and_channel(&state.broker, &query)?;
    state
        .broker
        .channel(&topic, channel_name)
        .map_err(|_| ApiError::not_found("TOPIC_NOT_FOUND"))?;
    Ok(ApiResponse::Empty)
}

pub async fn delete_channel(State(state): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult {
    let query = Query::parse(raw.as_deref());
    let (topic, channel_name) = topic_and_channel(&state.broker, &query)?;
    let Some(cleared) = state.broker.delete_channel(&topic, channel_name) else {
        return Err(ApiError::not_found("CHANNEL_NOT_FOUND"));
    };
    cleared.wait().await;
    Ok(ApiResponse::Empty)
}

pub async fn empty_channel(State(state): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult {
    let query = Query::parse(raw.as_deref());
    existing_channel(&state.broker, &query)?
        .empty()
        .wait()
        .await;
    Ok(ApiResponse::Empty)
}

pub async fn pause_channel(State(state): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult {
    let query = Query::parse(raw.as_deref());
    existing_channel(&state.broker, &query)?.pause();
    state.broker.note_metadata_changed();
    Ok(ApiResponse::Empty)
}

pub async fn unpause_channel(State(state): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult {
    let query = Query::parse(raw.as_deref());
    existing_channel(&state.broker, &query)?.unpause();
    state.broker.note_metadata_changed();
    Ok(ApiResponse::Empty)
}

fn existing_topic(broker: &Broker, name: &str) -> Result<Arc<Topic>, ApiError> {
    broker
        .existing_topic(name)
        .ok_or_else(|| ApiError::not_found("TOPIC_NOT_FOUND"))
}

/// nsqd's `GetTopicChannelArgs` followed by a lookup of the existing topic.
fn topic_and_channel<'q>(
    broker: &Broker,
    query: &'q Query,
) -> Result<(Arc<Topic>, &'q str), ApiError> {
    let topic = query
        .get("topic")
        .ok_or_else(|| ApiError::bad_request("MISSING_ARG_TOPIC"))?;
    if !is_valid_name(topic) {
        return Err(ApiError::bad_request("INVALID_ARG_TOPIC"));
    }
    let channel = query
        .get("channel")
        .ok_or_else(|| ApiError::bad_request("MISSING_ARG_CHANNEL"))?;
    if !is_valid_name(channel) {
        return Err(ApiError::bad_request("INVALID_ARG_CHANNEL"));
    }
    Ok((existing_topic(broker, topic)?, channel))
}

fn existing_channel(broker: &Broker, query: &Query) -> Result<Arc<Channel>, ApiError> {
    let (topic, name) = topic_and_channel(broker, query)?;
    topic
        .existing_channel(name)
        .ok_or_else(|| ApiError::not_found("CHANNEL_NOT_FOUND"))
}
