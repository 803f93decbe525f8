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
//! A file closed by its writer or renamed into place is whole: its plugin
//! waits only [`SETTLE`] (for a second file copied with it, such as the
//! manifest), so a new version is not a tenth of a second later than it
//! need be.

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

/// Quiet time after a plugin's file was closed by its writer or renamed
/// into place.
pub const SETTLE: Duration = Duration::from_millis(15);

/// Starts watching `dir`; reloads run on the Tokio runtime until `shutdown`.
pub fn spawn(
    host: Arc<PluginHost>,
    dir: PathBuf,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (tx, mut dirty) = tokio::sync::mpsc::unbounded_channel::<(String, Duration)>();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) => {
                let Some(quiet) = quiet_after(&event.kind) else {
                    return;
                };
                for path in &event.paths {
                    if let Some(name) = plugin_of(path) {
                        let _ = tx.send((name, quiet));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "PLUGINS: watch error"),
        })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    tracing::info!(dir = %dir.display(), "PLUGINS: watching for changes");

    tokio::spawn(async move {
        let _watcher = watcher;
        // When each dirty plugin is due.
        let mut pending: HashMap<String, Instant> = HashMap::new();
        loop {
            let next_due = pending.values().min().copied();
            let wait = async {
                match next_due {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                event = dirty.recv() => match event {
                    Some((name, quiet)) => { pending.insert(name, Instant::now() + quiet); }
                    None => return,
                },
                _ = wait => {
                    let now = Instant::now();
                    let due: Vec<String> =
                        pending.iter().filter(|(_, due)| now >= **due).map(|(n, _)| n.clone()).collect();
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

/// How long a plugin waits after an event of `kind` on its files, if the
/// event is a change at all.
fn quiet_after(kind: &notify::EventKind) -> Option<Duration> {
    use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
    match kind {
        // Closed by its writer: whole.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(SETTLE),
        // Reading a file is no change: without this, the host's own
        // read of a plugin (to hash it) would mark it dirty again, and
        // every plugin would be re-read every DEBOUNCE, forever.
        EventKind::Access(_) => None,
        // Renamed into place (a path renamed away only lost its file).
        EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both)) => Some(SETTLE),
        _ => Some(DEBOUNCE),
    }
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
    fn a_file_closed_or_renamed_in_is_whole_and_others_wait_for_quiet() {
        use notify::event::{
            AccessKind, AccessMode, CreateKind, EventKind, ModifyKind, RemoveKind, RenameMode,
        };
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert_eq!(quiet_after(&closed), Some(SETTLE));
        let renamed_in = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        assert_eq!(quiet_after(&renamed_in), Some(SETTLE));
        let read = EventKind::Access(AccessKind::Close(AccessMode::Read));
        assert_eq!(quiet_after(&read), None, "a read is no change");
        // An editor deletes, then creates and writes: wait for the writes.
        for kind in [
            EventKind::Remove(RemoveKind::File),
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Any),
            EventKind::Modify(ModifyKind::Name(RenameMode::From)),
        ] {
            assert_eq!(quiet_after(&kind), Some(DEBOUNCE), "{kind:?}");
        }
    }

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
