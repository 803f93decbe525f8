//! `dedup`: forwards a message's body to `output` only the first time its
//! JSON `"id"` is seen within `ttl_ms` (by the messages' publish times).
//! The time an id was seen is kept in the plugin's state (`seen/<id>`), so
//! the filter holds across restarts and reloads, and a message retried or
//! delivered again after a crash does not count as a second sighting.
//!
//! Its manifest (`plugins/dedup.toml`):
//!
//! ```toml
//! topic = "orders"
//! state = true
//! publish = ["unique"]
//! [config]
//! ttl_ms = "60000"   # default one minute
//! output = "unique"  # default "unique"
//! ```

use wasq_guest::{Message, Outcome, config, log_warn, publish, state};

/// The text of the top-level `"id"` of a JSON object: a string's contents
/// (escapes kept as written) or a number as written.
fn json_id(body: &[u8]) -> Option<&[u8]> {
    let text = std::str::from_utf8(body).ok()?.trim();
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    let bytes = inner.as_bytes();
    let (mut at, mut depth, mut in_string) = (0, 0usize, false);
    let mut key_start = None;
    while at < bytes.len() {
        let byte = bytes[at];
        if in_string {
            match byte {
                b'\\' => at += 1,
                b'"' => {
                    in_string = false;
                    let start = key_start.take();
                    if depth == 0 && start.is_some_and(|s| &inner[s..at] == "id") {
                        let value = inner[at + 1..].trim_start().strip_prefix(':')?.trim_start();
                        return id_value(value);
                    }
                }
                _ => {}
            }
        } else {
            match byte {
                b'"' => {
                    in_string = true;
                    // A key starts a member: after `{`, `,` at depth 0.
                    let before = inner[..at].trim_end();
                    key_start = (before.is_empty() || before.ends_with(',')).then_some(at + 1);
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => depth = depth.checked_sub(1)?,
                _ => {}
            }
        }
        at += 1;
    }
    None
}

fn id_value(value: &str) -> Option<&[u8]> {
    if let Some(rest) = value.strip_prefix('"') {
        let bytes = rest.as_bytes();
        let mut at = 0;
        while at < bytes.len() {
            match bytes[at] {
                b'\\' => at += 2,
                b'"' => return Some(&bytes[..at]),
                _ => at += 1,
            }
        }
        return None;
    }
    let end = value
        .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
        .unwrap_or(value.len());
    (end > 0).then(|| &value.as_bytes()[..end])
}

pub fn handle(message: &Message) -> Outcome {
    let Ok(ttl_ms) = config("ttl_ms")
        .as_deref()
        .unwrap_or("60000")
        .parse::<i64>()
    else {
        log_warn("dedup: [config] ttl_ms is not a number");
        return Outcome::Retry;
    };
    let output = config("output").unwrap_or_else(|| "unique".into());
    let Some(id) = json_id(message.body) else {
        log_warn("dedup: the body is not a JSON object with an \"id\"");
        return Outcome::Fatal;
    };
    let now_ms = message.timestamp / 1_000_000;
    let key = [b"seen/".as_slice(), id].concat();
    let seen = match state::get(&key) {
        Ok(seen) => seen,
        Err(e) => {
            log_warn(&format!("dedup: {e}"));
            return Outcome::Retry;
        }
    };
    let seen_at = seen.and_then(|t| std::str::from_utf8(&t).ok()?.parse::<i64>().ok());
    if seen_at.is_some_and(|t| now_ms - t < ttl_ms) {
        return Outcome::Finish;
    }
    if let Err(e) = state::set(&key, now_ms.to_string()) {
        log_warn(&format!("dedup: {e}"));
        return Outcome::Retry;
    }
    match publish(&output, message.body) {
        Ok(()) => Outcome::Finish,
        Err(e) => {
            log_warn(&format!("dedup: publish to {output}: {e}"));
            Outcome::Retry
        }
    }
}

wasq_guest::plugin!(handle);

#[cfg(test)]
mod tests {
    use super::*;
    use wasq_guest::testing;

    fn at(body: &[u8], ms: i64) -> Message<'_> {
        Message {
            id: &[b'0'; 16],
            attempts: 1,
            timestamp: ms * 1_000_000,
            topic: "orders",
            channel: "dedup",
            body,
        }
    }

    #[test]
    fn ids_are_found_at_the_top_level_only() {
        assert_eq!(json_id(br#"{"id":"a1","x":2}"#), Some(&b"a1"[..]));
        assert_eq!(
            json_id(br#"{ "n": {"id": 9}, "id" : 42 }"#),
            Some(&b"42"[..])
        );
        assert_eq!(json_id(br#"{"x":"id","id":"q\"t"}"#), Some(&br#"q\"t"#[..]));
        assert_eq!(json_id(br#"{"x":1}"#), None);
        assert_eq!(json_id(b"not json"), None);
    }

    #[test]
    fn a_repeated_id_is_dropped_until_its_ttl_passes() {
        testing::set_config("ttl_ms", "1000");
        let body = br#"{"id":"o-1"}"#;
        for ms in [0, 500, 999, 1000, 1500] {
            assert_eq!(handle(&at(body, ms)), Outcome::Finish);
        }
        assert_eq!(handle(&at(b"{}", 0)), Outcome::Fatal);
        let times = testing::take_published().len();
        assert_eq!(times, 2, "at 0 and again at 1000, when the first expired");
    }
}
