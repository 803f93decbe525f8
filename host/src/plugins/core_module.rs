//! Core modules: ABI v1 (guest-sdk/ABI.md). The checks a module must pass
//! before it links, the `wasq` imports over the guest's memory, and one
//! instance: the message written into memory from `wasq_alloc`, the outcome
//! read back from `wasq_handle`'s i64.

use std::sync::Arc;

use wasmtime::{
    Caller, ExternType, InstancePre, Linker, Memory, Module, Store, TypedFunc, ValType,
};
use wasmtime_wasi::p1::WasiP1Ctx;

use super::abi::{self, Outcome, status};
use super::imports::{self, Level, Refusal};
use super::instance::{Deadline, GuestError, GuestLimits, classify, sandboxed_wasi};
use super::runtime::PluginLink;
use crate::broker::message::Message;

/// The data of one core instance's `Store`.
pub struct CoreState {
    wasi: WasiP1Ctx,
    limits: GuestLimits,
    link: Arc<PluginLink>,
}

/// A module linked against the `wasq` imports and WASI preview 1.
pub type CorePre = InstancePre<CoreState>;

/// The linker every core module is linked with: WASI preview 1 and `wasq`.
pub fn linker(engine: &wasmtime::Engine) -> anyhow::Result<Linker<CoreState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |state: &mut CoreState| &mut state.wasi)?;
    add_wasq_imports(&mut linker)?;
    Ok(linker)
}

/// Checks a module against ABI v1 and links it.
pub fn link(linker: &Linker<CoreState>, module: &Module) -> anyhow::Result<CorePre> {
    check_exports(module)?;
    check_imports(module)?;
    linker
        .instantiate_pre(module)
        .map_err(|e| anyhow::Error::from(e).context("cannot link the module's imports"))
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
        _ => anyhow::bail!(
            "the module must export its memory as `{}`",
            abi::EXPORT_MEMORY
        ),
    }
    if module.get_export(abi::EXPORT_COMMAND_START).is_some() {
        anyhow::bail!(
            "the module exports `_start` (a WASI command); build a library/reactor instead"
        );
    }
    for (name, params, results, required) in expected {
        match module.get_export(name) {
            Some(ExternType::Func(ty)) => {
                let same = |a: &[ValType], b: &mut dyn ExactSizeIterator<Item = ValType>| {
                    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| ValType::eq(x, &y))
                };
                if !same(params, &mut ty.params()) || !same(results, &mut ty.results()) {
                    anyhow::bail!(
                        "export `{name}` has type {ty}; ABI v1 wants {params:?} -> {results:?}"
                    );
                }
            }
            Some(_) => anyhow::bail!("export `{name}` must be a function"),
            None if required => anyhow::bail!("missing export `{name}` (see guest-sdk/ABI.md)"),
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
            module_name => anyhow::bail!(
                "unknown import `{module_name}::{}`: ABI v1 offers wasq::{{log, publish, publish_deferred}} and WASI preview 1",
                import.name()
            ),
        }
    }
    Ok(())
}

/// A copy of `len` bytes at `ptr` in the caller's memory, if in bounds.
fn read_guest(caller: &mut Caller<'_, CoreState>, ptr: i32, len: i32) -> Option<Vec<u8>> {
    let memory = caller.get_export(abi::EXPORT_MEMORY)?.into_memory()?;
    let data = memory.data(&caller);
    let start = usize::try_from(ptr).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    data.get(start..end).map(<[u8]>::to_vec)
}

fn add_wasq_imports(linker: &mut Linker<CoreState>) -> anyhow::Result<()> {
    linker.func_wrap(
        abi::IMPORT_MODULE,
        "log",
        |mut caller: Caller<'_, CoreState>, level: i32, ptr: i32, len: i32| -> i32 {
            let Some(bytes) = read_guest(&mut caller, ptr, len) else {
                return status::BAD_POINTER;
            };
            let level = match level {
                0 => Level::Debug,
                2 => Level::Warn,
                3 => Level::Error,
                _ => Level::Info,
            };
            imports::log(&caller.data().link, level, &String::from_utf8_lossy(&bytes));
            status::OK
        },
    )?;
    linker.func_wrap(
        abi::IMPORT_MODULE,
        "publish",
        |mut caller: Caller<'_, CoreState>, tp: i32, tl: i32, bp: i32, bl: i32| -> i32 {
            publish_from_guest(&mut caller, (tp, tl), (bp, bl), 0)
        },
    )?;
    linker.func_wrap(
        abi::IMPORT_MODULE,
        "publish_deferred",
        |mut caller: Caller<'_, CoreState>,
         tp: i32,
         tl: i32,
         bp: i32,
         bl: i32,
         delay_ms: i64|
         -> i32 { publish_from_guest(&mut caller, (tp, tl), (bp, bl), delay_ms) },
    )?;
    Ok(())
}

/// `publish` / `publish_deferred`: [`imports::publish`] with its refusal
/// as ABI v1's status; never traps.
fn publish_from_guest(
    caller: &mut Caller<'_, CoreState>,
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
    match imports::publish(&caller.data().link, &topic, body, delay_ms) {
        Ok(()) => status::OK,
        Err(Refusal::Forbidden) => status::FORBIDDEN,
        Err(Refusal::InvalidTopic) => status::INVALID_TOPIC,
        Err(Refusal::InvalidBody) => status::INVALID_BODY,
        Err(Refusal::InvalidDelay) => status::INVALID_DELAY,
        Err(Refusal::Unavailable) => status::UNAVAILABLE,
    }
}

pub struct CoreInstance {
    store: Store<CoreState>,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    handle: TypedFunc<(i32, i32), i64>,
    deadline: Deadline,
}

impl CoreInstance {
    /// Instantiates the module, checks its ABI version and runs its
    /// start-up (`_initialize`, then `wasq_init`).
    pub fn new(pre: &CorePre, link: Arc<PluginLink>) -> Result<CoreInstance, GuestError> {
        let wasi = sandboxed_wasi(&link).build_p1();
        let deadline = Deadline::for_plugin(&link);
        let limits = GuestLimits::for_core_module(&link);
        let mut store = Store::new(pre.module().engine(), CoreState { wasi, limits, link });
        store.limiter(|state| &mut state.limits);
        deadline.arm(&mut store);

        let instance = pre.instantiate(&mut store).map_err(classify)?;
        let abi_error = |e: wasmtime::Error| GuestError::Abi(e.to_string());
        let memory = instance
            .get_memory(&mut store, abi::EXPORT_MEMORY)
            .ok_or_else(|| GuestError::Abi("no exported memory".into()))?;
        let version: TypedFunc<(), i32> = instance
            .get_typed_func(&mut store, abi::EXPORT_VERSION)
            .map_err(abi_error)?;
        let alloc = instance
            .get_typed_func(&mut store, abi::EXPORT_ALLOC)
            .map_err(abi_error)?;
        let handle = instance
            .get_typed_func(&mut store, abi::EXPORT_HANDLE)
            .map_err(abi_error)?;

        if let Ok(reactor_init) =
            instance.get_typed_func::<(), ()>(&mut store, abi::EXPORT_REACTOR_INIT)
        {
            reactor_init.call(&mut store, ()).map_err(classify)?;
        }
        deadline.arm(&mut store);
        let found = version.call(&mut store, ()).map_err(classify)?;
        if found != abi::ABI_VERSION {
            return Err(GuestError::Abi(format!(
                "wasq_abi_version() returned {found}; this host speaks version {}",
                abi::ABI_VERSION
            )));
        }
        if let Ok(init) = instance.get_typed_func::<(), i32>(&mut store, abi::EXPORT_INIT) {
            deadline.arm(&mut store);
            let code = init.call(&mut store, ()).map_err(classify)?;
            if code != 0 {
                return Err(GuestError::Abi(format!(
                    "wasq_init() failed with code {code}"
                )));
            }
        }
        Ok(CoreInstance {
            store,
            memory,
            alloc,
            handle,
            deadline,
        })
    }

    pub fn limits(&self) -> &GuestLimits {
        &self.store.data().limits
    }

    /// Places the message in guest memory and calls `wasq_handle`.
    pub fn handle(
        &mut self,
        message: &Message,
        topic: &str,
        channel: &str,
    ) -> Result<Outcome, GuestError> {
        let len = abi::encoded_len(message, topic, channel);
        let len_i32 =
            i32::try_from(len).map_err(|_| GuestError::Abi("message larger than 2 GiB".into()))?;
        // Two calls: wasq_alloc, then wasq_handle.
        self.deadline.arm_for_calls(&mut self.store, 2);
        let ptr = self
            .alloc
            .call(&mut self.store, len_i32)
            .map_err(classify)?;
        if ptr == 0 {
            return Err(GuestError::Abi(format!("wasq_alloc({len}) returned 0")));
        }
        let start = ptr as u32 as usize;
        let region = self
            .memory
            .data_mut(&mut self.store)
            .get_mut(start..start + len)
            .ok_or_else(|| {
                GuestError::Abi(format!("wasq_alloc returned {start}, outside memory"))
            })?;
        abi::encode_into(region, message, topic, channel);
        self.deadline.restart(&mut self.store);
        let value = self
            .handle
            .call(&mut self.store, (ptr, len_i32))
            .map_err(classify)?;
        Outcome::decode(value).map_err(|raw| GuestError::Abi(format!("unknown outcome {raw:#x}")))
    }
}
