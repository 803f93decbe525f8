//! Reading records back from a segment file, and the recovery scan that
//! counts a segment's good records when a queue is opened.
//!
//! A bad record at the end of the newest segment is a torn write from a
//! crash (it was never acknowledged); anywhere else it is damage. Either
//! way the records after it in that file are not read, and it is logged
//! with the file and offset.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::record::{self, PAYLOAD_FIXED_LEN, RECORD_HEADER_LEN, RecordError, StoredMessage};

/// Why a record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// Reads one record; returns it and its length on disk.
pub fn read_record(
    reader: &mut impl Read,
    max_payload: u64,
) -> Result<(StoredMessage, u64), ReadError> {
    let mut header = [0u8; RECORD_HEADER_LEN];
    read_exactly(reader, &mut header)?;
    let (len, crc) = record::decode_header(&header, max_payload)?;
    let mut fixed = [0u8; PAYLOAD_FIXED_LEN];
    read_exactly(reader, &mut fixed)?;
    let mut body = vec![0u8; len - PAYLOAD_FIXED_LEN];
    read_exactly(reader, &mut body)?;
    let stored = record::decode_payload(&fixed, body, crc)?;
    Ok((stored, (RECORD_HEADER_LEN + len) as u64))
}

/// `read_exact`, reporting a short file as a truncated record.
fn read_exactly(reader: &mut impl Read, buf: &mut [u8]) -> Result<(), ReadError> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => {
                return Err(RecordError::Truncated {
                    needed: buf.len(),
                    available: filled,
                }
                .into());
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Counts the good records of a segment from `from` on (see the module
/// doc for what a bad one means).
pub fn scan_segment(path: &Path, from: u64, max_payload: u64, newest: bool) -> u64 {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "DISKQUEUE: cannot open a segment; its messages are skipped");
            return 0;
        }
    };
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    if let Err(e) = reader.seek(SeekFrom::Start(from)) {
        tracing::error!(file = %path.display(), error = %e, "DISKQUEUE: cannot read a segment; its messages are skipped");
        return 0;
    }
    let mut offset = from;
    let mut records = 0;
    while offset < size {
        match read_record(&mut reader, max_payload) {
            Ok((_, len)) => {
                offset += len;
                records += 1;
            }
            Err(ReadError::Record(e)) if newest => {
                tracing::warn!(file = %path.display(), offset, bytes = size - offset, error = %e,
                    "DISKQUEUE: torn record at the end of the newest segment (a write cut short by a crash); it was never acknowledged and is skipped");
                break;
            }
            Err(e) => {
                tracing::error!(file = %path.display(), offset, error = %e,
                    "DISKQUEUE: corrupt segment; the records after this offset are skipped");
                break;
            }
        }
    }
    records
}
