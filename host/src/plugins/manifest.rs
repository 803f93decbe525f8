//! The plugin manifest, `plugins/NAME.toml` (documented in guest-sdk/ABI.md).
//!
//! Every problem is reported with the file and the key, and a plugin with a
//! bad manifest is skipped rather than taking the broker down.

use std::path::Path;
use std::time::Duration;

use std::collections::BTreeMap;

use serde::Deserialize;

use super::outbound::HttpLimits;
use super::outbound::allowlist::AllowList;
use super::state::limits::StateLimits;
use crate::broker::names::is_valid_name;

/// What the operator wrote, before defaults and checks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    topic: String,
    channel: Option<String>,
    concurrency: Option<i64>,
    max_in_flight: Option<i64>,
    max_attempts: Option<i64>,
    dead_letter_topic: Option<String>,
    backoff_min_ms: Option<i64>,
    backoff_max_ms: Option<i64>,
    handler_deadline_ms: Option<i64>,
    memory_limit_mib: Option<i64>,
    #[serde(default)]
    publish: Vec<String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    http_timeout_ms: Option<i64>,
    http_max_response_kib: Option<i64>,
    http_max_concurrent: Option<i64>,
    tls_root_ca_file: Option<String>,
    #[serde(default)]
    required_config: Vec<String>,
    #[serde(default)]
    config: BTreeMap<String, String>,
    #[serde(default)]
    state: bool,
    state_limit_mib: Option<i64>,
    state_max_key_bytes: Option<i64>,
    state_max_value_kib: Option<i64>,
}

/// A checked manifest with its defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub topic: String,
    pub channel: String,
    /// Instances of the module (worker tasks; at most one call each at a time).
    pub concurrency: usize,
    /// The plugin's RDY: messages it may hold at once (default: concurrency).
    pub max_in_flight: i64,
    pub max_attempts: u16,
    pub dead_letter_topic: String,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub handler_deadline: Duration,
    pub memory_limit_bytes: usize,
    /// Topics `publish` may use; an entry ending in `*` allows a prefix.
    pub publish: Vec<String>,
    /// Where `http_request` may go (empty: no network).
    pub allowed_outbound_hosts: AllowList,
    pub http: HttpLimits,
    /// PEM roots trusted beside the system's, as written (relative to the
    /// manifest's directory).
    pub tls_root_ca_file: Option<String>,
    /// `[config]`, with `${NAME}` replaced by wasqd's environment.
    pub config: BTreeMap<String, String>,
    /// The plugin's key-value store, if granted (`state = true`), with
    /// its limits.
    pub state: Option<StateLimits>,
}

pub const MAX_CONCURRENCY: i64 = 2500;
pub const MAX_MEMORY_MIB: i64 = 1024;

impl Manifest {
    /// Parses and checks `text`, naming `file` and the offending key in
    /// errors; `${NAME}` in `[config]` is wasqd's environment variable.
    pub fn parse(name: &str, file: &Path, text: &str) -> Result<Manifest, String> {
        Self::parse_with_env(name, file, text, &|var| std::env::var(var).ok())
    }

    /// [`Manifest::parse`] with the environment given.
    pub fn parse_with_env(
        name: &str,
        file: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Manifest, String> {
        let file = file.display();
        let raw: RawManifest =
            toml::from_str(text).map_err(|e| format!("{file}: {}", e.to_string().trim_end()))?;
        let bad = |key: &str, why: String| format!("{file}: key `{key}`: {why}");
        let in_range = |key: &str,
                        value: Option<i64>,
                        default: i64,
                        min: i64,
                        max: i64|
         -> Result<i64, String> {
            let v = value.unwrap_or(default);
            if v < min || v > max {
                return Err(bad(key, format!("{v} is out of range {min}..={max}")));
            }
            Ok(v)
        };

        if !is_valid_name(&raw.topic) {
            return Err(bad(
                "topic",
                format!("{:?} is not a valid NSQ topic name", raw.topic),
            ));
        }
        let channel = raw.channel.unwrap_or_else(|| name.to_string());
        if !is_valid_name(&channel) {
            return Err(bad(
                "channel",
                format!("{channel:?} is not a valid NSQ channel name"),
            ));
        }
        let concurrency = in_range("concurrency", raw.concurrency, 1, 1, MAX_CONCURRENCY)?;
        let max_in_flight = in_range(
            "max_in_flight",
            raw.max_in_flight,
            concurrency,
            concurrency,
            2500,
        )?;
        let max_attempts = in_range("max_attempts", raw.max_attempts, 5, 1, i64::from(u16::MAX))?;
        let dead_letter_topic = raw
            .dead_letter_topic
            .unwrap_or_else(|| format!("{}.{}.dead", raw.topic, channel));
        if !is_valid_name(&dead_letter_topic) {
            return Err(bad(
                "dead_letter_topic",
                format!(
                    "{dead_letter_topic:?} is not a valid NSQ topic name (set dead_letter_topic explicitly)"
                ),
            ));
        }
        let backoff_min = in_range("backoff_min_ms", raw.backoff_min_ms, 1000, 1, 3_600_000)?;
        let backoff_max = in_range("backoff_max_ms", raw.backoff_max_ms, 120_000, 1, 3_600_000)?;
        if backoff_min > backoff_max {
            return Err(bad(
                "backoff_min_ms",
                format!("{backoff_min} is larger than backoff_max_ms ({backoff_max})"),
            ));
        }
        let deadline = in_range(
            "handler_deadline_ms",
            raw.handler_deadline_ms,
            5000,
            1,
            3_600_000,
        )?;
        let memory = in_range(
            "memory_limit_mib",
            raw.memory_limit_mib,
            64,
            1,
            MAX_MEMORY_MIB,
        )?;
        for (i, topic) in raw.publish.iter().enumerate() {
            let exact = topic.strip_suffix('*').unwrap_or(topic);
            let valid = if topic.ends_with('*') {
                exact.is_empty() || is_valid_name(exact)
            } else {
                is_valid_name(topic)
            };
            if !valid {
                return Err(bad(
                    &format!("publish[{i}]"),
                    format!("{topic:?} is not a valid topic name or prefix*"),
                ));
            }
        }
        let allowed_outbound_hosts = AllowList::parse(&raw.allowed_outbound_hosts)
            .map_err(|why| bad("allowed_outbound_hosts", why))?;
        let http_timeout = in_range(
            "http_timeout_ms",
            raw.http_timeout_ms,
            deadline,
            1,
            deadline,
        )
        .map_err(|e| format!("{e} (at most handler_deadline_ms)"))?;
        let max_response_kib = in_range(
            "http_max_response_kib",
            raw.http_max_response_kib,
            1024,
            1,
            65_536,
        )?;
        let max_concurrent = in_range(
            "http_max_concurrent",
            raw.http_max_concurrent,
            100,
            1,
            10_000,
        )?;
        let mut config = BTreeMap::new();
        for (key, value) in raw.config {
            let value =
                expand_env(&value, env).map_err(|why| bad(&format!("config.{key}"), why))?;
            config.insert(key, value);
        }
        for key in &raw.required_config {
            if !config.contains_key(key) {
                return Err(bad(
                    "required_config",
                    format!("{key:?} is required but [config] does not set it"),
                ));
            }
        }
        let state_limit_mib = in_range("state_limit_mib", raw.state_limit_mib, 64, 1, 65_536)?;
        let max_key_bytes = in_range(
            "state_max_key_bytes",
            raw.state_max_key_bytes,
            512,
            1,
            16_384,
        )?;
        let max_value_kib = in_range("state_max_value_kib", raw.state_max_value_kib, 64, 1, 1024)?;
        let state = raw.state.then_some(StateLimits {
            max_key_bytes: max_key_bytes as usize,
            max_value_bytes: (max_value_kib as usize) << 10,
            max_total_bytes: (state_limit_mib as u64) << 20,
        });
        Ok(Manifest {
            topic: raw.topic,
            channel,
            concurrency: concurrency as usize,
            max_in_flight,
            max_attempts: max_attempts as u16,
            dead_letter_topic,
            backoff_min: Duration::from_millis(backoff_min as u64),
            backoff_max: Duration::from_millis(backoff_max as u64),
            handler_deadline: Duration::from_millis(deadline as u64),
            memory_limit_bytes: (memory as usize) << 20,
            publish: raw.publish,
            allowed_outbound_hosts,
            http: HttpLimits {
                timeout: Duration::from_millis(http_timeout as u64),
                max_response_bytes: (max_response_kib as usize) << 10,
                max_concurrent: max_concurrent as usize,
            },
            tls_root_ca_file: raw.tls_root_ca_file,
            config,
            state,
        })
    }

    /// Whether the plugin may publish to `topic`.
    pub fn may_publish(&self, topic: &str) -> bool {
        self.publish
            .iter()
            .any(|allowed| match allowed.strip_suffix('*') {
                Some(prefix) => topic.starts_with(prefix),
                None => allowed == topic,
            })
    }
}

/// `${NAME}` replaced by the environment variable `NAME` (unset: an
/// error naming it); `$${` is a literal `${`.
fn expand_env(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = rest.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {value:?}"))?;
            let var = &after[..end];
            let valid =
                !var.is_empty() && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(format!("${{{var}}} is not an environment variable name"));
            }
            let found = env(var).ok_or_else(|| {
                format!("environment variable {var} is not set (wasqd's environment)")
            })?;
            out.push_str(&found);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, String> {
        Manifest::parse("upper", Path::new("plugins/upper.toml"), text)
    }

    #[test]
    fn defaults_are_documented_ones() {
        let m = parse("topic = \"words\"").unwrap();
        assert_eq!(m.channel, "upper");
        assert_eq!(m.concurrency, 1);
        assert_eq!(m.max_in_flight, 1);
        assert_eq!(m.max_attempts, 5);
        assert_eq!(m.dead_letter_topic, "words.upper.dead");
        assert_eq!(m.backoff_min, Duration::from_secs(1));
        assert_eq!(m.backoff_max, Duration::from_secs(120));
        assert_eq!(m.handler_deadline, Duration::from_secs(5));
        assert_eq!(m.memory_limit_bytes, 64 << 20);
        assert!(!m.may_publish("anything"));
    }

    #[test]
    fn state_is_granted_only_when_asked_for() {
        assert_eq!(parse("topic = \"t\"").unwrap().state, None);
        let m = parse("topic = \"t\"\nstate = true").unwrap();
        assert_eq!(
            m.state,
            Some(StateLimits {
                max_key_bytes: 512,
                max_value_bytes: 64 << 10,
                max_total_bytes: 64 << 20,
            })
        );
        let m = parse("topic = \"t\"\nstate = true\nstate_limit_mib = 1\nstate_max_key_bytes = 16\nstate_max_value_kib = 2").unwrap();
        assert_eq!(
            m.state,
            Some(StateLimits {
                max_key_bytes: 16,
                max_value_bytes: 2 << 10,
                max_total_bytes: 1 << 20,
            })
        );
        let err = parse("topic = \"t\"\nstate = true\nstate_max_value_kib = 0").unwrap_err();
        assert!(err.contains("state_max_value_kib"), "{err}");
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let cases = [
            ("topic = \"t\"\nfoo = 1", "unknown field `foo`"),
            ("channel = \"c\"", "missing field `topic`"),
            ("topic = \"bad!\"", "key `topic`"),
            (
                "topic = \"t\"\nconcurrency = 0",
                "key `concurrency`: 0 is out of range 1..=2500",
            ),
            (
                "topic = \"t\"\nmemory_limit_mib = 5000",
                "key `memory_limit_mib`",
            ),
            (
                "topic = \"t\"\nbackoff_min_ms = 10\nbackoff_max_ms = 5",
                "key `backoff_min_ms`",
            ),
            (
                "topic = \"t\"\npublish = [\"ok\", \"no way\"]",
                "key `publish[1]`",
            ),
            ("topic = \"t\"\nconcurrency = \"many\"", "concurrency"),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.starts_with("plugins/upper.toml"), "{err}");
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn publish_allowlist_supports_prefixes() {
        let m = parse("topic = \"events\"\npublish = [\"events.*\", \"audit\"]").unwrap();
        assert!(m.may_publish("events.click"));
        assert!(m.may_publish("audit"));
        assert!(!m.may_publish("auditx"));
        assert!(!m.may_publish("other"));
    }

    #[test]
    fn outbound_keys_have_safe_defaults_and_bounds() {
        let m = parse("topic = \"t\"\nhandler_deadline_ms = 3000").unwrap();
        assert!(
            m.allowed_outbound_hosts.is_empty(),
            "no network unless granted"
        );
        assert_eq!(
            m.http.timeout,
            Duration::from_secs(3),
            "the handler deadline"
        );
        assert_eq!(m.http.max_response_bytes, 1 << 20);
        assert_eq!(m.http.max_concurrent, 100);
        let err =
            parse("topic = \"t\"\nhandler_deadline_ms = 3000\nhttp_timeout_ms = 4000").unwrap_err();
        assert!(
            err.contains("http_timeout_ms") && err.contains("handler_deadline_ms"),
            "{err}"
        );
        let err = parse("topic = \"t\"\nallowed_outbound_hosts = [\"ftp://x\"]").unwrap_err();
        assert!(
            err.contains("allowed_outbound_hosts") && err.contains("ftp://x"),
            "{err}"
        );
    }

    #[test]
    fn config_reads_the_environment_and_checks_required_keys() {
        let env = |var: &str| (var == "TOKEN").then(|| "s3cret".to_string());
        let parse_env = |text: &str| {
            Manifest::parse_with_env("upper", Path::new("plugins/upper.toml"), text, &env)
        };
        let m = parse_env(
            "topic = \"t\"\nrequired_config = [\"url\"]\n[config]\nurl = \"http://x\"\nauth = \"Bearer ${TOKEN}!\"\nraw = \"$${TOKEN} $5\"",
        )
        .unwrap();
        assert_eq!(m.config["url"], "http://x");
        assert_eq!(m.config["auth"], "Bearer s3cret!");
        assert_eq!(m.config["raw"], "${TOKEN} $5");
        let err = parse_env("topic = \"t\"\n[config]\nauth = \"${MISSING}\"").unwrap_err();
        assert!(
            err.contains("config.auth") && err.contains("MISSING is not set"),
            "{err}"
        );
        let err = parse_env("topic = \"t\"\nrequired_config = [\"url\"]").unwrap_err();
        assert!(
            err.contains("required_config") && err.contains("\"url\""),
            "{err}"
        );
        let err = parse_env("topic = \"t\"\n[config]\nn = 5").unwrap_err();
        assert!(
            err.contains("expected a string"),
            "values are strings: {err}"
        );
    }
}
