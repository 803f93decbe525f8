//! `wasq-lookupd`: a standalone nsqlookupd-compatible discovery daemon.

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;
use wasq_lookupd::config::LookupdOptions;
use wasq_lookupd::server;

fn main() -> ExitCode {
    let options = LookupdOptions::from_args();
    let level = match options.log_level.to_ascii_lowercase().as_str() {
        "warning" | "warn" => "warn",
        "fatal" => "error",
        other => other,
    }
    .to_string();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(level))
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("wasq-lookupd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        let shutdown = wasq_nsq::signals::ShutdownSignal::install(options.exit_on_stdin_eof);
        let running = match server::start(&options).await {
            Ok(running) => running,
            Err(e) => {
                eprintln!("wasq-lookupd: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        shutdown.wait().await;
        running.stop().await;
        ExitCode::SUCCESS
    });
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    code
}
