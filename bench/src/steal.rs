//! CPU time the hypervisor took from this machine while something was
//! measured ("steal" in `/proc/stat`).
//!
//! On a shared virtual machine the host may run other guests on the
//! physical cores behind these vCPUs; the time a vCPU was ready but not
//! running is counted as steal. A round measured while the host took a
//! third of the time says more about the neighbours than about the
//! broker: its absolute figures are low and its ratio noisy (both sides
//! are rarely stolen from equally). `versus` prints the share per side so
//! a reader can tell such rounds apart instead of guessing.

use std::future::Future;

/// Cumulative CPU time of all CPUs, in clock ticks, from `/proc/stat`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct CpuTicks {
    total: u64,
    steal: u64,
}

impl CpuTicks {
    fn now() -> Option<CpuTicks> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        parse(stat.lines().next()?)
    }
}

/// The aggregate `cpu` line: user nice system idle iowait irq softirq
/// steal guest guest_nice. Guest time is already inside user and nice.
fn parse(line: &str) -> Option<CpuTicks> {
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let values: Vec<u64> = fields.map(|f| f.parse().ok()).collect::<Option<_>>()?;
    let steal = *values.get(7)?;
    let total = values.iter().take(8).sum();
    Some(CpuTicks { total, steal })
}

/// The share (0–1) of CPU time stolen between two readings; `NaN` when
/// unknown (no `/proc/stat`, or too short to tell).
fn share(before: Option<CpuTicks>, after: Option<CpuTicks>) -> f64 {
    match (before, after) {
        (Some(before), Some(after)) if after.total > before.total => {
            (after.steal - before.steal) as f64 / (after.total - before.total) as f64
        }
        _ => f64::NAN,
    }
}

/// Runs `work` and returns its result with the share of CPU time stolen
/// meanwhile.
pub async fn measured<T>(work: impl Future<Output = T>) -> (T, f64) {
    let before = CpuTicks::now();
    let result = work.await;
    (result, share(before, CpuTicks::now()))
}

/// "steal 31%", or nothing when unknown.
pub fn describe(share: f64) -> String {
    if share.is_nan() {
        String::new()
    } else {
        format!(" (steal {:.0}%)", share * 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_aggregate_line() {
        let line = "cpu  216196 5406 28496 41750 552 0 4596 12234 0 0";
        let ticks = parse(line).unwrap();
        assert_eq!(ticks.steal, 12234);
        assert_eq!(
            ticks.total,
            216196 + 5406 + 28496 + 41750 + 552 + 4596 + 12234
        );
        assert_eq!(parse("cpu0 1 2 3 4 5 6 7 8 0 0"), None);
        assert_eq!(parse("cpu 1 2 3"), None);
    }

    #[test]
    fn share_of_the_time_between_two_readings() {
        let before = CpuTicks {
            total: 1000,
            steal: 100,
        };
        let after = CpuTicks {
            total: 1400,
            steal: 200,
        };
        assert_eq!(share(Some(before), Some(after)), 0.25);
        assert!(share(Some(before), Some(before)).is_nan());
        assert!(share(None, Some(after)).is_nan());
    }
}
