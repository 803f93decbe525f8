//! What a handler call hands to the store once its messages' outcomes are
//! known: the writes of the messages that succeeded, what the call looked
//! at (for the conflict check), and a marker per message.

use std::sync::Arc;

use wasq_storage::Location;

use super::limits::{StateBytes, TotalsDelta};
use super::plugin_store::PluginStore;
use crate::broker::message::MessageId;

/// A key a call read or wrote: its slot while the call runs, and what
/// the call commits there.
#[derive(Debug)]
pub struct Touched {
    pub key: StateBytes,
    /// Its [`super::hot::key_hash`].
    pub hash: u64,
    /// Its value as the call sees it (`None`: no value): the committed
    /// value the call read, or its latest write.
    pub value: Option<StateBytes>,
    /// Whether `value` is a write (committed with the call) rather than
    /// what the call read.
    pub written: bool,
}

/// Where a message sits in its channel: what a crash redelivers it from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub channel: String,
    pub location: Location,
    pub id: MessageId,
}

/// One handler call's commit: the writes of its successful messages,
/// atomic with their markers.
#[derive(Debug)]
pub struct Commit {
    pub plugin: Arc<PluginStore>,
    /// Every key the call looked at, those written with the last write
    /// of a successful message.
    pub keys: Vec<Touched>,
    /// Prefixes the call scanned.
    pub prefixes: Vec<Vec<u8>>,
    /// Recorded with the writes, to recognise a message if it comes back.
    pub markers: Vec<Marker>,
    /// What the writes change in the plugin's totals.
    pub delta: TotalsDelta,
    /// The commit sequence number when the call first touched the state.
    pub snapshot: u64,
    /// The handler call the writes were made in.
    pub call: u64,
}

impl Commit {
    /// The keys it writes, with their new values (`None`: deleted).
    pub fn changes(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> + Clone {
        self.keys
            .iter()
            .filter(|touched| touched.written)
            .map(|touched| (&*touched.key, touched.value.as_deref()))
    }
}

/// What became of a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    Applied,
    /// Another call changed what this one read: handle its messages again.
    Conflict,
}
