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
//! to notice when the machine changes. A client that is not quick (a gap
//! above [`QUICK_GAP`]) is never spun for.

use std::time::Duration;

/// How long a connection spins for the next request before it sleeps.
pub const QUICK_SPIN: Duration = Duration::from_micros(50);

/// A client is quick when its last request came this soon after the
/// connection went to wait: a synchronous publisher in a loop, whose gaps
/// are its own round trip plus the vCPU wake-ups a spin may save.
pub const QUICK_GAP: Duration = Duration::from_micros(250);

/// One wait in this many tries the way that has been slower.
const RETRY_OTHER_EVERY: u32 = 32;

#[derive(Debug)]
pub struct SpinPolicy {
    /// Smoothed waits (nanoseconds) after spinning and after sleeping;
    /// `None` until tried.
    spun: Option<u64>,
    slept: Option<u64>,
    last_gap: Duration,
    waits: u32,
}

impl Default for SpinPolicy {
    fn default() -> Self {
        SpinPolicy {
            spun: None,
            slept: None,
            last_gap: Duration::MAX,
            waits: 0,
        }
    }
}

impl SpinPolicy {
    /// Whether the coming wait should start with a spin.
    pub fn should_spin(&mut self) -> bool {
        if self.last_gap > QUICK_GAP {
            return false;
        }
        self.waits = self.waits.wrapping_add(1);
        let spin_is_faster = match (self.spun, self.slept) {
            (None, _) => return true,
            (_, None) => return false,
            (Some(spun), Some(slept)) => spun < slept,
        };
        spin_is_faster != self.waits.is_multiple_of(RETRY_OTHER_EVERY)
    }

    /// The wait (spun or not) ended after `gap` with the client's bytes.
    pub fn record(&mut self, spun: bool, gap: Duration) {
        self.last_gap = gap;
        let nanos = u64::try_from(gap.as_nanos()).unwrap_or(u64::MAX);
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

    /// Runs `waits` waits on a machine where a spun wait takes `spun` and
    /// a slept one `slept`; returns how many spun.
    fn run(policy: &mut SpinPolicy, waits: u32, spun: Duration, slept: Duration) -> u32 {
        let mut spins = 0;
        for _ in 0..waits {
            let spin = policy.should_spin();
            spins += u32::from(spin);
            policy.record(spin, if spin { spun } else { slept });
        }
        spins
    }

    #[test]
    fn a_new_or_slow_client_is_not_spun_for() {
        let mut policy = SpinPolicy::default();
        assert!(!policy.should_spin(), "nothing known yet");
        policy.record(false, micros(5_000));
        assert!(!policy.should_spin(), "came back after 5 ms");
        assert_eq!(run(&mut policy, 100, micros(25), micros(900)), 0);
    }

    #[test]
    fn spins_where_sleeping_costs_a_wake_up() {
        let mut policy = SpinPolicy::default();
        policy.record(false, micros(60));
        let spins = run(&mut policy, 320, micros(25), micros(60));
        // All but the occasional retry of sleeping.
        assert!(spins >= 300, "spun {spins} of 320");
    }

    #[test]
    fn sleeps_where_sleeping_lets_the_client_run() {
        let mut policy = SpinPolicy::default();
        policy.record(false, micros(8));
        let spins = run(&mut policy, 320, micros(25), micros(8));
        assert!(spins <= 20, "spun {spins} of 320");
    }

    #[test]
    fn follows_the_machine_when_it_changes() {
        let mut policy = SpinPolicy::default();
        policy.record(false, micros(60));
        run(&mut policy, 320, micros(25), micros(60));
        // The CPUs got busy: sleeping is now the fast way.
        run(&mut policy, 640, micros(25), micros(8));
        let spins = run(&mut policy, 320, micros(25), micros(8));
        assert!(spins <= 20, "spun {spins} of 320 after the change");
    }
}
