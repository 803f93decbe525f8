//! Plugin manifests: any text is a manifest or an error naming the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasq_host::plugins::manifest::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Manifest::parse("fuzz", std::path::Path::new("plugins/fuzz.toml"), text);
    }
});
