//! Per-plugin counters and handler-time percentiles for GET /plugins.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;

#[derive(Debug)]
pub struct PluginStats {
    pub handled: AtomicU64,
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
    /// Handler time in microseconds.
    handler_time: Mutex<Histogram<u64>>,
}

impl Default for PluginStats {
    fn default() -> Self {
        PluginStats {
            handled: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            requeued: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            traps: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            published: AtomicU64::new(0),
            publish_refused: AtomicU64::new(0),
            recycled: AtomicU64::new(0),
            guest_memory_peak: AtomicU64::new(0),
            handler_time: Mutex::new(new_histogram()),
        }
    }
}

/// Microseconds from 1 µs to 1 hour, 2 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid histogram bounds")
}

/// Records into a worker-local histogram; merged into the plugin's in batches
/// so workers do not contend on every message.
pub fn record(local: &mut Histogram<u64>, elapsed: Duration) {
    let micros = (elapsed.as_micros() as u64).clamp(1, 3_600_000_000);
    let _ = local.record(micros);
}

impl PluginStats {
    pub fn merge(&self, local: &mut Histogram<u64>) {
        if local.is_empty() {
            return;
        }
        let _ = self.handler_time.lock().add(&*local);
        local.reset();
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
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CountersView {
    pub handled: u64,
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
}
