//! `wasqd`: the Wasq broker, an nsqd drop-in.

use std::process::ExitCode;
use std::sync::Arc;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::reload;

use wasq_host::config::Options;
use wasq_host::http::LogControl;
use wasq_host::server;

fn main() -> ExitCode {
    let options = Options::from_args();
    if let Err(message) = options.validate() {
        eprintln!("wasqd: {message}");
        return ExitCode::from(2);
    }

    let (filter, handle) = reload::Layer::new(EnvFilter::new(options.log_level.filter()));
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .init();
    let log_control: LogControl = Arc::new(move |level| {
        handle
            .modify(|f| *f = EnvFilter::new(level.filter()))
            .map_err(|e| e.to_string())
    });

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("wasqd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        let shutdown = server::ShutdownSignal::install(options.exit_on_stdin_eof);
        let running = match server::start(options, log_control).await {
            Ok(running) => running,
            Err(e) => {
                tracing::error!("{e:#}");
                eprintln!("wasqd: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        shutdown.wait().await;
        running.stop().await;
        ExitCode::SUCCESS
    });
    // A blocking read of stdin (for --exit-on-stdin-eof) never returns on
    // its own; do not let it hold the process.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    code
}
