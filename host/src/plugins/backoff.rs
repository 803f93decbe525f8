//! Server-side consumer backoff, as go-nsq does it on the client.
//!
//! A failure while healthy raises the level and pauses delivery for
//! `min × 2^(level−1)` (capped at `max`). After the pause one trial message
//! goes out. A success lowers the level and, while it is above zero, pauses
//! again for the shorter time before the next trial; at zero the plugin is
//! back at full RDY. Signals that arrive during a pause are ignored, so a
//! burst of in-flight failures counts once.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    level: u32,
    paused_until: Option<Instant>,
}

/// Levels beyond this add nothing: `min × 2^31` exceeds any `max`.
const MAX_LEVEL: u32 = 32;

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            level: 0,
            paused_until: None,
        }
    }

    pub fn level(&self) -> u32 {
        self.level
    }

    /// The delay for a given backoff level or attempt count (≥ 1).
    pub fn delay_for(min: Duration, max: Duration, n: u32) -> Duration {
        let exponent = n.saturating_sub(1).min(31);
        min.saturating_mul(1u32 << exponent).min(max)
    }

    /// How many messages the plugin may hold now (its RDY), and when that
    /// changes by itself (the end of a pause).
    pub fn ready_count(&self, now: Instant, full: i64) -> (i64, Option<Instant>) {
        if self.level == 0 {
            return (full, None);
        }
        match self.paused_until {
            Some(until) if now < until => (0, Some(until)),
            _ => (1, None),
        }
    }

    pub fn is_paused(&self, now: Instant) -> bool {
        self.paused_until.is_some_and(|until| now < until)
    }

    pub fn on_success(&mut self, now: Instant) {
        if self.level == 0 || self.is_paused(now) {
            return;
        }
        self.level -= 1;
        self.paused_until =
            (self.level > 0).then(|| now + Backoff::delay_for(self.min, self.max, self.level));
    }

    pub fn on_failure(&mut self, now: Instant) {
        if self.is_paused(now) {
            return;
        }
        self.level = (self.level + 1).min(MAX_LEVEL);
        self.paused_until = Some(now + Backoff::delay_for(self.min, self.max, self.level));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn delays_double_and_cap() {
        let (min, max) = (100 * MS, 1000 * MS);
        assert_eq!(Backoff::delay_for(min, max, 1), 100 * MS);
        assert_eq!(Backoff::delay_for(min, max, 2), 200 * MS);
        assert_eq!(Backoff::delay_for(min, max, 4), 800 * MS);
        assert_eq!(Backoff::delay_for(min, max, 5), 1000 * MS);
        assert_eq!(Backoff::delay_for(min, max, 60_000), 1000 * MS);
    }

    #[test]
    fn pause_trial_and_recovery() {
        let t0 = Instant::now();
        let mut b = Backoff::new(100 * MS, 1000 * MS);
        assert_eq!(b.ready_count(t0, 8), (8, None));

        b.on_failure(t0);
        assert_eq!(b.ready_count(t0, 8), (0, Some(t0 + 100 * MS)));
        // Failures during the pause do not stack.
        b.on_failure(t0 + 50 * MS);
        assert_eq!(b.level(), 1);
        // After the pause: one trial message.
        assert_eq!(b.ready_count(t0 + 100 * MS, 8), (1, None));
        // The trial fails: a longer pause.
        b.on_failure(t0 + 110 * MS);
        assert_eq!(b.level(), 2);
        assert_eq!(b.ready_count(t0 + 110 * MS, 8), (0, Some(t0 + 310 * MS)));
        // A successful trial steps down, pausing for the shorter time.
        b.on_success(t0 + 320 * MS);
        assert_eq!(b.level(), 1);
        assert_eq!(b.ready_count(t0 + 320 * MS, 8), (0, Some(t0 + 420 * MS)));
        b.on_success(t0 + 430 * MS);
        assert_eq!(b.level(), 0);
        assert_eq!(b.ready_count(t0 + 430 * MS, 8), (8, None));
    }
}
