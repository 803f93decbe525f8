//! Large components go live with baseline code first, and their optimized
//! code takes over once it is compiled.
//!
//! A JavaScript or Python plugin is a language runtime of 12–18 MB. On two
//! cores Cranelift, wasmtime's optimizing compiler, takes about 2 s to
//! compile a new version even when nearly every function comes from the
//! compiled-function cache (it still translates and hashes all of them),
//! and 5–6 s for the first plugin on a runtime. Winch, wasmtime's baseline
//! compiler, translates the same component in one pass in about 1 s, to
//! code that handled messages 1.1–1.5x slower in the examples. So a
//! version that is not in the artifact cache is compiled by Winch and goes
//! live; Cranelift compiles it meanwhile, on a blocking thread, and the
//! optimized build replaces the baseline one by an ordinary reload of the
//! same version (the baseline instances drain; nothing is lost). A version
//! compiled before loads optimized from the cache, without this step.
//!
//! The baseline engine has no instance pool (its versions live seconds) and
//! no compiled-function cache (Winch does not use one); the epoch clock
//! ticks it with the main engine, so deadlines mean the same on both.

use std::collections::HashMap;

use parking_lot::Mutex;
use wasmtime::component::Component;
use wasmtime::{Engine, OptLevel, RegallocAlgorithm, Strategy};

use super::component::{self, ComponentPre, ComponentState};
use crate::allocator::compiling::compiling;

/// Components at least this large are compiled by Winch first; smaller
/// ones (a Rust component: about 100 ms with Cranelift) gain nothing worth
/// a second compile.
pub const BASELINE_MIN_BYTES: usize = 4 << 20;

/// Which compiler made the code of a live version, for GET /plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compiler {
    /// Winch: a fast single-pass compile; optimized code is on its way.
    Baseline,
    /// Cranelift.
    Optimizing,
}

impl std::fmt::Display for Compiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compiler::Baseline => "baseline",
            Compiler::Optimizing => "optimizing",
        })
    }
}

/// Winch's engine and the component linker built on it.
pub struct BaselineCompiler {
    linker: wasmtime::component::Linker<ComponentState>,
}

impl BaselineCompiler {
    /// A baseline compiler with the main engine's settings, or `None`
    /// (logged) where Winch is not available: every component then
    /// compiles with Cranelift alone.
    pub fn new() -> Option<BaselineCompiler> {
        let built = super::runtime::base_config(None).and_then(|mut config| {
            config.strategy(Strategy::Winch);
            // Its code lives seconds: no time for what it does not need.
            // Winch still has Cranelift compile a trampoline for each
            // function in a table (6 241 in a JavaScript runtime: a third
            // of the compile), so those are compiled as fast as it can
            // (not optimised, single-pass register allocation); traps in
            // baseline code name no Wasm offset, and native debuggers and
            // profilers get no unwind tables for it.
            config
                .cranelift_opt_level(OptLevel::None)
                .cranelift_regalloc_algorithm(RegallocAlgorithm::SinglePass)
                .generate_address_map(false)
                .native_unwind_info(false);
            let engine = Engine::new(&config)?;
            component::linker(&engine)
        });
        match built {
            Ok(linker) => Some(BaselineCompiler { linker }),
            Err(e) => {
                tracing::info!(error = %e, "PLUGINS: no baseline compiler: large components compile with Cranelift before they go live");
                None
            }
        }
    }

    pub fn engine(&self) -> &Engine {
        self.linker.engine()
    }

    /// Compiles and links a component with Winch.
    pub fn compile(&self, bytes: &[u8]) -> anyhow::Result<ComponentPre> {
        let started = std::time::Instant::now();
        let compiled = compiling(|| Component::new(self.engine(), bytes))
            .map_err(|e| anyhow::Error::from(e).context("invalid WebAssembly component"))?;
        tracing::info!(
            bytes = bytes.len(),
            ms = started.elapsed().as_millis() as u64,
            "PLUGINS: compiled a WebAssembly component with the baseline compiler; optimized code follows"
        );
        component::link(&self.linker, &compiled)
    }
}

/// Optimized builds of versions that are live with baseline code, from
/// the end of their compile to the reload that takes each up: by plugin
/// name, with the module hash each was compiled from (two plugins may run
/// the same module, each with its own build).
#[derive(Default)]
pub struct OptimizedBuilds {
    ready: Mutex<HashMap<String, (String, ComponentPre)>>,
}

impl OptimizedBuilds {
    pub fn put(&self, plugin: &str, hash: &str, pre: ComponentPre) {
        self.ready
            .lock()
            .insert(plugin.to_string(), (hash.to_string(), pre));
    }

    pub fn has(&self, plugin: &str, hash: &str) -> bool {
        self.ready
            .lock()
            .get(plugin)
            .is_some_and(|(built, _)| built == hash)
    }

    /// Takes `plugin`'s build of `hash` (for the reload that uses it, or
    /// to drop it once another version went live meanwhile).
    pub fn take(&self, plugin: &str, hash: &str) -> Option<ComponentPre> {
        let mut ready = self.ready.lock();
        match ready.get(plugin) {
            Some((built, _)) if built == hash => ready.remove(plugin).map(|(_, pre)| pre),
            _ => None,
        }
    }
}
