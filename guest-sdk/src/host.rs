//! The host's imports (`wasq` module): publish, publish_deferred, log
//! and config_get (http.rs has the HTTP ones).
//!
//! On WebAssembly these call the broker. Elsewhere they are simulated so
//! handlers can be unit-tested natively.

use std::fmt;
use std::time::Duration;

/// Why a publish was refused (ABI.md status codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishError {
    /// The topic is not in the manifest's `publish` list.
    Forbidden,
    InvalidTopic,
    /// Empty, or larger than the broker's --max-msg-size.
    InvalidBody,
    InvalidDelay,
    BadPointer,
    /// The broker is shutting down or the topic is being deleted.
    Unavailable,
    /// A status this SDK version does not know.
    Other(i32),
}

impl PublishError {
    fn from_status(status: i32) -> Result<(), PublishError> {
        Err(match status {
            0 => return Ok(()),
            1 => PublishError::Forbidden,
            2 => PublishError::InvalidTopic,
            3 => PublishError::InvalidBody,
            4 => PublishError::InvalidDelay,
            5 => PublishError::BadPointer,
            6 => PublishError::Unavailable,
            other => PublishError::Other(other),
        })
    }
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::Forbidden => f.write_str("topic not allowed by the manifest"),
            PublishError::InvalidTopic => f.write_str("invalid topic name"),
            PublishError::InvalidBody => f.write_str("empty or too large body"),
            PublishError::InvalidDelay => f.write_str("invalid delay"),
            PublishError::BadPointer => f.write_str("bad pointer"),
            PublishError::Unavailable => f.write_str("broker unavailable"),
            PublishError::Other(status) => write!(f, "status {status}"),
        }
    }
}

impl std::error::Error for PublishError {}

/// Log levels of the host's `log` import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

/// Publishes `body` to `topic` (PUB).
pub fn publish(topic: &str, body: &[u8]) -> Result<(), PublishError> {
    PublishError::from_status(imports::publish(topic, body, None))
}

/// Publishes `body` to `topic`, delivered after `delay` (DPUB).
pub fn publish_deferred(topic: &str, body: &[u8], delay: Duration) -> Result<(), PublishError> {
    let ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
    PublishError::from_status(imports::publish(topic, body, Some(ms)))
}

/// The manifest's `[config]` value for `key` (with `${VAR}` already
/// replaced by the broker), or `None` if it does not set it.
pub fn config(key: &str) -> Option<String> {
    imports::config(key)
}

/// Writes a line to the broker's log under the plugin's name.
pub fn log(level: LogLevel, text: &str) {
    imports::log(level as i32, text);
}

pub fn log_debug(text: &str) {
    log(LogLevel::Debug, text);
}

pub fn log_info(text: &str) {
    log(LogLevel::Info, text);
}

pub fn log_warn(text: &str) {
    log(LogLevel::Warn, text);
}

pub fn log_error(text: &str) {
    log(LogLevel::Error, text);
}

#[cfg(target_arch = "wasm32")]
mod imports {
    #[link(wasm_import_module = "wasq")]
    unsafe extern "C" {
        #[link_name = "log"]
        fn wasq_log(level: i32, ptr: i32, len: i32) -> i32;
        #[link_name = "publish"]
        fn wasq_publish(topic_ptr: i32, topic_len: i32, body_ptr: i32, body_len: i32) -> i32;
        #[link_name = "publish_deferred"]
        fn wasq_publish_deferred(
            topic_ptr: i32,
            topic_len: i32,
            body_ptr: i32,
            body_len: i32,
            delay_ms: i64,
        ) -> i32;
        #[link_name = "config_get"]
        fn wasq_config_get(key_ptr: i32, key_len: i32, buf_ptr: i32, buf_cap: i32) -> i32;
    }

    std::thread_local! {
        /// Values asked for so far: an instance's configuration never
        /// changes (a new `[config]` is a reload, with new instances), so
        /// a handler reading its URL for every message asks the host once.
        static CONFIG: std::cell::RefCell<std::collections::BTreeMap<String, Option<String>>> =
            const { std::cell::RefCell::new(std::collections::BTreeMap::new()) };
    }

    pub fn config(key: &str) -> Option<String> {
        if let Some(known) = CONFIG.with(|config| config.borrow().get(key).cloned()) {
            return known;
        }
        let value = config_from_host(key);
        CONFIG.with(|config| config.borrow_mut().insert(key.to_string(), value.clone()));
        value
    }

    fn config_from_host(key: &str) -> Option<String> {
        let mut buf = vec![0u8; 256];
        loop {
            // SAFETY: the host reads the key and writes at most `buf.len()` bytes into `buf`.
            let len = unsafe {
                wasq_config_get(
                    key.as_ptr() as i32,
                    key.len() as i32,
                    buf.as_mut_ptr() as i32,
                    buf.len() as i32,
                )
            };
            let len = usize::try_from(len).ok()?;
            if len <= buf.len() {
                buf.truncate(len);
                return String::from_utf8(buf).ok();
            }
            buf.resize(len, 0);
        }
    }

    pub fn publish(topic: &str, body: &[u8], delay_ms: Option<i64>) -> i32 {
        let (tp, tl) = (topic.as_ptr() as i32, topic.len() as i32);
        let (bp, bl) = (body.as_ptr() as i32, body.len() as i32);
        // SAFETY: the host only reads the given ranges of our memory.
        unsafe {
            match delay_ms {
                None => wasq_publish(tp, tl, bp, bl),
                Some(ms) => wasq_publish_deferred(tp, tl, bp, bl, ms),
            }
        }
    }

    pub fn log(level: i32, text: &str) {
        // SAFETY: the host only reads the given range of our memory.
        unsafe {
            wasq_log(level, text.as_ptr() as i32, text.len() as i32);
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imports {
    use super::testing::{CONFIG, PUBLISHED, Published};

    pub fn config(key: &str) -> Option<String> {
        CONFIG.with(|config| config.borrow().get(key).cloned())
    }

    pub fn publish(topic: &str, body: &[u8], delay_ms: Option<i64>) -> i32 {
        PUBLISHED.with(|p| {
            p.borrow_mut().push(Published {
                topic: topic.to_string(),
                body: body.to_vec(),
                delay_ms,
            })
        });
        0
    }

    pub fn log(level: i32, text: &str) {
        eprintln!("[plugin log {level}] {text}");
    }
}

/// Natively, what handlers published and the configuration they see
/// (per thread, so tests stay apart).
pub mod testing {
    use std::cell::RefCell;
    use std::collections::HashMap;

    /// One simulated publish.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Published {
        pub topic: String,
        pub body: Vec<u8>,
        pub delay_ms: Option<i64>,
    }

    thread_local! {
        pub(crate) static PUBLISHED: RefCell<Vec<Published>> = const { RefCell::new(Vec::new()) };
        pub(crate) static CONFIG: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
        pub(crate) static STATE: RefCell<std::collections::BTreeMap<Vec<u8>, Vec<u8>>> =
            const { RefCell::new(std::collections::BTreeMap::new()) };
    }

    /// The simulated state on this thread, in key order.
    pub fn state_entries() -> Vec<(Vec<u8>, Vec<u8>)> {
        STATE.with(|s| {
            s.borrow()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
    }

    /// Empties the simulated state on this thread.
    pub fn clear_state() {
        STATE.with(|s| s.borrow_mut().clear());
    }

    /// Sets a `[config]` value [`crate::config`] returns on this thread.
    pub fn set_config(key: &str, value: &str) {
        CONFIG.with(|config| {
            config
                .borrow_mut()
                .insert(key.to_string(), value.to_string())
        });
    }

    /// Everything published on this thread so far.
    pub fn published() -> Vec<Published> {
        PUBLISHED.with(|p| p.borrow().clone())
    }

    /// Everything published on this thread so far, clearing the record.
    pub fn take_published() -> Vec<Published> {
        PUBLISHED.with(|p| std::mem::take(&mut *p.borrow_mut()))
    }
}
