//! Start-up and shutdown: restore the previous run's topics, bind the
//! listeners, serve until a signal, then stop accepting, let every
//! connection finish its turn and write what memory holds to disk.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::broker::{Broker, ListenAddresses};
use crate::config::Options;
use crate::http::admin_access::AdminAccess;
use crate::http::{self, AppState, LogControl};
use crate::plugins::{PluginHost, watcher};
use crate::protocol;
use crate::security::Security;

/// How long shutdown waits for connections to wind down.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running broker: its address and the handle that stops it.
pub struct Running {
    pub broker: Arc<Broker>,
    pub plugins: Arc<PluginHost>,
    pub addresses: ListenAddresses,
    pub embedded_lookupd: Option<wasq_lookupd::server::Running>,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    storage_stop: CancellationToken,
    storage_task: tokio::task::JoinHandle<()>,
    /// Released when the process exits, after the last write.
    _data_lock: wasq_storage::DataPathLock,
}

/// Binds both listeners and starts serving.
pub async fn start(options: Options, log_control: LogControl) -> anyhow::Result<Running> {
    let security = Arc::new(Security::from_options(&options)?);
    let plugin_admin = AdminAccess::from_options(&options)?.map(Arc::new);
    let plugin_admin_max_module =
        usize::try_from(options.plugin_admin_max_module_size).unwrap_or(usize::MAX);
    let listeners = wasq_nsq::listen::bind(options.tcp_address, options.http_address).await?;
    let https_listener = match &security.tls {
        Some(_) => Some(
            wasq_nsq::listen::listener(options.https_address).with_context(|| {
                format!(
                    "failed to listen on HTTPS address {}",
                    options.https_address
                )
            })?,
        ),
        None => None,
    };
    let addresses = ListenAddresses {
        tcp: listeners.tcp_address,
        http: listeners.http_address,
        https: match &https_listener {
            Some(listener) => Some(listener.local_addr()?),
            None => None,
        },
    };
    let (tcp, http_listener) = (listeners.tcp, listeners.http);

    let embedded = if options.no_embedded_lookupd {
        None
    } else {
        let lookupd_options = wasq_lookupd::config::LookupdOptions {
            tcp_address: options.lookupd_embedded_tcp_address,
            http_address: options.lookupd_embedded_http_address,
            broadcast_address: options.broadcast_address.clone(),
            inactive_producer_timeout: Duration::from_secs(300),
            tombstone_lifetime: Duration::from_secs(45),
            log_level: options.log_level.filter().to_string(),
            exit_on_stdin_eof: false,
            ready_file: None,
            log_prefix: options.log_prefix.clone(),
            verbose: false,
            config: None,
        };
        Some(
            wasq_lookupd::server::start(&lookupd_options)
                .await
                .context("cannot start the embedded lookupd")?,
        )
    };
    let plugins_dir = options.plugins_dir.clone();
    let plugins_watch = options.plugins_watch;
    let cache_dir = options.plugin_cache_dir();
    let data_dir = options.data_dir();
    let dir = data_dir.clone();
    // File work, on a blocking thread like every other.
    let data_lock = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create --data-path {}", dir.display()))?;
        anyhow::Ok(wasq_storage::DataPathLock::acquire(&dir)?)
    })
    .await??;
    let broker = Broker::new(options);
    broker.set_listen_addresses(addresses);
    let restored = broker.restore().await?;
    if restored > 0 {
        tracing::info!(topics = restored, data_path = %data_dir.display(), "STORAGE: restored the previous run's topics");
    }
    let shutdown = CancellationToken::new();
    let storage_stop = CancellationToken::new();
    let storage_task = crate::broker::storage_task::spawn(broker.clone(), storage_stop.clone());
    let state_dir = data_dir.join("plugin-state");
    let plugins = PluginHost::new(
        broker.clone(),
        plugins_dir.clone(),
        Some(cache_dir),
        Some(state_dir),
    )
    .context("cannot start the Wasm runtime")?;
    plugins.start_loading().await;
    if plugins_watch
        && plugins_dir.is_dir()
        && let Err(e) = watcher::spawn(plugins.clone(), plugins_dir, shutdown.clone())
    {
        tracing::warn!(error = %e, "PLUGINS: cannot watch the plugins directory; use POST /plugins/NAME/reload");
    }

    let ready_file = broker.options.ready_file.clone();
    let always: Vec<String> = embedded
        .iter()
        .map(|e| e.lookupd.addresses.tcp.to_string())
        .collect();
    let lookup_task = crate::lookup::start(broker.clone(), always, shutdown.clone());
    tracing::info!("TCP: listening on {}", addresses.tcp);
    tracing::info!("HTTP: listening on {}", addresses.http);
    if let Some(https) = addresses.https {
        tracing::info!("HTTPS: listening on {https}");
    }

    let tcp_task = tokio::spawn(protocol::serve(
        tcp,
        broker.clone(),
        security.clone(),
        shutdown.clone(),
    ));
    let state = AppState {
        broker: broker.clone(),
        security: security.clone(),
        plugins: plugins.clone(),
        log_control,
        plugin_admin,
        plugin_admin_max_module,
    };
    let mut tasks = Vec::new();
    if let Some(settings) = crate::statsd::StatsdSettings::from_broker(&broker) {
        tasks.push(crate::statsd::spawn(
            settings,
            broker.clone(),
            plugins.clone(),
            shutdown.clone(),
        ));
    }
    if let (Some(listener), Some(acceptor)) = (https_listener, security.tls.clone()) {
        tasks.push(http::spawn_serve(
            listener,
            state.clone(),
            shutdown.clone(),
            http::Scheme::Https(acceptor),
        )?);
    }
    let http_shutdown = shutdown.clone();
    let http_task = http::spawn_serve(http_listener, state, http_shutdown, http::Scheme::Http)?;
    if let Some(path) = ready_file {
        let mut listening = wasq_nsq::ready::Listening::from([
            ("tcp".to_string(), addresses.tcp),
            ("http".to_string(), addresses.http),
        ]);
        if let Some(https) = addresses.https {
            listening.insert("https".to_string(), https);
        }
        if let Some(lookupd) = &embedded {
            let at = lookupd.lookupd.addresses;
            listening.insert("lookupd_tcp".to_string(), at.tcp);
            listening.insert("lookupd_http".to_string(), at.http);
        }
        wasq_nsq::ready::write(&path, &listening)
            .with_context(|| format!("cannot write --ready-file {}", path.display()))?;
    }
    Ok(Running {
        broker,
        plugins,
        addresses,
        embedded_lookupd: embedded,
        shutdown,
        tasks: {
            tasks.extend([lookup_task, tcp_task, http_task]);
            tasks
        },
        storage_stop,
        storage_task,
        _data_lock: data_lock,
    })
}

impl Running {
    /// Stops accepting, closes connections and waits (bounded) for them.
    pub async fn stop(self) {
        tracing::info!("shutting down");
        self.plugins.stop_all().await;
        self.shutdown.cancel();
        let all = futures_join(self.tasks);
        if tokio::time::timeout(SHUTDOWN_GRACE, all).await.is_err() {
            tracing::warn!("some connections did not close within {:?}", SHUTDOWN_GRACE);
        }
        self.storage_stop.cancel();
        let _ = self.storage_task.await;
        self.broker.persist().await;
        if let Some(lookupd) = self.embedded_lookupd {
            lookupd.stop().await;
        }
        tracing::info!("bye");
    }
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}
