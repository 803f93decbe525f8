//! wasq-lookupd: an nsqlookupd that real NSQ nodes and clients can use.
//!
//! - [`registry`]: producers and their topics/channels (nsqlookupd's registration DB)
//! - [`protocol`]: the TCP protocol V1 that nsqd nodes register over
//! - [`http`]: the HTTP API clients and nsqadmin query
//! - [`server`]: listeners, start-up and shutdown

pub mod config;
pub mod http;
pub mod protocol;
pub mod registry;
pub mod server;

/// The nsqlookupd release whose behaviour this reproduces.
pub const NSQ_VERSION: &str = "1.3.0";
