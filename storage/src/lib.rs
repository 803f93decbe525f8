//! Wasq's storage layer: what survives a restart. It sits below the broker
//! and knows nothing of topics, channels or consumers: the broker owns one
//! [`BackingQueue`] per topic and channel and decides what goes in.
//!
//! - [`backing`]: the queue interface (nsqd's `BackendQueue`), with
//!   [`DiskQueue`] for durable queues and [`DiscardQueue`] for ephemeral ones
//! - [`disk_queue`]: a segmented append-only queue with a read checkpoint,
//!   put together from [`files`] (naming, atomic replace), [`writer`]
//!   (appends, roll-over), [`reader`] (the read cursor), [`recovery`] (the
//!   scan at open: torn tails, damage) and [`checkpoint`]
//! - [`record`]: one message on disk, with length and checksum
//! - [`sync`]: group commit for durable publishes
//! - [`metadata`]: `wasqd.dat`, nsqd's `nsqd.dat` in the same JSON shape
//! - [`lock`]: `wasqd.lock`, one broker per data path
//! - [`due`]: due times of deferred messages on disk
//!
//! Everything here that touches a file blocks: the broker calls it on
//! blocking threads or in short sections, and its module docs say which.

pub mod backing;
pub mod checkpoint;
pub mod disk_queue;
pub mod due;
pub mod files;
pub mod lock;
pub mod metadata;
pub mod reader;
pub mod record;
pub mod recovery;
pub mod sync;
pub mod writer;

pub use backing::{BackingQueue, DiscardQueue};
pub use checkpoint::Location;
pub use disk_queue::{DiskQueue, DiskSettings};
pub use due::{due_from_unix_nanos, due_to_unix_nanos};
pub use lock::DataPathLock;
pub use record::StoredMessage;
pub use sync::{PendingSync, SyncState, SyncTicket};
