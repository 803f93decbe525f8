#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wasq_fuzz::state_journal::run(data));
