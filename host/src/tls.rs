//! TLS for clients: nsqd's `--tls-*` flags turned into one rustls server
//! configuration, shared by the in-band upgrade on the TCP port and the
//! HTTPS listener.
//!
//! As nsqd: no client certificate is asked for unless
//! `--tls-client-auth-policy` says `require` (any certificate, not
//! verified) or `require-verify` (verified against `--tls-root-ca-file`).
//! rustls speaks TLS 1.2 and 1.3 only, so `--tls-min-version` below
//! `tls1.2` means TLS 1.2.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use clap::ValueEnum;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

use crate::config::Options;

/// `--tls-required`: nsqd's `true`, `false` and `tcp-https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsRequired {
    #[default]
    No,
    /// TCP clients must upgrade; plain HTTP stays open.
    ExceptHttp,
    /// TCP clients must upgrade; plain HTTP answers 403 TLS_REQUIRED.
    Yes,
}

impl TlsRequired {
    /// Parses as nsqd's flag does: `tcp-https`, or any of Go's booleans.
    pub fn parse(text: &str) -> Result<TlsRequired, String> {
        match text.to_ascii_lowercase().as_str() {
            "tcp-https" => Ok(TlsRequired::ExceptHttp),
            "1" | "t" | "true" => Ok(TlsRequired::Yes),
            "0" | "f" | "false" => Ok(TlsRequired::No),
            _ => Err(format!(
                "invalid value {text:?}: expected true, false or tcp-https"
            )),
        }
    }
}

/// `--tls-client-auth-policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientAuthPolicy {
    /// A client certificate is required but not verified.
    Require,
    /// A client certificate is required and verified against --tls-root-ca-file.
    RequireVerify,
}

/// `--tls-min-version`, in nsqd's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TlsMinVersion {
    #[value(name = "tls1.0")]
    Tls10,
    #[value(name = "tls1.1")]
    Tls11,
    #[value(name = "tls1.2")]
    Tls12,
    #[value(name = "tls1.3")]
    Tls13,
}

/// The server configuration, or `None` when neither `--tls-cert` nor
/// `--tls-key` is given. Every failure names the flag and file.
pub fn server_config(options: &Options) -> anyhow::Result<Option<Arc<ServerConfig>>> {
    let (cert, key_path) = match (&options.tls_cert, &options.tls_key) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        (Some(_), None) => bail!("--tls-cert is given without --tls-key"),
        (None, Some(_)) => bail!("--tls-key is given without --tls-cert"),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = read_certificates(cert, "--tls-cert")?;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
        anyhow!(
            "--tls-key {}: no usable private key ({e})",
            key_path.display()
        )
    })?;
    let versions: &[&rustls::SupportedProtocolVersion] = match options.tls_min_version {
        TlsMinVersion::Tls13 => &[&rustls::version::TLS13],
        _ => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .context("TLS versions")?;
    let roots = match &options.tls_root_ca_file {
        Some(path) => Some(read_roots(path)?),
        None => None,
    };
    let builder = match options.tls_client_auth_policy {
        None => builder.with_no_client_auth(),
        Some(ClientAuthPolicy::Require) => {
            builder.with_client_cert_verifier(Arc::new(AnyClientCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
        }
        Some(ClientAuthPolicy::RequireVerify) => {
            let Some(roots) = roots else {
                bail!("--tls-client-auth-policy=require-verify needs --tls-root-ca-file");
            };
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .context("--tls-root-ca-file: cannot verify clients with these roots")?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(chain, key).with_context(|| {
        format!(
            "--tls-cert {} and --tls-key {} do not make a usable pair",
            cert.display(),
            key_path.display()
        )
    })?;
    Ok(Some(Arc::new(config)))
}

/// Trust anchors from a PEM file (`--tls-root-ca-file`).
pub fn read_roots(path: &Path) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for certificate in read_certificates(path, "--tls-root-ca-file")? {
        roots.add(certificate).with_context(|| {
            format!(
                "--tls-root-ca-file {}: unusable certificate",
                path.display()
            )
        })?;
    }
    Ok(roots)
}

/// Every certificate in a PEM file; errors name the flag and file.
pub fn read_certificates(path: &Path, flag: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    std::fs::metadata(path).with_context(|| format!("cannot read {flag} {}", path.display()))?;
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow!("{flag} {}: {e}", path.display()))?;
    if certificates.is_empty() {
        bail!("{flag} {}: no PEM certificate in the file", path.display());
    }
    Ok(certificates)
}

/// The subject common name of a certificate.
pub fn common_name(certificate: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
    let name = parsed.subject().iter_common_name().next()?;
    name.as_str().ok().map(str::to_string)
}

/// A cipher suite as Go's `tls` package names it, which nsqd's /stats shows.
pub fn go_cipher_suite_name(suite: rustls::CipherSuite) -> String {
    let name = format!("{suite:?}");
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

/// `require`: the client must present a certificate, which is not checked
/// against any authority (Go's `RequireAnyClientCert`); the handshake still
/// proves the client holds its key.
#[derive(Debug)]
struct AnyClientCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCertificate {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
