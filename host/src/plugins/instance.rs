//! One instance of a plugin's module, owned by one worker thread and reused
//! for message after message. A trap, a deadline overrun or an exhausted
//! memory/stack poisons nothing else: the worker drops the instance and
//! makes a new one.

use std::sync::Arc;

use wasmtime::{InstancePre, Memory, Store, StoreLimitsBuilder, Trap, TypedFunc};
use wasmtime_wasi::WasiCtxBuilder;

use super::abi::{self, Outcome};
use super::log_stream::GuestOutput;
use super::runtime::{EPOCH_TICK, GuestState, PluginLink};
use crate::broker::message::Message;

/// Why a call into the guest failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestError {
    /// The handler ran past `handler_deadline_ms`.
    Timeout,
    /// A trap: unreachable, out of bounds, stack overflow, out of memory, exit.
    Trap(String),
    /// The guest broke the ABI (bad version, no memory for the message, …).
    Abi(String),
}

impl std::fmt::Display for GuestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuestError::Timeout => f.write_str("handler deadline exceeded"),
            GuestError::Trap(why) => write!(f, "trap: {why}"),
            GuestError::Abi(why) => write!(f, "ABI violation: {why}"),
        }
    }
}

pub struct GuestInstance {
    store: Store<GuestState>,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    handle: TypedFunc<(i32, i32), i64>,
    deadline_ticks: u64,
}

impl GuestInstance {
    /// Instantiates the module, checks its ABI version and runs its
    /// start-up (`_initialize`, then `wasq_init`).
    pub fn new(
        pre: &InstancePre<GuestState>,
        link: Arc<PluginLink>,
    ) -> Result<GuestInstance, GuestError> {
        let manifest = &link.manifest;
        let wasi = WasiCtxBuilder::new()
            .args(&[&*link.name])
            .stdout(GuestOutput::new(link.name.clone(), "stdout"))
            .stderr(GuestOutput::new(link.name.clone(), "stderr"))
            .build_p1();
        let limits = StoreLimitsBuilder::new()
            .memory_size(manifest.memory_limit_bytes)
            .instances(1)
            .memories(1)
            .tables(4)
            .build();
        let deadline_ticks = manifest
            .handler_deadline
            .as_nanos()
            .div_ceil(EPOCH_TICK.as_nanos()) as u64
            + 1;
        let mut store = Store::new(pre.module().engine(), GuestState { wasi, limits, link });
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(deadline_ticks);

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
        store.set_epoch_deadline(deadline_ticks);
        let found = version.call(&mut store, ()).map_err(classify)?;
        if found != abi::ABI_VERSION {
            return Err(GuestError::Abi(format!(
                "wasq_abi_version() returned {found}; this host speaks version {}",
                abi::ABI_VERSION
            )));
        }
        if let Ok(init) = instance.get_typed_func::<(), i32>(&mut store, abi::EXPORT_INIT) {
            store.set_epoch_deadline(deadline_ticks);
            let code = init.call(&mut store, ()).map_err(classify)?;
            if code != 0 {
                return Err(GuestError::Abi(format!(
                    "wasq_init() failed with code {code}"
                )));
            }
        }
        Ok(GuestInstance {
            store,
            memory,
            alloc,
            handle,
            deadline_ticks,
        })
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
        self.store.set_epoch_deadline(self.deadline_ticks);
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
        self.store.set_epoch_deadline(self.deadline_ticks);
        let value = self
            .handle
            .call(&mut self.store, (ptr, len_i32))
            .map_err(classify)?;
        Outcome::decode(value).map_err(|raw| GuestError::Abi(format!("unknown outcome {raw:#x}")))
    }
}

fn classify(error: wasmtime::Error) -> GuestError {
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return GuestError::Trap(format!("proc_exit({})", exit.0));
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => GuestError::Timeout,
        Some(trap) => GuestError::Trap(trap.to_string()),
        None => GuestError::Trap(format!("{error:#}")),
    }
}
