//! What the host's imports mean, written once for both kinds of guest: ABI
//! v1's `wasq::log` / `wasq::publish` / `wasq::publish_deferred` (core
//! modules, statuses as integers) and the WIT world's `host` interface
//! (components, `result<_, publish-error>`) are thin adapters over these.

use std::time::Duration;

use super::runtime::PluginLink;
use super::state::limits::StateError;
use super::stats::PluginStats;
use crate::broker::names::is_valid_name;

/// Why a publish was refused; each is one of ABI v1's statuses and one
/// case of the WIT `publish-error` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Forbidden,
    InvalidTopic,
    InvalidBody,
    InvalidDelay,
    Unavailable,
}

/// A publish the host accepted from a plugin running offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub topic: String,
    pub body: Vec<u8>,
    pub delay: Duration,
}

/// A log line's severity, as both contracts number it (0 debug … 3 error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// Writes a guest's log line to the host log under the plugin's name.
pub fn log(link: &PluginLink, level: Level, text: &str) {
    let plugin = &link.name;
    match level {
        Level::Debug => tracing::debug!(plugin = %plugin, "{text}"),
        Level::Info => tracing::info!(plugin = %plugin, "{text}"),
        Level::Warn => tracing::warn!(plugin = %plugin, "{text}"),
        Level::Error => tracing::error!(plugin = %plugin, "{text}"),
    }
}

/// A state operation refused to the plugin: counted by kind, and a store
/// failure logged (the guest gets only its kind).
pub fn state_refused(link: &PluginLink, error: &StateError) {
    link.stats.state.refused(error);
    if let StateError::Io(why) = error {
        tracing::error!(plugin = %link.name, error = %why, "STATE: the store failed");
    }
}

/// `config_get`: a value of the manifest's `[config]`.
pub fn config<'a>(link: &'a PluginLink, key: &[u8]) -> Option<&'a str> {
    let key = std::str::from_utf8(key).ok()?;
    link.manifest.config.get(key).map(String::as_str)
}

/// Publishes for a guest, checking in ABI.md's order: topic name, the
/// manifest's allowlist, body size, delay; then the broker, waiting (in
/// durable mode) for the fsync without holding a thread. Counted in the
/// plugin's stats either way; never traps.
pub async fn publish(
    link: &PluginLink,
    topic: &[u8],
    body: Vec<u8>,
    delay_ms: i64,
) -> Result<(), Refusal> {
    let refuse = |refusal: Refusal, why: &str| {
        PluginStats::bump(&link.stats.publish_refused);
        tracing::warn!(plugin = %link.name, topic = %String::from_utf8_lossy(topic), "publish refused: {why}");
        refusal
    };
    let Some(topic_name) = std::str::from_utf8(topic).ok().filter(|t| is_valid_name(t)) else {
        return Err(refuse(Refusal::InvalidTopic, "invalid topic name"));
    };
    if !link.manifest.may_publish(topic_name) {
        return Err(refuse(
            Refusal::Forbidden,
            "topic not in the manifest's publish list",
        ));
    }
    let options = &link.broker.options;
    if body.is_empty() || body.len() as i64 > options.max_msg_size {
        return Err(refuse(Refusal::InvalidBody, "empty or too large body"));
    }
    if delay_ms < 0 || delay_ms as u128 > options.max_req_timeout.as_millis() {
        return Err(refuse(Refusal::InvalidDelay, "delay out of range"));
    }
    let delay = Duration::from_millis(delay_ms as u64);
    if let Some(recorded) = &link.recorded {
        recorded.lock().push(Published {
            topic: topic_name.to_string(),
            body,
            delay,
        });
        PluginStats::bump(&link.stats.published);
        return Ok(());
    }
    match link
        .broker
        .publish_and_wait(topic_name, [body], delay)
        .await
    {
        Ok(()) => {
            PluginStats::bump(&link.stats.published);
            Ok(())
        }
        Err(e) => Err(refuse(Refusal::Unavailable, &e.to_string())),
    }
}
