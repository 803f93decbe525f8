//! The store's journal records (journal.rs): one per group of commits,
//! holding everything the group changes, so that one write makes the
//! group durable or not at all: each commit's changed keys, a marker per
//! message, and the plugins' new totals.
//!
//! A record is a run of entries, each a kind byte, then:
//!
//! - `1`, a commit's changes: plugin, change count (u32), then per change
//!   the key and its value: varint `0` for a deletion, else `1 + length`
//!   and the bytes;
//! - `2`, a marker: plugin, channel, segment and offset (varints), then
//!   the message id (16 bytes);
//! - `3`, a plugin's totals: plugin, bytes and keys (varints).
//!
//! Names and keys are a varint length and the bytes; varints are LEB128,
//! so a counter's key and value cost their bytes and three more.
//!
//! Earlier versions kept records as values of fjall's `log` partition, in
//! a format without kinds ([`read_legacy_record`]); a store they left is
//! replayed from there once when it is opened.

use wasq_storage::Location;

use super::commit::Marker;
use super::limits::{StateError, Totals};
use crate::broker::message::MessageId;

const CHANGES: u8 = 1;
const MARKER: u8 = 2;
const TOTALS: u8 = 3;

/// One entry of a record, as [`read_record`] hands it over.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry<'a> {
    /// `key` of `plugin` set to `value` (`None`: deleted).
    Change {
        plugin: &'a str,
        key: &'a [u8],
        value: Option<&'a [u8]>,
    },
    Marker {
        plugin: &'a str,
        marker: Marker,
    },
    Totals {
        plugin: &'a str,
        totals: Totals,
    },
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends a commit's changes to plugin `plugin`: keys with their new
/// values (`None`: deleted).
pub fn put_changes<'a>(
    out: &mut Vec<u8>,
    plugin: &str,
    changes: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + Clone,
) {
    let (mut count, mut size) = (0u32, 16 + plugin.len());
    for (key, value) in changes.clone() {
        count += 1;
        size += 4 + key.len() + value.map_or(0, <[u8]>::len);
    }
    out.reserve(size);
    out.push(CHANGES);
    put_bytes(out, plugin.as_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    for (key, value) in changes {
        put_bytes(out, key);
        match value {
            None => out.push(0),
            Some(value) => {
                put_varint(out, value.len() as u64 + 1);
                out.extend_from_slice(value);
            }
        }
    }
}

/// Appends the marker of a message whose writes plugin `plugin` commits.
pub fn put_marker(out: &mut Vec<u8>, plugin: &str, marker: &Marker) {
    out.push(MARKER);
    put_bytes(out, plugin.as_bytes());
    put_bytes(out, marker.channel.as_bytes());
    put_varint(out, marker.location.segment);
    put_varint(out, marker.location.offset);
    out.extend_from_slice(&marker.id.0);
}

/// Appends plugin `plugin`'s totals after the record's commits.
pub fn put_totals(out: &mut Vec<u8>, plugin: &str, totals: Totals) {
    out.push(TOTALS);
    put_bytes(out, plugin.as_bytes());
    put_varint(out, totals.bytes);
    put_varint(out, totals.keys);
}

/// Reads `record`, calling `apply` per entry in order.
pub fn read_record(
    record: &[u8],
    mut apply: impl FnMut(Entry<'_>) -> Result<(), StateError>,
) -> Result<(), StateError> {
    let mut input = Input(record);
    while !input.0.is_empty() {
        let [kind] = input.array()?;
        let plugin = input.name()?;
        match kind {
            CHANGES => {
                let count = u32::from_le_bytes(input.array()?);
                for _ in 0..count {
                    let key = input.bytes()?;
                    let value = match input.varint()? {
                        0 => None,
                        len => Some(input.take(usize::try_from(len - 1).map_err(|_| corrupt())?)?),
                    };
                    apply(Entry::Change { plugin, key, value })?;
                }
            }
            MARKER => {
                let channel = input.name()?.to_owned();
                let location = Location {
                    segment: input.varint()?,
                    offset: input.varint()?,
                };
                let id = MessageId(input.array()?);
                let marker = Marker {
                    channel,
                    location,
                    id,
                };
                apply(Entry::Marker { plugin, marker })?;
            }
            TOTALS => {
                let totals = Totals {
                    bytes: input.varint()?,
                    keys: input.varint()?,
                };
                apply(Entry::Totals { plugin, totals })?;
            }
            _ => return Err(corrupt()),
        }
    }
    Ok(())
}

/// Reads a record of the `log` partition earlier versions wrote: a run of
/// sections, one per commit: plugin name (u16 length, bytes), change count
/// (u32), then per change the key (u16 length, bytes), a tag (0 delete, 1
/// set) and for a set the value (u32 length, bytes), little-endian. Calls
/// `apply(plugin, key, value)` per change in order.
pub fn read_legacy_record(
    record: &[u8],
    mut apply: impl FnMut(&str, &[u8], Option<&[u8]>) -> Result<(), StateError>,
) -> Result<(), StateError> {
    let mut input = Input(record);
    while !input.0.is_empty() {
        let plugin_len = usize::from(u16::from_le_bytes(input.array()?));
        let plugin = std::str::from_utf8(input.take(plugin_len)?).map_err(|_| corrupt())?;
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
            apply(plugin, key, value)?;
        }
    }
    Ok(())
}

fn corrupt() -> StateError {
    StateError::Io("a plugin state journal record is malformed".into())
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

    fn varint(&mut self) -> Result<u64, StateError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let [byte] = self.array()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(corrupt())
    }

    fn bytes(&mut self) -> Result<&'a [u8], StateError> {
        let len = usize::try_from(self.varint()?).map_err(|_| corrupt())?;
        self.take(len)
    }

    fn name(&mut self) -> Result<&'a str, StateError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| corrupt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(segment: u64) -> Marker {
        Marker {
            channel: "ch".into(),
            location: Location {
                segment,
                offset: u64::MAX,
            },
            id: MessageId([7; 16]),
        }
    }

    fn entries(record: &[u8]) -> Result<Vec<String>, StateError> {
        let mut seen = Vec::new();
        read_record(record, |entry| {
            seen.push(format!("{entry:?}"));
            Ok(())
        })?;
        Ok(seen)
    }

    #[test]
    fn a_record_reads_back_in_order() {
        let big = vec![9; 300];
        let changes: [(&[u8], Option<&[u8]>); 3] =
            [(b"k/a", Some(b"1")), (b"k/b", None), (b"big", Some(&big))];
        let mut out = Vec::new();
        put_changes(&mut out, "counter", changes.into_iter());
        put_marker(&mut out, "counter", &marker(1 << 40));
        put_changes(&mut out, "other", std::iter::empty());
        put_totals(
            &mut out,
            "counter",
            Totals {
                bytes: 1 << 33,
                keys: 2,
            },
        );
        let mut read = Vec::new();
        read_record(&out, |entry| {
            read.push(match entry {
                Entry::Change { plugin, key, value } => {
                    format!("{plugin} {key:?} {:?}", value.map(<[u8]>::len))
                }
                Entry::Marker { plugin, marker: m } => {
                    assert_eq!(m, marker(1 << 40));
                    format!("{plugin} marker")
                }
                Entry::Totals { plugin, totals } => {
                    format!("{plugin} {} {}", totals.bytes, totals.keys)
                }
            });
            Ok(())
        })
        .unwrap();
        assert_eq!(
            read,
            [
                "counter [107, 47, 97] Some(1)",
                "counter [107, 47, 98] None",
                "counter [98, 105, 103] Some(300)",
                "counter marker",
                "counter 8589934592 2",
            ]
        );
    }

    #[test]
    fn a_counter_costs_its_bytes_and_three_more() {
        let mut out = Vec::new();
        put_changes(
            &mut out,
            "p",
            [(&b"count/1234"[..], Some(&b"42"[..]))].into_iter(),
        );
        let header = 1 + 2 + 4;
        assert_eq!(out.len() - header, 10 + 2 + 2);
    }

    #[test]
    fn a_record_cut_inside_an_entry_is_an_error_not_a_panic() {
        let mut out = Vec::new();
        put_changes(
            &mut out,
            "p",
            [(&b"key"[..], Some(&b"value"[..]))].into_iter(),
        );
        let first = out.len();
        put_marker(&mut out, "p", &marker(3));
        let second = out.len();
        put_totals(&mut out, "p", Totals { bytes: 8, keys: 1 });
        for cut in 1..out.len() {
            match cut {
                _ if cut == first => assert_eq!(entries(&out[..cut]).unwrap().len(), 1),
                _ if cut == second => assert_eq!(entries(&out[..cut]).unwrap().len(), 2),
                _ => assert!(entries(&out[..cut]).is_err(), "cut at {cut}"),
            }
        }
        assert_eq!(entries(&out).unwrap().len(), 3);
        assert!(entries(&[9, 0]).is_err(), "an unknown kind");
    }

    #[test]
    fn legacy_records_read_back() {
        let mut record = Vec::new();
        record.extend_from_slice(&7u16.to_le_bytes());
        record.extend_from_slice(b"counter");
        record.extend_from_slice(&2u32.to_le_bytes());
        for (key, value) in [(&b"k/a"[..], Some(&b"1"[..])), (b"k/b", None)] {
            record.extend_from_slice(&(key.len() as u16).to_le_bytes());
            record.extend_from_slice(key);
            match value {
                None => record.push(0),
                Some(value) => {
                    record.push(1);
                    record.extend_from_slice(&(value.len() as u32).to_le_bytes());
                    record.extend_from_slice(value);
                }
            }
        }
        let mut seen = Vec::new();
        read_legacy_record(&record, |plugin, key, value| {
            seen.push((plugin.to_owned(), key.to_vec(), value.map(<[u8]>::to_vec)));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            seen,
            [
                ("counter".into(), b"k/a".to_vec(), Some(b"1".to_vec())),
                ("counter".into(), b"k/b".to_vec(), None),
            ]
        );
        assert!(read_legacy_record(&record[..record.len() - 1], |_, _, _| Ok(())).is_err());
    }
}
