//! The engine's epoch, which lets handler deadlines interrupt running
//! guests, advanced by a thread of its own only while a guest may run.
//!
//! A ticker that never stops wakes the process 200 times a second on an
//! idle broker. This one parks once every deadline armed so far has passed:
//! a guest still running by then has already been interrupted, and a new
//! call sets its deadline and asks for ticks (waking the ticker) first. Arming
//! writes the shared state at most once per tick per thread, so the hot
//! path (a few hundred nanoseconds per message) reads it and moves on.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::thread::Thread;
use std::time::Duration;

use wasmtime::Engine;

/// How often the epoch advances; deadlines are rounded up to it.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The ticks that cover `duration` from now: rounded up, plus the tick
/// already under way.
pub fn ticks_covering(duration: Duration) -> u64 {
    duration.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64 + 1
}

/// A handle on the ticker of the runtime's engines (the main one and the
/// baseline compiler's, ticked together so that a deadline in ticks means
/// the same on both); the ticker ends with the last handle or with the
/// last engine, whichever goes first.
#[derive(Clone)]
pub struct EpochClock {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for EpochClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochClock")
            .field("ticks", &self.ticks())
            .finish_non_exhaustive()
    }
}

struct Shared {
    /// Ticks made so far: the engine's epoch since the clock started.
    ticks: AtomicU64,
    /// The tick at which every deadline armed so far has passed.
    tick_until: AtomicU64,
    /// The ticker is parked (or about to park) and must be woken to tick.
    parked: AtomicBool,
    ticker: OnceLock<Thread>,
}

impl EpochClock {
    /// Starts the ticker thread for `engines`, parked until a deadline is
    /// armed.
    pub fn start(engines: &[&Engine]) -> EpochClock {
        // Detached: it ends by itself with the clock or the engines.
        Self::start_ticker(engines).0
    }

    fn start_ticker(engines: &[&Engine]) -> (EpochClock, std::thread::JoinHandle<()>) {
        let shared = Arc::new(Shared {
            ticks: AtomicU64::new(0),
            tick_until: AtomicU64::new(0),
            parked: AtomicBool::new(false),
            ticker: OnceLock::new(),
        });
        let weak_shared = Arc::downgrade(&shared);
        let engines: Vec<_> = engines.iter().map(|engine| engine.weak()).collect();
        let thread = std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || tick_while_needed(&weak_shared, &engines))
            .expect("spawn the epoch ticker thread");
        let _ = shared.ticker.set(thread.thread().clone());
        (EpochClock { shared }, thread)
    }

    /// Keeps the ticker going for at least `ticks` more epochs: call it
    /// with a store's deadline before calling into its guest.
    pub fn tick_for(&self, ticks: u64) {
        let shared = &*self.shared;
        // One tick of slack: `ticks` may trail the engine's epoch by one.
        let until = shared.ticks.load(Ordering::Relaxed) + ticks + 1;
        if shared.tick_until.load(Ordering::Relaxed) >= until {
            return;
        }
        // Sequentially consistent with the ticker's `parked` then
        // `tick_until`: either it sees this deadline, or this sees it parked.
        shared.tick_until.fetch_max(until, Ordering::SeqCst);
        if shared.parked.load(Ordering::SeqCst)
            && let Some(ticker) = shared.ticker.get()
        {
            ticker.unpark();
        }
    }

    /// Ticks made so far (for tests).
    pub fn ticks(&self) -> u64 {
        self.shared.ticks.load(Ordering::Relaxed)
    }
}

impl Drop for Shared {
    /// Wakes a parked ticker so that it sees the clock is gone and ends.
    fn drop(&mut self) {
        if let Some(ticker) = self.ticker.get() {
            ticker.unpark();
        }
    }
}

/// The ticker thread: ticks every [`EPOCH_TICK`] while a deadline is
/// pending, parks otherwise, and ends when the clock or every engine is
/// gone (holding neither strongly in between, so neither leaks).
fn tick_while_needed(shared: &Weak<Shared>, engines: &[wasmtime::EngineWeak]) {
    loop {
        let Some(clock) = shared.upgrade() else {
            return;
        };
        let now = clock.ticks.load(Ordering::Relaxed);
        if now >= clock.tick_until.load(Ordering::SeqCst) {
            clock.parked.store(true, Ordering::SeqCst);
            let idle = now >= clock.tick_until.load(Ordering::SeqCst);
            drop(clock);
            if idle {
                std::thread::park();
            }
            if let Some(clock) = shared.upgrade() {
                clock.parked.store(false, Ordering::SeqCst);
            }
            continue;
        }
        drop(clock);
        std::thread::sleep(EPOCH_TICK);
        let Some(clock) = shared.upgrade() else {
            return;
        };
        let mut alive = engines
            .iter()
            .filter_map(|engine| engine.upgrade())
            .peekable();
        if alive.peek().is_none() {
            return;
        }
        alive.for_each(|engine| engine.increment_epoch());
        clock.ticks.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use wasmtime::Config;

    fn engine() -> Engine {
        Engine::new(Config::new().epoch_interruption(true)).unwrap()
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(EPOCH_TICK);
        }
    }

    #[test]
    fn the_clock_ticks_only_until_the_last_deadline_armed() {
        let engine = engine();
        let clock = EpochClock::start(&[&engine]);
        std::thread::sleep(EPOCH_TICK * 4);
        assert_eq!(clock.ticks(), 0, "no deadline armed: no ticks");

        clock.tick_for(3);
        // Up to the deadline plus its tick of slack, and not one more.
        wait_until("ticks up to the deadline", || clock.ticks() >= 4);
        std::thread::sleep(EPOCH_TICK * 10);
        assert_eq!(clock.ticks(), 4, "parked once the deadline passed");

        clock.tick_for(2);
        wait_until("woken by a new deadline", || clock.ticks() >= 7);
        std::thread::sleep(EPOCH_TICK * 10);
        assert_eq!(clock.ticks(), 7, "parked again");
    }

    #[test]
    fn the_ticker_ends_with_its_clock() {
        let engine = engine();
        let (clock, ticker) = EpochClock::start_ticker(&[&engine]);
        std::thread::sleep(EPOCH_TICK * 2);
        assert!(!ticker.is_finished(), "parked while the clock lives");
        drop(clock);
        wait_until("the parked ticker outlived its clock", || {
            ticker.is_finished()
        });
    }

    #[test]
    fn the_ticker_advances_every_engine_and_ends_with_the_last() {
        let (first, second) = (engine(), engine());
        let (clock, ticker) = EpochClock::start_ticker(&[&first, &second]);
        clock.tick_for(1_000_000);
        // A store whose deadline is one tick away traps once the clock
        // ticks, on either engine.
        for engine in [&first, &second] {
            let module =
                wasmtime::Module::new(engine, r#"(module (func (export "spin") (loop (br 0))))"#)
                    .unwrap();
            let mut store = wasmtime::Store::new(engine, ());
            store.set_epoch_deadline(1);
            let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
            let spin = instance
                .get_typed_func::<(), ()>(&mut store, "spin")
                .unwrap();
            assert!(spin.call(&mut store, ()).is_err(), "interrupted");
        }
        drop(first);
        std::thread::sleep(EPOCH_TICK * 4);
        assert!(!ticker.is_finished(), "one engine is left");
        drop(second);
        wait_until("the ticking ticker outlived its engines", || {
            ticker.is_finished()
        });
    }
}
