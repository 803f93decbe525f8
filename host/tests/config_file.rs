//! `--config FILE`: nsqd's TOML config file, for wasqd and wasq-lookupd.
//! Keys by nsqd's names, flags win over the file, and a mistake stops
//! start-up naming the file and the key.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use wasq_testkit::{Lookupd, Wasqd, eventually};

/// Writes `text` as a config file that lives as long as the returned guard.
fn config_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("nsqd.cfg");
    std::fs::write(&path, text).expect("write config");
    (dir, path)
}

#[test]
fn wasqd_takes_its_settings_from_the_file_and_flags_win() {
    let (_dir, path) = config_file(
        r#"
        ## as in nsqd's example file
        log_level = "info"
        id = 677
        mem_queue_size = 5
        msg_timeout = "90s"
        max_msg_timeout = "15m"
        max_req_timeout = 7200000
        max_rdy_count = 100
        nsqlookupd_tcp_addresses = ["127.0.0.1:1"]
        e2e_processing_latency_percentiles = [1.0, 0.99, 0.95]
        e2e_processing_latency_window_time = "10m"
        tls_cert = ""
        tls_key = ""
        tls_min_version = ""
        deflate = true
        snappy = true
        "#,
    );
    let path = path.to_str().unwrap();
    let wasqd = Wasqd::start_with(&["--config", path, "--max-rdy-count", "200"]);
    let http = wasqd.http();
    let option = |name: &str| http.get_json(&format!("/config/{name}")).1;
    assert_eq!(option("mem_queue_size"), 5);
    assert_eq!(option("msg_timeout"), 90_000_000_000u64);
    assert_eq!(
        option("max_req_timeout"),
        7_200_000_000_000u64,
        "an integer duration is milliseconds, as in nsqd"
    );
    assert_eq!(option("max_rdy_count"), 200, "the flag overrides the file");
    assert_eq!(
        option("nsqlookupd_tcp_addresses"),
        serde_json::json!(["127.0.0.1:1"])
    );

    // The settings act, not only read back: percentiles show in /stats and
    // the node id is in message ids.
    let mut client = wasqd.raw();
    client.publish("configured", b"x");
    let mut consumer = wasqd.consumer("configured", "c", 1);
    let message = consumer.read_message();
    let id = u64::from_str_radix(std::str::from_utf8(&message.id.0).unwrap(), 16).unwrap();
    assert_eq!((id >> 12) & 0x3ff, 677);
    consumer.finish(&message);
    // FIN has no answer: wait until it counts.
    assert!(eventually(Duration::from_secs(10), || {
        http.channel_stats("configured", "c").unwrap()["e2e_processing_latency"]["count"] == 1
    }));
    let latency = &http.channel_stats("configured", "c").unwrap()["e2e_processing_latency"];
    let quantiles: Vec<&serde_json::Value> = latency["percentiles"]
        .as_array()
        .expect("percentiles")
        .iter()
        .map(|p| &p["quantile"])
        .collect();
    assert_eq!(quantiles, [1.0, 0.99, 0.95], "{latency}");
}

#[test]
fn wasqd_refuses_a_file_with_a_mistake_naming_file_and_key() {
    for (text, expected) in [
        ("mem_queue_sise = 5", "mem_queue_sise: unknown key"),
        (
            "lookupd_tcp_address = [\"a:4160\"]",
            "config files call it nsqlookupd_tcp_addresses",
        ),
        (
            "msg_timeout = \"soon\"",
            "msg_timeout: invalid value 'soon'",
        ),
        ("max_rdy_count = 0", "max_rdy_count: invalid value '0'"),
        (
            "tcp_address = [\"a\", \"b\"]",
            "tcp_address: expected one value",
        ),
        ("[section]\nkey = 1", "section: unknown key"),
        ("tcp_address = ", "failed to load config file"),
        (
            "msg_timeout = \"20m\"",
            "--msg-timeout (20m0s) must not exceed --max-msg-timeout",
        ),
    ] {
        let (_dir, path) = config_file(text);
        let output = Command::new(Wasqd::binary())
            .args(["--config", path.to_str().unwrap()])
            .output()
            .expect("run wasqd");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{text}: {stderr}");
        assert!(stderr.contains(expected), "{text}: {stderr}");
        if !expected.starts_with("--") {
            assert!(stderr.contains(path.to_str().unwrap()), "{text}: {stderr}");
        }
    }
}

#[test]
fn wasq_lookupd_reads_a_config_file_too() {
    let (_dir, path) = config_file(
        r#"
        log_prefix = "[from-file] "
        tombstone_lifetime = "90s"
        inactive_producer_timeout = "300s"
        "#,
    );
    let lookupd = Lookupd::start(&["--config", path.to_str().unwrap()]);
    let log = lookupd.log();
    assert!(!log.is_empty());
    assert!(
        log.iter().all(|line| line.starts_with("[from-file] ")),
        "{log:?}"
    );

    let (_dir, bad) = config_file("tombstone_lifetime = \"forever\"");
    let output = Command::new(Lookupd::binary())
        .args(["--config", bad.to_str().unwrap()])
        .output()
        .expect("run wasq-lookupd");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("tombstone_lifetime: invalid value 'forever'"),
        "{stderr}"
    );
}
