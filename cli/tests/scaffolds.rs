//! `wasq plugin new` in every language: the scaffold builds as it is with
//! its one command (`./build.sh`) and, run offline by `wasq plugin test`,
//! publishes each body uppercased to NAME.upper; with `--template webhook`
//! it POSTs each body to a real local sink.
//!
//! The toolchains are the ones `scripts/build-guests` installs (PATH gets
//! its venv first: Zig, Go, componentize-py); a language whose toolchain
//! failed to install fails here with the step that failed.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::run_in;
use wasq_testkit::guest_build_problem;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Writes `name`'s scaffold in `language` from `template` under `dir`
/// and builds it with its build.sh.
fn scaffold_and_build(dir: &Path, name: &str, language: &str, template: &str) {
    if language != "rust"
        && let Some(problem) = guest_build_problem(language)
    {
        panic!("{problem}");
    }
    let (code, stdout, stderr) = run_in(
        dir,
        &[
            "plugin",
            "new",
            name,
            "--lang",
            language,
            "--template",
            template,
        ],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");

    let toolchains = repository().join("target/guest-toolchains/bin");
    let path = format!(
        "{}:{}",
        toolchains.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let built = Command::new(dir.join(name).join("build.sh"))
        .env("PATH", path)
        .output()
        .expect("run build.sh");
    assert!(
        built.status.success(),
        "{language}: build.sh failed: {}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
}

fn scaffold_builds_and_uppercases(language: &str) {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("demo-{language}");
    scaffold_and_build(dir.path(), &name, language, "uppercase");

    let module = if language == "wat" {
        format!("{name}/{name}.wat")
    } else {
        format!("{name}/{name}.wasm")
    };
    let (code, stdout, stderr) = run_in(
        dir.path(),
        &[
            "plugin",
            "test",
            &module,
            "--message",
            "hello wasq",
            "--expect",
            "success",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{language}: {stdout}{stderr}");
    let line: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(
        line["published"][0]["topic"],
        format!("{name}.upper"),
        "{line}"
    );
    assert_eq!(line["published"][0]["body"], "HELLO WASQ", "{line}");
}

#[test]
fn rust() {
    scaffold_builds_and_uppercases("rust");
}

#[test]
fn c() {
    scaffold_builds_and_uppercases("c");
}

#[test]
fn zig() {
    scaffold_builds_and_uppercases("zig");
}

#[test]
fn assemblyscript() {
    scaffold_builds_and_uppercases("assemblyscript");
}

#[test]
fn go() {
    scaffold_builds_and_uppercases("go");
}

#[test]
fn wat() {
    scaffold_builds_and_uppercases("wat");
}

#[test]
fn js() {
    scaffold_builds_and_uppercases("js");
}

#[test]
fn python() {
    scaffold_builds_and_uppercases("python");
}

/// `--template webhook`: the scaffold POSTs each body to the URL its
/// manifest names, under its allowlist (here a local sink, allowed for
/// the run with --allow-host).
fn webhook_scaffold_posts(language: &str) {
    let sink = wasq_testkit::HttpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let name = format!("hook-{language}");
    scaffold_and_build(dir.path(), &name, language, "webhook");
    let manifest = dir.path().join(&name).join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&manifest).unwrap().replace(
        &format!("https://hooks.example.com/{name}"),
        &sink.url("/in"),
    );
    std::fs::write(&manifest, text).unwrap();
    let module = format!("{name}/{name}.wasm");
    let origin = sink.origin();
    let (code, stdout, stderr) = run_in(
        dir.path(),
        &[
            "plugin",
            "test",
            &module,
            "--allow-host",
            &origin,
            "--message",
            "ding",
            "--expect",
            "success",
        ],
    );
    assert_eq!(code, 0, "{language}: {stdout}{stderr}");
    assert_eq!(sink.requests()[0].body, b"ding", "{language}");
}

#[test]
fn rust_webhook() {
    webhook_scaffold_posts("rust");
}

#[test]
fn go_webhook() {
    webhook_scaffold_posts("go");
}

#[test]
fn js_webhook() {
    webhook_scaffold_posts("js");
}

#[test]
fn c_webhook() {
    webhook_scaffold_posts("c");
}

#[test]
fn python_webhook() {
    webhook_scaffold_posts("python");
}
