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
fn deprecated_flags_are_accepted_as_nsqd_accepts_them() {
    // pynsq's integration tests start nsqd with --verbose; nsqd 1.3.0
    // lists it and --worker-id as deprecated and ignores them.
    for args in [
        &["--verbose"][..],
        &["-verbose", "--worker-id"],
        &["--verbose=false", "-worker-id=true"],
    ] {
        let wasqd = Wasqd::start_with(args);
        assert_eq!(wasqd.http().get("/ping"), (200, "OK".into()), "{args:?}");
    }
    let (_, help, _) = run(&["--help"]);
    assert!(
        help.contains("[deprecated] has no effect, use --log-level"),
        "{help}"
    );
}

#[test]
fn the_open_files_limit_is_raised_to_the_hard_limit_as_go_does_for_nsqd() {
    // Started with the usual soft limit, below the hard one.
    let wasqd = Wasqd::start_via_shell(r#"ulimit -S -n 1024; exec "$0" "$@""#, &[]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", wasqd.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    // "Max open files SOFT HARD files"
    assert_ne!(fields[3], "1024", "{line}");
    assert_eq!(fields[3], fields[4], "{line}");
}

#[test]
fn listeners_queue_as_many_connections_as_the_system_allows() {
    // Go's listeners (nsqd's) ask for net.core.somaxconn; 128 overflowed
    // when thousands of consumers connected at once.
    let somaxconn: u64 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let wasqd = Wasqd::start();
    for address in [wasqd.tcp, wasqd.http] {
        let output = std::process::Command::new("ss")
            .args(["-ltnH", &format!("sport = :{}", address.port())])
            .output()
            .expect("ss (iproute2)");
        let listing = String::from_utf8_lossy(&output.stdout);
        // "LISTEN 0 BACKLOG ADDRESS:PORT ..."
        let backlog: u64 = listing
            .split_whitespace()
            .nth(2)
            .and_then(|b| b.parse().ok())
            .unwrap_or_else(|| panic!("no listener in {listing:?}"));
        assert_eq!(backlog, somaxconn.min(65_535), "{address}: {listing}");
    }
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let wasqd = Wasqd::start();
    let mut consumer = wasqd.consumer("t", "c", 1);
    let status = wasqd.terminate();
    assert!(status.success(), "exit status {status:?}");
    consumer.expect_closed();
}

/// Every flag of nsqd v1.3.0 (`nsqd --help`), which `wasqd --help` must list.
const NSQD_FLAGS: &[&str] = &[
    "auth-http-address",
    "broadcast-address",
    "broadcast-http-port",
    "broadcast-tcp-port",
    "config",
    "data-path",
    "deflate",
    "e2e-processing-latency-percentile",
    "e2e-processing-latency-window-time",
    "http-address",
    "http-client-connect-timeout",
    "http-client-request-timeout",
    "https-address",
    "log-level",
    "log-prefix",
    "lookupd-tcp-address",
    "max-body-size",
    "max-bytes-per-file",
    "max-channel-consumers",
    "max-deflate-level",
    "max-heartbeat-interval",
    "max-msg-size",
    "max-msg-timeout",
    "max-output-buffer-size",
    "max-output-buffer-timeout",
    "max-rdy-count",
    "max-req-timeout",
    "mem-queue-size",
    "min-output-buffer-timeout",
    "msg-timeout",
    "node-id",
    "output-buffer-timeout",
    "queue-scan-selection-count",
    "queue-scan-worker-pool-max",
    "snappy",
    "statsd-address",
    "statsd-exclude-ephemeral",
    "statsd-interval",
    "statsd-mem-stats",
    "statsd-prefix",
    "statsd-udp-packet-size",
    "sync-every",
    "sync-timeout",
    "tcp-address",
    "tls-cert",
    "tls-client-auth-policy",
    "tls-key",
    "tls-min-version",
    "tls-required",
    "tls-root-ca-file",
    "verbose",
    "version",
    "worker-id",
];

#[test]
fn help_lists_every_nsqd_flag() {
    let (code, stdout, _) = run(&["--help"]);
    assert_eq!(code, 0);
    let missing: Vec<&str> = NSQD_FLAGS
        .iter()
        .copied()
        .filter(|flag| !stdout.contains(&format!("--{flag}")))
        .collect();
    assert!(missing.is_empty(), "missing from --help: {missing:?}");
}

#[test]
fn tls_and_config_flags_are_checked_at_start_up() {
    for (args, expected) in [
        (&["--tls-min-version", "ssl3.0"][..], "--tls-min-version"),
        (
            &["--tls-client-auth-policy", "maybe"][..],
            "--tls-client-auth-policy",
        ),
        (&["--tls-required=sometimes"][..], "--tls-required"),
        (&["--max-deflate-level", "10"][..], "--max-deflate-level"),
        (&["--node-id", "1024"][..], "--node-id"),
        (
            &["--tls-cert", "/nonexistent/cert.pem"][..],
            "--tls-cert is given without --tls-key",
        ),
        (
            &["--config", "/nonexistent/nsqd.cfg"][..],
            "failed to load config file /nonexistent/nsqd.cfg",
        ),
        (
            &["--e2e-processing-latency-percentile", "0.99,1.5"][..],
            "invalid E2E processing latency percentile: 1.5",
        ),
    ] {
        let (code, _, stderr) = run(args);
        assert_ne!(code, 0, "{args:?} was accepted");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn log_lines_start_with_the_log_prefix() {
    let wasqd = Wasqd::start_with(&["--log-prefix", "[node-a] "]);
    let log = wasqd.log();
    assert!(!log.is_empty());
    assert!(
        log.iter().all(|line| line.starts_with("[node-a] ")),
        "{log:?}"
    );
}
