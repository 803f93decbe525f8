//! What clients must do to be served, built once at start-up from the
//! options: TLS (the in-band upgrade, HTTPS, `--tls-required`) and auth
//! servers. Shared by the TCP protocol and the HTTP API.

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use crate::auth::AuthServers;
use crate::config::{Options, TlsRequired};

pub struct Security {
    /// `None` without `--tls-cert`/`--tls-key`: IDENTIFY answers `tls_v1: false`.
    pub tls: Option<TlsAcceptor>,
    pub tls_required: TlsRequired,
    /// `None` without `--auth-http-address`: AUTH is disabled.
    pub auth: Option<Arc<AuthServers>>,
}

impl Security {
    /// Reads certificates and keys; every failure names its flag and file.
    pub fn from_options(options: &Options) -> anyhow::Result<Security> {
        let tls = crate::tls::server_config(options)?.map(TlsAcceptor::from);
        Ok(Security {
            tls,
            tls_required: options.tls_required(),
            auth: AuthServers::from_options(options)?,
        })
    }

    pub fn auth_enabled(&self) -> bool {
        self.auth.is_some()
    }
}
