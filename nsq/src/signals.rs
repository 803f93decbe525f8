//! Shutdown signals shared by the daemons.

use tokio::signal::unix::{Signal, SignalKind, signal};

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
