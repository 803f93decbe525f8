//! A plugin's outbound HTTP as GET /plugins, /metrics and statsd count
//! it: responses by status class, failures by kind, and request latency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;

use super::OutboundError;
use crate::plugins::stats::HandlerTimes;

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
#[derive(Debug, Clone, Default, Serialize)]
pub struct OutboundSnapshot {
    pub requests: u64,
    /// `"2xx"` → responses.
    pub responses: BTreeMap<String, u64>,
    /// `"timeout"` → failures (`refused` is the allowlist's).
    pub errors: BTreeMap<String, u64>,
    pub latency_us_p50: u64,
    pub latency_us_p99: u64,
    /// For /metrics; the JSON shows the percentiles.
    #[serde(skip)]
    pub latency: HandlerTimes,
}

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
        let responses: BTreeMap<String, u64> = self
            .by_class
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("{}xx", i + 1), n.load(Ordering::Relaxed)))
            .collect();
        let errors: BTreeMap<String, u64> = OutboundError::ALL
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
        let percentile = |q: f64| {
            if latency.is_empty() {
                0
            } else {
                latency.value_at_quantile(q)
            }
        };
        OutboundSnapshot {
            requests,
            responses,
            errors,
            latency_us_p50: percentile(0.5),
            latency_us_p99: percentile(0.99),
            latency: HandlerTimes::of(&latency),
        }
    }
}
