//! The soak's accounting: every acknowledged message and every place it
//! reached, as bitsets of sequence numbers.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use wasq_testkit::memory::body;

/// One job in this many asks to fail (and is dead-lettered).
pub(super) const FAIL_EVERY: u64 = 5000;
/// The marker in a failing job's body.
const FAIL: &str = " fail ";

/// Which sequence numbers of one stream were marked, as a bitset.
#[derive(Default)]
pub(super) struct Ledger {
    bits: Mutex<Vec<u64>>,
    unique: AtomicU64,
    repeats: AtomicU64,
}

impl Ledger {
    pub(super) fn mark(&self, seq: u64) {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        let mut bits = self.bits.lock().expect("ledger lock");
        if bits.len() <= word {
            bits.resize(word + 1, 0);
        }
        if bits[word] & (1 << bit) == 0 {
            bits[word] |= 1 << bit;
            self.unique.fetch_add(1, Ordering::Relaxed);
        } else {
            self.repeats.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A copy of the bitset, to check many numbers against.
    pub(super) fn snapshot(&self) -> Vec<u64> {
        self.bits.lock().expect("ledger lock").clone()
    }

    /// Sequence numbers marked more than once.
    pub(super) fn repeats(&self) -> u64 {
        self.repeats.load(Ordering::Relaxed)
    }

    pub(super) fn count(&self) -> u64 {
        self.unique.load(Ordering::Relaxed)
    }

    /// Every marked sequence number, ascending.
    pub(super) fn marked(&self) -> impl Iterator<Item = u64> {
        let bits = self.snapshot();
        (0..bits.len() as u64 * 64).filter(move |&seq| has(&bits, seq))
    }
}

fn has(bits: &[u64], seq: u64) -> bool {
    bits.get((seq / 64) as usize)
        .is_some_and(|w| w & (1 << (seq % 64)) != 0)
}

/// Everything the run counts.
#[derive(Default)]
pub(super) struct Books {
    pub(super) words_next: AtomicU64,
    pub(super) jobs_next: AtomicU64,
    pub(super) words_acked: Ledger,
    pub(super) jobs_acked: Ledger,
    /// `words` messages seen by the external consumer or in words.upper.
    pub(super) words_upper: Ledger,
    pub(super) words_slow: Ledger,
    pub(super) jobs_done: Ledger,
    pub(super) jobs_dead: Ledger,
}

impl Books {
    /// A new body for `topic`, with its sequence number.
    pub(super) fn next(&self, topic: Topic, size: usize) -> (u64, Vec<u8>) {
        let seq = match topic {
            Topic::Words => self.words_next.fetch_add(1, Ordering::Relaxed),
            Topic::Jobs => self.jobs_next.fetch_add(1, Ordering::Relaxed),
        };
        let mut message = body(seq as usize, size);
        if topic == Topic::Jobs && seq % FAIL_EVERY == 0 {
            message[10..10 + FAIL.len()].copy_from_slice(FAIL.as_bytes());
        }
        (seq, message)
    }

    pub(super) fn acked(&self, topic: Topic, seq: u64) {
        match topic {
            Topic::Words => self.words_acked.mark(seq),
            Topic::Jobs => self.jobs_acked.mark(seq),
        }
    }

    pub(super) fn delivered(&self) -> u64 {
        [
            &self.words_upper,
            &self.words_slow,
            &self.jobs_done,
            &self.jobs_dead,
        ]
        .iter()
        .map(|l| l.count())
        .sum()
    }

    /// Acknowledged messages that have not yet reached every place they
    /// must: how many, and the first few.
    pub(super) fn missing(&self) -> (usize, Vec<String>) {
        let mut count = 0;
        let mut examples = Vec::new();
        let mut note = |what: String| {
            count += 1;
            if examples.len() < 5 {
                examples.push(what);
            }
        };
        let (upper, slow) = (self.words_upper.snapshot(), self.words_slow.snapshot());
        for seq in self.words_acked.marked() {
            if !has(&upper, seq) {
                note(format!(
                    "words {seq}: neither in words/upper nor in words.upper"
                ));
            }
            if !has(&slow, seq) {
                note(format!("words {seq}: not in words/slow"));
            }
        }
        let (done, dead) = (self.jobs_done.snapshot(), self.jobs_dead.snapshot());
        for seq in self.jobs_acked.marked() {
            let (bits, place) = if seq % FAIL_EVERY == 0 {
                (&dead, "jobs.dead")
            } else {
                (&done, "jobs.done")
            };
            if !has(bits, seq) {
                note(format!("jobs {seq}: not in {place}"));
            }
        }
        (count, examples)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Topic {
    Words,
    Jobs,
}

impl Topic {
    pub(super) fn name(self) -> &'static str {
        match self {
            Topic::Words => "words",
            Topic::Jobs => "jobs",
        }
    }
}

/// The sequence number at the start of a body (after `v2:` if the
/// `prefixed` version of the plugin wrote it).
pub(super) fn sequence(body: &[u8]) -> Option<u64> {
    let body = body.strip_prefix(b"v2:").unwrap_or(body);
    std::str::from_utf8(body.get(..10)?).ok()?.parse().ok()
}
