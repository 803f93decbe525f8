//! Plugins that remember: a key-value store per plugin whose writes
//! commit with the message's FIN (issue 32; being built).
//!
//! - [`limits`]: how much a plugin may keep, and the errors a guest sees
//! - [`pending`]: one handler call's writes, read back by the call, kept
//!   until its message is finished
//! - [`store`]: the fjall store the writes commit to, a group of messages
//!   per batch, with a marker per message so that one delivered again
//!   after a crash is not counted twice
//!
//! Still to come: the imports (ABI v1, WIT), the group commit beside the
//! FINs, the manifest keys, the HTTP endpoints and the metrics.

pub mod limits;
pub mod pending;
pub mod store;
