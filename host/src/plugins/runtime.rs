//! The Wasm runtime shared by every plugin: one wasmtime `Engine` per
//! process (pooling allocator, epoch interruption), one `Linker` built once
//! with the `wasq` imports and WASI preview 1, and an epoch ticker thread
//! that lets handler deadlines interrupt running guests.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use bytes::Bytes;
use wasmtime::{
    Caller, Config, Engine, ExternType, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig, StoreLimits, ValType,
};
use wasmtime_wasi::p1::WasiP1Ctx;

use super::abi::{self, status};
use super::manifest::Manifest;
use super::stats::PluginStats;
use crate::broker::Broker;
use crate::broker::names::is_valid_name;

/// How often the epoch advances; deadlines are rounded up to it.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Instances and memories the pooling allocator keeps slots for.
const POOL_SLOTS: u32 = 1024;

/// What a plugin's imports need: who it is, what it may do, and where.
#[derive(Debug)]
pub struct PluginLink {
    pub name: Arc<str>,
    pub manifest: Manifest,
    pub broker: Arc<Broker>,
    pub stats: Arc<PluginStats>,
}

/// The data of one guest instance's `Store`.
pub struct GuestState {
    pub wasi: WasiP1Ctx,
    pub limits: StoreLimits,
    pub link: Arc<PluginLink>,
}

pub struct WasmRuntime {
    pub engine: Engine,
    linker: Linker<GuestState>,
    /// Where compiled modules are kept, keyed by the module's hash.
    cache_dir: Option<PathBuf>,
}

impl WasmRuntime {
    pub fn new(cache_dir: Option<PathBuf>) -> anyhow::Result<WasmRuntime> {
        let engine = pooled_engine().or_else(|e| {
            tracing::warn!(error = %e, "pooling allocator unavailable, using on-demand allocation");
            let mut config = Config::new();
            config.epoch_interruption(true);
            Ok::<_, anyhow::Error>(Engine::new(&config)?)
        })?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |state: &mut GuestState| {
            &mut state.wasi
        })?;
        add_wasq_imports(&mut linker)?;
        // Detached: it ends by itself once the engine is gone.
        drop(start_epoch_ticker(&engine));
        Ok(WasmRuntime {
            engine,
            linker,
            cache_dir,
        })
    }

    /// Compiles a module (binary or WAT) and checks it against ABI v1.
    /// `hash` (the module's SHA-256) keys the compiled-module cache.
    pub fn compile(&self, bytes: &[u8], hash: &str) -> anyhow::Result<InstancePre<GuestState>> {
        let module = self.cached_or_compiled(bytes, hash)?;
        check_exports(&module)?;
        check_imports(&module)?;
        self.linker
            .instantiate_pre(&module)
            .map_err(|e| anyhow::Error::from(e).context("cannot link the module's imports"))
    }
}

impl WasmRuntime {
    /// A module from the cache when this exact module was compiled before
    /// (by this wasmtime, with this configuration), else compiled and stored.
    fn cached_or_compiled(&self, bytes: &[u8], hash: &str) -> anyhow::Result<Module> {
        let compile = || {
            Module::new(&self.engine, bytes)
                .map_err(|e| anyhow::Error::from(e).context("invalid WebAssembly module"))
        };
        let Some(dir) = &self.cache_dir else {
            return compile();
        };
        let path = dir.join(format!("{hash}.cwasm"));
        if path.exists() {
            match load_compiled(&self.engine, &path) {
                Ok(module) => return Ok(module),
                Err(e) => {
                    // Another wasmtime version or configuration: compile anew.
                    tracing::info!(file = %path.display(), error = %e, "PLUGINS: cached module not usable");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let module = compile()?;
        match module.serialize() {
            Ok(artifact) => {
                let temporary = dir.join(format!(".{hash}.cwasm.tmp"));
                let stored = std::fs::create_dir_all(dir)
                    .and_then(|()| std::fs::write(&temporary, artifact))
                    .and_then(|()| std::fs::rename(&temporary, &path));
                if let Err(e) = stored {
                    tracing::warn!(file = %path.display(), error = %e, "PLUGINS: cannot cache the compiled module");
                }
            }
            Err(e) => tracing::warn!(error = %e, "PLUGINS: cannot serialize the compiled module"),
        }
        Ok(module)
    }
}

/// Loads a precompiled module from the cache.
#[allow(unsafe_code)]
fn load_compiled(engine: &Engine, path: &Path) -> anyhow::Result<Module> {
    // SAFETY: wasmtime trusts a precompiled artifact to be its own output.
    // This one is: the cache directory is written only by `cached_or_compiled`
    // (via write-then-rename, so never partially), from `Module::serialize`;
    // and wasmtime itself refuses artifacts of another version or config.
    Ok(unsafe { Module::deserialize_file(engine, path) }?)
}

fn pooled_engine() -> anyhow::Result<Engine> {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(POOL_SLOTS)
        .total_memories(POOL_SLOTS)
        .total_tables(POOL_SLOTS)
        .max_memory_size((super::manifest::MAX_MEMORY_MIB as usize) << 20);
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Ok(Engine::new(&config)?)
}

/// Advances the engine's epoch every [`EPOCH_TICK`]. The thread holds the
/// engine weakly and ends with it, so a host started and stopped in one
/// process (tests, embedders) leaks neither the thread nor the engine.
fn start_epoch_ticker(engine: &Engine) -> std::thread::JoinHandle<()> {
    let engine = engine.weak();
    std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                let Some(engine) = engine.upgrade() else {
                    return;
                };
                engine.increment_epoch();
            }
        })
        .expect("spawn the epoch ticker thread")
}

fn check_exports(module: &Module) -> anyhow::Result<()> {
    use ValType::{I32, I64};
    let expected: [(&str, &[ValType], &[ValType], bool); 4] = [
        (abi::EXPORT_VERSION, &[], &[I32], true),
        (abi::EXPORT_ALLOC, &[I32], &[I32], true),
        (abi::EXPORT_HANDLE, &[I32, I32], &[I64], true),
        (abi::EXPORT_INIT, &[], &[I32], false),
    ];
    match module.get_export(abi::EXPORT_MEMORY) {
        Some(ExternType::Memory(_)) => {}
        _ => bail!(
            "the module must export its memory as `{}`",
            abi::EXPORT_MEMORY
        ),
    }
    if module.get_export(abi::EXPORT_COMMAND_START).is_some() {
        bail!("the module exports `_start` (a WASI command); build a library/reactor instead");
    }
    for (name, params, results, required) in expected {
        match module.get_export(name) {
            Some(ExternType::Func(ty)) => {
                let same = |a: &[ValType], b: &mut dyn ExactSizeIterator<Item = ValType>| {
                    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| ValType::eq(x, &y))
                };
                if !same(params, &mut ty.params()) || !same(results, &mut ty.results()) {
                    bail!("export `{name}` has type {ty}; ABI v1 wants {params:?} -> {results:?}");
                }
            }
            Some(_) => bail!("export `{name}` must be a function"),
            None if required => bail!("missing export `{name}` (see guest-sdk/ABI.md)"),
            None => {}
        }
    }
    Ok(())
}

fn check_imports(module: &Module) -> anyhow::Result<()> {
    for import in module.imports() {
        match import.module() {
            "wasi_snapshot_preview1" => {}
            abi::IMPORT_MODULE
                if ["log", "publish", "publish_deferred"].contains(&import.name()) => {}
            module_name => bail!(
                "unknown import `{module_name}::{}`: ABI v1 offers wasq::{{log, publish, publish_deferred}} and WASI preview 1",
                import.name()
            ),
        }
    }
    Ok(())
}

/// A copy of `len` bytes at `ptr` in the caller's memory, if in bounds.
fn read_guest(caller: &mut Caller<'_, GuestState>, ptr: i32, len: i32) -> Option<Vec<u8>> {
    let memory = caller.get_export(abi::EXPORT_MEMORY)?.into_memory()?;
    let data = memory.data(&caller);
    let start = usize::try_from(ptr).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    data.get(start..end).map(<[u8]>::to_vec)
}

fn add_wasq_imports(linker: &mut Linker<GuestState>) -> anyhow::Result<()> {
    linker.func_wrap(
        abi::IMPORT_MODULE,
        "log",
        |mut caller: Caller<'_, GuestState>, level: i32, ptr: i32, len: i32| -> i32 {
            let Some(bytes) = read_guest(&mut caller, ptr, len) else {
                return status::BAD_POINTER;
            };
            let text = String::from_utf8_lossy(&bytes);
            let plugin = caller.data().link.name.clone();
            match level {
                0 => tracing::debug!(plugin = %plugin, "{text}"),
                2 => tracing::warn!(plugin = %plugin, "{text}"),
                3 => tracing::error!(plugin = %plugin, "{text}"),
                _ => tracing::info!(plugin = %plugin, "{text}"),
            }
            status::OK
        },
    )?;
    linker.func_wrap(
        abi::IMPORT_MODULE,
        "publish",
        |mut caller: Caller<'_, GuestState>, tp: i32, tl: i32, bp: i32, bl: i32| -> i32 {
            publish_from_guest(&mut caller, (tp, tl), (bp, bl), 0)
        },
    )?;
    linker.func_wrap(
        abi::IMPORT_MODULE,
        "publish_deferred",
        |mut caller: Caller<'_, GuestState>,
         tp: i32,
         tl: i32,
         bp: i32,
         bl: i32,
         delay_ms: i64|
         -> i32 { publish_from_guest(&mut caller, (tp, tl), (bp, bl), delay_ms) },
    )?;
    Ok(())
}

/// `publish` / `publish_deferred`: checks in ABI.md's order, never traps.
fn publish_from_guest(
    caller: &mut Caller<'_, GuestState>,
    (topic_ptr, topic_len): (i32, i32),
    (body_ptr, body_len): (i32, i32),
    delay_ms: i64,
) -> i32 {
    let (Some(topic), Some(body)) = (
        read_guest(caller, topic_ptr, topic_len),
        read_guest(caller, body_ptr, body_len),
    ) else {
        return status::BAD_POINTER;
    };
    let link = caller.data().link.clone();
    let refuse = |code: i32, why: &str| {
        PluginStats::bump(&link.stats.publish_refused);
        tracing::warn!(plugin = %link.name, topic = %String::from_utf8_lossy(&topic), "publish refused: {why}");
        code
    };
    let Some(topic_name) = std::str::from_utf8(&topic)
        .ok()
        .filter(|t| is_valid_name(t))
    else {
        return refuse(status::INVALID_TOPIC, "invalid topic name");
    };
    if !link.manifest.may_publish(topic_name) {
        return refuse(
            status::FORBIDDEN,
            "topic not in the manifest's publish list",
        );
    }
    let options = &link.broker.options;
    if body.is_empty() || body.len() as i64 > options.max_msg_size {
        return refuse(status::INVALID_BODY, "empty or too large body");
    }
    if delay_ms < 0 || delay_ms as u128 > options.max_req_timeout.as_millis() {
        return refuse(status::INVALID_DELAY, "delay out of range");
    }
    let delay = Duration::from_millis(delay_ms as u64);
    match link
        .broker
        .publish_blocking(topic_name, vec![Bytes::from(body)], delay)
    {
        Ok(()) => {
            PluginStats::bump(&link.stats.published);
            status::OK
        }
        Err(e) => refuse(status::UNAVAILABLE, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epoch_ticker_ends_with_its_engine() {
        let engine = Engine::new(Config::new().epoch_interruption(true)).unwrap();
        let ticker = start_epoch_ticker(&engine);
        std::thread::sleep(EPOCH_TICK * 4);
        assert!(!ticker.is_finished(), "ticks while the engine lives");
        drop(engine);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !ticker.is_finished() {
            assert!(
                std::time::Instant::now() < deadline,
                "the ticker outlived its engine"
            );
            std::thread::sleep(EPOCH_TICK);
        }
    }
}
