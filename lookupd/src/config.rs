//! Flags of `wasq-lookupd`, named and defaulted as nsqlookupd's (but bound
//! to loopback unless told otherwise).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use wasq_nsq::config_file::{ConfigNames, merge_config_file};
use wasq_nsq::duration::parse_go_duration;
use wasq_nsq::flags::{normalize_go_flags, parse_listen_address};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "wasq-lookupd",
    version = concat!("v", env!("CARGO_PKG_VERSION"), " (nsqlookupd 1.3.0 compatible)"),
    about = "Wasq lookupd: NSQ discovery, wire-compatible with nsqlookupd",
    allow_negative_numbers = true,
    // Go's flag package lets a later flag override an earlier one, and a
    // flag overrides the --config file's value placed before it.
    args_override_self = true
)]
pub struct LookupdOptions {
    /// <addr>:<port> to listen on for TCP clients (protocol V1)
    #[arg(long, default_value = "127.0.0.1:4160", value_parser = parse_listen_address)]
    pub tcp_address: SocketAddr,

    /// <addr>:<port> to listen on for HTTP clients
    #[arg(long, default_value = "127.0.0.1:4161", value_parser = parse_listen_address)]
    pub http_address: SocketAddr,

    /// address of this lookupd node (defaults to the OS hostname)
    #[arg(long)]
    pub broadcast_address: Option<String>,

    /// duration of time a producer will remain in the active list since its last ping
    #[arg(long, default_value = "5m0s", value_parser = parse_go_duration)]
    pub inactive_producer_timeout: Duration,

    /// duration of time a producer will remain tombstoned if registration remains
    #[arg(long, default_value = "45s", value_parser = parse_go_duration)]
    pub tombstone_lifetime: Duration,

    /// log level: debug, info, warn, error or fatal
    #[arg(long, default_value = "info", ignore_case = true, value_parser = ["debug", "info", "warn", "warning", "error", "fatal"])]
    pub log_level: String,

    /// log message prefix
    #[arg(long, default_value = "[nsqlookupd] ")]
    pub log_prefix: String,

    /// [deprecated] has no effect, use --log-level
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub verbose: bool,

    /// path to config file (TOML, keys by nsqlookupd's names such as tombstone_lifetime; flags override it)
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,

    /// exit when standard input closes (lets a test harness or supervisor own the process)
    #[arg(long, hide = true)]
    pub exit_on_stdin_eof: bool,

    /// once listening, write the bound addresses to this file as JSON (for harnesses and supervisors)
    #[arg(long)]
    pub ready_file: Option<std::path::PathBuf>,
}

impl LookupdOptions {
    /// Parses the process arguments (accepting Go-style single-dash flags)
    /// and the `--config` file they name; `Err` is a config file's mistake.
    pub fn from_args() -> Result<LookupdOptions, String> {
        let args = normalize_go_flags(
            std::env::args(),
            &["--version", "--help", "--exit-on-stdin-eof", "--verbose"],
        );
        let names = ConfigNames {
            renamed: &[],
            not_in_file: &["config", "exit-on-stdin-eof"],
        };
        let args = merge_config_file(LookupdOptions::command(), args, &names)?;
        Ok(LookupdOptions::parse_from(args))
    }

    pub fn broadcast_address(&self) -> String {
        self.broadcast_address
            .clone()
            .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned())
    }
}
