//! The read side of a disk queue: a cursor over the segments, in order.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};

use crate::checkpoint::Location;
use crate::files::QueueFiles;
use crate::record::StoredMessage;
use crate::recovery::{ReadError, read_record};

/// The next record to hand out.
#[derive(Debug)]
pub struct ReadCursor {
    at: Location,
    /// Records already read from the cursor's segment.
    read_in_segment: u64,
    file: Option<BufReader<File>>,
}

impl ReadCursor {
    /// A cursor at `at`, nothing read from its segment yet.
    pub fn at(at: Location) -> ReadCursor {
        ReadCursor {
            at,
            read_in_segment: 0,
            file: None,
        }
    }

    /// A cursor at the start of `segment`.
    pub fn start_of(segment: u64) -> ReadCursor {
        ReadCursor::at(Location::start_of(segment))
    }

    /// Where the next record starts.
    pub fn location(&self) -> Location {
        self.at
    }

    pub fn segment(&self) -> u64 {
        self.at.segment
    }

    /// Records already read from the cursor's segment.
    pub fn read_in_segment(&self) -> u64 {
        self.read_in_segment
    }

    /// Reads the record at the cursor and moves past it.
    pub fn read_one(
        &mut self,
        files: &QueueFiles,
        max_payload: u64,
    ) -> Result<(StoredMessage, Location), ReadError> {
        let location = self.at;
        if self.file.is_none() {
            let mut file = File::open(files.segment(location.segment))?;
            file.seek(SeekFrom::Start(location.offset))?;
            self.file = Some(BufReader::with_capacity(64 * 1024, file));
        }
        let reader = self.file.as_mut().expect("opened above");
        let (stored, len) = read_record(reader, max_payload)?;
        self.at.offset += len;
        self.read_in_segment += 1;
        Ok((stored, location))
    }
}
