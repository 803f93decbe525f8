//! `wasq plugin new` in every language: the scaffold builds as it is with
//! its one command (`./build.sh`) and, run offline by `wasq plugin test`,
//! publishes each body uppercased to NAME.upper.
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

fn scaffold_builds_and_uppercases(language: &str) {
    if language != "rust"
        && let Some(problem) = guest_build_problem(language)
    {
        panic!("{problem}");
    }
    let dir = tempfile::tempdir().unwrap();
    let name = format!("demo-{language}");
    let (code, stdout, stderr) = run_in(dir.path(), &["plugin", "new", &name, "--lang", language]);
    assert_eq!(code, 0, "{stdout}{stderr}");

    let toolchains = repository().join("target/guest-toolchains/bin");
    let path = format!(
        "{}:{}",
        toolchains.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let built = Command::new(dir.path().join(&name).join("build.sh"))
        .env("PATH", path)
        .output()
        .expect("run build.sh");
    assert!(
        built.status.success(),
        "{language}: build.sh failed: {}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );

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
