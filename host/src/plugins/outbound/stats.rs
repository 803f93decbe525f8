//! A plugin's outbound HTTP as GET /plugins, /metrics and statsd count
//! it: responses by status class, failures by kind, and request latency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;

use super::OutboundError;

#[derive(Debug)]
pub struct OutboundStats {
    /// Responses by status class: 1xx … 5xx.
    by_class: [AtomicU64; 5],
    /// Failures by kind, in [`OutboundError::ALL`]'s order.
    by_error: [AtomicU64; OutboundError::ALL.len()],
    /// Request latency in microseconds (answered or failed).
    latency: Mutex<Histogram<u64>>,
}

impl Default for OutboundStats {
    fn default() -> Self {
        OutboundStats {
            by_class: Default::default(),
            by_error: Default::default(),
            latency: Mutex::new(crate::plugins::stats::new_histogram()),
        }
    }
}

/// The counters as reported.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct OutboundSnapshot {
    pub requests: u64,
    /// `"2xx"` → responses.
    pub responses: std::collections::BTreeMap<String, u64>,
    /// `"timeout"` → failures (`refused` is the allowlist's).
    pub errors: std::collections::BTreeMap<String, u64>,
    pub latency_us: LatencySnapshot,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct LatencySnapshot {
    pub count: u64,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
    /// Upper bounds (µs) and the number of requests at most that long,
    /// cumulative, for Prometheus' histogram.
    pub buckets: Vec<(u64, u64)>,
    pub sum: u64,
}

/// Latency buckets in µs: 1 ms … 30 s.
pub const LATENCY_BUCKETS_US: [u64; 10] = [
    1_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000, 5_000_000, 30_000_000,
];

impl OutboundStats {
    pub fn record(&self, result: Result<u16, OutboundError>, elapsed: Duration) {
        match result {
            Ok(status) => {
                let class = usize::from(status / 100).clamp(1, 5) - 1;
                self.by_class[class].fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                self.by_error[error as usize].fetch_add(1, Ordering::Relaxed);
            }
        }
        let micros = (elapsed.as_micros() as u64).clamp(1, 3_600_000_000);
        let _ = self.latency.lock().record(micros);
    }

    pub fn snapshot(&self) -> OutboundSnapshot {
        let responses: std::collections::BTreeMap<String, u64> = self
            .by_class
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("{}xx", i + 1), n.load(Ordering::Relaxed)))
            .collect();
        let errors: std::collections::BTreeMap<String, u64> = OutboundError::ALL
            .iter()
            .map(|e| {
                (
                    e.kind().to_string(),
                    self.by_error[*e as usize].load(Ordering::Relaxed),
                )
            })
            .collect();
        let requests = responses.values().sum::<u64>() + errors.values().sum::<u64>();
        let latency = self.latency.lock();
        let latency_us = LatencySnapshot {
            count: latency.len(),
            p50: latency.value_at_quantile(0.5),
            p99: latency.value_at_quantile(0.99),
            max: latency.max(),
            buckets: LATENCY_BUCKETS_US
                .iter()
                .map(|&bound| (bound, latency.count_between(0, bound)))
                .collect(),
            sum: latency
                .iter_recorded()
                .map(|v| v.value_iterated_to() * v.count_at_value())
                .sum(),
        };
        OutboundSnapshot {
            requests,
            responses,
            errors,
            latency_us,
        }
    }
}
