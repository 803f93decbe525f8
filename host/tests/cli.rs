//! The `wasqd` command line: nsqd's flag names, clear errors for bad
//! values, Go-style single-dash flags and a clean exit on SIGTERM.

use std::process::Command;

use wasq_testkit::Wasqd;

fn run(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_wasqd"))
        .args(args)
        .output()
        .expect("run wasqd");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn version_is_printed() {
    let (code, stdout, _) = run(&["--version"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("wasqd v"), "{stdout}");
    assert!(stdout.contains("nsqd 1.3.0 compatible"));
}

#[test]
fn bad_values_are_clear_errors() {
    for (args, expected) in [
        (&["--msg-timeout", "soon"][..], "invalid duration \"soon\""),
        (&["--max-msg-size", "-5"][..], "--max-msg-size"),
        (&["--max-rdy-count", "0"][..], "--max-rdy-count"),
        (&["--tcp-address", "nowhere"][..], "invalid address"),
        (&["--log-level", "loud"][..], "--log-level"),
        (&["--no-such-flag"][..], "--no-such-flag"),
        (
            &["--msg-timeout", "20m"][..],
            "must not exceed --max-msg-timeout",
        ),
        (
            &["--max-msg-size", "10000000"][..],
            "must not exceed --max-body-size",
        ),
    ] {
        let (code, _, stderr) = run(args);
        assert_ne!(code, 0, "{args:?} should fail");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn a_taken_port_is_reported() {
    let wasqd = Wasqd::start();
    let taken = wasqd.tcp.to_string();
    let (code, _, stderr) = run(&[
        "--tcp-address",
        &taken,
        "--http-address",
        "127.0.0.1:0",
        "--no-embedded-lookupd",
    ]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains(&format!("failed to listen on TCP address {taken}")),
        "{stderr}"
    );
}

#[test]
fn go_style_single_dash_flags_work() {
    let wasqd = Wasqd::start_with(&["-max-rdy-count=7", "-msg-timeout", "5s"]);
    assert_eq!(wasqd.http().get("/config/max_rdy_count"), (200, "7".into()));
    assert_eq!(
        wasqd.http().get("/config/msg_timeout"),
        (200, "5000000000".into())
    );
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let wasqd = Wasqd::start();
    let mut consumer = wasqd.consumer("t", "c", 1);
    let status = wasqd.terminate();
    assert!(status.success(), "exit status {status:?}");
    consumer.expect_closed();
}
