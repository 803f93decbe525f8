//! Shutdown signals shared by the daemons, and the life of a daemon
//! around them.

use std::future::Future;
use std::process::ExitCode;

use tokio::signal::unix::{Signal, SignalKind, signal};

/// Runs a daemon on a new Tokio runtime: installs the signal handlers
/// first (see [`ShutdownSignal`]), then `start`s it; it serves until SIGINT,
/// SIGTERM or (if asked) the end of standard input, then `stop` runs. A
/// start-up error is printed as `NAME: error` and exits with failure.
pub fn run_until_signal<T, Started, Stopped>(
    name: &str,
    exit_on_stdin_eof: bool,
    start: impl FnOnce() -> Started,
    stop: impl FnOnce(T) -> Stopped,
) -> ExitCode
where
    Started: Future<Output = anyhow::Result<T>>,
    Stopped: Future<Output = ()>,
{
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{name}: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        let shutdown = ShutdownSignal::install(exit_on_stdin_eof);
        let running = match start().await {
            Ok(running) => running,
            Err(e) => {
                eprintln!("{name}: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        shutdown.wait().await;
        stop(running).await;
        ExitCode::SUCCESS
    });
    // A blocking read of stdin (for --exit-on-stdin-eof) never returns on
    // its own; do not let it hold the process.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    code
}

/// SIGINT and SIGTERM handlers, in place from the moment this is made.
///
/// Make it before the daemon says it is listening: a supervisor or test
/// that signals as soon as it reads that line must get a clean shutdown,
/// never the default (fatal) action of a signal nobody handles yet.
pub struct ShutdownSignal {
    interrupt: Option<Signal>,
    terminate: Option<Signal>,
    exit_on_stdin_eof: bool,
}

impl ShutdownSignal {
    /// Installs the handlers (needs a Tokio runtime). `exit_on_stdin_eof`
    /// also ends the wait when standard input closes.
    pub fn install(exit_on_stdin_eof: bool) -> ShutdownSignal {
        ShutdownSignal {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
            exit_on_stdin_eof,
        }
    }

    /// Resolves on SIGINT, SIGTERM, or (if asked) standard input closing.
    pub async fn wait(mut self) {
        let interrupt = wait_for(self.interrupt.as_mut());
        let terminate = wait_for(self.terminate.as_mut());
        let exit_on_stdin_eof = self.exit_on_stdin_eof;
        let stdin_closed = async {
            if !exit_on_stdin_eof {
                return std::future::pending().await;
            }
            let mut stdin = tokio::io::stdin();
            let mut buf = [0u8; 64];
            loop {
                match tokio::io::AsyncReadExt::read(&mut stdin, &mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        tokio::select! {
            _ = interrupt => tracing::info!("received SIGINT"),
            _ = terminate => tracing::info!("received SIGTERM"),
            _ = stdin_closed => tracing::info!("standard input closed"),
        }
    }
}

async fn wait_for(signal: Option<&mut Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}
