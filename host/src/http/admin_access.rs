//! Who may use the plugin API (`--plugin-admin`): a module it installs
//! runs inside the broker, so the API is off unless asked for, and off
//! loopback it must be guarded.
//!
//! Two guards, either of which lets a request in:
//! - a bearer token from `--plugin-admin-token-file` (`Authorization:
//!   Bearer TOKEN`), one per line, `NAME:TOKEN` naming its holder;
//! - over HTTPS, a client certificate that the TLS handshake verified
//!   against `--tls-root-ca-file` (`--tls-client-auth-policy=require-verify`),
//!   limited to `--plugin-admin-cert-cn` names if any are given.
//!
//! With neither, wasqd refuses to start unless every HTTP listener is on
//! loopback; there the API is open to local users, with a warning.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use axum::http::{HeaderMap, StatusCode, header};

use super::ApiError;
use super::https::Peer;
use crate::config::Options;
use crate::tls::ClientAuthPolicy;

/// Tokens shorter than this are refused at start-up: the API runs code.
const MIN_TOKEN_LEN: usize = 16;

pub struct AdminAccess {
    tokens: Vec<Token>,
    /// `Some` when HTTPS verifies client certificates: the common names
    /// allowed (empty: any verified certificate).
    certificate_names: Option<Vec<String>>,
}

struct Token {
    holder: String,
    secret: Vec<u8>,
}

impl AdminAccess {
    /// The API's guard, `None` when `--plugin-admin` is off. Fails (and
    /// wasqd does not start) on an unreadable or weak token file, or an
    /// unguarded API on a listener off loopback.
    pub fn from_options(options: &Options) -> anyhow::Result<Option<AdminAccess>> {
        if !options.plugin_admin {
            return Ok(None);
        }
        let tokens = match &options.plugin_admin_token_file {
            Some(file) => read_tokens(file)?,
            None => Vec::new(),
        };
        let verified = options.tls_client_auth_policy == Some(ClientAuthPolicy::RequireVerify);
        if !options.plugin_admin_cert_cns.is_empty() && !verified {
            bail!(
                "--plugin-admin-cert-cn needs verified client certificates: --tls-client-auth-policy=require-verify with --tls-root-ca-file"
            );
        }
        let access = AdminAccess {
            tokens,
            certificate_names: verified.then(|| options.plugin_admin_cert_cns.clone()),
        };
        if access.tokens.is_empty() && access.certificate_names.is_none() {
            let mut listeners = vec![options.http_address];
            if options.tls_cert.is_some() {
                listeners.push(options.https_address);
            }
            if let Some(open) = listeners.iter().find(|a| !a.ip().is_loopback()) {
                bail!(
                    "--plugin-admin on {open}, off loopback, needs a guard: --plugin-admin-token-file, or --tls-client-auth-policy=require-verify with --tls-root-ca-file"
                );
            }
            tracing::warn!(
                "PLUGIN API: enabled without a token or client certificates; anyone on this machine may deploy plugins"
            );
        }
        Ok(Some(access))
    }

    /// Who is asking, for the log and the plugin's history; 401 if the
    /// request carries neither a valid token nor an accepted certificate.
    pub fn caller(&self, peer: &Peer, headers: &HeaderMap) -> Result<String, ApiError> {
        let from = peer.address;
        if let Some(names) = &self.certificate_names
            && peer.tls
        {
            // The handshake verified the certificate; its name decides.
            let name = peer.common_name.as_deref();
            if names.is_empty() || name.is_some_and(|n| names.iter().any(|a| a == n)) {
                return Ok(describe(
                    &format!("certificate CN={}", name.unwrap_or("")),
                    from,
                ));
            }
        }
        if let Some(holder) = bearer(headers).and_then(|secret| self.holder_of(secret)) {
            return Ok(describe(holder, from));
        }
        if self.tokens.is_empty() && self.certificate_names.is_none() {
            return Ok(describe("anyone (no guard, loopback only)", from));
        }
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "PLUGIN_ADMIN_UNAUTHORIZED",
        ))
    }

    fn holder_of(&self, secret: &[u8]) -> Option<&str> {
        // Every token is compared in full, so the time taken does not
        // tell how much of a guess was right.
        let mut found = None;
        for token in &self.tokens {
            if same_secret(&token.secret, secret) {
                found = Some(token.holder.as_str());
            }
        }
        found
    }
}

fn describe(who: &str, from: SocketAddr) -> String {
    format!("{who} from {from}")
}

fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    Some(value.strip_prefix(b"Bearer ")?.trim_ascii())
}

/// Equal secrets, compared in time that depends only on their lengths.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// The token file: one token per line, `NAME:TOKEN` or `TOKEN` (then
/// named `token N` by its line); blank lines and `#` comments skipped.
fn read_tokens(file: &std::path::Path) -> anyhow::Result<Vec<Token>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("--plugin-admin-token-file {}", file.display()))?;
    let tokens = parse_tokens(&text)
        .map_err(|e| anyhow::anyhow!("--plugin-admin-token-file {}: {e}", file.display()))?;
    if tokens.is_empty() {
        bail!(
            "--plugin-admin-token-file {}: no token in it",
            file.display()
        );
    }
    Ok(tokens)
}

fn parse_tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (holder, secret) = match line.split_once(':') {
            Some((holder, secret)) => (holder.trim().to_string(), secret.trim()),
            None => (format!("token {}", index + 1), line),
        };
        if secret.len() < MIN_TOKEN_LEN {
            return Err(format!(
                "line {}: a token needs at least {MIN_TOKEN_LEN} characters",
                index + 1
            ));
        }
        tokens.push(Token {
            holder,
            secret: secret.as_bytes().to_vec(),
        });
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(tokens: &str, certificate_names: Option<Vec<String>>) -> AdminAccess {
        AdminAccess {
            tokens: parse_tokens(tokens).unwrap(),
            certificate_names,
        }
    }

    fn peer(tls: bool, common_name: Option<&str>) -> Peer {
        Peer {
            address: "10.0.0.7:5000".parse().unwrap(),
            tls,
            common_name: common_name.map(str::to_string),
        }
    }

    fn with_bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        headers
    }

    #[test]
    fn tokens_name_their_holders() {
        let access = access(
            "# deployers\nalice:0123456789abcdef\n\nfedcba9876543210\n",
            None,
        );
        let plain = peer(false, None);
        assert_eq!(
            access
                .caller(&plain, &with_bearer("0123456789abcdef"))
                .unwrap(),
            "alice from 10.0.0.7:5000"
        );
        assert_eq!(
            access
                .caller(&plain, &with_bearer("fedcba9876543210"))
                .unwrap(),
            "token 4 from 10.0.0.7:5000"
        );
        let refused = access.caller(&plain, &with_bearer("0123456789abcdeX"));
        assert_eq!(refused.unwrap_err().status, StatusCode::UNAUTHORIZED);
        assert!(access.caller(&plain, &HeaderMap::new()).is_err());
    }

    #[test]
    fn short_tokens_are_refused() {
        assert!(parse_tokens("bob:short").is_err());
    }

    #[test]
    fn certificates_count_over_https_only_and_by_name() {
        let access = access("", Some(vec!["deployer".into()]));
        assert_eq!(
            access
                .caller(&peer(true, Some("deployer")), &HeaderMap::new())
                .unwrap(),
            "certificate CN=deployer from 10.0.0.7:5000"
        );
        assert!(
            access
                .caller(&peer(true, Some("publisher")), &HeaderMap::new())
                .is_err()
        );
        assert!(
            access
                .caller(&peer(false, Some("deployer")), &HeaderMap::new())
                .is_err()
        );
    }

    #[test]
    fn without_a_guard_everyone_is_let_in() {
        let access = access("", None);
        assert!(access.caller(&peer(false, None), &HeaderMap::new()).is_ok());
    }
}
