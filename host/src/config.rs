//! Command-line options of `wasqd`, named and defaulted like nsqd's.
//!
//! nsqd users keep their scripts: the flag names are nsqd's, durations use Go's
//! syntax (`60s`, `1m0s`, `250ms`), and Go's single-dash spelling
//! (`-tcp-address=...`) is accepted too (see [`normalize_go_flags`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

pub use wasq_nsq::duration::{go_duration, parse_go_duration};
use wasq_nsq::flags::normalize_go_flags;
pub use wasq_nsq::flags::parse_listen_address;
use wasq_storage::DiskSettings;

/// The NSQ release whose wire behaviour wasqd reproduces; clients and
/// nsqadmin read it from IDENTIFY, /info and /stats.
pub const NSQ_VERSION: &str = "1.3.0";

/// Wasq's own version, shown by `--version` and in /info as `wasq_version`.
pub const WASQ_VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Parser, Debug, Clone)]
#[command(
    name = "wasqd",
    version = VERSION_LINE,
    allow_negative_numbers = true,
    // Go's flag package lets a later flag override an earlier one.
    args_override_self = true,
    about = "Wasq: an NSQ-compatible message broker (nsqd drop-in) with WebAssembly consumers"
)]
pub struct Options {
    /// <addr>:<port> to listen on for TCP clients (protocol V2)
    #[arg(long, default_value = "127.0.0.1:4150", value_parser = parse_listen_address)]
    pub tcp_address: SocketAddr,

    /// <addr>:<port> to listen on for HTTP clients
    #[arg(long, default_value = "127.0.0.1:4151", value_parser = parse_listen_address)]
    pub http_address: SocketAddr,

    /// address that will be registered with lookupd (defaults to the OS hostname)
    #[arg(long)]
    pub broadcast_address: Option<String>,

    /// path to store disk-backed messages, metadata (wasqd.dat) and the compiled plugin cache; default: working directory
    #[arg(long)]
    pub data_path: Option<PathBuf>,

    /// number of messages to keep in memory per topic/channel before spilling to disk (0: every message is written to disk before OK)
    #[arg(long, default_value_t = 10000, value_parser = clap::value_parser!(i64).range(0..))]
    pub mem_queue_size: i64,

    /// number of bytes per diskqueue file before rolling
    #[arg(long, default_value_t = 104857600, value_parser = clap::value_parser!(i64).range(1..))]
    pub max_bytes_per_file: i64,

    /// number of messages per diskqueue fsync (1: every publish waits for its fsync, shared with concurrent ones)
    #[arg(long, default_value_t = 2500, value_parser = clap::value_parser!(i64).range(1..))]
    pub sync_every: i64,

    /// duration of time per diskqueue fsync
    #[arg(long, default_value = "2s", value_parser = parse_go_duration)]
    pub sync_timeout: Duration,

    /// maximum size of a single message in bytes
    #[arg(long, default_value_t = 1048576, value_parser = clap::value_parser!(i64).range(1..=i32::MAX as i64))]
    pub max_msg_size: i64,

    /// maximum size of a single command body (MPUB, IDENTIFY, AUTH)
    #[arg(long, default_value_t = 5242880, value_parser = clap::value_parser!(i64).range(1..=i32::MAX as i64))]
    pub max_body_size: i64,

    /// default duration to wait before auto-requeueing an unacknowledged message
    #[arg(long, default_value = "1m0s", value_parser = parse_go_duration)]
    pub msg_timeout: Duration,

    /// maximum duration a client may ask for with IDENTIFY msg_timeout
    #[arg(long, default_value = "15m0s", value_parser = parse_go_duration)]
    pub max_msg_timeout: Duration,

    /// maximum delay of a REQ or DPUB
    #[arg(long, default_value = "1h0m0s", value_parser = parse_go_duration)]
    pub max_req_timeout: Duration,

    /// maximum RDY count a client may set
    #[arg(long, default_value_t = 2500, value_parser = clap::value_parser!(i64).range(1..))]
    pub max_rdy_count: i64,

    /// maximum heartbeat interval a client may ask for
    #[arg(long, default_value = "1m0s", value_parser = parse_go_duration)]
    pub max_heartbeat_interval: Duration,

    /// maximum output buffer size a client may ask for
    #[arg(long, default_value_t = 65536, value_parser = clap::value_parser!(i64).range(64..))]
    pub max_output_buffer_size: i64,

    /// maximum output buffer timeout a client may ask for
    #[arg(long, default_value = "30s", value_parser = parse_go_duration)]
    pub max_output_buffer_timeout: Duration,

    /// minimum output buffer timeout a client may ask for
    #[arg(long, default_value = "25ms", value_parser = parse_go_duration)]
    pub min_output_buffer_timeout: Duration,

    /// default output buffer timeout (the longest a buffered message waits)
    #[arg(long, default_value = "250ms", value_parser = parse_go_duration)]
    pub output_buffer_timeout: Duration,

    /// timeout after which a silent client is dropped (clients heartbeat at half of it)
    #[arg(long, default_value = "1m0s", value_parser = parse_go_duration)]
    pub client_timeout: Duration,

    /// log level: debug, info, warn, error or fatal
    #[arg(long, default_value = "info", ignore_case = true)]
    pub log_level: LogLevel,

    /// directory of plugins (NAME.wasm or NAME.wat beside NAME.toml)
    #[arg(long, default_value = "plugins")]
    pub plugins_dir: PathBuf,

    /// reload plugins when their files change (false: only POST /plugins/NAME/reload)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub plugins_watch: bool,

    /// TCP address of the embedded lookupd (protocol V1)
    #[arg(long, default_value = "127.0.0.1:4160", value_parser = parse_listen_address)]
    pub lookupd_embedded_tcp_address: SocketAddr,

    /// HTTP address of the embedded lookupd
    #[arg(long, default_value = "127.0.0.1:4161", value_parser = parse_listen_address)]
    pub lookupd_embedded_http_address: SocketAddr,

    /// do not run the embedded lookupd (register only with --lookupd-tcp-address)
    #[arg(long)]
    pub no_embedded_lookupd: bool,

    /// lookupd TCP address to register with (repeatable)
    #[arg(long = "lookupd-tcp-address")]
    pub lookupd_tcp_addresses: Vec<String>,

    /// exit when standard input closes (lets a test harness or supervisor own the process)
    #[arg(long, hide = true)]
    pub exit_on_stdin_eof: bool,

    /// once serving (listeners bound, plugins loaded), write the bound addresses to this file as JSON
    #[arg(long)]
    pub ready_file: Option<std::path::PathBuf>,
}

/// nsqd's log levels; `fatal` logs only what stops the process.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARNING",
            LogLevel::Error => "ERROR",
            LogLevel::Fatal => "FATAL",
        }
    }

    /// The `tracing` filter directive for this level.
    pub fn filter(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error | LogLevel::Fatal => "error",
        }
    }

    /// Parses nsqd's spellings (`debug`, `INFO`, `warning`, ...).
    pub fn parse(text: &str) -> Option<LogLevel> {
        match text.trim().to_ascii_lowercase().as_str() {
            "debug" => Some(LogLevel::Debug),
            "info" => Some(LogLevel::Info),
            "warn" | "warning" => Some(LogLevel::Warn),
            "error" => Some(LogLevel::Error),
            "fatal" => Some(LogLevel::Fatal),
            _ => None,
        }
    }
}

impl Options {
    /// Parses the process arguments, accepting Go-style single-dash flags.
    pub fn from_args() -> Options {
        Options::parse_from(normalize_go_flags(std::env::args(), SWITCHES))
    }

    /// Cross-field checks that clap's per-flag parsers cannot express.
    pub fn validate(&self) -> Result<(), String> {
        if self.msg_timeout > self.max_msg_timeout {
            return Err(format!(
                "--msg-timeout ({}) must not exceed --max-msg-timeout ({})",
                go_duration(self.msg_timeout),
                go_duration(self.max_msg_timeout)
            ));
        }
        if self.max_msg_size > self.max_body_size {
            return Err(format!(
                "--max-msg-size ({}) must not exceed --max-body-size ({})",
                self.max_msg_size, self.max_body_size
            ));
        }
        if self.min_output_buffer_timeout > self.max_output_buffer_timeout {
            return Err(
                "--min-output-buffer-timeout must not exceed --max-output-buffer-timeout".into(),
            );
        }
        if self.max_heartbeat_interval < Duration::from_secs(1) {
            return Err("--max-heartbeat-interval must be at least 1s".into());
        }
        if self.client_timeout < Duration::from_secs(2) {
            return Err("--client-timeout must be at least 2s".into());
        }
        Ok(())
    }

    /// Where compiled plugin modules are cached.
    /// Where queues, metadata and the plugin cache live.
    pub fn data_dir(&self) -> PathBuf {
        self.data_path.clone().unwrap_or_else(|| PathBuf::from("."))
    }

    pub fn plugin_cache_dir(&self) -> PathBuf {
        self.data_dir().join("plugin-cache")
    }

    /// How topics and channels keep their messages.
    /// Where and how disk queues are kept.
    pub fn disk_settings(&self) -> DiskSettings {
        DiskSettings {
            dir: self.data_dir(),
            max_bytes_per_file: self.max_bytes_per_file as u64,
            sync_every: self.sync_every as u64,
            // Generous, so a restart with a lower --max-msg-size still
            // reads what was accepted before; it only bounds what a
            // damaged length field can make us allocate.
            max_payload: (self.max_body_size as u64).max(64 << 20) + 1024,
        }
    }

    /// The address advertised to lookupd and shown in /info.
    pub fn broadcast_address(&self) -> String {
        self.broadcast_address.clone().unwrap_or_else(hostname)
    }
}

/// Flags that take no value (so the argument after them is not a value).
const SWITCHES: &[&str] = &[
    "--version",
    "--help",
    "--exit-on-stdin-eof",
    "--plugins-watch",
];

const VERSION_LINE: &str = concat!("v", env!("CARGO_PKG_VERSION"), " (nsqd 1.3.0 compatible)");

/// The machine's host name, as nsqd reports it.
pub fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_nsqd() {
        let o = Options::parse_from(["wasqd"]);
        assert_eq!(o.max_msg_size, 1048576);
        assert_eq!(o.max_body_size, 5242880);
        assert_eq!(o.mem_queue_size, 10000);
        assert_eq!(o.max_rdy_count, 2500);
        assert_eq!(o.msg_timeout, Duration::from_secs(60));
        assert_eq!(o.max_msg_timeout, Duration::from_secs(900));
        assert_eq!(o.max_req_timeout, Duration::from_secs(3600));
        assert_eq!(o.tcp_address.to_string(), "127.0.0.1:4150");
        assert!(o.validate().is_ok());
    }
}
