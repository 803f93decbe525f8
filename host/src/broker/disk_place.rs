//! Where a message sits in its queue's disk file, if anywhere, in 16
//! bytes. An `Option<Location>` takes 24 (its tag, padded), and every
//! queued and every in-flight message carries one: 8 bytes of each slot of
//! a ready queue or an in-flight table, so of the memory a backlog of
//! small messages grows into.

use wasq_storage::Location;

/// No message sits at this segment: disk segments are numbered from 0.
const NOWHERE: Location = Location {
    segment: u64::MAX,
    offset: 0,
};

/// An `Option<Location>`, packed (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskPlace(Location);

impl DiskPlace {
    /// Not on disk.
    pub const NONE: DiskPlace = DiskPlace(NOWHERE);

    pub fn get(self) -> Option<Location> {
        (self.0 != NOWHERE).then_some(self.0)
    }
}

impl From<Option<Location>> for DiskPlace {
    fn from(location: Option<Location>) -> DiskPlace {
        debug_assert!(location != Some(NOWHERE), "a segment numbered u64::MAX");
        DiskPlace(location.unwrap_or(NOWHERE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_comes_back_as_it_went_in() {
        let at = Location {
            segment: 0,
            offset: 0,
        };
        assert_eq!(DiskPlace::from(Some(at)).get(), Some(at));
        assert_eq!(DiskPlace::from(None).get(), None);
        assert_eq!(DiskPlace::NONE.get(), None);
        assert_eq!(std::mem::size_of::<DiskPlace>(), 16);
    }
}
