//! CPU time of a process's threads, by thread name, from `/proc` (Linux):
//! what a plugin's worker threads spent on a round, to the nanosecond,
//! where wall-clock throughput on a busy two-core machine moves by ±10 %
//! from round to round.

use std::collections::HashMap;

/// Nanoseconds each thread name of process `pid` has run so far (threads
/// of one name summed; empty where `/proc` cannot be read).
pub fn by_name(pid: u32) -> HashMap<String, u64> {
    let mut spent = HashMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return spent;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        // The first field of schedstat: time on a CPU, in nanoseconds.
        let nanos = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
        if let Some(nanos) = nanos {
            *spent.entry(name.trim().to_owned()).or_default() += nanos;
        }
    }
    spent
}

/// Nanoseconds each thread name ran between two [`by_name`] readings.
pub fn between(
    before: &HashMap<String, u64>,
    after: &HashMap<String, u64>,
) -> HashMap<String, u64> {
    after
        .iter()
        .map(|(name, nanos)| {
            let earlier = before.get(name).copied().unwrap_or(0);
            (name.clone(), nanos.saturating_sub(earlier))
        })
        .collect()
}
