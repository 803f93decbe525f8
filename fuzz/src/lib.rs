//! What each cargo-fuzz target does with one input. The binaries in
//! `fuzz_targets/` are one line each, handing libFuzzer's input to `run`
//! here, so that `tests/replay.rs` can feed the same functions every
//! committed seed (`seeds/TARGET/`) and every input that once crashed a
//! target (`regressions/TARGET/`) on the stable toolchain, as part of the
//! normal test suite: a regression fails `scripts/test` without nightly.

pub mod compressed_streams;
pub mod disk_record;
pub mod identify_json;
pub mod lookupd_v1;
pub mod manifest;
pub mod plugin_abi;
pub mod state_journal;
pub mod v2_commands;
