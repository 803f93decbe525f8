//! `wasq-bench memory`: what a queued message costs, route by route.
//!
//! Each route of [`Route`] queues `--messages` bodies of `--size` bytes in
//! a fresh wasqd (TCP, HTTP, a plugin's publish, a dead letter, a requeue,
//! a read back from disk, a restore) and reports the resident growth per
//! message. `WASQD_BIN` measures another build in the same run.

use wasq_testkit::memory::Route;

pub fn run(messages: usize, size: usize) -> anyhow::Result<()> {
    println!(
        "resident growth per queued message, {messages} messages of {size} B, fresh wasqd per route ({})",
        wasq_testkit::Wasqd::binary().display()
    );
    println!(
        "{:<42} {:>9} {:>9} {:>12}",
        "route", "before", "after", "per message"
    );
    let mb = |bytes: u64| format!("{:.1} MB", bytes as f64 / 1e6);
    for route in Route::ALL {
        let growth = route.measure(messages, size)?;
        println!(
            "{:<42} {:>9} {:>9} {:>9.2} KB",
            route.describe(),
            mb(growth.before),
            mb(growth.after),
            growth.per_message() / 1000.0
        );
    }
    Ok(())
}
