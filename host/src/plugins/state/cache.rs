//! Committed values recently read or written, per plugin: a hot key costs
//! a hash lookup instead of a search of the store's memtable and segments
//! (the search was a fifth of a counter plugin's time).
//!
//! The commit thread writes every committed value through, so the cache
//! never holds a value older than the store's. A reader that missed fills
//! the cache with what it read from the store only if nothing was evicted
//! meanwhile (the `generation`) and no commit has put a value there first:
//! its read may be older than that commit's.

use std::collections::HashMap;

/// Bytes the cache holds at most (keys, values and a per-entry overhead);
/// past it, everything is dropped and the cache fills again.
const MAX_BYTES: usize = 64 << 20;
const ENTRY_OVERHEAD: usize = 64;

#[derive(Debug, Default)]
pub struct ReadCache {
    /// Bumped by every eviction: a fill that started before is dropped.
    generation: u64,
    bytes: usize,
    /// Plugin → key → committed value (`None`: no value).
    plugins: HashMap<String, HashMap<Vec<u8>, Option<Vec<u8>>>>,
}

fn size(key: &[u8], value: &Option<Vec<u8>>) -> usize {
    key.len() + value.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD
}

impl ReadCache {
    /// The committed value of `key`, if cached (`Some(None)`: no value).
    pub fn get(&self, plugin: &str, key: &[u8]) -> Option<Option<Vec<u8>>> {
        self.plugins.get(plugin)?.get(key).cloned()
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// A reader's miss, read from the store at `generation`.
    pub fn fill(&mut self, plugin: &str, key: &[u8], value: Option<Vec<u8>>, generation: u64) {
        if generation != self.generation {
            return;
        }
        let entries = self.entries_of(plugin);
        if entries.contains_key(key) {
            return;
        }
        entries.insert(key.to_vec(), value);
        self.bytes += size(key, entries.get(key).expect("inserted"));
        self.bound();
    }

    /// A committed value, written through.
    pub fn put(&mut self, plugin: &str, key: &[u8], value: Option<&[u8]>) {
        let value = value.map(<[u8]>::to_vec);
        let added = size(key, &value);
        let entries = self.entries_of(plugin);
        let removed = match entries.get_mut(key) {
            Some(cached) => size(key, &std::mem::replace(cached, value)),
            None => {
                entries.insert(key.to_vec(), value);
                0
            }
        };
        self.bytes = self.bytes + added - removed;
        self.bound();
    }

    /// `plugin`'s entries, made on first use (looked up without
    /// allocating a name: this runs for every write committed).
    fn entries_of(&mut self, plugin: &str) -> &mut HashMap<Vec<u8>, Option<Vec<u8>>> {
        if !self.plugins.contains_key(plugin) {
            self.plugins.insert(plugin.to_string(), HashMap::new());
        }
        self.plugins.get_mut(plugin).expect("inserted above")
    }

    /// Forgets `plugin`'s entries (its state was deleted).
    pub fn forget(&mut self, plugin: &str) {
        if let Some(entries) = self.plugins.remove(plugin) {
            self.bytes -= entries.iter().map(|(k, v)| size(k, v)).sum::<usize>();
        }
        self.generation += 1;
    }

    fn bound(&mut self) {
        if self.bytes > MAX_BYTES {
            self.plugins.clear();
            self.bytes = 0;
            self.generation += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fill_never_replaces_a_committed_value_nor_survives_an_eviction() {
        let mut cache = ReadCache::default();
        let before = cache.generation();
        cache.put("p", b"k", Some(b"new"));
        cache.fill("p", b"k", Some(b"old".to_vec()), before);
        assert_eq!(cache.get("p", b"k"), Some(Some(b"new".to_vec())));
        cache.forget("p");
        cache.fill("p", b"k", Some(b"stale".to_vec()), before);
        assert_eq!(cache.get("p", b"k"), None, "read before the eviction");
        cache.fill("p", b"k", None, cache.generation());
        assert_eq!(cache.get("p", b"k"), Some(None), "known to have no value");
    }
}
