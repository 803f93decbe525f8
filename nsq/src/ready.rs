//! `--ready-file PATH`: where a daemon says, machine-readably, that it is
//! up and where it listens, for whatever started it (a test harness, the
//! load tool, a supervisor).
//!
//! The file is JSON, one address per listener by name (`tcp`, `http`, and
//! for wasqd with an embedded lookupd `lookupd_tcp`, `lookupd_http`):
//! `{"http":"127.0.0.1:41231","tcp":"127.0.0.1:40457"}`. It is written
//! once every listener is bound and the daemon is ready to serve (for
//! wasqd: its plugins loaded), and replaced atomically (write, rename), so
//! a reader sees either no file or the whole of it. Log lines say the same
//! for people, but may be reworded; this file's shape is a promise.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Listener name -> bound address.
pub type Listening = BTreeMap<String, SocketAddr>;

/// Writes the ready file atomically.
pub fn write(path: &Path, listening: &Listening) -> io::Result<()> {
    let json = serde_json::to_vec(listening).map_err(io::Error::other)?;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, json)?;
    std::fs::rename(&temporary, path)
}

/// Reads a ready file; `Ok(None)` while the daemon has not written it.
pub fn read(path: &Path) -> io::Result<Option<Listening>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_absent_until_written() {
        let dir = std::env::temp_dir().join(format!("wasq-ready-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ready.json");
        let _ = std::fs::remove_file(&path);
        assert!(read(&path).unwrap().is_none());
        let listening = Listening::from([
            ("tcp".to_string(), "127.0.0.1:4150".parse().unwrap()),
            ("http".to_string(), "127.0.0.1:4151".parse().unwrap()),
        ]);
        write(&path, &listening).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            r#"{"http":"127.0.0.1:4151","tcp":"127.0.0.1:4150"}"#
        );
        assert_eq!(read(&path).unwrap(), Some(listening));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
