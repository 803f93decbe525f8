//! A blocking V2 client that upgrades to TLS as nsqd's clients do (rustls,
//! trusting the test CA), and HTTPS and tokio-nsq client configurations.

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use wasq_testkit::certs::Certificates;
use wasq_testkit::{FrameType, RawClient};
use wasq_wire::{command, frame};

/// Sends IDENTIFY and returns its JSON response.
pub fn identify(raw: &mut RawClient, json: &str) -> serde_json::Value {
    let (kind, body) = raw.identify(json);
    assert_eq!(
        kind,
        FrameType::Response,
        "{}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).expect("IDENTIFY response is JSON")
}

fn roots(certs: &Certificates) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(certs.path("ca.pem")).unwrap() {
        roots.add(certificate.unwrap()).unwrap();
    }
    roots
}

fn client_config(certs: &Certificates, with_certificate: bool) -> Arc<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots(certs));
    let config = if with_certificate {
        let chain = CertificateDer::pem_file_iter(certs.path("client.pem"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_file(certs.path("client.key")).unwrap();
        builder.with_client_auth_cert(chain, key).unwrap()
    } else {
        builder.with_no_client_auth()
    };
    Arc::new(config)
}

/// A V2 connection after its TLS upgrade.
pub struct TlsClient {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl TlsClient {
    /// Runs the handshake on a socket whose IDENTIFY negotiated TLS,
    /// verifying the server as `localhost` against the test CA.
    pub fn handshake(
        socket: TcpStream,
        certs: &Certificates,
        with_certificate: bool,
    ) -> std::io::Result<TlsClient> {
        let connection = rustls::ClientConnection::new(
            client_config(certs, with_certificate),
            "localhost".try_into().unwrap(),
        )
        .map_err(std::io::Error::other)?;
        let mut stream = rustls::StreamOwned::new(connection, socket);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(TlsClient { stream })
    }

    pub fn negotiated_version(&self) -> Option<rustls::ProtocolVersion> {
        self.stream.conn.protocol_version()
    }

    pub fn try_read_frame(&mut self) -> std::io::Result<(FrameType, Vec<u8>)> {
        let frame = frame::read(&mut self.stream)?;
        Ok((frame.frame_type, frame.data.to_vec()))
    }

    pub fn read_frame(&mut self) -> (FrameType, Vec<u8>) {
        self.try_read_frame().expect("a frame over TLS")
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send over TLS");
        self.stream.flush().unwrap();
    }

    pub fn publish(&mut self, topic: &str, body: &[u8]) {
        self.send(&command::encode(|out| command::publish(out, topic, body)));
    }

    pub fn auth(&mut self, secret: &[u8]) {
        self.send(&command::encode(|out| command::auth(out, secret)));
    }

    /// The decrypted stream, for reading raw bytes.
    pub fn reader(&mut self) -> &mut impl Read {
        &mut self.stream
    }

    /// Everything left until the server closes.
    pub fn read_to_end(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        let _ = self.stream.read_to_end(&mut rest);
        rest
    }
}

/// An HTTPS agent that trusts the test CA.
pub fn https_agent(certs: &Certificates) -> ureq::Agent {
    let ca = std::fs::read(certs.path("ca.pem")).unwrap();
    let roots: Vec<ureq::tls::Certificate<'static>> = CertificateDer::pem_slice_iter(&ca)
        .map(|c| ureq::tls::Certificate::from_der(c.unwrap().as_ref()).to_owned())
        .collect();
    ureq::Agent::config_builder()
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(Arc::new(roots)))
                .build(),
        )
        .http_status_as_error(false)
        .build()
        .into()
}

/// tokio-nsq's TLS configuration (its rustls 0.19) trusting the test CA
/// and presenting the test client certificate.
pub fn tokio_nsq_client_config(certs: &Certificates) -> Arc<rustls019::ClientConfig> {
    let mut config = rustls019::ClientConfig::new();
    let ca = std::fs::File::open(certs.path("ca.pem")).unwrap();
    config
        .root_store
        .add_pem_file(&mut BufReader::new(ca))
        .unwrap();
    let chain = rustls019::internal::pemfile::certs(&mut BufReader::new(
        std::fs::File::open(certs.path("client.pem")).unwrap(),
    ))
    .unwrap();
    let keys = rustls019::internal::pemfile::pkcs8_private_keys(&mut BufReader::new(
        std::fs::File::open(certs.path("client.key")).unwrap(),
    ))
    .unwrap();
    config
        .set_single_client_cert(chain, keys[0].clone())
        .unwrap();
    Arc::new(config)
}
