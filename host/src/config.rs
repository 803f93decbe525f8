//! Command-line options of `wasqd`, named and defaulted like nsqd's.
//!
//! nsqd users keep their scripts: the flag names are nsqd's, durations use Go's
//! syntax (`60s`, `1m0s`, `250ms`), and Go's single-dash spelling
//! (`-tcp-address=...`) is accepted too (see [`normalize_go_flags`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, Parser, ValueEnum};

use wasq_nsq::config_file::{ConfigNames, merge_config_file};
pub use wasq_nsq::duration::{go_duration, parse_go_duration};
use wasq_nsq::flags::normalize_go_flags;
pub use wasq_nsq::flags::parse_listen_address;
use wasq_storage::DiskSettings;

use crate::broker::message::{MAX_NODE_ID, default_node_id};
pub use crate::tls::{ClientAuthPolicy, TlsMinVersion, TlsRequired};

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

    /// serve the plugin API (PUT and DELETE /plugins/NAME, GET /plugins/NAME/module): deploy plugins over HTTP; off loopback it needs --plugin-admin-token-file or verified client certificates
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub plugin_admin: bool,

    /// file of bearer tokens for the plugin API, one per line: NAME:TOKEN (NAME is who the log says made a change) or TOKEN alone
    #[arg(long)]
    pub plugin_admin_token_file: Option<PathBuf>,

    /// client certificate common name allowed to use the plugin API over HTTPS (repeatable; default: any certificate --tls-root-ca-file verifies, with --tls-client-auth-policy=require-verify)
    #[arg(long = "plugin-admin-cert-cn")]
    pub plugin_admin_cert_cns: Vec<String>,

    /// largest module, in bytes, the plugin API takes
    #[arg(long, default_value_t = 64 << 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub plugin_admin_max_module_size: u64,

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

    /// lookupd HTTP address whose nodes the dashboard shows beside this one (repeatable; the cluster view, as nsqadmin's flag)
    #[arg(long = "lookupd-http-address")]
    pub lookupd_http_addresses: Vec<String>,

    /// <addr>:<port> to listen on for HTTPS clients (only with --tls-cert and --tls-key)
    #[arg(long, default_value = "127.0.0.1:4152", value_parser = parse_listen_address)]
    pub https_address: SocketAddr,

    /// path to certificate file (PEM; with --tls-key, enables TLS: the IDENTIFY upgrade and HTTPS)
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,

    /// path to key file (PEM)
    #[arg(long)]
    pub tls_key: Option<PathBuf>,

    /// path to certificate authority file: verifies client certificates (require-verify) and auth servers over https
    #[arg(long)]
    pub tls_root_ca_file: Option<PathBuf>,

    /// client certificate auth policy ('require' or 'require-verify'); implies --tls-required
    #[arg(long, value_enum)]
    pub tls_client_auth_policy: Option<ClientAuthPolicy>,

    /// require TLS for client connections (true, false, tcp-https: TCP only, plain HTTP stays open)
    #[arg(long, default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = TlsRequired::parse)]
    pub tls_required: TlsRequired,

    /// minimum TLS version acceptable ('tls1.0', 'tls1.1', 'tls1.2' or 'tls1.3'; Wasq speaks TLS 1.2 and 1.3, so anything below tls1.3 means TLS 1.2)
    #[arg(long, value_enum, default_value = "tls1.0", ignore_case = true)]
    pub tls_min_version: TlsMinVersion,

    /// enable snappy feature negotiation (client compression)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub snappy: bool,

    /// enable deflate feature negotiation (client compression)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub deflate: bool,

    /// max deflate compression level a client can negotiate (> values == > CPU usage)
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(i64).range(1..=9))]
    pub max_deflate_level: i64,

    /// <addr>:<port> or a full url to query auth server (may be given multiple times); plugins need no secret
    #[arg(long = "auth-http-address")]
    pub auth_http_addresses: Vec<String>,

    /// timeout for HTTP connect (auth server)
    #[arg(long, default_value = "2s", value_parser = parse_go_duration)]
    pub http_client_connect_timeout: Duration,

    /// timeout for HTTP request (auth server)
    #[arg(long, default_value = "5s", value_parser = parse_go_duration)]
    pub http_client_request_timeout: Duration,

    /// maximum channel consumer connection count per wasqd instance (0: unlimited; plugins count as one consumer each)
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..))]
    pub max_channel_consumers: i64,

    /// TCP port that will be registered with lookupd (default: the TCP port this wasqd is listening on)
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16))]
    pub broadcast_tcp_port: u16,

    /// HTTP port that will be registered with lookupd (default: the HTTP port this wasqd is listening on)
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16))]
    pub broadcast_http_port: u16,

    /// unique part for message IDs, (int) in range [0,1024) (default is hash of hostname)
    #[arg(long, value_parser = clap::value_parser!(i64).range(0..=MAX_NODE_ID))]
    pub node_id: Option<i64>,

    /// log message prefix
    #[arg(long, default_value = "[nsqd] ")]
    pub log_prefix: String,

    /// [deprecated] has no effect, use --log-level
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub verbose: bool,

    /// [deprecated] use --node-id
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub worker_id: bool,

    /// accepted for nsqd compatibility: Wasq keeps each channel's in-flight and deferred messages in time order and wakes exactly when the next one is due, so there is no scan to tune
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..))]
    pub queue_scan_selection_count: i64,

    /// accepted for nsqd compatibility (see --queue-scan-selection-count)
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(i64).range(1..))]
    pub queue_scan_worker_pool_max: i64,

    /// UDP <addr>:<port> of a statsd daemon for pushing stats
    #[arg(long)]
    pub statsd_address: Option<String>,

    /// prefix used for keys sent to statsd (%s for host replacement)
    #[arg(long, default_value = "nsq.%s")]
    pub statsd_prefix: String,

    /// duration between pushing to statsd
    #[arg(long, default_value = "1m0s", value_parser = parse_go_duration)]
    pub statsd_interval: Duration,

    /// toggle sending memory stats to statsd (Wasq sends the resident set, mem.resident_bytes, in place of Go's heap figures)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub statsd_mem_stats: bool,

    /// the size in bytes of statsd UDP packets
    #[arg(long, default_value_t = 508, value_parser = clap::value_parser!(i64).range(1..=65507))]
    pub statsd_udp_packet_size: i64,

    /// omit ephemeral topics and channels from statsd
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub statsd_exclude_ephemeral: bool,

    /// message processing time percentiles (as float (0, 1.0]) to track (can be specified multiple times or comma separated '1.0,0.99,0.95', default none)
    #[arg(long = "e2e-processing-latency-percentile", value_delimiter = ',')]
    pub e2e_processing_latency_percentiles: Vec<f64>,

    /// calculate end to end latency quantiles for this duration of time
    #[arg(long, value_parser = parse_go_duration, default_value = "10m0s")]
    pub e2e_processing_latency_window_time: Duration,

    /// path to config file (TOML, keys by nsqd's names such as mem_queue_size; flags override it)
    #[arg(long)]
    pub config: Option<PathBuf>,

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
    /// Parses the process arguments (accepting Go-style single-dash flags)
    /// and the `--config` file they name; `Err` is a config file's mistake.
    pub fn from_args() -> Result<Options, String> {
        let args = normalize_go_flags(std::env::args(), SWITCHES);
        let args = merge_config_file(Options::command(), args, &CONFIG_NAMES)?;
        Ok(Options::parse_from(args))
    }

    /// What `--e2e-processing-latency-percentile` asks channels to keep.
    pub fn latency_settings(&self) -> Option<crate::broker::latency::LatencySettings> {
        (!self.e2e_processing_latency_percentiles.is_empty()).then(|| {
            crate::broker::latency::LatencySettings {
                percentiles: self.e2e_processing_latency_percentiles.clone(),
                window: self.e2e_processing_latency_window_time,
            }
        })
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
        if self.statsd_interval.is_zero() {
            return Err("--statsd-interval must be positive".into());
        }
        if let Some(bad) = self
            .e2e_processing_latency_percentiles
            .iter()
            .find(|p| !(**p > 0.0 && **p <= 1.0))
        {
            return Err(format!("invalid E2E processing latency percentile: {bad}"));
        }
        if self.tls_required() != TlsRequired::No
            && (self.tls_cert.is_none() || self.tls_key.is_none())
        {
            return Err("cannot require TLS client connections without TLS key and cert".into());
        }
        Ok(())
    }

    /// Where queues, metadata and the plugin cache live.
    pub fn data_dir(&self) -> PathBuf {
        self.data_path.clone().unwrap_or_else(|| PathBuf::from("."))
    }

    /// Where compiled plugin modules are cached.
    pub fn plugin_cache_dir(&self) -> PathBuf {
        self.data_dir().join("plugin-cache")
    }

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

    /// `--tls-required`, raised to `true` by a client auth policy as in nsqd.
    pub fn tls_required(&self) -> TlsRequired {
        if self.tls_client_auth_policy.is_some() && self.tls_required == TlsRequired::No {
            TlsRequired::Yes
        } else {
            self.tls_required
        }
    }

    /// A `--broadcast-*-port`, or the port `bound` listens on when it is 0.
    pub fn broadcast_port(&self, flag: u16, bound: SocketAddr) -> u16 {
        if flag == 0 { bound.port() } else { flag }
    }

    /// `--node-id`, or nsqd's default derived from the host name.
    pub fn node_id(&self) -> i64 {
        self.node_id.unwrap_or_else(|| default_node_id(&hostname()))
    }

    /// The address advertised to lookupd and shown in /info.
    pub fn broadcast_address(&self) -> String {
        self.broadcast_address.clone().unwrap_or_else(hostname)
    }
}

/// nsqd's config-file names where they are not the flag's (see
/// `wasq_nsq::config_file`).
const CONFIG_NAMES: ConfigNames = ConfigNames {
    renamed: &[
        ("node-id", "id"),
        ("lookupd-tcp-address", "nsqlookupd_tcp_addresses"),
        ("lookupd-http-address", "lookupd_http_addresses"),
        ("auth-http-address", "auth_http_addresses"),
        (
            "e2e-processing-latency-percentile",
            "e2e_processing_latency_percentiles",
        ),
    ],
    not_in_file: &["config", "exit-on-stdin-eof"],
};

/// Flags that take no value (so the argument after them is not a value).
const SWITCHES: &[&str] = &[
    "--version",
    "--help",
    "--exit-on-stdin-eof",
    "--plugins-watch",
    "--plugin-admin",
    "--tls-required",
    "--snappy",
    "--deflate",
    "--statsd-mem-stats",
    "--statsd-exclude-ephemeral",
    "--verbose",
    "--worker-id",
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
