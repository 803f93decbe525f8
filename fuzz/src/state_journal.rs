//! The plugin state journal's reader on arbitrary (damaged) file bytes:
//! framing and records may be refused, never panic or over-allocate, and
//! a record reads the same way every time.

use wasq_host::plugins::state::journal::whole_records;
use wasq_host::plugins::state::record::{Entry, read_legacy_record, read_record};

/// One input, as the fuzzer and the replay test give it.
pub fn run(data: &[u8]) {
    let (records, _torn) = whole_records(data);
    for record in records {
        let entries = |record: &[u8]| {
            let mut seen = Vec::new();
            let read = read_record(record, |entry: Entry<'_>| {
                seen.push(format!("{entry:?}"));
                Ok(())
            });
            (read.is_ok(), seen)
        };
        assert_eq!(entries(record), entries(record));
    }
    // What an earlier version left in its log partition, read at a start.
    let _ = read_legacy_record(data, |_, _, _| Ok(()));
    let _ = read_record(data, |_| Ok(()));
}
