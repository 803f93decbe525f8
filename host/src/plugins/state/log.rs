//! The store's log records: a group of commits' changes as one value of
//! fjall's `log` partition, so a group costs one insert however many keys
//! it writes (an insert per key into the partitions' memtables was most of
//! a counter's commit). The records are applied to the partitions in the
//! background and replayed after a crash (store.rs).
//!
//! A record is a run of sections, one per commit: plugin name (u16 length,
//! bytes), change count (u32), then per change the key (u16 length,
//! bytes), a tag (0 delete, 1 set) and for a set the value (u32 length,
//! bytes). Integers are little-endian. A record holds whole sections and
//! closes past [`RECORD_BYTES`].

use super::limits::StateError;

/// The size past which a record is closed and the next one begun.
pub const RECORD_BYTES: usize = 4 << 20;

/// Builds a group's records.
#[derive(Debug, Default)]
pub struct RecordWriter {
    closed: Vec<Vec<u8>>,
    open: Vec<u8>,
}

impl RecordWriter {
    /// Adds one commit's section: plugin `plugin`'s `changes`, keys with
    /// their new values (`None`: deleted).
    pub fn section<'a>(
        &mut self,
        plugin: &str,
        changes: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + Clone,
    ) {
        let out = &mut self.open;
        let (mut count, mut size) = (0u32, 6 + plugin.len());
        for (key, value) in changes.clone() {
            count += 1;
            size += 7 + key.len() + value.map_or(0, <[u8]>::len);
        }
        out.reserve(size);
        out.extend_from_slice(&(plugin.len() as u16).to_le_bytes());
        out.extend_from_slice(plugin.as_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        for (key, value) in changes {
            out.extend_from_slice(&(key.len() as u16).to_le_bytes());
            out.extend_from_slice(key);
            match value {
                None => out.push(0),
                Some(value) => {
                    out.push(1);
                    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
                    out.extend_from_slice(value);
                }
            }
        }
        if self.open.len() >= RECORD_BYTES {
            self.closed.push(std::mem::take(&mut self.open));
        }
    }

    /// The records, in order.
    pub fn finish(mut self) -> Vec<Vec<u8>> {
        if !self.open.is_empty() {
            self.closed.push(self.open);
        }
        self.closed
    }
}

/// Reads `record`, calling `apply(plugin, key, value)` per change in
/// order (`value` `None`: the key was deleted).
pub fn read_record(
    record: &[u8],
    mut apply: impl FnMut(&str, &[u8], Option<&[u8]>) -> Result<(), StateError>,
) -> Result<(), StateError> {
    let mut input = Input(record);
    while !input.0.is_empty() {
        let plugin_len = usize::from(u16::from_le_bytes(input.array()?));
        let plugin = std::str::from_utf8(input.take(plugin_len)?)
            .map_err(|_| corrupt())?
            .to_owned();
        let count = u32::from_le_bytes(input.array()?);
        for _ in 0..count {
            let key_len = usize::from(u16::from_le_bytes(input.array()?));
            let key = input.take(key_len)?;
            let value = match input.array::<1>()?[0] {
                0 => None,
                1 => {
                    let value_len = u32::from_le_bytes(input.array()?) as usize;
                    Some(input.take(value_len)?)
                }
                _ => return Err(corrupt()),
            };
            apply(&plugin, key, value)?;
        }
    }
    Ok(())
}

fn corrupt() -> StateError {
    StateError::Io("a plugin state log record is malformed".into())
}

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StateError> {
        if self.0.len() < n {
            return Err(corrupt());
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StateError> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_in_order_and_close_past_their_size() {
        let big = vec![7; RECORD_BYTES];
        let mut writer = RecordWriter::default();
        let small: [(&[u8], Option<&[u8]>); 2] = [(b"k/a", Some(b"1")), (b"k/b", None)];
        writer.section("counter", small.into_iter());
        writer.section("other", [(&b"big"[..], Some(&big[..]))].into_iter());
        writer.section("counter", std::iter::empty());
        let records = writer.finish();
        assert_eq!(records.len(), 2, "closed after the big section");
        let mut seen = Vec::new();
        for record in &records {
            read_record(record, |plugin, key, value| {
                seen.push((plugin.to_owned(), key.to_vec(), value.map(<[u8]>::len)));
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(
            seen,
            [
                ("counter".into(), b"k/a".to_vec(), Some(1)),
                ("counter".into(), b"k/b".to_vec(), None),
                ("other".into(), b"big".to_vec(), Some(RECORD_BYTES)),
            ]
        );
    }

    #[test]
    fn a_truncated_record_is_an_error_not_a_panic() {
        let mut writer = RecordWriter::default();
        writer.section("p", [(&b"key"[..], Some(&b"value"[..]))].into_iter());
        let record = writer.finish().remove(0);
        for cut in 0..record.len() {
            let result = read_record(&record[..cut], |_, _, _| Ok(()));
            assert!(cut == 0 || result.is_err(), "cut at {cut}");
        }
    }
}
