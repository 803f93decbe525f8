//! Progress of a queue's recovery scan at start-up, for a person waiting on
//! it: a queue of many gigabytes takes a while to check record by record,
//! so a large one says what it is doing, how far it has got every few
//! seconds, and when it is done.

use std::time::{Duration, Instant};

/// Queues at least this large report their recovery.
pub const REPORTED_BYTES: u64 = 64 << 20;
/// The most often a large recovery reports how far it has got.
const EVERY: Duration = Duration::from_secs(2);

/// Where one queue's recovery stands; each method returns the line to
/// log, if one is due.
pub struct RecoveryProgress {
    queue: String,
    total_bytes: u64,
    segments: usize,
    done_bytes: u64,
    records: u64,
    started: Instant,
    last_report: Instant,
    reported: bool,
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

impl RecoveryProgress {
    /// A recovery of `segments` files holding `total_bytes` to scan; the
    /// first line, if the queue is large enough to report.
    pub fn start(
        queue: &str,
        total_bytes: u64,
        segments: usize,
        now: Instant,
    ) -> (RecoveryProgress, Option<String>) {
        let reported = total_bytes >= REPORTED_BYTES;
        let progress = RecoveryProgress {
            queue: queue.to_string(),
            total_bytes,
            segments,
            done_bytes: 0,
            records: 0,
            started: now,
            last_report: now,
            reported,
        };
        let line = reported.then(|| {
            format!(
                "DISKQUEUE: recovering queue {queue}: {} in {segments} segment(s)",
                megabytes(total_bytes)
            )
        });
        (progress, line)
    }

    /// A segment of `bytes` with `records` good records was scanned.
    pub fn segment_done(&mut self, bytes: u64, records: u64, now: Instant) -> Option<String> {
        self.done_bytes += bytes;
        self.records += records;
        if !self.reported || now.duration_since(self.last_report) < EVERY {
            return None;
        }
        self.last_report = now;
        let percent = self.done_bytes as f64 * 100.0 / self.total_bytes.max(1) as f64;
        Some(format!(
            "DISKQUEUE: recovering queue {}: {percent:.0}% ({} of {}, {} messages so far)",
            self.queue,
            megabytes(self.done_bytes),
            megabytes(self.total_bytes),
            self.records
        ))
    }

    /// The scan ended; the last line for a reported queue.
    pub fn finish(&self, now: Instant) -> Option<String> {
        self.reported.then(|| {
            format!(
                "DISKQUEUE: recovered queue {}: {} messages, {} in {} segment(s), in {:.1}s",
                self.queue,
                self.records,
                megabytes(self.done_bytes),
                self.segments,
                now.duration_since(self.started).as_secs_f64()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_queues_recover_quietly() {
        let now = Instant::now();
        let (mut progress, first) = RecoveryProgress::start("t", 1 << 20, 1, now);
        assert_eq!(first, None);
        assert_eq!(progress.segment_done(1 << 20, 10, now + EVERY * 3), None);
        assert_eq!(progress.finish(now + EVERY * 3), None);
    }

    #[test]
    fn large_queues_say_where_they_are_every_few_seconds() {
        let now = Instant::now();
        let total = 400_000_000;
        let (mut progress, first) = RecoveryProgress::start("big:c", total, 4, now);
        assert_eq!(
            first.as_deref(),
            Some("DISKQUEUE: recovering queue big:c: 400.0 MB in 4 segment(s)")
        );
        // Too soon after the first line: quiet.
        assert_eq!(
            progress.segment_done(100_000_000, 1000, now + EVERY / 2),
            None
        );
        assert_eq!(
            progress
                .segment_done(100_000_000, 1000, now + EVERY)
                .as_deref(),
            Some(
                "DISKQUEUE: recovering queue big:c: 50% (200.0 MB of 400.0 MB, 2000 messages so far)"
            )
        );
        progress.segment_done(200_000_000, 2000, now + EVERY + EVERY / 2);
        let last = progress.finish(now + EVERY * 2).unwrap();
        assert!(
            last.starts_with(
                "DISKQUEUE: recovered queue big:c: 4000 messages, 400.0 MB in 4 segment(s), in 4.0s"
            ),
            "{last}"
        );
    }
}
