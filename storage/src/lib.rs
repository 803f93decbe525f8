//! Wasq's storage layer: what survives a restart. It sits below the broker
//! and knows nothing of topics, channels or consumers: the broker owns one
//! [`BackingQueue`] per topic and channel and decides what goes in.
//!
//! - [`backing`]: the queue interface (nsqd's `BackendQueue`): every call
//!   returns at once, what it yields is waited for outside the owner's
//!   lock; [`DiskBacking`] for durable queues, [`DiscardQueue`] for
//!   ephemeral ones
//! - [`disk_backing`]: [`DiskStore`] opens [`DiskBacking`]s, handles whose
//!   file work is done by a [`worker`]: per queue, in order, on blocking
//!   threads
//! - [`pending`]: what an owner waits for (writes, reads, other work)
//! - [`disk_queue`]: a segmented append-only queue with a read checkpoint,
//!   put together from [`files`] (naming, atomic replace), [`writer`]
//!   (appends, roll-over), [`reader`] (the read cursor), [`recovery`] (the
//!   scan at open: torn tails, damage) and [`checkpoint`]
//! - [`record`]: one message on disk, with length and checksum
//! - [`sync`]: group commit for durable publishes
//! - [`metadata`]: `wasqd.dat`, nsqd's `nsqd.dat` in the same JSON shape
//! - [`held`]: `wasqd.held.dat`, what every queue held in memory at a
//!   clean shutdown, in one file until the next start puts it in the queues
//! - [`lock`]: `wasqd.lock`, one broker per data path
//! - [`due`]: due times of deferred messages on disk
//!
//! Only the worker (and start-up, on a blocking thread) calls what blocks;
//! nothing here holds a lock across file I/O that an async thread could
//! wait for.

pub mod backing;
pub mod checkpoint;
pub mod disk_backing;
pub mod disk_queue;
pub mod due;
pub mod files;
pub mod held;
pub mod lock;
pub mod metadata;
pub mod pending;
pub mod progress;
pub mod reader;
pub mod record;
pub mod recovery;
pub mod sync;
pub mod worker;
pub mod writer;

pub use backing::{BackingQueue, DiscardQueue};
pub use checkpoint::Location;
pub use disk_backing::{DiskBacking, DiskStore};
pub use disk_queue::{DiskQueue, DiskSettings};
pub use due::{due_from_unix_nanos, due_to_unix_nanos};
pub use lock::DataPathLock;
pub use pending::{PendingRead, PendingSync, PendingWork, PendingWrite, ReadBatch};
pub use record::StoredMessage;
pub use sync::{SyncState, SyncTicket};
