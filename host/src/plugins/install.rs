//! Installing and removing a plugin's files for the plugin API (`PUT` and
//! `DELETE /plugins/NAME`), so a deploy tool never needs a shell on the
//! node.
//!
//! The files are written the way the watcher expects a careful writer to:
//! each to a hidden temporary file in the plugins directory, fsynced, then
//! renamed over the old one, so no reader ever sees half a file. The host
//! then loads the version at once, holding the lock every load takes, so
//! the watcher's own look (after the rename) finds it already live.
//!
//! A version that fails to load leaves the running one live, as every
//! reload does; here the files on disk are put back too (the live
//! version's, or none), so a restart brings back what was running, not
//! the version that was refused.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::files::MODULE_EXTENSIONS;
use super::prepare::VersionFiles;
use super::reload::Cause;
use super::{PluginHost, SyncResult};

/// A version as uploaded.
pub struct Upload {
    pub module: Vec<u8>,
    pub manifest: String,
}

/// A module's format, told by its first bytes: the binary format starts
/// with `\0asm`, anything else must be the text format.
pub fn module_extension(module: &[u8]) -> &'static str {
    if module.starts_with(b"\0asm") {
        "wasm"
    } else {
        "wat"
    }
}

/// The live version of a plugin: its module hash and files.
pub struct LiveFiles {
    pub module_hash: String,
    pub files: VersionFiles,
}

impl PluginHost {
    /// Writes `upload` as plugin `name`'s files and loads it. On
    /// `SyncResult::Failed` the previous version is live and on disk again.
    pub async fn install(&self, name: &str, upload: Upload, by: &str) -> SyncResult {
        let _one_at_a_time = self.sync_lock.lock().await;
        let cause = Cause::admin(by);
        let extension = module_extension(&upload.module);
        let new = (upload.module, upload.manifest.into_bytes());
        let result = match self.write_files(name, extension, new).await {
            Ok(()) => self.sync_locked(name, &cause).await,
            // Half written, perhaps: put back what was there, as below.
            Err(e) => SyncResult::Failed(format!("cannot write the plugin's files: {e}")),
        };
        if let SyncResult::Failed(why) = &result {
            let live = self.live_files(name);
            let restored = match &live {
                Some(live) => {
                    let module = live.files.module.to_vec();
                    let manifest = live.files.manifest.as_bytes().to_vec();
                    let extension = module_extension(&module);
                    self.write_files(name, extension, (module, manifest)).await
                }
                None => self.remove_files(name).await.map(|_| ()),
            };
            match restored {
                Ok(()) => tracing::warn!(
                    plugin = name,
                    by,
                    "PLUGIN API: version refused, the files of the one before are back: {why}"
                ),
                Err(e) => tracing::error!(
                    plugin = name,
                    by,
                    "PLUGIN API: version refused, and the files of the one before could not be put back ({e}): {why}"
                ),
            }
        }
        result
    }

    /// Removes plugin `name`'s files and stops it (its state and channel
    /// stay, as for a removal by hand). `SyncResult::Unknown` if it has
    /// neither files nor a version.
    pub async fn uninstall(&self, name: &str, by: &str) -> SyncResult {
        let _one_at_a_time = self.sync_lock.lock().await;
        let had_files = match self.remove_files(name).await {
            Ok(had_files) => had_files,
            Err(e) => return SyncResult::Failed(format!("cannot remove the plugin's files: {e}")),
        };
        if !had_files && self.live_files(name).is_none() {
            return SyncResult::Unknown;
        }
        let cause = Cause::admin(by);
        self.sync_locked(name, &cause).await
    }

    /// The live version's module hash and files, if one runs.
    pub fn live_files(&self, name: &str) -> Option<LiveFiles> {
        let plugins = self.plugins.lock();
        let live = plugins.get(name)?.live.as_ref()?;
        Some(LiveFiles {
            module_hash: live.module_hash.clone(),
            files: live.files.clone(),
        })
    }

    /// Puts `NAME.<extension>` and `NAME.toml` in place (removing a module
    /// of the other format, which could shadow or be shadowed by it).
    async fn write_files(
        &self,
        name: &str,
        extension: &'static str,
        (module, manifest): (Vec<u8>, Vec<u8>),
    ) -> std::io::Result<()> {
        let (dir, name) = (self.dir.clone(), name.to_string());
        blocking(move || {
            std::fs::create_dir_all(&dir)?;
            write_atomically(&dir, &format!("{name}.toml"), &manifest)?;
            write_atomically(&dir, &format!("{name}.{extension}"), &module)?;
            for other in MODULE_EXTENSIONS.iter().filter(|e| **e != extension) {
                remove_if_there(&dir.join(format!("{name}.{other}")))?;
            }
            sync_dir(&dir)
        })
        .await
    }

    /// Removes the plugin's files; whether there were any.
    async fn remove_files(&self, name: &str) -> std::io::Result<bool> {
        let (dir, name) = (self.dir.clone(), name.to_string());
        blocking(move || {
            let mut had_files = false;
            for extension in MODULE_EXTENSIONS.iter().chain(&["toml"]) {
                had_files |= remove_if_there(&dir.join(format!("{name}.{extension}")))?;
            }
            if had_files {
                sync_dir(&dir)?;
            }
            Ok(had_files)
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

/// Writes `file` in `dir` through a hidden temporary file (which the
/// watcher ignores) renamed over it.
fn write_atomically(dir: &Path, file: &str, bytes: &[u8]) -> std::io::Result<()> {
    let temporary: PathBuf = dir.join(format!(".{file}.upload-{:016x}", fastrand::u64(..)));
    let written = (|| {
        let mut out = std::fs::File::create(&temporary)?;
        out.write_all(bytes)?;
        out.sync_all()?;
        std::fs::rename(&temporary, dir.join(file))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// Removes `file`; whether it was there.
fn remove_if_there(file: &Path) -> std::io::Result<bool> {
    match std::fs::remove_file(file) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Makes the renames in `dir` durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_format_is_told_by_its_magic_number() {
        assert_eq!(module_extension(b"\0asm\x01\0\0\0"), "wasm");
        assert_eq!(module_extension(b"(module)"), "wat");
    }

    #[test]
    fn an_atomic_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        write_atomically(dir.path(), "p.toml", b"one").unwrap();
        write_atomically(dir.path(), "p.toml", b"two").unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["p.toml"]);
        assert_eq!(std::fs::read(dir.path().join("p.toml")).unwrap(), b"two");
    }
}
