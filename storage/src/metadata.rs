//! `wasqd.dat`: which topics and channels exist and which are paused, in
//! the JSON shape of nsqd's `nsqd.dat`. The broker decides what goes in
//! (it never saves ephemeral topics and channels) and which version it
//! writes; this module reads and writes the file.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const METADATA_FILE: &str = "wasqd.dat";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub topics: Vec<TopicMetadata>,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMetadata {
    pub channels: Vec<ChannelMetadata>,
    pub name: String,
    pub paused: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelMetadata {
    pub name: String,
    pub paused: bool,
}

/// Why the metadata could not be read; names the file.
#[derive(Debug, thiserror::Error)]
#[error("cannot read metadata file {path}: {reason}")]
pub struct MetadataError {
    pub path: PathBuf,
    pub reason: String,
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join(METADATA_FILE)
}

/// Reads the metadata; a missing file is an empty broker.
pub fn load(dir: &Path) -> Result<Metadata, MetadataError> {
    let path = path(dir);
    let error = |reason: String| MetadataError {
        path: path.clone(),
        reason,
    };
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| error(e.to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Metadata::default()),
        Err(e) => Err(error(e.to_string())),
    }
}

/// Replaces the metadata file atomically.
pub fn save(dir: &Path, metadata: &Metadata) -> io::Result<()> {
    let json = serde_json::to_vec(metadata).map_err(io::Error::other)?;
    crate::files::atomic_write(&path(dir), &json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_nsqd_shaped_json() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), Metadata::default());
        let metadata = Metadata {
            topics: vec![TopicMetadata {
                channels: vec![ChannelMetadata {
                    name: "c".into(),
                    paused: true,
                }],
                name: "t".into(),
                paused: false,
            }],
            version: "1.3.0".into(),
        };
        save(dir.path(), &metadata).unwrap();
        let text = std::fs::read_to_string(path(dir.path())).unwrap();
        assert_eq!(
            text,
            r#"{"topics":[{"channels":[{"name":"c","paused":true}],"name":"t","paused":false}],"version":"1.3.0"}"#
        );
        assert_eq!(load(dir.path()).unwrap().topics, metadata.topics);
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path()), "{not json").unwrap();
        let error = load(dir.path()).unwrap_err();
        assert!(error.to_string().contains("wasqd.dat"), "{error}");
    }
}
