//! Whether a connection looks for its client's next request for a moment
//! before it sleeps (spins), learnt from how soon the client came back.
//!
//! On a virtual machine an idle vCPU halts, and waking it for the next
//! request costs tens of microseconds: as much as a synchronous
//! publisher's whole round trip (PUB round trips 14k/s on idle vCPUs,
//! 100k/s on busy ones, same build). Go's scheduler hides this for nsqd by
//! spinning before it sleeps. Spinning is not always better, though: when
//! the client and the broker share a busy CPU, the broker sleeping is what
//! lets the client run, and the round trip is fastest without a spin. So
//! each connection keeps the average wait it saw after spinning and after
//! sleeping, does what has been faster, and now and then tries the other
//! to notice when the machine changes. A spin that ends before the bytes
//! come counts its whole length against spinning, and a client that is not
//! quick (a gap above [`QUICK_GAP`]) is never spun for: the CPU a spin
//! burns stays bounded by the waits it saves.

use std::time::Duration;

/// How long a connection spins for the next request before it sleeps.
pub const QUICK_SPIN: Duration = Duration::from_micros(100);

/// After spinning this long, each look first lets a thread waiting for the
/// CPU run (`sched_yield`): on a machine with few cores that thread may be
/// the client, which cannot send its next request while the spin holds
/// its CPU (NSQ's bench_writer, ApacheBench with four connections). The
/// quickest clients (a polling one, 15-20 µs round trips) are answered
/// before it matters, and a yield per look would slow them by a third.
const YIELD_AFTER: Duration = Duration::from_micros(20);

/// One look of a spin that has lasted `spun` so far: past [`YIELD_AFTER`]
/// it first lets a thread waiting for this CPU run.
pub fn give_way(spun: Duration) {
    if spun > YIELD_AFTER {
        std::thread::yield_now();
    }
}

/// A client is quick when its last request came this soon after the
/// connection went to wait: a synchronous publisher in a loop, whose gaps
/// are its own round trip plus the vCPU wake-ups a spin may save.
pub const QUICK_GAP: Duration = Duration::from_micros(250);

/// Every this many waits, the way that has been slower is tried again...
const RETRY_OTHER_EVERY: u32 = 256;

/// ...for this many waits in a row: the first waits after a change are
/// not representative (threads move between CPUs after a change), the
/// average is mostly made of the last ones.
const RETRY_WAITS: u32 = 8;

#[derive(Debug)]
pub struct SpinPolicy {
    /// Smoothed waits (nanoseconds) after spinning and after sleeping;
    /// `None` until tried.
    spun: Option<u64>,
    slept: Option<u64>,
    /// What the last wait did.
    spinning: bool,
    last_gap: Duration,
    /// Waits since the last retry of the other way.
    waits: u32,
    /// Waits left in the retry of the other way under way.
    retrying: u32,
}

impl Default for SpinPolicy {
    fn default() -> Self {
        SpinPolicy {
            spun: None,
            slept: None,
            spinning: false,
            last_gap: Duration::MAX,
            waits: 0,
            retrying: 0,
        }
    }
}

impl SpinPolicy {
    /// Whether the coming wait should start with a spin.
    pub fn should_spin(&mut self) -> bool {
        if self.last_gap > QUICK_GAP {
            self.spinning = false;
            return false;
        }
        if self.retrying > 0 {
            self.retrying -= 1;
            return self.spinning;
        }
        self.spinning = match (self.spun, self.slept) {
            (None, _) => true,
            (_, None) => false,
            (Some(spun), Some(slept)) => spun < slept,
        };
        self.waits += 1;
        if self.waits >= RETRY_OTHER_EVERY {
            self.waits = 0;
            self.spinning = !self.spinning;
            self.retrying = RETRY_WAITS - 1;
        } else if self.spun.is_none() {
            // The first spins are a retry too.
            self.retrying = RETRY_WAITS - 1;
        }
        self.spinning
    }

    /// The wait (spun or not) ended after `gap` with the client's bytes.
    pub fn record(&mut self, spun: bool, gap: Duration) {
        self.last_gap = gap;
        // A wait longer than a quick client's is the client pausing, or
        // the host running something else for a while (on a shared host,
        // milliseconds now and then): it says nothing about spinning or
        // sleeping, and counted in, one such wait would tip the average
        // of the way it happened to follow, and leave that average stale
        // (until the next retry) once the other way is chosen.
        if gap > QUICK_GAP {
            return;
        }
        // A spin that ended before the bytes came burnt its whole length
        // for nothing: it counts against spinning, so a client slower than
        // the spin is slept for rather than spun for in vain.
        let cost = if spun && gap > QUICK_SPIN {
            gap + QUICK_SPIN
        } else {
            gap
        };
        let nanos = u64::try_from(cost.as_nanos()).unwrap_or(u64::MAX);
        let average = if spun {
            &mut self.spun
        } else {
            &mut self.slept
        };
        // An exponential average over about eight waits.
        *average = Some(match *average {
            None => nanos,
            Some(before) => before - before / 8 + nanos / 8,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    /// Runs `waits` waits on a machine that takes `gap(spun, waits in a
    /// row the same way)` for each; returns how many spun.
    fn run(policy: &mut SpinPolicy, waits: u32, mut gap: impl FnMut(bool, u32) -> Duration) -> u32 {
        let (mut spins, mut streak, mut last) = (0, 0, None);
        for _ in 0..waits {
            let spin = policy.should_spin();
            streak = if last == Some(spin) { streak + 1 } else { 1 };
            last = Some(spin);
            spins += u32::from(spin);
            policy.record(spin, gap(spin, streak));
        }
        spins
    }

    /// A machine where a spun wait takes `spun` and a slept one `slept`.
    fn machine(spun: u64, slept: u64) -> impl Fn(bool, u32) -> Duration {
        move |spin, _| micros(if spin { spun } else { slept })
    }

    /// Spins in 2560 waits of a quick client first slept for `first_slept` µs.
    fn spins_of_a_quick_client(first_slept: u64, gap: impl FnMut(bool, u32) -> Duration) -> u32 {
        let mut policy = SpinPolicy::default();
        policy.record(false, micros(first_slept));
        run(&mut policy, 2560, gap)
    }

    #[test]
    fn a_new_or_slow_client_is_not_spun_for() {
        let mut policy = SpinPolicy::default();
        assert!(!policy.should_spin(), "nothing known yet");
        policy.record(false, micros(5_000));
        assert!(!policy.should_spin(), "came back after 5 ms");
        assert_eq!(run(&mut policy, 1000, machine(25, 900)), 0);
    }

    #[test]
    fn spins_where_sleeping_costs_a_wake_up() {
        let spins = spins_of_a_quick_client(60, machine(25, 60));
        // All but the retries of sleeping (8 in 256).
        assert!(spins >= 2400, "spun {spins} of 2560");
    }

    #[test]
    fn sleeps_where_sleeping_lets_the_client_run() {
        let spins = spins_of_a_quick_client(8, machine(25, 8));
        assert!(spins <= 160, "spun {spins} of 2560");
    }

    #[test]
    fn a_client_slower_than_the_spin_is_slept_for() {
        // Back after 140 µs when spun for (the spin ended at 100 µs, in
        // vain), 150 µs when slept for: 10 µs saved for 100 µs burnt.
        let spins = spins_of_a_quick_client(150, machine(140, 150));
        assert!(spins <= 160, "spun {spins} of 2560");
    }

    #[test]
    fn a_pause_of_the_host_does_not_stop_the_spinning() {
        // Spinning saves a wake-up, but now and then the host stops the
        // vCPU for 3 ms, whichever way the wait went.
        let mut waits = 0;
        let hiccups = move |spin: bool, _| {
            waits += 1;
            match (waits % 97 == 0, spin) {
                (true, _) => micros(3_000),
                (false, true) => micros(25),
                (false, false) => micros(60),
            }
        };
        let spins = spins_of_a_quick_client(60, hiccups);
        assert!(spins >= 2300, "spun {spins} of 2560");
    }

    #[test]
    fn follows_the_machine_when_it_changes() {
        let mut policy = SpinPolicy::default();
        policy.record(false, micros(60));
        run(&mut policy, 2560, machine(25, 60));
        // The CPUs got busy: sleeping is now the fast way.
        run(&mut policy, 1024, machine(25, 8));
        let spins = run(&mut policy, 2560, machine(25, 8));
        assert!(spins <= 160, "spun {spins} of 2560 after the change");
    }

    #[test]
    fn a_retry_is_judged_by_its_settled_waits() {
        // Sleeping is fast once the threads share a CPU, but the first
        // sleep after spinning pays for the move.
        let settling = |spin: bool, streak: u32| match (spin, streak) {
            (true, _) => micros(25),
            (false, 1) => micros(80),
            (false, _) => micros(8),
        };
        let mut policy = SpinPolicy::default();
        policy.record(false, micros(8));
        run(&mut policy, 1024, settling);
        let spins = run(&mut policy, 2560, settling);
        assert!(spins <= 160, "spun {spins} of 2560");
    }
}
