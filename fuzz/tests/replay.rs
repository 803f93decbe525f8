//! Replays every committed seed and regression input of every fuzz target
//! through the function the target calls (a test per target), and checks
//! that no target, seed folder or regression folder is left out.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// The inputs kept for a target: its seeds, then the inputs that once
/// crashed it, in name order.
fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for kind in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(kind).join(target)) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .map(|entry| entry.expect("a readable folder entry").path())
            .filter(|path| path.is_file())
            .collect();
        found.sort();
        files.extend(found);
    }
    files
}

/// Feeds each kept input to `run`, collecting every input that panics
/// (the panic message itself is printed by the panic hook) so one failure
/// does not hide the others.
fn replay(target: &str, run: fn(&[u8])) {
    let files = inputs(target);
    assert!(!files.is_empty(), "fuzz/seeds/{target}/ has no seed");
    let failed: Vec<String> = files
        .iter()
        .filter(|file| {
            let data = std::fs::read(file).expect("a readable input");
            catch_unwind(AssertUnwindSafe(|| run(&data))).is_err()
        })
        .map(|file| file.display().to_string())
        .collect();
    assert!(failed.is_empty(), "{target} panicked on {failed:#?}");
}

/// The names of the files or folders directly under `fuzz/<dir>`, without
/// the extension.
fn names_under(dir: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|entry| entry.expect("a readable folder entry").path())
        .filter(|path| path.extension().is_none_or(|ext| ext == "rs"))
        .filter_map(|path| Some(path.file_stem()?.to_str()?.to_owned()))
        .collect();
    names.sort();
    names
}

macro_rules! replay_targets {
    ($($target:ident),* $(,)?) => {
        $(
            #[test]
            fn $target() {
                replay(stringify!($target), wasq_fuzz::$target::run);
            }
        )*

        #[test]
        fn every_target_is_replayed() {
            let replayed = [$(stringify!($target)),*];
            let manifest = include_str!("../Cargo.toml");
            for target in replayed {
                assert!(
                    manifest.contains(&format!("path = \"fuzz_targets/{target}.rs\"")),
                    "fuzz/Cargo.toml has no [[bin]] for {target}"
                );
            }
            for dir in ["fuzz_targets", "seeds", "regressions"] {
                for name in names_under(dir) {
                    assert!(
                        replayed.contains(&name.as_str()),
                        "fuzz/{dir}/{name} belongs to a target tests/replay.rs does not replay"
                    );
                }
            }
        }
    };
}

replay_targets!(
    compressed_streams,
    disk_record,
    identify_json,
    lookupd_v1,
    manifest,
    plugin_abi,
    state_journal,
    v2_commands,
);
