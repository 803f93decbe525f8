//! Due times of deferred messages: an `Instant` in memory, Unix
//! nanoseconds on disk (an `Instant` means nothing to the next process).

use std::time::{Duration, Instant};

use wasq_wire::message::now_nanos;

/// A due time as Unix nanoseconds, for writing to disk.
pub fn due_to_unix_nanos(due: Instant) -> i64 {
    let now = Instant::now();
    let ahead = due.saturating_duration_since(now).as_nanos() as i64;
    now_nanos() + ahead
}

/// A due time read from disk; one in the past is due now.
pub fn due_from_unix_nanos(unix_nanos: i64) -> Instant {
    let ahead = unix_nanos.saturating_sub(now_nanos()).max(0);
    Instant::now() + Duration::from_nanos(ahead as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_due_time_survives_the_round_trip_and_the_past_is_now() {
        let due = Instant::now() + Duration::from_secs(60);
        let back = due_from_unix_nanos(due_to_unix_nanos(due));
        let skew = back.max(due) - back.min(due);
        assert!(skew < Duration::from_secs(1), "{skew:?}");
        assert!(due_from_unix_nanos(0) <= Instant::now());
    }
}
