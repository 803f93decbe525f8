//! What NSQ's daemons share, written once for wasqd and wasq-lookupd:
//! topic/channel name rules, Go's duration syntax, and the "V1" HTTP
//! response shape (`{"message":"CODE"}` errors, the `X-NSQ-Content-Type`
//! header, first-value query parameters), `--config` files, listening, the `--log-prefix`
//! log format, the open-files limit Go raises for them, and a daemon's
//! life from start-up (with its `--ready-file`) to a shutdown signal.

pub mod config_file;
pub mod duration;
pub mod flags;
pub mod http_v1;
pub mod listen;
pub mod log_prefix;
pub mod names;
pub mod open_files;
pub mod ready;
pub mod signals;
