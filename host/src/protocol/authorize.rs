//! AUTH and the checks nsqd makes with it: `--tls-required` before any
//! command but IDENTIFY, and the client's authorizations before SUB, PUB,
//! MPUB and DPUB, asked for again from the auth servers once they expire.

use bytes::Bytes;

use super::command::Admission;
use super::connection::{Connection, Suspend};
use super::error::ClientError;
use super::go_text::go_quote;
use crate::auth::{AuthRequest, AuthState};
use crate::broker::client::{AuthIdentity, ClientState};
use crate::config::TlsRequired;

/// What a command needs to be admitted; built per parse from the
/// connection's state.
pub(super) struct Gate<'a> {
    /// `--tls-required` and the connection is still plain.
    pub tls_missing: bool,
    pub auth: AuthCheck<'a>,
}

/// The client's standing with the auth servers.
#[derive(Clone, Copy)]
pub(super) struct AuthCheck<'a> {
    pub enabled: bool,
    pub state: Option<&'a AuthState>,
}

impl AuthCheck<'_> {
    /// nsqd's `CheckAuth`: AUTH first, then the grant for this topic and
    /// channel (an empty channel means publishing).
    pub fn check(&self, command: &str, topic: &str, channel: &str) -> Result<(), ClientError> {
        if !self.enabled {
            return Ok(());
        }
        let Some(state) = self.state.filter(|s| s.has_authorizations()) else {
            return Err(ClientError::fatal(
                "E_AUTH_FIRST",
                format!("AUTH required before {command}"),
            ));
        };
        if state.is_allowed(topic, channel) {
            return Ok(());
        }
        Err(ClientError::fatal(
            "E_UNAUTHORIZED",
            format!(
                "AUTH failed for {command} on {} {}",
                go_quote(topic.as_bytes()),
                go_quote(channel.as_bytes())
            ),
        ))
    }
}

impl Admission for Gate<'_> {
    fn command(&self, verb: &[u8]) -> Result<(), ClientError> {
        if self.tls_missing {
            return Err(ClientError::invalid(format!(
                "cannot {} in current state (TLS required)",
                String::from_utf8_lossy(verb)
            )));
        }
        Ok(())
    }

    fn mpub(&self, topic: &str) -> Result<(), ClientError> {
        self.auth.check("MPUB", topic, "")
    }
}

/// The commands that need an authorization.
fn needs_authorization(buffered: &[u8]) -> bool {
    [&b"SUB "[..], b"PUB ", b"MPUB ", b"DPUB "]
        .iter()
        .any(|verb| buffered.starts_with(verb))
}

impl Connection {
    pub(super) fn tls_missing(&self) -> bool {
        self.security.tls_required != TlsRequired::No && !self.transport.is_tls()
    }

    pub(super) fn auth_check(&self) -> AuthCheck<'_> {
        AuthCheck {
            enabled: self.security.auth_enabled(),
            state: self.auth_state.as_ref(),
        }
    }

    pub(super) fn check_auth(
        &self,
        command: &str,
        topic: &str,
        channel: &str,
    ) -> Result<(), ClientError> {
        self.auth_check().check(command, topic, channel)
    }

    /// The next buffered command needs an authorization that has expired.
    pub(super) fn must_reauthorize(&self) -> bool {
        self.auth_state
            .as_ref()
            .is_some_and(|s| s.has_authorizations() && s.is_expired())
            && needs_authorization(&self.read_buf)
    }

    /// AUTH: the checks nsqd makes before asking the auth servers.
    pub(super) fn auth(&mut self, body: &Bytes) -> Result<Option<Suspend>, ClientError> {
        if self.state() != ClientState::Init {
            return Err(ClientError::invalid("cannot AUTH in current state"));
        }
        if self
            .auth_state
            .as_ref()
            .is_some_and(AuthState::has_authorizations)
        {
            return Err(ClientError::invalid("AUTH already set"));
        }
        if !self.security.auth_enabled() {
            return Err(ClientError::fatal("E_AUTH_DISABLED", "AUTH disabled"));
        }
        let secret = String::from_utf8_lossy(body).into_owned();
        Ok(Some(Suspend::Authenticate(secret)))
    }

    /// Asks the auth servers about the secret and answers AUTH.
    pub(super) async fn authenticate(&mut self, secret: String) -> Result<(), ClientError> {
        self.auth_secret = Some(secret);
        let state = self.query_auth_servers().await?;
        let granted = state.has_authorizations();
        let response = serde_json::json!({
            "identity": state.identity,
            "identity_url": state.identity_url,
            "permission_count": state.permission_count(),
        });
        self.set_auth_state(state);
        if !granted {
            return Err(ClientError::fatal(
                "E_UNAUTHORIZED",
                "AUTH no authorizations found",
            ));
        }
        self.respond(response.to_string().as_bytes());
        Ok(())
    }

    /// The authorization expired: ask again with the same secret.
    pub(super) async fn reauthorize(&mut self) -> Result<(), ClientError> {
        let state = self.query_auth_servers().await?;
        self.set_auth_state(state);
        Ok(())
    }

    async fn query_auth_servers(&self) -> Result<AuthState, ClientError> {
        let servers = self.security.auth.as_ref().expect("AUTH is enabled");
        let request = AuthRequest {
            remote_ip: remote_ip(&self.client.remote_address),
            tls: self.transport.is_tls(),
            secret: self.auth_secret.clone().unwrap_or_default(),
            common_name: self.transport.peer_common_name().unwrap_or_default(),
        };
        servers.query(request).await.map_err(|reason| {
            // Not for the client: errors reaching the auth server stay in our log.
            tracing::warn!(client = %self.client.remote_address, "PROTOCOL(V2): AUTH failed {reason}");
            ClientError::fatal("E_AUTH_FAILED", "AUTH failed")
        })
    }

    fn set_auth_state(&mut self, state: AuthState) {
        self.client.meta.lock().auth = state.has_authorizations().then(|| AuthIdentity {
            identity: state.identity.clone(),
            identity_url: state.identity_url.clone(),
        });
        self.auth_state = Some(state);
    }
}

/// The IP part of `ip:port` (`[v6]:port` without brackets), as nsqd sends it.
pub fn remote_ip(remote_address: &str) -> String {
    match remote_address.parse::<std::net::SocketAddr>() {
        Ok(address) => address.ip().to_string(),
        Err(_) => remote_address.to_string(),
    }
}
