//! `wasq-bench persistence`: the broker workload on three wasqd set-ups,
//! one after the other in the same run, with ratios against the first:
//!
//! - `memory`: `--mem-queue-size 100000000`, nothing touches disk;
//! - `spilling`: nsqd's default `--mem-queue-size 10000`, so nearly all of
//!   the workload goes through the disk queues (fsync every 2500);
//! - `durable`: `--mem-queue-size 0 --sync-every 1`, every message written
//!   and fsynced (group commit) before its OK.

use crate::spawn_wasqd;
use crate::workload::{Results, Workload, run_all};

const SETUPS: [(&str, &[&str]); 3] = [
    ("memory", &["--mem-queue-size", "100000000"]),
    ("spilling", &["--mem-queue-size", "10000"]),
    ("durable", &["--mem-queue-size", "0", "--sync-every", "1"]),
];

pub async fn run(workload: &Workload) -> anyhow::Result<()> {
    println!("workload: {}", workload.describe());
    let mut results: Vec<(&str, Results)> = Vec::new();
    for (label, flags) in SETUPS {
        let broker = spawn_wasqd(flags)?;
        results.push((label, run_all(workload, broker.tcp, label).await?));
    }
    let base = results[0].1;
    println!("\n| set-up | mpub msg/s | pub msg/s | sub msg/s |");
    println!("|---|---|---|---|");
    for (label, r) in &results {
        println!(
            "| {label} | {:.0} ({:.2}x) | {:.0} ({:.2}x) | {:.0} ({:.2}x) |",
            r.mpub,
            r.mpub / base.mpub,
            r.publish,
            r.publish / base.publish,
            r.sub,
            r.sub / base.sub
        );
    }
    Ok(())
}
