//! `wasqd`: the Wasq broker, an nsqd drop-in.

use std::process::ExitCode;
use std::sync::Arc;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::reload;

use wasq_host::allocator::compiling;
use wasq_host::config::Options;
use wasq_host::http::LogControl;
use wasq_host::server;
use wasq_nsq::log_prefix::Prefixed;

/// glibc's malloc for the broker, mimalloc while a plugin compiles.
#[global_allocator]
static ALLOCATOR: compiling::WasqdAllocator = compiling::WasqdAllocator;

fn main() -> ExitCode {
    wasq_host::allocator::limit_arenas();
    let arena = compiling::reserve_arena();
    wasq_nsq::open_files::raise_limit();
    let options = match Options::from_args() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("wasqd: {message}");
            return ExitCode::from(2);
        }
    };
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
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .event_format(Prefixed {
                    prefix: options.log_prefix.clone(),
                    inner: tracing_subscriber::fmt::format().with_target(false),
                }),
        )
        .init();
    if let Err(error) = arena {
        tracing::warn!(%error, "PLUGINS: no address space of their own for compiles; they allocate from glibc's malloc");
    }
    if let Err(error) = compiling::build_compile_pool() {
        tracing::warn!(error = %error, "PLUGINS: cannot set up the compile threads");
    }
    let log_control: LogControl = Arc::new(move |level| {
        handle
            .modify(|f| *f = EnvFilter::new(level.filter()))
            .map_err(|e| e.to_string())
    });

    wasq_nsq::signals::run_until_signal(
        "wasqd",
        options.exit_on_stdin_eof,
        || async move {
            server::start(options, log_control)
                .await
                .inspect_err(|e| tracing::error!("{e:#}"))
        },
        server::Running::stop,
    )
}
