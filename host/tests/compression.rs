//! Snappy and deflate as nsqd negotiates them in IDENTIFY, alone and
//! inside TLS, with tokio-nsq publishing and consuming over each, bodies
//! small and large; and nsqd's answers when compression is off, capped or
//! asked for twice.

mod support;

use std::io::Read;

use support::nsq::{round_trip, shared};
use support::tls::{TlsClient, identify};
use tokio_nsq::{NSQConfigSharedCompression, NSQConfigSharedTLS, NSQDeflateLevel};
use wasq_testkit::certs::Certificates;
use wasq_testkit::{FrameType, Wasqd};
use wasq_wire::frame;

fn snappy() -> NSQConfigSharedCompression {
    NSQConfigSharedCompression::Snappy
}

fn deflate(level: u8) -> NSQConfigSharedCompression {
    NSQConfigSharedCompression::Deflate(NSQDeflateLevel::new(level).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_nsq_over_snappy() {
    let wasqd = Wasqd::start();
    let consumer = round_trip(
        &wasqd,
        shared().set_compression(snappy()),
        "tn_snappy",
        30,
        200,
    )
    .await;
    let stats = wasqd.http().channel_stats("tn_snappy", "c").unwrap();
    assert_eq!(stats["clients"][0]["snappy"], true, "{stats}");
    drop(consumer);
    // Bodies larger than a snappy block (64 KiB) span chunks.
    round_trip(
        &wasqd,
        shared().set_compression(snappy()),
        "tn_snappy_big",
        3,
        300_000,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_nsq_over_deflate() {
    let wasqd = Wasqd::start();
    let consumer = round_trip(
        &wasqd,
        shared().set_compression(deflate(6)),
        "tn_deflate",
        30,
        200,
    )
    .await;
    let stats = wasqd.http().channel_stats("tn_deflate", "c").unwrap();
    assert_eq!(stats["clients"][0]["deflate"], true, "{stats}");
    drop(consumer);
    round_trip(
        &wasqd,
        shared().set_compression(deflate(1)),
        "tn_deflate_big",
        3,
        300_000,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_nsq_over_tls_with_snappy_and_with_deflate() {
    let certs = Certificates::new();
    let flags = certs.server_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let wasqd = Wasqd::start_with(&flags);
    let tls = || NSQConfigSharedTLS::new("localhost");
    let consumer = round_trip(
        &wasqd,
        shared().set_tls(tls()).set_compression(snappy()),
        "tn_tls_snappy",
        20,
        1000,
    )
    .await;
    let client = &wasqd.http().channel_stats("tn_tls_snappy", "c").unwrap()["clients"][0];
    assert_eq!(
        (client["tls"].clone(), client["snappy"].clone()),
        (true.into(), true.into())
    );
    drop(consumer);
    round_trip(
        &wasqd,
        shared().set_tls(tls()).set_compression(deflate(9)),
        "tn_tls_deflate",
        20,
        1000,
    )
    .await;
}

#[test]
fn the_upgrade_order_is_nsqds_tls_then_compression() {
    let certs = Certificates::new();
    let flags = certs.server_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let wasqd = Wasqd::start_with(&flags);
    let mut raw = wasqd.raw();
    let response = identify(
        &mut raw,
        r#"{"feature_negotiation":true,"tls_v1":true,"snappy":true}"#,
    );
    assert_eq!(
        (response["tls_v1"].clone(), response["snappy"].clone()),
        (true.into(), true.into())
    );
    let mut tls = TlsClient::handshake(raw.stream, &certs, false).expect("handshake");
    // First OK: plain inside TLS. Second OK: snappy-framed inside TLS.
    assert_eq!(tls.read_frame(), (FrameType::Response, b"OK".to_vec()));
    let rest = read_some(&mut tls);
    let mut decoder = snap::read::FrameDecoder::new(&rest[..]);
    let frame = frame::read(&mut decoder).expect("a snappy-framed frame");
    assert_eq!(
        (frame.frame_type, &frame.data[..]),
        (FrameType::Response, &b"OK"[..])
    );
}

/// The bytes of the next TLS record or records (one short read).
fn read_some(tls: &mut TlsClient) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let n = tls.reader().read(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn asking_for_both_is_nsqds_error() {
    let wasqd = Wasqd::start();
    let mut raw = wasqd.raw();
    raw.send(&wasq_wire::command::encode(|out| {
        wasq_wire::command::identify(
            out,
            br#"{"feature_negotiation":true,"snappy":true,"deflate":true}"#,
        )
    }));
    raw.expect_fatal("E_IDENTIFY_FAILED cannot enable both deflate and snappy compression");
}

#[test]
fn disabled_or_capped_compression_is_answered_as_nsqd_does() {
    let wasqd = Wasqd::start_with(&["--snappy=false", "--deflate=false"]);
    let mut raw = wasqd.raw();
    let response = identify(&mut raw, r#"{"feature_negotiation":true,"snappy":true}"#);
    assert_eq!(response["snappy"], false);
    raw.publish("still_plain", b"x");

    let wasqd = Wasqd::start_with(&["--max-deflate-level", "3"]);
    let mut raw = wasqd.raw();
    let response = identify(
        &mut raw,
        r#"{"feature_negotiation":true,"deflate":true,"deflate_level":9}"#,
    );
    assert_eq!(response["deflate"], true);
    assert_eq!(response["deflate_level"], 3);
    assert_eq!(response["max_deflate_level"], 3);
    assert_eq!(wasqd.http().get_json("/info").1["max_deflate_level"], 3);
    // Without a level the client gets nsqd's 6, capped to the maximum.
    let mut raw = wasqd.raw();
    let response = identify(&mut raw, r#"{"feature_negotiation":true,"deflate":true}"#);
    assert_eq!(response["deflate_level"], 3);
}

#[test]
fn a_corrupt_compressed_stream_closes_only_that_connection() {
    let wasqd = Wasqd::start();
    let mut raw = wasqd.raw();
    identify(&mut raw, r#"{"feature_negotiation":true,"snappy":true}"#);
    // A data chunk before the stream identifier.
    raw.send(&[0x01, 6, 0, 0, 0, 0, 0, 0, b'N', b'O']);
    assert!(raw.closed_within(std::time::Duration::from_secs(10)));
    // The broker still serves others.
    wasqd.raw().publish("after_corruption", b"fine");
}
