//! The writes one handler call makes to its plugin's state, before they
//! commit with the message's FIN (or are dropped with a retry, a
//! dead-letter or a trap).
//!
//! Reads inside the call see the call's own writes first, then the store.
//! Every write is checked against the plugin's limits as it is made, with
//! the plugin's committed totals plus what this call already added, so a
//! guest learns at the write that went over, not at the commit. A counter
//! is kept as decimal text ("42"): readable as it is in
//! `GET /plugins/NAME/state`, and the same bytes in every language.

use std::collections::BTreeMap;

use super::limits::{Entries, StateError, StateLimits, Totals};
use super::versions::Touched;

/// One call's writes: each key's new value, `None` for a deletion; and
/// what the call read, for the commit's conflict check.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PendingWrites {
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// What the writes change in the plugin's totals once committed.
    delta: TotalsDelta,
    touched: Touched,
}

/// A change of [`Totals`]: bytes and keys added (negative: removed).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TotalsDelta {
    pub bytes: i64,
    pub keys: i64,
}

impl TotalsDelta {
    /// This change and `other` together.
    pub fn plus(self, other: TotalsDelta) -> TotalsDelta {
        TotalsDelta {
            bytes: self.bytes + other.bytes,
            keys: self.keys + other.keys,
        }
    }

    /// `totals` with this change applied.
    pub fn applied_to(self, totals: Totals) -> Totals {
        Totals {
            bytes: totals.bytes.saturating_add_signed(self.bytes),
            keys: totals.keys.saturating_add_signed(self.keys),
        }
    }
}

/// The size a key and its value count for in the plugin's total.
fn entry_bytes(key: &[u8], value: &[u8]) -> i64 {
    (key.len() + value.len()) as i64
}

impl PendingWrites {
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// The writes, in key order: what the commit applies.
    pub fn writes(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        self.writes
            .iter()
            .map(|(key, value)| (key.as_slice(), value.as_deref()))
    }

    pub fn delta(&self) -> TotalsDelta {
        self.delta
    }

    /// Takes `later`'s writes over these (what a later message of a batch
    /// wrote): the merged view of a batch's earlier messages.
    pub fn absorb(&mut self, later: &PendingWrites) {
        for (key, value) in &later.writes {
            self.writes.insert(key.clone(), value.clone());
        }
        self.delta = self.delta.plus(later.delta);
    }

    /// The keys and prefixes the call read or wrote.
    pub fn touched(&self) -> &Touched {
        &self.touched
    }

    /// This call's own write of `key`, if it made one (`Some(None)`: it
    /// deleted it). Looking does not count as touching.
    pub fn written(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.writes.get(key).map(|value| value.as_deref())
    }

    /// The value of `key` as this call sees it: its own write if it made
    /// one, else what `committed` (the store) holds.
    pub fn get(
        &mut self,
        key: &[u8],
        committed: impl FnOnce(&[u8]) -> Result<Option<Vec<u8>>, StateError>,
    ) -> Result<Option<Vec<u8>>, StateError> {
        if !self.touched.keys.contains(key) {
            self.touched.keys.insert(key.to_vec());
        }
        match self.writes.get(key) {
            Some(written) => Ok(written.clone()),
            None => committed(key),
        }
    }

    /// Sets `key` to `value` if the limits allow it; `committed` reads the
    /// store, `totals` are the plugin's committed totals.
    pub fn set(
        &mut self,
        key: &[u8],
        value: Vec<u8>,
        limits: &StateLimits,
        totals: Totals,
        committed: impl FnOnce(&[u8]) -> Result<Option<Vec<u8>>, StateError>,
    ) -> Result<(), StateError> {
        limits.check_key(key)?;
        limits.check_value(&value)?;
        let old = self.get(key, committed)?;
        let mut delta = self.delta;
        delta.bytes += entry_bytes(key, &value);
        if let Some(old) = &old {
            delta.bytes -= entry_bytes(key, old);
        } else {
            delta.keys += 1;
        }
        limits.check_total(delta.applied_to(totals))?;
        self.delta = delta;
        self.writes.insert(key.to_vec(), Some(value));
        Ok(())
    }

    /// Deletes `key`; true if it had a value. Never over a limit.
    pub fn delete(
        &mut self,
        key: &[u8],
        limits: &StateLimits,
        committed: impl FnOnce(&[u8]) -> Result<Option<Vec<u8>>, StateError>,
    ) -> Result<bool, StateError> {
        limits.check_key(key)?;
        let old = self.get(key, committed)?;
        if let Some(old) = &old {
            self.delta.bytes -= entry_bytes(key, old);
            self.delta.keys -= 1;
        }
        self.writes.insert(key.to_vec(), None);
        Ok(old.is_some())
    }

    /// Adds `by` to the counter at `key` (absent: 0) and returns the new
    /// value; the value must be a decimal i64 ([`StateError::NotANumber`]
    /// otherwise) and the sum must not overflow.
    pub fn increment(
        &mut self,
        key: &[u8],
        by: i64,
        limits: &StateLimits,
        totals: Totals,
        committed: impl FnOnce(&[u8]) -> Result<Option<Vec<u8>>, StateError>,
    ) -> Result<i64, StateError> {
        limits.check_key(key)?;
        let old = self.get(key, committed)?;
        let current = match &old {
            None => 0,
            Some(text) => parse_counter(text)?,
        };
        let new = current.checked_add(by).ok_or(StateError::NotANumber)?;
        let text = new.to_string().into_bytes();
        // The value is known: no second look at the store.
        self.set(key, text, limits, totals, |_| Ok(old))?;
        Ok(new)
    }

    /// Up to `limit` entries whose keys start with `prefix`, in key order,
    /// as this call sees them: `committed` lists the store's (in key
    /// order, at most `limit` beyond any key this call deleted).
    pub fn scan(
        &mut self,
        prefix: &[u8],
        limit: usize,
        committed: impl FnOnce(&[u8], usize) -> Result<Entries, StateError>,
    ) -> Result<Entries, StateError> {
        self.touched.prefixes.insert(prefix.to_vec());
        self.view(prefix, limit, committed)
    }

    /// [`PendingWrites::scan`] without counting as touching: how a later
    /// message of a batch sees this one's writes.
    pub fn view(
        &self,
        prefix: &[u8],
        limit: usize,
        committed: impl FnOnce(&[u8], usize) -> Result<Entries, StateError>,
    ) -> Result<Entries, StateError> {
        let own: Vec<(&Vec<u8>, &Option<Vec<u8>>)> = self
            .writes
            .range(prefix.to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .collect();
        let deleted = own.iter().filter(|(_, value)| value.is_none()).count();
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> =
            committed(prefix, limit + deleted)?.into_iter().collect();
        for (key, value) in own {
            match value {
                Some(value) => merged.insert(key.clone(), value.clone()),
                None => merged.remove(key),
            };
        }
        Ok(merged.into_iter().take(limit).collect())
    }
}

/// A counter's value: decimal text of an i64.
pub fn parse_counter(text: &[u8]) -> Result<i64, StateError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or(StateError::NotANumber)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> StateLimits {
        StateLimits {
            max_key_bytes: 8,
            max_value_bytes: 16,
            max_total_bytes: 40,
        }
    }

    fn nothing(_: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(None)
    }

    #[test]
    fn a_call_reads_its_own_writes_before_the_store() {
        let mut pending = PendingWrites::default();
        let store = |_: &[u8]| Ok(Some(b"old".to_vec()));
        assert_eq!(pending.get(b"k", store).unwrap(), Some(b"old".to_vec()));
        pending
            .set(b"k", b"new".to_vec(), &limits(), Totals::default(), store)
            .unwrap();
        assert_eq!(pending.get(b"k", store).unwrap(), Some(b"new".to_vec()));
        assert!(pending.delete(b"k", &limits(), store).unwrap());
        assert_eq!(pending.get(b"k", store).unwrap(), None);
    }

    #[test]
    fn totals_follow_sets_overwrites_and_deletes() {
        let mut pending = PendingWrites::default();
        let totals = Totals::default();
        pending
            .set(b"a", b"1234".to_vec(), &limits(), totals, nothing)
            .unwrap();
        assert_eq!(pending.delta(), TotalsDelta { bytes: 5, keys: 1 });
        pending
            .set(b"a", b"12".to_vec(), &limits(), totals, nothing)
            .unwrap();
        assert_eq!(pending.delta(), TotalsDelta { bytes: 3, keys: 1 });
        // A key the store holds: replaced, then deleted.
        let stored = |_: &[u8]| Ok(Some(b"xyz".to_vec()));
        pending
            .set(b"b", b"1".to_vec(), &limits(), totals, stored)
            .unwrap();
        assert_eq!(pending.delta(), TotalsDelta { bytes: 1, keys: 1 });
        pending.delete(b"b", &limits(), stored).unwrap();
        assert_eq!(pending.delta(), TotalsDelta { bytes: -1, keys: 0 });
    }

    #[test]
    fn limits_refuse_the_write_that_goes_over_and_keep_the_rest() {
        let mut pending = PendingWrites::default();
        let totals = Totals { bytes: 30, keys: 3 };
        assert_eq!(
            pending.set(b"toolongkey", vec![], &limits(), totals, nothing),
            Err(StateError::KeyTooLarge)
        );
        assert_eq!(
            pending.set(b"k", vec![0; 17], &limits(), totals, nothing),
            Err(StateError::ValueTooLarge)
        );
        pending
            .set(b"k", vec![0; 9], &limits(), totals, nothing)
            .unwrap();
        assert_eq!(
            pending.set(b"j", vec![0; 1], &limits(), totals, nothing),
            Err(StateError::OverLimit),
            "30 + 10 already at the limit of 40"
        );
        assert_eq!(
            pending.writes().count(),
            1,
            "the refused writes left nothing"
        );
    }

    #[test]
    fn increments_count_in_decimal_text() {
        let mut pending = PendingWrites::default();
        let totals = Totals::default();
        assert_eq!(
            pending.increment(b"n", 5, &limits(), totals, nothing),
            Ok(5)
        );
        assert_eq!(
            pending.increment(b"n", -7, &limits(), totals, nothing),
            Ok(-2)
        );
        assert_eq!(pending.get(b"n", nothing).unwrap(), Some(b"-2".to_vec()));
        let stored = |_: &[u8]| Ok(Some(b"41".to_vec()));
        assert_eq!(
            pending.increment(b"m", 1, &limits(), totals, stored),
            Ok(42)
        );
        let text = |_: &[u8]| Ok(Some(b"forty".to_vec()));
        assert_eq!(
            pending.increment(b"t", 1, &limits(), totals, text),
            Err(StateError::NotANumber)
        );
        let max = |_: &[u8]| Ok(Some(i64::MAX.to_string().into_bytes()));
        assert_eq!(
            pending.increment(b"x", 1, &limits(), totals, max),
            Err(StateError::NotANumber),
            "overflow"
        );
    }

    #[test]
    fn a_scan_merges_the_calls_writes_with_the_store() {
        let mut pending = PendingWrites::default();
        let totals = Totals::default();
        pending
            .set(b"p/b", b"new".to_vec(), &limits(), totals, nothing)
            .unwrap();
        pending
            .set(b"q/x", b"other".to_vec(), &limits(), totals, nothing)
            .unwrap();
        pending
            .delete(b"p/c", &limits(), |_| Ok(Some(b"3".to_vec())))
            .unwrap();
        let store = |prefix: &[u8], limit: usize| {
            assert_eq!(prefix, b"p/");
            assert_eq!(limit, 3, "one more than asked: the call deleted one");
            Ok(vec![
                (b"p/a".to_vec(), b"1".to_vec()),
                (b"p/b".to_vec(), b"2".to_vec()),
                (b"p/c".to_vec(), b"3".to_vec()),
            ])
        };
        assert_eq!(
            pending.scan(b"p/", 2, store).unwrap(),
            vec![
                (b"p/a".to_vec(), b"1".to_vec()),
                (b"p/b".to_vec(), b"new".to_vec())
            ]
        );
    }
}
