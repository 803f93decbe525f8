//! Per-plugin counters and handler times for GET /plugins, /metrics and
//! statsd.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;

#[derive(Debug)]
pub struct PluginStats {
    pub handled: AtomicU64,
    /// Of those, the ones handed over in calls of more than one message
    /// (`wasq_handle_batch`).
    pub batched: AtomicU64,
    pub finished: AtomicU64,
    pub requeued: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub traps: AtomicU64,
    pub timeouts: AtomicU64,
    pub published: AtomicU64,
    pub publish_refused: AtomicU64,
    /// Instances replaced between messages because their memory kept growing.
    pub recycled: AtomicU64,
    /// The most linear memory one instance has held, in bytes.
    guest_memory_peak: AtomicU64,
    /// Outbound HTTP requests, kept across versions as the counters are.
    pub outbound: std::sync::Arc<super::outbound::OutboundStats>,
    /// Plugin state, kept across versions too.
    pub state: std::sync::Arc<super::state::stats::StateStats>,
    /// Handler time in microseconds.
    handler_time: Mutex<Histogram<u64>>,
}

impl Default for PluginStats {
    fn default() -> Self {
        PluginStats {
            handled: AtomicU64::new(0),
            batched: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            requeued: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            traps: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            published: AtomicU64::new(0),
            publish_refused: AtomicU64::new(0),
            recycled: AtomicU64::new(0),
            guest_memory_peak: AtomicU64::new(0),
            outbound: Default::default(),
            state: Default::default(),
            handler_time: Mutex::new(new_histogram()),
        }
    }
}

/// Microseconds from 1 µs to 1 hour, 2 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid histogram bounds")
}

impl PluginStats {
    /// Records `count` handler calls that took `elapsed` in all (one call,
    /// or a batch call: each as its share of the time). One short lock
    /// per call: merging a worker's own histogram instead cost a walk
    /// over all its buckets per take, 5 % of a busy webhook's CPU.
    pub fn record_handler_time(&self, elapsed: Duration, count: usize) {
        let micros = (elapsed.as_micros() as u64 / count.max(1) as u64).clamp(1, 3_600_000_000);
        let _ = self.handler_time.lock().record_n(micros, count as u64);
    }

    /// An instance now holds `bytes` of linear memory (all its memories).
    pub fn note_guest_memory(&self, bytes: usize) {
        self.guest_memory_peak
            .fetch_max(bytes as u64, Ordering::Relaxed);
    }

    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> CountersView {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let times = self.handler_time.lock();
        let percentile = |q: f64| {
            if times.is_empty() {
                0
            } else {
                times.value_at_quantile(q)
            }
        };
        CountersView {
            handled: load(&self.handled),
            batched: load(&self.batched),
            finished: load(&self.finished),
            requeued: load(&self.requeued),
            dead_lettered: load(&self.dead_lettered),
            traps: load(&self.traps),
            timeouts: load(&self.timeouts),
            published: load(&self.published),
            publish_refused: load(&self.publish_refused),
            recycled: load(&self.recycled),
            guest_memory_peak_bytes: load(&self.guest_memory_peak),
            handler_time_us_p50: percentile(0.5),
            handler_time_us_p99: percentile(0.99),
            handler_time: HandlerTimes::of(&times),
            outbound: self.outbound.snapshot(),
        }
    }
}

/// Upper bounds (µs) of the handler-time buckets /metrics exports: a trivial
/// handler takes under a microsecond, a slow one seconds.
const BUCKET_BOUNDS_US: [u64; 20] = [
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000,
    250_000, 1_000_000, 2_500_000, 10_000_000,
];

/// Handler times (or outbound request times) as a Prometheus histogram:
/// per-bucket counts (the last bucket unbounded), their total and sum, in
/// seconds.
#[derive(Debug, Clone, Default)]
pub struct HandlerTimes {
    pub count: u64,
    pub sum_seconds: f64,
    /// `(upper bound in seconds, count in this bucket)`; `f64::MAX` is +Inf.
    pub buckets: Vec<(f64, u64)>,
}

impl HandlerTimes {
    pub fn of(times: &Histogram<u64>) -> HandlerTimes {
        let mut counts = [0u64; BUCKET_BOUNDS_US.len() + 1];
        let mut sum_us = 0f64;
        for value in times.iter_recorded() {
            let micros = times.highest_equivalent(value.value_iterated_to());
            let n = value.count_at_value();
            sum_us += micros as f64 * n as f64;
            let bucket = BUCKET_BOUNDS_US.partition_point(|&bound| bound < micros);
            counts[bucket] += n;
        }
        let bounds = BUCKET_BOUNDS_US
            .iter()
            .map(|&us| us as f64 / 1e6)
            .chain([f64::MAX]);
        HandlerTimes {
            count: times.len(),
            sum_seconds: sum_us / 1e6,
            buckets: bounds.zip(counts).collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CountersView {
    pub handled: u64,
    /// Handled in calls of more than one message (`wasq_handle_batch`).
    pub batched: u64,
    pub finished: u64,
    pub requeued: u64,
    pub dead_lettered: u64,
    pub traps: u64,
    pub timeouts: u64,
    pub published: u64,
    pub publish_refused: u64,
    /// Instances replaced between two messages because their memory had
    /// used 3/4 of the headroom they started with (a leaking guest runtime).
    pub recycled: u64,
    /// The most linear memory any instance of the plugin has held since
    /// it was first loaded: a guest that leaks shows here.
    pub guest_memory_peak_bytes: u64,
    pub handler_time_us_p50: u64,
    pub handler_time_us_p99: u64,
    /// For /metrics; the JSON shows the percentiles.
    #[serde(skip)]
    pub handler_time: HandlerTimes,
    /// Outbound HTTP: responses by status class, failures by kind, latency.
    pub outbound: super::outbound::OutboundSnapshot,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_times_fall_in_their_buckets() {
        let mut times = new_histogram();
        for micros in [1, 3, 3, 600, 20_000_000] {
            times.record(micros).unwrap();
        }
        let exported = HandlerTimes::of(&times);
        assert_eq!(exported.count, 5);
        assert_eq!(exported.buckets.len(), BUCKET_BOUNDS_US.len() + 1);
        let count_up_to = |seconds: f64| {
            exported
                .buckets
                .iter()
                .find(|(bound, _)| *bound == seconds)
                .map(|(_, n)| *n)
        };
        assert_eq!(count_up_to(1e-6), Some(1));
        assert_eq!(count_up_to(5e-6), Some(2));
        assert_eq!(count_up_to(1e-3), Some(1));
        assert_eq!(count_up_to(f64::MAX), Some(1));
        assert_eq!(exported.buckets.iter().map(|(_, n)| n).sum::<u64>(), 5);
        // 20 s dominates the sum; hdrhistogram keeps 2 significant digits.
        assert!(
            (exported.sum_seconds - 20.0).abs() < 0.2,
            "{}",
            exported.sum_seconds
        );
    }
}
