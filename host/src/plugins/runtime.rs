//! The Wasm runtime shared by every plugin: one wasmtime `Engine` per
//! process (pooling allocator, epoch interruption, async support), one
//! linker per kind of guest built once (core modules: `wasq` imports and
//! WASI preview 1; components: the `wasq:plugin` world and WASI 0.2), a
//! compiled-artifact cache keyed by the module's hash, the baseline
//! compiler that large components go live with first (baseline.rs), the epoch clock
//! (epoch.rs) that lets handler deadlines interrupt running guests, and the
//! executor (executor.rs) every guest call runs on.
//!
//! Guests are called asynchronously: a call runs on a fiber of its own,
//! and a host function that waits (an HTTP response, an fsync) suspends
//! the fiber instead of blocking a thread. So an instance waiting costs
//! its memory and a stack, not a thread, and a plugin may hold thousands.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use parking_lot::Mutex;

use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, Module, PoolingAllocationConfig};

use super::baseline::{BASELINE_MIN_BYTES, BaselineCompiler, Compiler, OptimizedBuilds};
use super::component::{self, ComponentPre, ComponentState};
use super::core_module::{self, CoreState};
use super::epoch::EpochClock;
use super::executor::WasmExecutor;
use super::function_cache::FunctionCache;
use super::instance::CompiledGuest;
use super::manifest::Manifest;
use super::stats::PluginStats;
use crate::allocator::compiling::compiling;
use crate::broker::Broker;

/// Core instances (and tables) the pooling allocator keeps slots for: a
/// core module instance takes one, a component several.
const POOL_INSTANCES: u32 = 20_000;

/// Memories and fiber stacks the pool keeps slots for: every instance
/// suspended in a call holds one of each. A slot is address space (4 GiB
/// plus guards for a memory), committed only as the guest touches it.
const POOL_MEMORIES: u32 = 5_000;

/// Component instances the pool keeps slots for.
const POOL_COMPONENTS: u32 = 5_000;

/// The stack of one guest call: its fiber's size. wasmtime's own
/// default; the host functions a call reaches run on it too.
const GUEST_STACK_BYTES: usize = 2 << 20;

/// Most elements in one table: a JavaScript or Python runtime's function
/// table is past wasmtime's default of 20,000.
const MAX_TABLE_ELEMENTS: usize = 200_000;

/// Modules at least this large log when their compile starts.
const LARGE_MODULE_BYTES: usize = 1 << 20;

/// What a plugin's imports need: who it is, what it may do, and where.
#[derive(Debug)]
pub struct PluginLink {
    pub name: Arc<str>,
    pub manifest: Manifest,
    pub broker: Arc<Broker>,
    pub stats: Arc<PluginStats>,
    /// The plugin's outbound HTTP (its allowlist, limits, client).
    pub outbound: Arc<super::outbound::Outbound>,
    /// The runtime's epoch clock, which the plugin's deadlines run on.
    pub clock: EpochClock,
    /// `Some` when the plugin runs offline (`wasq plugin test`): accepted
    /// publishes are kept here instead of reaching the broker.
    pub recorded: Option<parking_lot::Mutex<Vec<super::imports::Published>>>,
    /// The plugin's key-value store, if its manifest grants one.
    pub state: Option<Arc<super::state::PluginState>>,
}

impl PluginLink {
    /// When a handler call starting now must end (`handler_deadline_ms`):
    /// its outbound requests end by then too.
    pub fn call_deadline_from_now(&self) -> std::time::Instant {
        std::time::Instant::now() + self.manifest.handler_deadline
    }
}

pub struct WasmRuntime {
    pub engine: Engine,
    pub clock: EpochClock,
    /// Where guests run (never on the broker's own async threads).
    pub executor: WasmExecutor,
    core_linker: wasmtime::Linker<CoreState>,
    component_linker: wasmtime::component::Linker<ComponentState>,
    /// Where compiled modules are kept, keyed by the module's hash.
    cache_dir: Option<PathBuf>,
    /// Compiled functions, across modules (function_cache.rs).
    functions: Option<Arc<FunctionCache>>,
    /// Artifacts being written to `cache_dir`, by module hash: a load of
    /// the same hash waits for its artifact instead of compiling again.
    storing: Mutex<HashMap<String, JoinHandle<()>>>,
    /// Winch, for large components not in the artifact cache.
    baseline: Option<BaselineCompiler>,
    /// Optimized builds of versions live with baseline code.
    optimized: OptimizedBuilds,
    /// Plugin state, for the plugins granted it.
    pub state: super::state::SharedStore,
}

/// A compiled guest, whether it came from the cache, and which compiler
/// made its code.
pub struct Compiled {
    pub guest: CompiledGuest,
    pub from_cache: bool,
    pub compiler: Compiler,
}

impl WasmRuntime {
    pub fn new(
        cache_dir: Option<PathBuf>,
        state: super::state::SharedStore,
    ) -> anyhow::Result<WasmRuntime> {
        let functions = cache_dir.as_deref().and_then(|dir| {
            let dir = dir.join("functions");
            FunctionCache::open(&dir)
                .inspect_err(|e| tracing::warn!(dir = %dir.display(), error = %e, "PLUGINS: no compiled-function cache: every new version compiles in full"))
                .ok()
                .map(Arc::new)
        });
        let engine = pooled_engine(functions.clone()).or_else(|e| {
            tracing::warn!(error = %e, "pooling allocator unavailable, using on-demand allocation");
            Ok::<_, anyhow::Error>(Engine::new(&base_config(functions.clone())?)?)
        })?;
        let mut core_linker = core_module::linker(&engine)?;
        super::core_state::add_state_imports(&mut core_linker)?;
        let component_linker = component::linker(&engine)?;
        if let Some(dir) = &cache_dir {
            remove_unfinished_stores(dir);
        }
        let baseline = BaselineCompiler::new();
        let mut engines = vec![&engine];
        engines.extend(baseline.as_ref().map(BaselineCompiler::engine));
        let clock = EpochClock::start(&engines);
        Ok(WasmRuntime {
            engine,
            clock,
            executor: WasmExecutor::start()?,
            core_linker,
            component_linker,
            cache_dir,
            functions,
            storing: Mutex::default(),
            baseline,
            optimized: OptimizedBuilds::default(),
            state,
        })
    }

    /// Compiles a plugin's module, telling a component from a core module
    /// (binary or WAT) by its header, checks it against its contract (ABI v1
    /// or the WIT world) and links it. `hash` (the module's SHA-256) keys
    /// the compiled-artifact cache.
    ///
    /// A large component not in the artifact cache is compiled by the
    /// baseline compiler (baseline.rs).
    pub fn compile(&self, bytes: &[u8], hash: &str) -> anyhow::Result<Compiled> {
        if !is_component(bytes) {
            let (module, from_cache) = self.cached_or_compiled::<Module>(bytes, hash)?;
            let pre = core_module::link(&self.core_linker, &module)?;
            return Ok(Compiled {
                guest: CompiledGuest::Core(pre),
                from_cache,
                compiler: Compiler::Optimizing,
            });
        }
        if let Some(baseline) = self.baseline_for(bytes, hash) {
            match baseline.compile(bytes) {
                Ok(pre) => {
                    return Ok(Compiled {
                        guest: CompiledGuest::Component(pre),
                        from_cache: false,
                        compiler: Compiler::Baseline,
                    });
                }
                // Cranelift says what is wrong, or compiles what Winch
                // does not support.
                Err(e) => {
                    tracing::info!(hash, error = %format!("{e:#}"), "PLUGINS: the baseline compiler refused a component; compiling it with Cranelift")
                }
            }
        }
        let (component, from_cache) = self.cached_or_compiled::<Component>(bytes, hash)?;
        let pre = component::link(&self.component_linker, &component)?;
        Ok(Compiled {
            guest: CompiledGuest::Component(pre),
            from_cache,
            compiler: Compiler::Optimizing,
        })
    }

    /// The baseline compiler, if there is one and `bytes` is a large
    /// component whose optimized artifact is not cached.
    fn baseline_for(&self, bytes: &[u8], hash: &str) -> Option<&BaselineCompiler> {
        let baseline = self.baseline.as_ref()?;
        let cached = self
            .cache_dir
            .as_ref()
            .is_some_and(|dir| self.artifact_path(dir, hash).exists());
        (bytes.len() >= BASELINE_MIN_BYTES && !cached).then_some(baseline)
    }

    /// Compiles a component with Cranelift (through the artifact cache)
    /// and links it: the optimized build of a version live with baseline
    /// code.
    pub fn compile_optimized(&self, bytes: &[u8], hash: &str) -> anyhow::Result<ComponentPre> {
        let (component, _) = self.cached_or_compiled::<Component>(bytes, hash)?;
        component::link(&self.component_linker, &component)
    }

    /// Keeps `plugin`'s optimized build of `hash` for the reload that
    /// takes it up.
    pub fn offer_optimized(&self, plugin: &str, hash: &str, pre: ComponentPre) {
        self.optimized.put(plugin, hash, pre);
    }

    /// Whether `plugin`'s optimized build of `hash` waits to be taken up.
    pub fn has_optimized(&self, plugin: &str, hash: &str) -> bool {
        self.optimized.has(plugin, hash)
    }

    /// `plugin`'s optimized build of `hash`, taken: for the reload that
    /// swaps it in, or dropped if a newer version went live meanwhile.
    pub fn take_optimized(&self, plugin: &str, hash: &str) -> Option<Compiled> {
        let pre = self.optimized.take(plugin, hash)?;
        Some(Compiled {
            guest: CompiledGuest::Component(pre),
            from_cache: false,
            compiler: Compiler::Optimizing,
        })
    }

    /// Where the artifact of `hash` is cached, once a write of it under way
    /// has ended.
    fn artifact_path(&self, dir: &Path, hash: &str) -> PathBuf {
        let writing = self.storing.lock().remove(hash);
        if let Some(writing) = writing {
            let _ = writing.join();
        }
        artifact_file(dir, hash)
    }
}

/// The file the artifact of `hash` is cached in.
fn artifact_file(dir: &Path, hash: &str) -> PathBuf {
    dir.join(format!("{hash}.cwasm"))
}

/// True for a component: its binary header's layer field is 1 (a core
/// module's is 0), or its text starts with `(component`.
fn is_component(bytes: &[u8]) -> bool {
    if bytes.starts_with(b"\0asm") {
        return bytes.get(6..8) == Some(&[1, 0]);
    }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]);
    let code = text
        .lines()
        .map(|line| line.split(";;").next().unwrap_or("").trim())
        .find(|line| !line.is_empty())
        .unwrap_or("");
    code.strip_prefix('(')
        .is_some_and(|rest| rest.trim_start().starts_with("component"))
}

/// What is cached: a core module or a component, compiled by this engine.
#[allow(unsafe_code)]
trait Artifact: Sized + Clone + Send + 'static {
    const WHAT: &'static str;
    fn compile(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self>;
    fn serialize(&self) -> wasmtime::Result<Vec<u8>>;
    /// # Safety
    /// `path` must hold this engine's own `serialize` output.
    unsafe fn deserialize_file(engine: &Engine, path: &Path) -> wasmtime::Result<Self>;
}

impl Artifact for Module {
    const WHAT: &'static str = "WebAssembly module";
    fn compile(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        compiling(|| Module::new(engine, bytes))
    }
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        Module::serialize(self)
    }
    #[allow(unsafe_code)]
    unsafe fn deserialize_file(engine: &Engine, path: &Path) -> wasmtime::Result<Self> {
        // SAFETY: passed on from the caller.
        unsafe { Module::deserialize_file(engine, path) }
    }
}

impl Artifact for Component {
    const WHAT: &'static str = "WebAssembly component";
    fn compile(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        compiling(|| Component::new(engine, bytes))
    }
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        Component::serialize(self)
    }
    #[allow(unsafe_code)]
    unsafe fn deserialize_file(engine: &Engine, path: &Path) -> wasmtime::Result<Self> {
        // SAFETY: passed on from the caller.
        unsafe { Component::deserialize_file(engine, path) }
    }
}

impl WasmRuntime {
    /// An artifact from the cache when this exact module was compiled
    /// before (by this wasmtime, with this configuration), else compiled
    /// and stored; and whether it came from the cache.
    fn cached_or_compiled<A: Artifact>(
        &self,
        bytes: &[u8],
        hash: &str,
    ) -> anyhow::Result<(A, bool)> {
        let compile = || {
            // A JavaScript or Python runtime is megabytes and compiles for
            // seconds: say so before, not only after.
            if bytes.len() >= LARGE_MODULE_BYTES {
                tracing::info!(
                    hash,
                    bytes = bytes.len(),
                    "PLUGINS: compiling a {} of {:.1} MB (seconds for a large one)",
                    A::WHAT,
                    bytes.len() as f64 / 1e6
                );
            }
            let started = std::time::Instant::now();
            let artifact = A::compile(&self.engine, bytes)
                .map_err(|e| anyhow::Error::from(e).context(format!("invalid {}", A::WHAT)))?;
            let (cached, compiled) = self.functions.as_ref().map_or((0, 0), |f| f.flush());
            tracing::info!(
                hash,
                bytes = bytes.len(),
                ms = started.elapsed().as_millis() as u64,
                functions_cached = cached,
                functions_compiled = compiled,
                "PLUGINS: compiled a {}",
                A::WHAT
            );
            Ok::<_, anyhow::Error>(artifact)
        };
        let Some(dir) = &self.cache_dir else {
            return Ok((compile()?, false));
        };
        let path = self.artifact_path(dir, hash);
        if path.exists() {
            match load_compiled::<A>(&self.engine, &path) {
                Ok(artifact) => return Ok((artifact, true)),
                Err(e) => {
                    // Another wasmtime version or configuration: compile anew.
                    tracing::info!(file = %path.display(), error = %e, "PLUGINS: cached module not usable");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let artifact = compile()?;
        let writing = store_later(artifact.clone(), dir.clone(), hash.to_string());
        let mut storing = self.storing.lock();
        storing.retain(|_, write| !write.is_finished());
        storing.extend(writing.map(|write| (hash.to_string(), write)));
        Ok((artifact, false))
    }
}

/// Stores a compiled artifact in the cache directory on a thread of its
/// own: serializing and writing a component's tens of megabytes (a
/// fraction of a second, longer when the disk is busy) is not on the way
/// to the version going live. Written to a hidden temporary file of its
/// own (two plugins' compiles of one module may end together) and renamed,
/// so a reader never sees part of one; what a crash leaves before the
/// rename is removed at the next start ([`remove_unfinished_stores`]).
fn store_later<A: Artifact>(artifact: A, dir: PathBuf, hash: String) -> Option<JoinHandle<()>> {
    static STORES: AtomicU64 = AtomicU64::new(0);
    let store = move || {
        let path = artifact_file(&dir, &hash);
        let serialized = match artifact.serialize() {
            Ok(serialized) => serialized,
            Err(e) => {
                tracing::warn!(error = %e, "PLUGINS: cannot serialize the compiled module");
                return;
            }
        };
        let store = STORES.fetch_add(1, Ordering::Relaxed);
        let temporary = dir.join(format!(".{hash}.{store}{UNFINISHED}"));
        let stored = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&temporary, serialized))
            .and_then(|()| std::fs::rename(&temporary, &path));
        if let Err(e) = stored {
            tracing::warn!(file = %path.display(), error = %e, "PLUGINS: cannot cache the compiled module");
        }
    };
    std::thread::Builder::new()
        .name("plugin-cache-store".into())
        .spawn(store)
        .inspect_err(
            |e| tracing::warn!(error = %e, "PLUGINS: cannot start storing the compiled module"),
        )
        .ok()
}

/// How the temporary file of a store under way ends.
const UNFINISHED: &str = ".cwasm.tmp";

/// Removes what stores cut short by a crash left in the cache directory.
fn remove_unfinished_stores(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(UNFINISHED) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Loads a precompiled module or component from the cache.
#[allow(unsafe_code)]
fn load_compiled<A: Artifact>(engine: &Engine, path: &Path) -> anyhow::Result<A> {
    // SAFETY: wasmtime trusts a precompiled artifact to be its own output.
    // This one is: the cache directory is written only by `cached_or_compiled`
    // (via write-then-rename, so never partially), from `serialize`; and
    // wasmtime itself refuses artifacts of another version, configuration
    // or kind (a module's artifact does not load as a component).
    Ok(unsafe { A::deserialize_file(engine, path) }?)
}

/// What every engine here has: epoch deadlines, and fibers of this size
/// for the async calls (wasmtime 48 needs no switch for those).
/// The engine's configuration; `functions`: the compiled-function cache
/// Cranelift looks each function up in before compiling it.
pub(super) fn base_config(functions: Option<Arc<FunctionCache>>) -> anyhow::Result<Config> {
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .async_stack_size(GUEST_STACK_BYTES);
    if let Some(functions) = functions {
        config.enable_incremental_compilation(functions)?;
    }
    Ok(config)
}

fn pooled_engine(functions: Option<Arc<FunctionCache>>) -> anyhow::Result<Engine> {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(POOL_INSTANCES)
        .total_memories(POOL_MEMORIES)
        .total_tables(POOL_INSTANCES)
        .total_stacks(POOL_MEMORIES)
        .total_component_instances(POOL_COMPONENTS)
        .max_memory_size((super::manifest::MAX_MEMORY_MIB as usize) << 20)
        .table_elements(MAX_TABLE_ELEMENTS);
    let mut config = base_config(functions)?;
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Ok(Engine::new(&config)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_crash_left_of_a_store_is_removed_and_stored_artifacts_stay() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str| dir.path().join(name);
        std::fs::write(file("abc.cwasm"), b"done").unwrap();
        std::fs::write(file(".abc.7.cwasm.tmp"), b"cut short").unwrap();
        std::fs::write(file("notes.tmp"), b"not ours").unwrap();
        remove_unfinished_stores(dir.path());
        assert!(file("abc.cwasm").exists());
        assert!(!file(".abc.7.cwasm.tmp").exists());
        assert!(file("notes.tmp").exists());
    }

    #[test]
    fn components_are_told_from_core_modules_by_their_header() {
        assert!(!is_component(b"\0asm\x01\0\0\0"));
        assert!(is_component(b"\0asm\x0d\0\x01\0"));
        assert!(!is_component(b";; a module\n(module (memory 1))"));
        assert!(is_component(
            b";; a component\n\n  ( component (core module))"
        ));
        assert!(!is_component(b""));
    }
}
