//! AUTH as nsqd does it, against a small auth server run by the test:
//! tokio-nsq with credentials, nsqd's errors (E_AUTH_FIRST, E_AUTH_FAILED,
//! E_UNAUTHORIZED, E_AUTH_DISABLED), what the auth server is asked,
//! authorizations that expire and are asked for again, and HTTP /pub and
//! /mpub authorized with the secret.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::nsq::{round_trip, shared};
use support::tls::identify;
use wasq_testkit::auth_server::{AuthServer, grant};
use wasq_testkit::{FrameType, Wasqd, eventually};
use wasq_wire::command;

/// Grants `secret` publishing and subscribing on topics starting with
/// `ok_`, channel `c` (and publishing needs a channel regex matching "").
fn server() -> AuthServer {
    AuthServer::start(|query| match query.get("secret").map(String::as_str) {
        Some("good") => (
            200,
            serde_json::json!({
                "ttl": 3600,
                "identity": "alice",
                "identity_url": "https://example.test/alice",
                "authorizations": [
                    {"topic": "^ok_", "channels": [".*"], "permissions": ["publish"]},
                    {"topic": "^ok_", "channels": ["^c$"], "permissions": ["subscribe"]}
                ]
            })
            .to_string(),
        ),
        Some("nothing") => (
            200,
            r#"{"ttl":60,"identity":"nobody","authorizations":[]}"#.into(),
        ),
        _ => (403, r#"{"message":"FORBIDDEN"}"#.into()),
    })
}

fn wasqd_with(auth: &AuthServer) -> Wasqd {
    Wasqd::start_with(&["--auth-http-address", &auth.address.to_string()])
}

fn send_auth(raw: &mut wasq_testkit::RawClient, secret: &str) -> (FrameType, String) {
    raw.send(&command::encode(|out| {
        command::auth(out, secret.as_bytes())
    }));
    let (kind, body) = raw.read_frame();
    (kind, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_nsq_with_a_granted_secret_publishes_and_consumes() {
    let auth = server();
    let wasqd = wasqd_with(&auth);
    let config = shared().set_credentials(b"good".to_vec());
    let _consumer = round_trip(&wasqd, config, "ok_orders", 10, 100).await;
    let client = &wasqd.http().channel_stats("ok_orders", "c").unwrap()["clients"][0];
    assert_eq!(client["authed"], true, "{client}");
    assert_eq!(client["auth_identity"], "alice");
    assert_eq!(client["auth_identity_url"], "https://example.test/alice");
    let request = &auth.requests()[0];
    assert_eq!(request["secret"], "good");
    assert_eq!(request["remote_ip"], "127.0.0.1");
    assert_eq!(request["tls"], "false");
    assert_eq!(request["common_name"], "");
}

#[test]
fn auth_is_answered_and_required_as_nsqd_does() {
    let auth = server();
    let wasqd = wasqd_with(&auth);

    let mut raw = wasqd.raw();
    let response = identify(&mut raw, r#"{"feature_negotiation":true}"#);
    assert_eq!(response["auth_required"], true);
    raw.send(b"SUB ok_t c\n");
    raw.expect_fatal("E_AUTH_FIRST AUTH required before SUB");

    let mut raw = wasqd.raw();
    assert_eq!(
        send_auth(&mut raw, "good"),
        (
            FrameType::Response,
            r#"{"identity":"alice","identity_url":"https://example.test/alice","permission_count":2}"#
                .to_string()
        )
    );
    raw.publish("ok_t", b"granted");
    raw.send(&command::encode(|out| command::publish(out, "other", b"x")));
    raw.expect_fatal(r#"E_UNAUTHORIZED AUTH failed for PUB on "other" """#);

    let mut raw = wasqd.raw();
    send_auth(&mut raw, "good");
    raw.send(b"SUB ok_t d\n");
    raw.expect_fatal(r#"E_UNAUTHORIZED AUTH failed for SUB on "ok_t" "d""#);

    // MPUB is authorized before its body is read.
    let mut raw = wasqd.raw();
    send_auth(&mut raw, "good");
    raw.send(b"MPUB other\n");
    raw.expect_fatal(r#"E_UNAUTHORIZED AUTH failed for MPUB on "other" """#);

    let mut raw = wasqd.raw();
    send_auth(&mut raw, "good");
    raw.send(&command::encode(|out| command::auth(out, b"good")));
    raw.expect_fatal("E_INVALID AUTH already set");
}

#[test]
fn refusals_are_nsqds_errors() {
    let auth = server();
    let wasqd = wasqd_with(&auth);
    let mut raw = wasqd.raw();
    raw.send(&command::encode(|out| command::auth(out, b"wrong")));
    raw.expect_fatal("E_AUTH_FAILED AUTH failed");

    let mut raw = wasqd.raw();
    raw.send(&command::encode(|out| command::auth(out, b"nothing")));
    raw.expect_fatal("E_UNAUTHORIZED AUTH no authorizations found");

    // An auth server that cannot be reached fails AUTH the same way; the
    // reason stays in wasqd's log.
    let unreachable = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = unreachable.local_addr().unwrap().to_string();
    drop(unreachable);
    let wasqd = Wasqd::start_with(&["--auth-http-address", &address]);
    let mut raw = wasqd.raw();
    raw.send(&command::encode(|out| command::auth(out, b"good")));
    raw.expect_fatal("E_AUTH_FAILED AUTH failed");
    // Logged before the error was sent.
    let log = wasqd.log();
    assert!(
        log.iter()
            .any(|l| l.contains("AUTH failed") && l.contains(&address)),
        "{log:?}"
    );

    let plain = Wasqd::start();
    let mut raw = plain.raw();
    raw.send(&command::encode(|out| command::auth(out, b"good")));
    raw.expect_fatal("E_AUTH_DISABLED AUTH disabled");
}

#[test]
fn an_expired_authorization_is_asked_for_again() {
    let allowed = Arc::new(AtomicBool::new(true));
    let gate = allowed.clone();
    let auth = AuthServer::start(move |_| {
        if gate.load(Ordering::SeqCst) {
            grant("bob", ".*", ".*", &["publish"], 1)
        } else {
            (403, "{}".into())
        }
    });
    let wasqd = wasqd_with(&auth);
    let mut raw = wasqd.raw();
    assert_eq!(send_auth(&mut raw, "s").0, FrameType::Response);
    raw.publish("t", b"within the ttl");
    // After the TTL the next PUB asks again and is granted again.
    assert!(eventually(Duration::from_secs(10), || {
        raw.publish("t", b"again");
        auth.requests().len() >= 2
    }));
    // Revoked: once the grant expires, the next PUB is refused.
    allowed.store(false, Ordering::SeqCst);
    let requests_before = auth.requests().len();
    let refused = eventually(Duration::from_secs(10), || {
        raw.send(&command::encode(|out| command::publish(out, "t", b"x")));
        let (kind, body) = raw.read_frame();
        kind == FrameType::Error && body == b"E_AUTH_FAILED AUTH failed"
    });
    assert!(refused);
    assert!(auth.requests().len() > requests_before);
    raw.expect_closed();
}

#[test]
fn http_publishing_is_authorized_with_the_secret() {
    let auth = server();
    let wasqd = wasqd_with(&auth);
    let http = wasqd.http();
    assert_eq!(
        http.post("/pub?topic=ok_h", b"x"),
        (401, r#"{"message":"AUTH_FIRST"}"#.into())
    );
    assert_eq!(
        http.post("/pub?topic=ok_h&secret=wrong", b"x"),
        (401, r#"{"message":"AUTH_FAILED"}"#.into())
    );
    assert_eq!(
        http.post("/pub?topic=other&secret=good", b"x"),
        (403, r#"{"message":"UNAUTHORIZED"}"#.into())
    );
    assert_eq!(http.post("/pub?topic=ok_h&secret=good", b"one").0, 200);
    assert_eq!(
        http.post("/mpub?topic=ok_h&secret=good", b"two\nthree").0,
        200
    );
    // The grant is kept for its TTL: one query for the three requests
    // with the good secret on this connection's address.
    let good = auth
        .requests()
        .iter()
        .filter(|r| r["secret"] == "good")
        .count();
    assert_eq!(good, 1);
    let (status, _) = ureq_with_bearer(&wasqd, "good");
    assert_eq!(status, 200);
    assert_eq!(wasqd.http().topic_count("ok_h"), 4);
    // Routes other than /pub and /mpub stay as nsqd's.
    assert_eq!(http.post("/topic/create?topic=any", b"").0, 200);
}

fn ureq_with_bearer(wasqd: &Wasqd, secret: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .post(&wasqd.url("/pub?topic=ok_h"))
        .header("Authorization", &format!("Bearer {secret}"))
        .send(&b"four"[..])
        .unwrap();
    (
        response.status().as_u16(),
        response.body_mut().read_to_string().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_nsq_with_a_refused_secret_never_becomes_healthy() {
    use tokio_nsq::{NSQEvent, NSQProducerConfig};
    let auth = server();
    let wasqd = wasqd_with(&auth);
    let mut producer = NSQProducerConfig::new(wasqd.tcp.to_string())
        .set_shared(shared().set_credentials(b"wrong".to_vec()))
        .build();
    let event = tokio::time::timeout(support::nsq::WAIT, producer.consume())
        .await
        .expect("an event");
    // tokio-nsq ends the producer (None) or reports it unhealthy.
    assert!(!matches!(event, Some(NSQEvent::Healthy())), "{event:?}");
    assert!(auth.requests().iter().any(|r| r["secret"] == "wrong"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_nsq_keeps_publishing_across_an_expiry() {
    use tokio_nsq::{NSQEvent, NSQProducerConfig, NSQTopic};
    let auth = AuthServer::start(|_| grant("carol", ".*", ".*", &["publish"], 1));
    let wasqd = wasqd_with(&auth);
    let mut producer = NSQProducerConfig::new(wasqd.tcp.to_string())
        .set_shared(shared().set_credentials(b"s".to_vec()))
        .build();
    let wait = support::nsq::WAIT;
    assert!(matches!(
        tokio::time::timeout(wait, producer.consume())
            .await
            .unwrap(),
        Some(NSQEvent::Healthy())
    ));
    let topic = NSQTopic::new("expiring").unwrap();
    let started = std::time::Instant::now();
    // Publish until the 1 s grant has been asked for again.
    while auth.requests().len() < 2 {
        assert!(started.elapsed() < wait, "never asked again");
        producer.publish(&topic, b"x".to_vec()).await.unwrap();
        assert!(matches!(
            tokio::time::timeout(wait, producer.consume())
                .await
                .unwrap(),
            Some(NSQEvent::Ok())
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
