//! A listing of the keys under a prefix as seen through newer writes: a
//! handler call's writes over the store, and the store's commits not yet
//! applied to its partitions over what the partitions hold. Both lists are
//! in key order, so the view is one merge.

use std::cmp::Ordering;

use super::limits::{Entries, StateError};

/// Up to `limit` entries of `older` as `newer` changes them. `newer`:
/// sorted keys under the prefix, `None` for a deletion. `older(n)` lists
/// up to `n` entries in key order; it is asked for `limit` plus the
/// deletions, enough that what the deletions remove cannot leave a gap.
pub fn overlay(
    newer: &[(&[u8], Option<&[u8]>)],
    limit: usize,
    older: impl FnOnce(usize) -> Result<Entries, StateError>,
) -> Result<Entries, StateError> {
    let deletions = newer.iter().filter(|(_, value)| value.is_none()).count();
    let mut older = older(limit + deletions)?.into_iter().peekable();
    let mut newer = newer.iter().peekable();
    let mut out = Vec::with_capacity(limit.min(1024));
    while out.len() < limit {
        let order = match (older.peek(), newer.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((old, _)), Some((new, _))) => old.as_slice().cmp(new),
        };
        if order == Ordering::Less {
            out.extend(older.next());
            continue;
        }
        if order == Ordering::Equal {
            older.next();
        }
        if let Some((key, Some(value))) = newer.next() {
            out.push((key.to_vec(), value.to_vec()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(pairs: &[(&str, &str)]) -> Entries {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn newer_writes_replace_add_and_delete_in_key_order() {
        let newer: [(&[u8], Option<&[u8]>); 3] =
            [(b"p/b", Some(b"new")), (b"p/c", None), (b"p/d", Some(b"4"))];
        let older = |asked: usize| {
            assert_eq!(asked, 4, "one more than the limit: one deletion");
            Ok(entries(&[("p/a", "1"), ("p/b", "2"), ("p/c", "3")]))
        };
        assert_eq!(
            overlay(&newer, 3, older).unwrap(),
            entries(&[("p/a", "1"), ("p/b", "new"), ("p/d", "4")])
        );
    }

    #[test]
    fn the_limit_holds_on_either_side() {
        let newer: [(&[u8], Option<&[u8]>); 2] = [(b"a", Some(b"x")), (b"b", Some(b"y"))];
        let older = |_| Ok(entries(&[("c", "1")]));
        assert_eq!(overlay(&newer, 1, older).unwrap(), entries(&[("a", "x")]));
        assert_eq!(overlay(&[], 0, |_| Ok(entries(&[("c", "1")]))).unwrap(), []);
    }
}
