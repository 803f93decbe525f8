//! Watches the plugins directory and reloads a plugin once its files have
//! been quiet for a moment.
//!
//! Files arrive in many ways: written in place in chunks, written elsewhere
//! and renamed in, replaced by an editor (delete + create), copied by `cp`
//! or `rsync` (a hidden temporary file renamed into place). Every event
//! only marks the plugin's name as dirty; the reload runs after
//! [`DEBOUNCE`] without further events, so a half-written file is normally
//! never read. If it is (a writer pausing longer than that), compiling
//! fails, the old version stays live, and the next write triggers a retry.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{MODULE_EXTENSIONS, PluginHost, Trigger, is_plugin_name};

/// Quiet time after the last event before a plugin is reloaded.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// Starts watching `dir`; reloads run on the Tokio runtime until `shutdown`.
pub fn spawn(
    host: Arc<PluginHost>,
    dir: PathBuf,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (tx, mut dirty) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            // Reading a file is no change: without this, the host's own
            // read of a plugin (to hash it) would mark it dirty again, and
            // every plugin would be re-read every DEBOUNCE, forever.
            Ok(event) if event.kind.is_access() => {}
            Ok(event) => {
                for path in &event.paths {
                    if let Some(name) = plugin_of(path) {
                        let _ = tx.send(name);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "PLUGINS: watch error"),
        })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    tracing::info!(dir = %dir.display(), "PLUGINS: watching for changes");

    tokio::spawn(async move {
        let _watcher = watcher;
        let mut pending: HashMap<String, Instant> = HashMap::new();
        loop {
            let next_due = pending.values().min().map(|last| *last + DEBOUNCE);
            let wait = async {
                match next_due {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                name = dirty.recv() => match name {
                    Some(name) => { pending.insert(name, Instant::now()); }
                    None => return,
                },
                _ = wait => {
                    let now = Instant::now();
                    let due: Vec<String> =
                        pending.iter().filter(|(_, last)| now >= **last + DEBOUNCE).map(|(n, _)| n.clone()).collect();
                    for name in due {
                        pending.remove(&name);
                        let host = host.clone();
                        tokio::spawn(async move { host.sync_plugin(&name, Trigger::Watch).await });
                    }
                }
            }
        }
    });
    Ok(())
}

/// The plugin a changed path belongs to, if it is one of ours: `NAME.wasm`,
/// `NAME.wat` or `NAME.toml`, not hidden (editors' and rsync's temporaries).
fn plugin_of(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let (stem, ext) = file.rsplit_once('.')?;
    let known = ext == "toml" || MODULE_EXTENSIONS.contains(&ext);
    (known && is_plugin_name(stem)).then(|| stem.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plugin_files_count() {
        assert_eq!(
            plugin_of(Path::new("/p/uppercase.wasm")),
            Some("uppercase".into())
        );
        assert_eq!(
            plugin_of(Path::new("/p/uppercase.toml")),
            Some("uppercase".into())
        );
        assert_eq!(plugin_of(Path::new("/p/hand.wat")), Some("hand".into()));
        assert_eq!(plugin_of(Path::new("/p/.uppercase.wasm.x8Gh2")), None);
        assert_eq!(plugin_of(Path::new("/p/uppercase.wasm~")), None);
        assert_eq!(plugin_of(Path::new("/p/notes.txt")), None);
        assert_eq!(plugin_of(Path::new("/p/4913")), None);
    }
}
