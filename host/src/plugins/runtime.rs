//! The Wasm runtime shared by every plugin: one wasmtime `Engine` per
//! process (pooling allocator, epoch interruption, async support), one
//! linker per kind of guest built once (core modules: `wasq` imports and
//! WASI preview 1; components: the `wasq:plugin` world and WASI 0.2), a
//! compiled-artifact cache keyed by the module's hash, the epoch clock
//! (epoch.rs) that lets handler deadlines interrupt running guests, and the
//! executor (executor.rs) every guest call runs on.
//!
//! Guests are called asynchronously: a call runs on a fiber of its own,
//! and a host function that waits (an HTTP response, an fsync) suspends
//! the fiber instead of blocking a thread. So an instance waiting costs
//! its memory and a stack, not a thread, and a plugin may hold thousands.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, Module, PoolingAllocationConfig};

use super::component::{self, ComponentState};
use super::core_module::{self, CoreState};
use super::epoch::EpochClock;
use super::executor::WasmExecutor;
use super::function_cache::FunctionCache;
use super::instance::CompiledGuest;
use super::manifest::Manifest;
use super::stats::PluginStats;
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
    /// Plugin state, for the plugins granted it.
    pub state: super::state::SharedStore,
}

/// A compiled guest and whether it came from the cache.
pub struct Compiled {
    pub guest: CompiledGuest,
    pub from_cache: bool,
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
        let clock = EpochClock::start(&engine);
        Ok(WasmRuntime {
            engine,
            clock,
            executor: WasmExecutor::start()?,
            core_linker,
            component_linker,
            cache_dir,
            functions,
            state,
        })
    }

    /// Compiles a plugin's module, telling a component from a core module
    /// (binary or WAT) by its header, checks it against its contract (ABI v1
    /// or the WIT world) and links it. `hash` (the module's SHA-256) keys
    /// the compiled-artifact cache.
    pub fn compile(&self, bytes: &[u8], hash: &str) -> anyhow::Result<Compiled> {
        if is_component(bytes) {
            let (component, from_cache) = self.cached_or_compiled::<Component>(bytes, hash)?;
            let pre = component::link(&self.component_linker, &component)?;
            Ok(Compiled {
                guest: CompiledGuest::Component(pre),
                from_cache,
            })
        } else {
            let (module, from_cache) = self.cached_or_compiled::<Module>(bytes, hash)?;
            let pre = core_module::link(&self.core_linker, &module)?;
            Ok(Compiled {
                guest: CompiledGuest::Core(pre),
                from_cache,
            })
        }
    }
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
trait Artifact: Sized {
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
        Module::new(engine, bytes)
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
        Component::new(engine, bytes)
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
        let path = dir.join(format!("{hash}.cwasm"));
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
        match artifact.serialize() {
            Ok(serialized) => {
                let temporary = dir.join(format!(".{hash}.cwasm.tmp"));
                let stored = std::fs::create_dir_all(dir)
                    .and_then(|()| std::fs::write(&temporary, serialized))
                    .and_then(|()| std::fs::rename(&temporary, &path));
                if let Err(e) = stored {
                    tracing::warn!(file = %path.display(), error = %e, "PLUGINS: cannot cache the compiled module");
                }
            }
            Err(e) => tracing::warn!(error = %e, "PLUGINS: cannot serialize the compiled module"),
        }
        Ok((artifact, false))
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
fn base_config(functions: Option<Arc<FunctionCache>>) -> anyhow::Result<Config> {
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
