//! Which keys changed since a handler call first looked: optimistic
//! concurrency between the instances of one plugin.
//!
//! A plugin with `concurrency` > 1 runs handlers side by side over one
//! store. Each call notes the commit sequence number when it first touches
//! the state (its snapshot) and every key it reads or writes and prefix it
//! scans. Its commit is refused (a conflict: the message is handled again)
//! if another call's commit changed one of those since the snapshot. So
//! every committed result is one a serial run could have produced: two
//! counters incremented at once never lose an increment.
//!
//! Only recent changes are remembered: past [`MAX_REMEMBERED`] keys, the
//! oldest are forgotten and a call whose snapshot is older than what was
//! forgotten conflicts (it cannot be shown not to).

use std::collections::{BTreeMap, BTreeSet};

/// Keys whose last change is remembered, per plugin.
pub const MAX_REMEMBERED: usize = 200_000;

/// What one message's handling touched, for its commit's check.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Touched {
    /// Keys read or written.
    pub keys: BTreeSet<Vec<u8>>,
    /// Prefixes scanned.
    pub prefixes: BTreeSet<Vec<u8>>,
}

/// The last change of recently changed keys of one plugin.
#[derive(Debug, Default)]
pub struct Versions {
    /// Key → (sequence number of its last commit, the call that made it).
    changed: BTreeMap<Vec<u8>, (u64, u64)>,
    /// Changes at or below this sequence number may have been forgotten.
    forgotten_through: u64,
}

impl Versions {
    /// Whether a commit of call `call`, whose snapshot is `snapshot`,
    /// conflicts with a change made since by another call.
    pub fn conflicts(&self, touched: &Touched, snapshot: u64, call: u64) -> bool {
        if snapshot < self.forgotten_through {
            return true;
        }
        let newer = |&(seq, by): &(u64, u64)| seq > snapshot && by != call;
        touched
            .keys
            .iter()
            .any(|key| self.changed.get(key).is_some_and(newer))
            || touched.prefixes.iter().any(|prefix| {
                self.changed
                    .range(prefix.clone()..)
                    .take_while(|(key, _)| key.starts_with(prefix))
                    .any(|(_, version)| newer(version))
            })
    }

    /// Records that commit `seq` of call `call` changed `keys`.
    pub fn record<'a>(&mut self, keys: impl Iterator<Item = &'a [u8]>, seq: u64, call: u64) {
        for key in keys {
            self.changed.insert(key.to_vec(), (seq, call));
        }
        if self.changed.len() > MAX_REMEMBERED {
            self.forget_older_half();
        }
    }

    /// Forgets the older half of the remembered changes.
    fn forget_older_half(&mut self) {
        let mut seqs: Vec<u64> = self.changed.values().map(|&(seq, _)| seq).collect();
        let middle = seqs.len() / 2;
        let (_, &mut cut, _) = seqs.select_nth_unstable(middle);
        self.changed.retain(|_, &mut (seq, _)| seq > cut);
        self.forgotten_through = self.forgotten_through.max(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touched(keys: &[&[u8]], prefixes: &[&[u8]]) -> Touched {
        Touched {
            keys: keys.iter().map(|k| k.to_vec()).collect(),
            prefixes: prefixes.iter().map(|p| p.to_vec()).collect(),
        }
    }

    #[test]
    fn a_change_after_the_snapshot_by_another_call_conflicts() {
        let mut versions = Versions::default();
        versions.record([&b"count/a"[..]].into_iter(), 5, 1);
        let reader = touched(&[b"count/a"], &[]);
        assert!(
            versions.conflicts(&reader, 4, 2),
            "changed after snapshot 4"
        );
        assert!(!versions.conflicts(&reader, 5, 2), "seen by snapshot 5");
        assert!(
            !versions.conflicts(&reader, 4, 1),
            "its own call's earlier message"
        );
        assert!(!versions.conflicts(&touched(&[b"count/b"], &[]), 0, 2));
    }

    #[test]
    fn a_scanned_prefix_conflicts_with_any_change_under_it() {
        let mut versions = Versions::default();
        versions.record([&b"sum/10"[..]].into_iter(), 3, 1);
        assert!(versions.conflicts(&touched(&[], &[b"sum/"]), 2, 2));
        assert!(versions.conflicts(&touched(&[], &[b""]), 2, 2));
        assert!(!versions.conflicts(&touched(&[], &[b"sum/2"]), 2, 2));
        assert!(!versions.conflicts(&touched(&[], &[b"timer/"]), 2, 2));
    }

    #[test]
    fn forgetting_makes_old_snapshots_conflict() {
        let mut versions = Versions::default();
        for seq in 1..=(MAX_REMEMBERED as u64 + 1) {
            versions.record([seq.to_string().as_bytes()].into_iter(), seq, seq);
        }
        assert!(versions.changed.len() <= MAX_REMEMBERED / 2 + 1);
        let untouched = touched(&[b"never"], &[]);
        assert!(versions.conflicts(&untouched, 10, 0), "snapshot too old");
        assert!(!versions.conflicts(&untouched, MAX_REMEMBERED as u64, 0));
    }
}
