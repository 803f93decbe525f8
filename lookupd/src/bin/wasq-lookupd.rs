//! `wasq-lookupd`: a standalone nsqlookupd-compatible discovery daemon.

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;
use wasq_lookupd::config::LookupdOptions;
use wasq_lookupd::server;
use wasq_nsq::log_prefix::Prefixed;

fn main() -> ExitCode {
    wasq_nsq::open_files::raise_limit();
    let options = match LookupdOptions::from_args() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("wasq-lookupd: {message}");
            return ExitCode::from(2);
        }
    };
    let level = match options.log_level.to_ascii_lowercase().as_str() {
        "warning" | "warn" => "warn",
        "fatal" => "error",
        other => other,
    }
    .to_string();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(level))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .event_format(Prefixed {
            prefix: options.log_prefix.clone(),
            inner: tracing_subscriber::fmt::format().with_target(false),
        })
        .init();
    wasq_nsq::signals::run_until_signal(
        "wasq-lookupd",
        options.exit_on_stdin_eof,
        || server::start(&options),
        server::Running::stop,
    )
}
