//! `<data-path>/wasqd.lock`, held while a broker runs.

use std::fs;
use std::path::Path;

/// Keeps `<data-path>/wasqd.lock` locked while the broker runs, so two
/// brokers never append to the same queue files (nsqd refuses a data path
/// in use too). The operating system drops the lock when the process ends,
/// however it ends.
#[derive(Debug)]
pub struct DataPathLock {
    _file: fs::File,
}

/// Why the data path cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataPathLockError {
    #[error("--data-path {dir} is in use by another wasqd (it holds {file})")]
    InUse { dir: String, file: String },
    #[error("cannot open {file}: {source}")]
    Open {
        file: String,
        source: std::io::Error,
    },
    #[error("cannot lock {file}: {source}")]
    Lock {
        file: String,
        source: std::io::Error,
    },
}

impl DataPathLock {
    pub fn acquire(dir: &Path) -> Result<DataPathLock, DataPathLockError> {
        let path = dir.join("wasqd.lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| DataPathLockError::Open {
                file: path.display().to_string(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(DataPathLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(DataPathLockError::InUse {
                dir: dir.display().to_string(),
                file: path.display().to_string(),
            }),
            Err(fs::TryLockError::Error(source)) => Err(DataPathLockError::Lock {
                file: path.display().to_string(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataPathLock::acquire(dir.path()).unwrap();
        let error = DataPathLock::acquire(dir.path()).unwrap_err();
        assert!(matches!(error, DataPathLockError::InUse { .. }), "{error}");
        drop(first);
        DataPathLock::acquire(dir.path()).unwrap();
    }
}
