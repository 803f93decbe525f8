//! `wasq plugin test`: a plugin run offline with wasqd's runtime, its
//! outcome, publishes, log lines and handler time per message, and the exit
//! status a plugin's CI relies on.

mod support;

use std::path::Path;

use support::run_in;
use wasq_testkit::wat_plugin;

/// A directory with `NAME.wat` and `NAME.toml`.
fn plugin(dir: &Path, name: &str, wat: &str, manifest: &str) {
    std::fs::write(dir.join(format!("{name}.wat")), wat).unwrap();
    std::fs::write(dir.join(format!("{name}.toml")), manifest).unwrap();
}

#[test]
fn a_scaffolded_plugin_is_tested_without_a_broker() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run_in(dir.path(), &["plugin", "new", "shout", "--lang", "wat"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = run_in(
        dir.path(),
        &[
            "plugin",
            "test",
            "shout/shout.wat",
            "--message",
            "hello",
            "--message",
            "Wasm!",
            "--expect",
            "success",
        ],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains(r#"ok: "hello" -> success in "#), "{stdout}");
    assert!(
        stdout.contains(r#"published to shout.upper: "HELLO""#),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#"published to shout.upper: "WASM!""#),
        "{stdout}"
    );

    // JSON, one object per message, from a file of bodies.
    std::fs::write(dir.path().join("bodies.txt"), "one\ntwo\n").unwrap();
    let (code, stdout, _) = run_in(
        dir.path(),
        &[
            "plugin",
            "test",
            "shout/shout.wat",
            "--messages",
            "bodies.txt",
            "--json",
        ],
    );
    assert_eq!(code, 0);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["outcome"], "success");
    assert_eq!(lines[1]["published"][0]["topic"], "shout.upper");
    assert_eq!(lines[1]["published"][0]["body"], "TWO");
    assert!(lines[1]["handler_time_us"].as_f64().unwrap() >= 0.0);

    // An outcome other than the expected one fails the run.
    let (code, stdout, _) = run_in(
        dir.path(),
        &[
            "plugin",
            "test",
            "shout/shout.wat",
            "--message",
            "x",
            "--expect",
            "fatal",
        ],
    );
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("FAILED") && stdout.contains("(expected fatal)"),
        "{stdout}"
    );
}

#[test]
fn refusals_and_logs_are_shown_under_their_message() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, _) = run_in(dir.path(), &["plugin", "new", "shout", "--lang", "wat"]);
    assert_eq!(code, 0);
    // An empty body cannot be published: the host refuses, the plugin
    // logs a warning and asks for a retry.
    let (code, stdout, _) = run_in(
        dir.path(),
        &[
            "plugin",
            "test",
            "shout/shout.wat",
            "--message",
            "",
            "--expect",
            "retry",
        ],
    );
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("-> retry"), "{stdout}");
    assert!(
        stdout.contains("log: WARN publish refused: empty or too large body"),
        "{stdout}"
    );
    assert!(
        stdout.contains("log: WARN cannot publish to shout.upper"),
        "{stdout}"
    );
}

#[test]
fn traps_and_deadlines_fail_the_run_and_the_next_message_gets_a_new_instance() {
    let dir = tempfile::tempdir().unwrap();
    plugin(
        dir.path(),
        "crash",
        &wat_plugin("", "unreachable"),
        "topic = \"t\"\n",
    );
    let (code, stdout, _) = run_in(
        dir.path(),
        &[
            "plugin",
            "test",
            "crash.wat",
            "--message",
            "a",
            "--message",
            "b",
        ],
    );
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(stdout.matches("-> trap").count(), 2, "{stdout}");
    assert!(stdout.contains("error: trap:"), "{stdout}");

    plugin(
        dir.path(),
        "spin",
        &wat_plugin("", "(loop $forever (br $forever)) (i64.const 0)"),
        "topic = \"t\"\nhandler_deadline_ms = 50\n",
    );
    let (code, stdout, _) = run_in(
        dir.path(),
        &["plugin", "test", "spin.wat", "--message", "a", "--json"],
    );
    assert_eq!(code, 1, "{stdout}");
    let line: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(line["outcome"], "timeout");
    assert_eq!(line["error"], "handler deadline exceeded");
}

#[test]
fn bad_input_is_one_line_and_exit_status_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("junk.wasm"), "not wasm at all").unwrap();
    std::fs::write(dir.path().join("junk.toml"), "topic = \"t\"\n").unwrap();
    plugin(
        dir.path(),
        "fine",
        &wat_plugin("", "(i64.const 0)"),
        "topic = \"t\"\n",
    );
    std::fs::write(dir.path().join("broken.toml"), "topic = \n").unwrap();
    std::fs::write(
        dir.path().join("nomanifest.wat"),
        wat_plugin("", "(i64.const 0)"),
    )
    .unwrap();
    for (args, expected) in [
        (
            &["plugin", "test", "missing.wasm", "--message", "x"][..],
            "missing.wasm: no such file",
        ),
        (
            &["plugin", "test", "junk.wasm", "--message", "x"][..],
            "junk.wasm: invalid WebAssembly module",
        ),
        (
            &["plugin", "test", "nomanifest.wat", "--message", "x"][..],
            "no manifest",
        ),
        (
            &[
                "plugin",
                "test",
                "fine.wat",
                "--manifest",
                "broken.toml",
                "--message",
                "x",
            ][..],
            "broken.toml: TOML parse error",
        ),
        (&["plugin", "test", "fine.wat"][..], "no messages"),
        (
            &["plugin", "test", "fine.wat", "--messages", "nope.txt"][..],
            "nope.txt",
        ),
        (
            &["plugin", "new", "Bad.Name", "--lang", "c"][..],
            "a new plugin's name is",
        ),
    ] {
        let (code, _, stderr) = run_in(dir.path(), args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{args:?}: one line: {stderr}"
        );
    }
    // A directory that is not empty is not written over.
    let (code, _, _) = run_in(dir.path(), &["plugin", "new", "again", "--lang", "c"]);
    assert_eq!(code, 0);
    let (code, _, stderr) = run_in(dir.path(), &["plugin", "new", "again", "--lang", "c"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("already exists and is not empty"),
        "{stderr}"
    );
}

#[test]
fn every_subcommand_explains_itself_with_examples() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["plugin", "new", "--help"][..],
        &["plugin", "test", "--help"][..],
        &["pub", "--help"][..],
        &["tail", "--help"][..],
    ] {
        let (code, stdout, _) = run_in(dir.path(), args);
        assert_eq!(code, 0, "{args:?}");
        assert!(stdout.contains("Examples:"), "{args:?}: {stdout}");
    }
}

/// Outbound HTTP is really sent under the manifest's allowlist, which
/// `--allow-host` extends for the run, and each request is reported with
/// its answer.
#[test]
fn outbound_requests_are_sent_and_shown() {
    let sink = wasq_testkit::HttpSink::start();
    sink.answer_with(|_| wasq_testkit::Answer::status(202).body("accepted"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        wasq_testkit::PluginDir::example_module("webhook"),
        dir.path().join("hook.wasm"),
    )
    .unwrap();
    let url = sink.url("/in");
    std::fs::write(
        dir.path().join("hook.toml"),
        format!("topic = \"t\"\n[config]\nurl = {url:?}\n"),
    )
    .unwrap();

    // The manifest allows nothing: refused, before any connection.
    let (code, stdout, stderr) = run_in(
        dir.path(),
        &["plugin", "test", "hook.wasm", "--message", "hi"],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains(r#""hi" -> fatal"#), "{stdout}");
    assert!(
        stdout.contains(&format!("http: POST {url} -> no response: refused")),
        "{stdout}"
    );
    assert_eq!(sink.connections(), 0);

    let origin = sink.origin();
    let (code, stdout, stderr) = run_in(
        dir.path(),
        &[
            "plugin",
            "test",
            "hook.wasm",
            "--allow-host",
            &origin,
            "--message",
            "hello",
            "--expect",
            "success",
        ],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!(r#"http: POST {url} -> 202, 8 bytes: "accepted""#)),
        "{stdout}"
    );
    assert_eq!(sink.requests()[0].body, b"hello");
}

#[test]
fn a_plugin_with_state_starts_from_given_keys_and_shows_what_each_message_commits() {
    let dir = tempfile::tempdir().unwrap();
    let module = wasq_testkit::PluginDir::example_module("counter");
    let module = module.to_str().unwrap();
    std::fs::write(
        dir.path().join("counter.toml"),
        "topic = \"clicks\"\nstate = true\npublish = [\"counts\"]\n[config]\nevery = \"10\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("seed.json"), r#"{"count/a": "8"}"#).unwrap();
    let with_seed = [
        "plugin",
        "test",
        module,
        "--manifest",
        "counter.toml",
        "--state",
        "seed.json",
    ];
    let messages = ["--message", "a", "--message", "a", "--message", "b"];
    let (code, stdout, stderr) = run_in(dir.path(), &[&with_seed[..], &messages].concat());
    assert_eq!(code, 0, "{stdout}{stderr}");
    let expected = [
        r#"state: "count/a" = "9""#,
        r#"state: "count/a" = "10""#,
        r#"published to counts: "a 10""#,
        r#"state: "count/b" = "1""#,
    ];
    for line in expected {
        assert!(stdout.contains(line), "{line} in {stdout}");
    }

    // Without the grant, keys given for the state are an error.
    std::fs::write(dir.path().join("counter.toml"), "topic = \"clicks\"\n").unwrap();
    let (code, _, stderr) = run_in(dir.path(), &[&with_seed[..], &messages[..2]].concat());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("does not set state = true"), "{stderr}");
}
