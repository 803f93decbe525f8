//! Which files make a plugin: `NAME.toml` beside `NAME.wasm` (or
//! `NAME.wat`) in the plugins directory, and the names a plugin may have.
//! Looking is file I/O: the host does it on a blocking thread.

use std::path::{Path, PathBuf};

use super::manifest::Manifest;

/// Module file extensions, in order of preference.
pub const MODULE_EXTENSIONS: [&str; 2] = ["wasm", "wat"];

/// `[A-Za-z0-9_.-]+` not starting with `.`, the names a plugin may have;
/// hidden files are editors' and rsync's temporaries, never plugins.
pub fn is_plugin_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}
/// Plugin names in `dir`: every stem of a manifest or a module file.
pub fn plugin_names(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if (ext == "toml" || MODULE_EXTENSIONS.contains(&ext))
            && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
            && is_plugin_name(stem)
        {
            names.insert(stem.to_string());
        }
    }
    Ok(names.into_iter().collect())
}

/// What is on disk for plugin `name` now.
#[derive(Debug)]
pub struct PluginFiles {
    pub manifest: PathBuf,
    pub manifest_exists: bool,
    /// The module, by extension preference, if one exists.
    pub module: Option<PathBuf>,
}

impl PluginFiles {
    /// Looks in `dir` (blocking: a few `stat`s).
    pub fn find(dir: &Path, name: &str) -> PluginFiles {
        let manifest = dir.join(format!("{name}.toml"));
        PluginFiles {
            manifest_exists: manifest.exists(),
            manifest,
            module: MODULE_EXTENSIONS
                .iter()
                .map(|ext| dir.join(format!("{name}.{ext}")))
                .find(|p| p.exists()),
        }
    }
}

/// Reads and checks a plugin's manifest (blocking).
pub fn read_manifest(file: &Path, name: &str) -> Result<Manifest, String> {
    Manifest::parse(name, file, &read_manifest_text(file)?)
}

/// A manifest's text (blocking).
pub fn read_manifest_text(file: &Path) -> Result<String, String> {
    std::fs::read_to_string(file)
        .map_err(|e| format!("{}: cannot read the manifest: {e}", file.display()))
}
