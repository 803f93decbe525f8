//! `wasq pub` and `wasq tail` against a real wasqd, by its TCP address and
//! through its embedded lookupd.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::Duration;

use support::{split, wasq};
use wasq_testkit::{Wasqd, eventually};

fn publish(args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = wasq()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run wasq pub");
    // wasq may refuse before reading its input: a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    split(child.wait_with_output().unwrap())
}

#[test]
fn pub_sends_each_line_and_tail_prints_each_message() {
    let wasqd = Wasqd::start();
    let tcp = wasqd.tcp.to_string();
    let http = wasqd.http();
    let (code, _, stderr) = publish(
        &["pub", "lines", "--nsqd-tcp-address", &tcp],
        "one\ntwo\n\nthree\n",
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("published 3 message(s) to lines"),
        "{stderr}"
    );
    assert_eq!(http.topic_count("lines"), 3, "the empty line is skipped");

    // tail's channel is the topic's first: it gets the three the topic
    // held (as in nsqd), then what is published next.
    let tail = wasq()
        .args([
            "tail",
            "lines",
            "--nsqd-tcp-address",
            &tcp,
            "--channel",
            "watch",
            "-n",
            "5",
            "--print-topic",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(http.post("/pub?topic=lines", b"four").0, 200);
    assert_eq!(http.post("/pub?topic=lines", b"five").0, 200);
    let output = tail.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "lines | one\nlines | two\nlines | three\nlines | four\nlines | five\n"
    );
    // FINished: nothing left in flight or queued.
    assert!(eventually(Duration::from_secs(10), || {
        http.channel_stats("lines", "watch")
            .is_none_or(|c| c["depth"] == 0 && c["in_flight_count"] == 0)
    }));
}

#[test]
fn both_find_the_node_through_lookupd() {
    let wasqd = Wasqd::start();
    let lookupd = wasqd.lookupd_http.expect("embedded lookupd").to_string();
    let http = wasqd.http();
    // A topic the node has: lookupd knows it once the node registers it.
    assert_eq!(http.post("/topic/create?topic=found", b"").0, 200);
    let mut tail = wasq()
        .args([
            "tail",
            "found",
            "--lookupd-http-address",
            &lookupd,
            "-n",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    // tail uses an ephemeral channel of its own: wait until it is there.
    assert!(eventually(Duration::from_secs(30), || {
        http.stats()["topics"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|t| t["channels"].as_array().cloned().unwrap_or_default())
            .any(|c| {
                c["channel_name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with("#ephemeral"))
            })
    }));
    let (code, _, stderr) = publish(
        &["pub", "found", "--lookupd-http-address", &lookupd],
        "via lookupd\n",
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines.next().unwrap().unwrap(), "via lookupd");
    assert!(tail.wait().unwrap().success());
}

#[test]
fn no_node_is_a_clear_error() {
    let (code, _, stderr) = publish(&["pub", "t"], "x\n");
    assert_eq!(code, 2);
    assert!(
        stderr.contains("give --nsqd-tcp-address or --lookupd-http-address"),
        "{stderr}"
    );
    let (code, _, stderr) = publish(&["pub", "t", "--nsqd-tcp-address", "127.0.0.1:1"], "x\n");
    assert_eq!(code, 2);
    assert!(stderr.starts_with("wasq: 127.0.0.1:1: "), "{stderr}");
}
