//! End-to-end processing latency, as nsqd's
//! `--e2e-processing-latency-percentile`: for every message a consumer
//! finishes, the time from its publish (the message's timestamp) to its
//! FIN, kept per channel over a sliding window, and reported as the
//! configured percentiles in /stats (a topic reports its channels merged).
//!
//! nsqd keeps two sample streams and starts over the older one every half
//! window, so a query covers between a half and a whole window; the same
//! here, with two HDR histograms (3 significant digits, 1 µs to 1 hour)
//! instead of its targeted-quantile streams. A histogram records in a few
//! nanoseconds with no allocation, and a channel finishing a batch records
//! it under the lock it already holds.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// The percentiles to report and the window they cover.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencySettings {
    pub percentiles: Vec<f64>,
    pub window: Duration,
}

/// nsqd's `e2e_processing_latency` block of /stats: `percentiles` is null
/// when none are configured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencyStats {
    pub count: u64,
    pub percentiles: Option<Vec<Percentile>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Percentile {
    pub quantile: f64,
    /// Nanoseconds.
    pub value: u64,
}

impl LatencyStats {
    /// The values as nsqd's text /stats prints them: `2.1ms, 15.0ms`.
    pub fn human(&self) -> String {
        self.percentiles
            .iter()
            .flatten()
            .map(|p| nanoseconds_to_human(p.value as f64))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Lowest and highest latency recorded, in nanoseconds (1 µs, 1 hour).
const LOWEST: u64 = 1_000;
const HIGHEST: u64 = 3_600_000_000_000;

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LOWEST, HIGHEST, 3).expect("valid histogram bounds")
}

/// One channel's samples: two half-window histograms.
#[derive(Debug)]
pub struct LatencyWindow {
    settings: LatencySettings,
    halves: [Histogram<u64>; 2],
    current: usize,
    /// When the current half began.
    moved: Instant,
}

impl LatencyWindow {
    pub fn new(settings: LatencySettings, now: Instant) -> LatencyWindow {
        LatencyWindow {
            settings,
            halves: [new_histogram(), new_histogram()],
            current: 0,
            moved: now,
        }
    }

    /// Starts over the older half for every half window gone by.
    fn advance(&mut self, now: Instant) {
        let half = (self.settings.window / 2).max(Duration::from_millis(1));
        let mut turns = 0;
        while now.saturating_duration_since(self.moved) > half {
            self.moved += half;
            self.current ^= 1;
            self.halves[self.current].reset();
            turns += 1;
            if turns == 2 {
                // Both halves are stale: catch up at once.
                self.moved = now;
                break;
            }
        }
    }

    /// Records one finished message that took `latency_ns` since its publish.
    pub fn record(&mut self, now: Instant, latency_ns: u64) {
        self.advance(now);
        let _ = self.halves[self.current].record(latency_ns.clamp(LOWEST, HIGHEST));
    }

    /// Both halves merged into `into` (a topic merges its channels).
    pub fn merge_into(&mut self, now: Instant, into: &mut Histogram<u64>) {
        self.advance(now);
        for half in &self.halves {
            let _ = into.add(half);
        }
    }

    /// The window's percentiles.
    pub fn stats(&mut self, now: Instant) -> LatencyStats {
        let mut merged = new_histogram();
        self.merge_into(now, &mut merged);
        summarize(&merged, &self.settings.percentiles)
    }
}

/// An empty histogram to merge windows into.
pub fn merged() -> Histogram<u64> {
    new_histogram()
}

/// The count and `percentiles` of `samples`, as nsqd reports them.
pub fn summarize(samples: &Histogram<u64>, percentiles: &[f64]) -> LatencyStats {
    let count = samples.len();
    LatencyStats {
        count,
        percentiles: Some(
            percentiles
                .iter()
                .map(|&quantile| Percentile {
                    quantile,
                    value: if count == 0 {
                        0
                    } else {
                        samples.value_at_quantile(quantile)
                    },
                })
                .collect(),
        ),
    }
}

/// nsqd's `NanoSecondToHuman`: one decimal, the largest unit it exceeds.
fn nanoseconds_to_human(v: f64) -> String {
    let (value, suffix) = if v > 1e9 {
        (v / 1e9, "s")
    } else if v > 1e6 {
        (v / 1e6, "ms")
    } else if v > 1e3 {
        (v / 1e3, "us")
    } else {
        (v, "ns")
    };
    format!("{value:.1}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(window_s: u64) -> LatencySettings {
        LatencySettings {
            percentiles: vec![0.5, 0.99],
            window: Duration::from_secs(window_s),
        }
    }

    #[test]
    fn percentiles_of_what_was_recorded() {
        let t0 = Instant::now();
        let mut w = LatencyWindow::new(settings(600), t0);
        for ms in 1..=100u64 {
            w.record(t0, ms * 1_000_000);
        }
        let stats = w.stats(t0);
        assert_eq!(stats.count, 100);
        let values: Vec<u64> = stats.percentiles.unwrap().iter().map(|p| p.value).collect();
        assert!((49_000_000..=51_000_000).contains(&values[0]), "{values:?}");
        assert!(
            (98_000_000..=100_100_000).contains(&values[1]),
            "{values:?}"
        );
    }

    #[test]
    fn old_samples_leave_with_the_window() {
        let t0 = Instant::now();
        let mut w = LatencyWindow::new(settings(10), t0);
        w.record(t0, 5_000_000);
        // Within the window (the other half started 5 s in): still there.
        w.record(t0 + Duration::from_secs(6), 7_000_000);
        assert_eq!(w.stats(t0 + Duration::from_secs(6)).count, 2);
        // 11 s in, the half that held the first sample started over.
        assert_eq!(w.stats(t0 + Duration::from_secs(11)).count, 1);
        // Long idle: nothing left.
        assert_eq!(w.stats(t0 + Duration::from_secs(100)).count, 0);
    }

    #[test]
    fn human_form_is_nsqds() {
        assert_eq!(nanoseconds_to_human(950.0), "950.0ns");
        assert_eq!(nanoseconds_to_human(2_100_000.0), "2.1ms");
        assert_eq!(nanoseconds_to_human(1_500.0), "1.5us");
        assert_eq!(nanoseconds_to_human(3e9), "3.0s");
    }
}
