//! Test certificates, made fresh for every test run (no private key is
//! committed): a CA, a server certificate it signs for `localhost` and
//! 127.0.0.1, and a client certificate it signs (common name
//! `wasq-test-client`), written as PEM files named as go-nsq's test
//! fixtures are (`ca.pem`, `server.pem`, `server.key`, `client.pem`,
//! `client.key`).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// The client certificate's subject common name.
pub const CLIENT_COMMON_NAME: &str = "wasq-test-client";

pub struct Certificates {
    /// Keeps the files for as long as the test runs (when made by [`Certificates::new`]).
    _dir: Option<tempfile::TempDir>,
    pub dir: PathBuf,
}

impl Certificates {
    /// Makes the files in a temporary directory.
    pub fn new() -> Certificates {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().to_path_buf();
        write(&path).expect("test certificates");
        Certificates {
            _dir: Some(dir),
            dir: path,
        }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    /// wasqd's flags for these certificates (go-nsq's test flags).
    pub fn server_flags(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.path("server.pem"),
            "--tls-key".into(),
            self.path("server.key"),
            "--tls-root-ca-file".into(),
            self.path("ca.pem"),
        ]
    }
}

impl Default for Certificates {
    fn default() -> Self {
        Certificates::new()
    }
}

/// Writes the five PEM files into `dir`.
pub fn write(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "wasq test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_certificate = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let server_key = KeyPair::generate()?;
    let mut server = CertificateParams::new(vec!["localhost".to_string()])?;
    server
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_certificate = server.signed_by(&server_key, &issuer)?;

    let client_key = KeyPair::generate()?;
    let mut client = CertificateParams::new(Vec::<String>::new())?;
    client
        .distinguished_name
        .push(DnType::CommonName, CLIENT_COMMON_NAME);
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_certificate = client.signed_by(&client_key, &issuer)?;

    std::fs::write(dir.join("ca.pem"), ca_certificate.pem())?;
    std::fs::write(dir.join("server.pem"), server_certificate.pem())?;
    std::fs::write(dir.join("server.key"), server_key.serialize_pem())?;
    std::fs::write(dir.join("client.pem"), client_certificate.pem())?;
    std::fs::write(dir.join("client.key"), client_key.serialize_pem())?;
    Ok(())
}
