//! Bundles wasi:http's WIT into `wasq`, for the Python webhook scaffold.
//!
//! componentize-py needs the WIT of every package a world imports, and
//! the Python world that calls out (`consumer-http`) imports wasi:http
//! 0.2. The WIT files are the ones the wasmtime-wasi-http crate the host
//! links ships (so the scaffold's guest and the broker agree on the
//! version); this script finds that crate where cargo unpacked it and
//! writes `$OUT_DIR/wasi_http_wit.rs`: `WASI_HTTP_WIT`, a list of
//! `(file name, text)`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("Cargo.lock").display()
    );
    let deps = wasi_http_wit_dir(&workspace);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&deps)
        .unwrap_or_else(|e| panic!("{}: {e}", deps.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "wit"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no WIT in {}", deps.display());
    let mut code = String::from("pub const WASI_HTTP_WIT: &[(&str, &str)] = &[\n");
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy();
        code.push_str(&format!("    ({name:?}, include_str!({path:?})),\n"));
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("wasi_http_wit.rs");
    std::fs::write(&out, code).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
}

/// `wit/deps` of the wasmtime-wasi-http package in the workspace's
/// dependency graph, as `cargo metadata` locates it (registry, vendored
/// or git alike).
fn wasi_http_wit_dir(workspace: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--manifest-path",
        ])
        .arg(workspace.join("Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata's JSON");
    let manifest = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|package| package["name"] == "wasmtime-wasi-http")
        .and_then(|package| package["manifest_path"].as_str())
        .expect("wasmtime-wasi-http among the workspace's packages");
    Path::new(manifest)
        .parent()
        .expect("a crate directory")
        .join("wit/deps")
}
