//! `window`: sums numeric readings in tumbling windows of `window_ms` (by
//! the messages' publish times) and publishes `<window start> <sum>` to
//! `output` once per window. The sums live in the plugin's state
//! (`sum/<start>`); the timer is a deferred message to the plugin's own
//! topic (`tick <start>`), sent by the window's first reading and handled
//! like any other message, so a restart loses neither sums nor timers (in
//! durable mode; in the default mode a crash loses deferred messages held
//! in memory, a pending timer among them, and its window is not emitted).
//! A reading that arrives after its window was emitted starts a late
//! emission for that window.
//!
//! Its manifest (`plugins/window.toml`):
//!
//! ```toml
//! topic = "readings"
//! state = true
//! publish = ["readings", "sums"]   # its own topic, for the timer
//! [config]
//! window_ms = "10000"  # default ten seconds
//! output = "sums"      # default "sums"
//! ```

use std::time::Duration;

use wasq_guest::{Message, Outcome, config, log_warn, publish, publish_deferred, state};

fn number(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

pub fn handle(message: &Message) -> Outcome {
    let window_ms = match config("window_ms")
        .as_deref()
        .map_or(Some(10_000), |w| number(w.as_bytes()))
    {
        Some(ms) if ms > 0 => ms,
        _ => {
            log_warn("window: [config] window_ms is not a positive number");
            return Outcome::Retry;
        }
    };
    let output = config("output").unwrap_or_else(|| "sums".into());
    let result = match message.body.strip_prefix(b"tick ") {
        Some(start) if number(start).is_some() => close_window(start, &output),
        Some(_) => {
            log_warn("window: a tick without a window start");
            return Outcome::Fatal;
        }
        None => match number(message.body) {
            Some(reading) => add_reading(message, reading, window_ms),
            None => {
                log_warn("window: the body is not a number");
                return Outcome::Fatal;
            }
        },
    };
    match result {
        Ok(()) => Outcome::Finish,
        Err(e) => {
            log_warn(&format!("window: {e}"));
            Outcome::Retry
        }
    }
}

/// Adds `reading` to its window's sum; the window's first reading sets
/// its timer.
fn add_reading(message: &Message, reading: i64, window_ms: i64) -> Result<(), String> {
    let now_ms = message.timestamp / 1_000_000;
    let start = now_ms - now_ms.rem_euclid(window_ms);
    state::increment(format!("sum/{start}"), reading).map_err(|e| e.to_string())?;
    let timer = format!("timer/{start}");
    if state::get(&timer).map_err(|e| e.to_string())?.is_none() {
        state::set(&timer, "1").map_err(|e| e.to_string())?;
        let delay = Duration::from_millis((start + window_ms - now_ms).max(0) as u64);
        publish_deferred(message.topic, format!("tick {start}").as_bytes(), delay)
            .map_err(|e| format!("timer: {e}"))?;
    }
    Ok(())
}

/// The window's timer went off: publish its sum (if any) and forget it.
fn close_window(start: &[u8], output: &str) -> Result<(), String> {
    let start = String::from_utf8_lossy(start);
    let sum_key = format!("sum/{start}");
    if let Some(sum) = state::get(&sum_key).map_err(|e| e.to_string())? {
        let body = [start.as_bytes(), b" ", &sum].concat();
        publish(output, &body).map_err(|e| format!("publish to {output}: {e}"))?;
        state::delete(&sum_key).map_err(|e| e.to_string())?;
    }
    state::delete(format!("timer/{start}")).map_err(|e| e.to_string())?;
    Ok(())
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
            topic: "readings",
            channel: "window",
            body,
        }
    }

    #[test]
    fn a_window_sums_its_readings_and_emits_once_at_its_tick() {
        testing::set_config("window_ms", "1000");
        assert_eq!(handle(&at(b"5", 2_100)), Outcome::Finish);
        assert_eq!(handle(&at(b"-2", 2_900)), Outcome::Finish);
        let timers = testing::take_published();
        assert_eq!(timers.len(), 1, "one timer per window");
        assert_eq!(timers[0].topic, "readings");
        assert_eq!(timers[0].body, b"tick 2000");
        assert_eq!(timers[0].delay_ms, Some(900));
        assert_eq!(handle(&at(b"tick 2000", 3_000)), Outcome::Finish);
        assert_eq!(handle(&at(b"tick 2000", 3_001)), Outcome::Finish);
        let sums = testing::take_published();
        assert_eq!(sums.len(), 1, "a second tick finds nothing");
        assert_eq!(sums[0].topic, "sums");
        assert_eq!(sums[0].body, b"2000 3");
        assert_eq!(handle(&at(b"x", 0)), Outcome::Fatal);
    }
}
