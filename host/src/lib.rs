//! Wasq host: an NSQ-compatible broker (`wasqd`).
//!
//! - [`broker`]: topics, channels, messages, in-flight and deferred queues;
//!   their disk queues are `wasq_storage`, a layer below
//! - [`protocol`]: the TCP protocol V2 that NSQ clients speak
//! - [`http`]: nsqd's HTTP API
//! - [`lookup`]: registration with nsqlookupd (embedded and configured ones)
//! - [`lookupd_nodes`]: asking lookupds which nodes they know
//! - [`metrics`]: GET /metrics for Prometheus
//! - [`plugins`]: WebAssembly consumers inside the broker
//! - [`server`]: start-up, listeners and shutdown
//! - [`statsd`]: pushing stats to a statsd daemon, as nsqd
//! - [`allocator`]: glibc malloc set up for a long-running process

pub mod allocator;
pub mod auth;
pub mod broker;
pub mod config;
pub mod http;
pub mod lookup;
pub mod lookupd_nodes;
pub mod metrics;
pub mod plugins;
pub mod protocol;
pub mod quick_client;
pub mod security;
pub mod server;
pub mod statsd;
pub mod tls;
