#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wasq_fuzz::lookupd_v1::run(data));
