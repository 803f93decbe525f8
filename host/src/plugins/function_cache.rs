//! Compiled functions kept across plugin versions: wasmtime's incremental
//! compilation cache, on disk under `<data-path>/plugin-cache/functions`.
//!
//! Cranelift keys each function by a hash of its code and of the
//! compiler's settings. A JavaScript or Python plugin is a runtime
//! (SpiderMonkey, CPython: megabytes of functions, the same in every
//! plugin built with the same componentize version) plus the plugin's own
//! code, snapshotted into data: so a new version, or another plugin on the
//! same runtime, finds nearly every function here and compiles only the
//! few that differ. The whole-module cache (runtime.rs) still answers a
//! version seen before.
//!
//! The functions live in an fjall keyspace. It is bounded: past
//! [`MAX_BYTES`] on disk at start-up it is emptied and fills again.

use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use fjall::{Config, Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};

/// Disk space past which the cache is emptied at start-up (a runtime's
/// functions take tens of megabytes).
const MAX_BYTES: u64 = 1 << 30;

pub struct FunctionCache {
    keyspace: Keyspace,
    functions: PartitionHandle,
    /// Look-ups that found a function, and that did not, since the last
    /// [`FunctionCache::flush`].
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for FunctionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionCache").finish_non_exhaustive()
    }
}

impl FunctionCache {
    /// Opens (or creates) the cache in `dir`, emptied first if it grew
    /// past [`MAX_BYTES`].
    pub fn open(dir: &Path) -> Result<FunctionCache, fjall::Error> {
        let open = || -> Result<FunctionCache, fjall::Error> {
            let keyspace = Config::new(dir).open()?;
            let functions =
                keyspace.open_partition("functions", PartitionCreateOptions::default())?;
            Ok(FunctionCache {
                keyspace,
                functions,
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
            })
        };
        let cache = open()?;
        let size = cache.keyspace.disk_space();
        if size <= MAX_BYTES {
            return Ok(cache);
        }
        tracing::info!(dir = %dir.display(), bytes = size, "PLUGINS: the compiled-function cache outgrew its bound; emptied");
        drop(cache);
        std::fs::remove_dir_all(dir)?;
        open()
    }
}

impl wasmtime::CacheStore for FunctionCache {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let value = self.functions.get(key).ok().flatten();
        let counter = if value.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Some(Cow::Owned(value?.to_vec()))
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        // Written to the OS when the compile ends (see `flush`), not
        // fsynced: a function lost in a crash is compiled again.
        self.functions.insert(key, value).is_ok()
    }
}

impl FunctionCache {
    /// Hands what a compile added to the OS; returns how many functions
    /// it found here and how many it compiled.
    pub fn flush(&self) -> (u64, u64) {
        let found = self.hits.swap(0, Ordering::Relaxed);
        let compiled = self.misses.swap(0, Ordering::Relaxed);
        if let Err(e) = self.keyspace.persist(PersistMode::Buffer) {
            tracing::warn!(error = %e, "PLUGINS: cannot write the compiled-function cache");
        }
        (found, compiled)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn engine(cache: &Arc<FunctionCache>) -> wasmtime::Engine {
        let mut config = wasmtime::Config::new();
        config
            .enable_incremental_compilation(cache.clone())
            .unwrap();
        wasmtime::Engine::new(&config).unwrap()
    }

    /// A module whose `work` function is the same in every version; only
    /// `version` differs.
    fn version(n: i32) -> String {
        format!(
            r#"(module
                (func (export "work") (param i32) (result i32)
                  local.get 0 i32.const 7 i32.mul i32.const 3 i32.add)
                (func (export "version") (result i32) i32.const {n}))"#
        )
    }

    #[test]
    fn a_new_version_compiles_only_its_changed_functions_even_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Arc::new(FunctionCache::open(dir.path()).unwrap());
        wasmtime::Module::new(&engine(&cache), version(1)).unwrap();
        let (found, compiled) = cache.flush();
        assert!(compiled >= 2, "a cold cache compiles every function");
        assert_eq!(found, 0);
        drop(cache);
        // wasqd restarted: the functions are on disk.
        let cache = Arc::new(FunctionCache::open(dir.path()).unwrap());
        let module = wasmtime::Module::new(&engine(&cache), version(2)).unwrap();
        let (found, compiled) = cache.flush();
        assert_eq!(compiled, 1, "only `version` compiled");
        assert!(found >= 1, "`work` (and trampolines) found in the cache");
        let mut store = wasmtime::Store::new(module.engine(), ());
        let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
        let work = instance
            .get_typed_func::<i32, i32>(&mut store, "work")
            .unwrap();
        assert_eq!(work.call(&mut store, 5).unwrap(), 38, "cached code runs");
    }
}
