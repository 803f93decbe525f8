//! TLS as nsqd does it, against a real wasqd started with go-nsq's test
//! flags (`--tls-cert server.pem --tls-key server.key --tls-root-ca-file
//! ca.pem`, the certificates made fresh per test): the in-band upgrade
//! after IDENTIFY byte for byte, tokio-nsq publishing and consuming over
//! it, client certificates with `require-verify`, `--tls-required` on TCP
//! and HTTP, the HTTPS listener, and start-up errors naming the file.

mod support;

use std::time::Duration;

use support::nsq::{round_trip, shared};
use support::tls::{TlsClient, https_agent, identify, tokio_nsq_client_config};
use tokio_nsq::NSQConfigSharedTLS;
use wasq_testkit::certs::{CLIENT_COMMON_NAME, Certificates};
use wasq_testkit::{FrameType, Wasqd, eventually};

fn wasqd_with_tls(certs: &Certificates, extra: &[&str]) -> Wasqd {
    let mut args: Vec<String> = certs.server_flags();
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Wasqd::start_with(&args)
}

#[test]
fn identify_upgrades_to_tls_in_band_as_nsqd_does() {
    let certs = Certificates::new();
    let wasqd = wasqd_with_tls(&certs, &[]);
    let mut raw = wasqd.raw();
    let response = identify(&mut raw, r#"{"feature_negotiation":true,"tls_v1":true}"#);
    assert_eq!(response["tls_v1"], true);
    assert_eq!(response["snappy"], false);
    assert_eq!(response["deflate"], false);
    assert_eq!(response["auth_required"], false);
    // The response went out plain; now the handshake, then OK over TLS.
    let mut tls = TlsClient::handshake(raw.stream, &certs, false).expect("handshake");
    assert_eq!(tls.read_frame(), (FrameType::Response, b"OK".to_vec()));
    tls.publish("tls_raw", b"over tls");
    assert_eq!(tls.read_frame(), (FrameType::Response, b"OK".to_vec()));
    assert_eq!(
        tls.negotiated_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );

    let stats = wasqd.http().stats();
    let client = &stats["producers"][0];
    assert_eq!(client["tls"], true, "{stats}");
    assert_eq!(client["tls_version"], "TLS1.3");
    assert!(
        client["tls_cipher_suite"]
            .as_str()
            .unwrap()
            .starts_with("TLS_")
    );
}

#[test]
fn without_certificates_tls_is_declined_and_the_stream_stays_plain() {
    let wasqd = Wasqd::start();
    let mut raw = wasqd.raw();
    let response = identify(&mut raw, r#"{"feature_negotiation":true,"tls_v1":true}"#);
    assert_eq!(response["tls_v1"], false);
    raw.publish("plain", b"still plain"); // expects OK
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_nsq_publishes_and_consumes_over_tls() {
    let certs = Certificates::new();
    let wasqd = wasqd_with_tls(&certs, &[]);
    let config = shared().set_tls(NSQConfigSharedTLS::new("localhost"));
    let _consumer = round_trip(&wasqd, config, "tn_tls", 20, 100).await;
    let consumers = wasqd.http().channel_stats("tn_tls", "c").expect("channel")["clients"].clone();
    assert_eq!(consumers[0]["tls"], true, "{consumers}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_verify_admits_only_clients_with_a_certificate_from_the_ca() {
    let certs = Certificates::new();
    let wasqd = wasqd_with_tls(&certs, &["--tls-client-auth-policy", "require-verify"]);

    // tokio-nsq with the CA and a client certificate.
    let config = shared().set_tls(
        NSQConfigSharedTLS::new("localhost").set_client_config(tokio_nsq_client_config(&certs)),
    );
    round_trip(&wasqd, config, "tn_mutual", 5, 50).await;

    // A raw client with the certificate gets in ...
    let mut raw = wasqd.raw();
    identify(&mut raw, r#"{"feature_negotiation":true,"tls_v1":true}"#);
    let mut tls = TlsClient::handshake(raw.stream, &certs, true).expect("handshake");
    assert_eq!(tls.read_frame(), (FrameType::Response, b"OK".to_vec()));

    // ... one without it does not.
    let mut raw = wasqd.raw();
    identify(&mut raw, r#"{"feature_negotiation":true,"tls_v1":true}"#);
    let refused =
        TlsClient::handshake(raw.stream, &certs, false).and_then(|mut tls| tls.try_read_frame());
    assert!(
        refused.is_err(),
        "a client without a certificate was served"
    );
}

#[test]
fn require_policy_takes_any_certificate_and_implies_tls_required() {
    let certs = Certificates::new();
    let wasqd = wasqd_with_tls(&certs, &["--tls-client-auth-policy", "require"]);
    let mut plain = wasqd.raw();
    plain.send(b"NOP\n");
    plain.expect_fatal("E_INVALID cannot NOP in current state (TLS required)");

    let mut raw = wasqd.raw();
    identify(&mut raw, r#"{"feature_negotiation":true,"tls_v1":true}"#);
    let mut tls = TlsClient::handshake(raw.stream, &certs, true).expect("handshake");
    assert_eq!(tls.read_frame(), (FrameType::Response, b"OK".to_vec()));
    tls.publish("mutual", b"x");
    assert_eq!(tls.read_frame(), (FrameType::Response, b"OK".to_vec()));
}

#[test]
fn tls_required_refuses_plain_commands_with_nsqds_error() {
    let certs = Certificates::new();
    let wasqd = wasqd_with_tls(&certs, &["--tls-required"]);
    for (command, verb) in [
        (&b"PUB t\n"[..], "PUB"),
        (b"SUB t c\n", "SUB"),
        (b"WAT\n", "WAT"),
    ] {
        let mut raw = wasqd.raw();
        raw.send(command);
        raw.expect_fatal(&format!(
            "E_INVALID cannot {verb} in current state (TLS required)"
        ));
    }
    // IDENTIFY is allowed, and so is everything once upgraded.
    let mut raw = wasqd.raw();
    identify(&mut raw, r#"{"feature_negotiation":true,"tls_v1":true}"#);
    let mut tls = TlsClient::handshake(raw.stream, &certs, false).expect("handshake");
    assert_eq!(tls.read_frame(), (FrameType::Response, b"OK".to_vec()));
    tls.publish("required", b"ok");
    assert_eq!(tls.read_frame(), (FrameType::Response, b"OK".to_vec()));

    // Plain HTTP answers nsqd's 403 with the HTTPS port; HTTPS serves.
    let https = wasqd.https.expect("an HTTPS listener");
    let (status, body) = wasqd.http().get("/ping");
    assert_eq!(status, 403);
    assert_eq!(
        body,
        format!(
            r#"{{"message": "TLS_REQUIRED", "https_port": {}}}"#,
            https.port()
        )
    );
    let agent = https_agent(&certs);
    let mut response = agent
        .get(&format!(
            "https://localhost:{}/stats?format=json",
            https.port()
        ))
        .call()
        .expect("HTTPS /stats");
    let stats: serde_json::Value =
        serde_json::from_slice(&response.body_mut().read_to_vec().unwrap()).unwrap();
    assert_eq!(stats["topics"][0]["topic_name"], "required");
}

#[test]
fn tls_required_tcp_https_leaves_plain_http_open() {
    let certs = Certificates::new();
    let wasqd = wasqd_with_tls(&certs, &["--tls-required=tcp-https"]);
    assert_eq!(wasqd.http().post("/pub?topic=t", b"x").0, 200);
    let mut raw = wasqd.raw();
    raw.send(b"NOP\n");
    raw.expect_fatal("E_INVALID cannot NOP in current state (TLS required)");
}

#[test]
fn https_serves_the_same_api() {
    let certs = Certificates::new();
    let wasqd = wasqd_with_tls(&certs, &[]);
    let port = wasqd.https.expect("an HTTPS listener").port();
    let agent = https_agent(&certs);
    let mut response = agent
        .post(&format!("https://localhost:{port}/pub?topic=over_https"))
        .send(&b"hello"[..])
        .expect("HTTPS /pub");
    assert_eq!(response.status(), 200);
    assert_eq!(response.body_mut().read_to_string().unwrap(), "OK");
    let mut consumer = wasqd.consumer("over_https", "c", 1);
    assert_eq!(&consumer.read_message().body[..], b"hello");
    // A client that does not trust our CA is refused by its own check.
    let untrusted = https_agent(&Certificates::new());
    assert!(
        untrusted
            .get(&format!("https://localhost:{port}/ping"))
            .call()
            .is_err()
    );
}

#[test]
fn a_stalled_handshake_does_not_hold_up_other_https_clients() {
    let certs = Certificates::new();
    let wasqd = wasqd_with_tls(&certs, &[]);
    let port = wasqd.https.expect("an HTTPS listener").port();
    // Connects and never says a word.
    let _silent = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let agent = https_agent(&certs);
    assert!(eventually(Duration::from_secs(10), || agent
        .get(&format!("https://localhost:{port}/ping"))
        .call()
        .is_ok()));
}

#[test]
fn bad_certificate_files_stop_start_up_with_the_file_named() {
    let certs = Certificates::new();
    let (cert, key, ca) = (
        certs.path("server.pem"),
        certs.path("server.key"),
        certs.path("ca.pem"),
    );
    let client_key = certs.path("client.key");
    let missing = "/nonexistent/wasq/server.pem";
    for (args, named) in [
        (vec!["--tls-cert", missing, "--tls-key", &key], missing),
        // A key that is not the certificate's.
        (
            vec!["--tls-cert", &cert, "--tls-key", &client_key],
            "server.pem",
        ),
        // Not a key at all.
        (vec!["--tls-cert", &cert, "--tls-key", &ca], "ca.pem"),
        (
            vec!["--tls-required"],
            "cannot require TLS client connections without TLS key and cert",
        ),
    ] {
        let error = Wasqd::try_start(&args).err().expect("start-up fails");
        assert!(format!("{error:#}").contains(named), "{args:?}: {error:#}");
    }
}

#[test]
fn the_client_certificate_common_name_reaches_the_auth_server() {
    let certs = Certificates::new();
    let auth = wasq_testkit::auth_server::AuthServer::start(|_| {
        wasq_testkit::auth_server::grant("me", ".*", ".*", &["publish"], 60)
    });
    let address = auth.address.to_string();
    let wasqd = wasqd_with_tls(
        &certs,
        &[
            "--tls-client-auth-policy",
            "require-verify",
            "--auth-http-address",
            &address,
        ],
    );
    let mut raw = wasqd.raw();
    identify(&mut raw, r#"{"feature_negotiation":true,"tls_v1":true}"#);
    let mut tls = TlsClient::handshake(raw.stream, &certs, true).expect("handshake");
    assert_eq!(tls.read_frame(), (FrameType::Response, b"OK".to_vec()));
    tls.auth(b"s3cret");
    let (kind, body) = tls.read_frame();
    assert_eq!(
        kind,
        FrameType::Response,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let request = auth.requests().pop().expect("one auth request");
    assert_eq!(request["tls"], "true");
    assert_eq!(request["common_name"], CLIENT_COMMON_NAME);
    assert_eq!(request["secret"], "s3cret");
    assert_eq!(request["remote_ip"], "127.0.0.1");
}
