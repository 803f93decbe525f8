//! Plugin manifests: any text is a manifest or an error naming the file.

use wasq_host::plugins::manifest::Manifest;

/// One input, as the fuzzer and the replay test give it.
pub fn run(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Manifest::parse("fuzz", std::path::Path::new("plugins/fuzz.toml"), text);
    }
}
