//! `--awake`: a lowest-priority busy loop per CPU while the rows run.

use anyhow::Context;

/// Lowest-priority busy loops, one per CPU, killed on drop.
///
/// On this kind of virtual machine a vCPU that goes idle takes tens of
/// microseconds to wake when a packet arrives for it; a request-response
/// over loopback pays that on both sides, and measures the hypervisor
/// rather than the broker (a server that only answers OK: 15-25k round
/// trips a second idle, up to 180k awake). Go's scheduler spins before it
/// sleeps, and wasqd does for quick clients, which hides part of it.
/// Spinners at nice 19 keep the vCPUs running and yield to any real work.
pub(super) struct Spinners(Vec<std::process::Child>);

impl Spinners {
    pub(super) fn start() -> anyhow::Result<Spinners> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let children = (0..cpus)
            .map(|_| {
                std::process::Command::new("nice")
                    .args(["-n", "19", "yes"])
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .context("cannot start `nice -n 19 yes`")
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Spinners(children))
    }
}

impl Drop for Spinners {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
