//! One live guest, whatever its kind: a core module speaking ABI v1
//! ([`super::core_module`]) or a component of the `wasq:plugin` WIT world
//! ([`super::component`]). Both are adapted here to the one handler the
//! workers use, so outcomes, limits, deadlines and stats cannot differ by
//! kind. An instance is owned by one worker (a task) and reused for message
//! after message; a trap, a deadline overrun or an exhausted memory/stack
//! poisons nothing else: the worker drops the instance and makes a new one.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder, Trap, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;

use super::abi::Outcome;
use super::component::{ComponentInstance, ComponentPre};
use super::core_module::{CoreInstance, CorePre};
use super::epoch::{EpochClock, ticks_covering};
use super::log_stream::GuestOutput;
use super::runtime::PluginLink;
use super::stats::PluginStats;
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

/// The kind of a plugin's module, as GET /plugins reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GuestKind {
    /// A core module, ABI v1 (guest-sdk/ABI.md).
    CoreModule,
    /// A component of the WIT world `wasq:plugin/consumer@1.0.0`.
    Component,
}

impl std::fmt::Display for GuestKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GuestKind::CoreModule => "core-module",
            GuestKind::Component => "component",
        })
    }
}

/// A compiled and linked version of a plugin, ready to make instances.
#[derive(Clone)]
pub enum CompiledGuest {
    Core(CorePre),
    Component(ComponentPre),
}

impl CompiledGuest {
    pub fn kind(&self) -> GuestKind {
        match self {
            CompiledGuest::Core(_) => GuestKind::CoreModule,
            CompiledGuest::Component(_) => GuestKind::Component,
        }
    }

    /// A new instance, started up (`_initialize`/`wasq_init`, or `init`).
    pub async fn instantiate(&self, link: Arc<PluginLink>) -> Result<GuestInstance, GuestError> {
        let limit = link.manifest.memory_limit_bytes;
        let live = match self {
            CompiledGuest::Core(pre) => LiveGuest::Core(CoreInstance::new(pre, link).await?),
            CompiledGuest::Component(pre) => {
                LiveGuest::Component(ComponentInstance::new(pre, link).await?)
            }
        };
        let started_with = live.memory_bytes();
        let (used, of) = RECYCLE_AT_HEADROOM_USED;
        Ok(GuestInstance {
            recycle_at: started_with + limit.saturating_sub(started_with) / of * used,
            live,
        })
    }
}

/// A started instance of either kind, and the memory past which it is
/// replaced (see [`RECYCLE_AT_HEADROOM_USED`]).
pub struct GuestInstance {
    live: LiveGuest,
    recycle_at: usize,
}

enum LiveGuest {
    Core(CoreInstance),
    Component(ComponentInstance),
}

impl LiveGuest {
    fn memory_bytes(&self) -> usize {
        match self {
            LiveGuest::Core(core) => core.limits().memory_bytes,
            LiveGuest::Component(component) => component.limits().memory_bytes,
        }
    }
}

/// Share of the headroom an instance has after start-up (its memory
/// limit less what it holds then) that it may use before it is replaced
/// between two messages. Bounds the memory of a guest whose runtime leaks
/// (componentize-js keeps every `list<u8>` argument: ComponentizeJS#350)
/// without a trap, and so without a retried message.
const RECYCLE_AT_HEADROOM_USED: (usize, usize) = (3, 4);

impl GuestInstance {
    /// Linear memory the instance holds now, over all its memories.
    pub fn memory_bytes(&self) -> usize {
        self.live.memory_bytes()
    }

    /// True once the instance holds more memory than it may keep: replace
    /// it before the next message.
    pub fn needs_recycling(&self) -> bool {
        self.memory_bytes() > self.recycle_at
    }

    /// What the last call wrote to its plugin's state, message by message
    /// (to commit with the successes' FINs).
    pub fn take_state_writes(&mut self) -> super::state::call::CallWrites {
        match &mut self.live {
            LiveGuest::Core(core) => core.take_state_writes(),
            LiveGuest::Component(component) => component.take_state_writes(),
        }
    }

    /// Hands one message to the guest and returns its outcome.
    pub async fn handle(
        &mut self,
        message: &Message,
        topic: &str,
        channel: &str,
    ) -> Result<Outcome, GuestError> {
        match &mut self.live {
            LiveGuest::Core(core) => core.handle(message, topic, channel).await,
            LiveGuest::Component(component) => component.handle(message, topic, channel).await,
        }
    }

    /// Hands the guest the first of `messages` (a core module exporting
    /// `wasq_handle_batch` or a component exporting `handle-batch`: as
    /// many as one batch holds) and pushes one
    /// outcome per message handled, in order, at least one. Returns false
    /// if the instance failed (then the last outcome pushed is the failure,
    /// unless the guest failed after its last message) and must be
    /// replaced; the messages after those with an outcome were not handled.
    pub async fn handle_many(
        &mut self,
        messages: &[Message],
        topic: &str,
        channel: &str,
        results: &mut Vec<Result<Outcome, GuestError>>,
    ) -> bool {
        match &mut self.live {
            LiveGuest::Core(core) => core.handle_many(messages, topic, channel, results).await,
            LiveGuest::Component(component) => {
                component
                    .handle_many(messages, topic, channel, results)
                    .await
            }
        }
    }
}

/// Pushes the result of a call for a single message; false if it failed
/// (the instance is then replaced).
pub fn push_single(
    results: &mut Vec<Result<Outcome, GuestError>>,
    result: Result<Outcome, GuestError>,
) -> bool {
    let intact = result.is_ok();
    results.push(result);
    intact
}

/// The WASI a guest of either kind gets: its name as the only argument,
/// no environment, no preopened directories, no network; stdout and
/// stderr to the host log under the plugin's name. Core modules build it
/// for preview 1, components for 0.2.
pub fn sandboxed_wasi(link: &PluginLink) -> WasiCtxBuilder {
    let mut wasi = WasiCtxBuilder::new();
    wasi.args(&[&*link.name])
        .stdout(GuestOutput::new(link.name.clone(), "stdout"))
        .stderr(GuestOutput::new(link.name.clone(), "stderr"))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }));
    wasi
}

/// How long one call into a plugin's guest may run, in epoch ticks of the
/// runtime's clock.
pub struct Deadline {
    clock: EpochClock,
    /// The manifest's handler deadline, rounded up, plus the tick already
    /// under way.
    ticks: u64,
}

impl Deadline {
    pub fn for_plugin(link: &PluginLink) -> Deadline {
        Deadline {
            clock: link.clock.clone(),
            ticks: ticks_covering(link.manifest.handler_deadline),
        }
    }

    /// Starts the deadline for the next call into the store's guest.
    pub fn arm<T>(&self, store: &mut wasmtime::Store<T>) {
        self.arm_for_calls(store, 1);
    }

    /// Starts the deadline for the next call, and keeps the clock ticking
    /// long enough for `calls` calls in a row, the later ones started with
    /// [`Deadline::restart`]: each ends by its deadline, so the last one
    /// starts at most `calls - 1` deadlines later. One look at the shared
    /// clock per message instead of one per call.
    pub fn arm_for_calls<T>(&self, store: &mut wasmtime::Store<T>, calls: u64) {
        store.set_epoch_deadline(self.first_slice());
        self.clock.tick_for(self.ticks * calls);
    }

    /// The ticks until the store's epoch callback first looks at the call
    /// ([`end_of_slice`]): a slice, or the whole deadline if shorter.
    fn first_slice(&self) -> u64 {
        self.ticks.min(SLICE_TICKS)
    }

    /// A call's deadline in ticks.
    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    /// Starts the deadline for a call after the one [`Deadline::arm_for_calls`] armed.
    pub fn restart<T>(&self, store: &mut wasmtime::Store<T>) {
        store.set_epoch_deadline(self.first_slice());
    }
}

/// How long a guest computes before it lets the other tasks of its
/// executor lane run (executor.rs), in epoch ticks: 10 ms.
pub const SLICE_TICKS: u64 = 2;

/// What a store's epoch callback answers when a call's slice is over: run
/// on for another slice after the lane's other tasks had their turn, or,
/// once `call_deadline` has passed, interrupt (a [`GuestError::Timeout`]).
/// A yield that lasts while the clock would park is covered: the clock is
/// asked for ticks again when the call resumes.
pub fn end_of_slice(call_deadline: Instant, clock: &EpochClock) -> UpdateDeadline {
    end_of_ticks(call_deadline, clock, SLICE_TICKS)
}

/// [`end_of_slice`] for a callback called every `ticks` ticks.
pub fn end_of_ticks(call_deadline: Instant, clock: &EpochClock, ticks: u64) -> UpdateDeadline {
    if Instant::now() >= call_deadline {
        return UpdateDeadline::Interrupt;
    }
    let clock = clock.clone();
    UpdateDeadline::YieldCustom(
        ticks,
        Box::pin(async move {
            tokio::task::yield_now().await;
            clock.tick_for(ticks);
        }),
    )
}

/// A guest's resource limits (the manifest's memory limit, and how many
/// instances, memories and tables one guest may make), counting the linear
/// memory it holds so GET /plugins can show a guest that keeps growing.
pub struct GuestLimits {
    limits: StoreLimits,
    stats: Arc<PluginStats>,
    /// Linear memory held now (grown, never shrunk: Wasm cannot shrink).
    pub memory_bytes: usize,
}

impl GuestLimits {
    /// Limits for a core module: one instance, one memory.
    pub fn for_core_module(link: &PluginLink) -> GuestLimits {
        GuestLimits::new(link, 1, 1, 4)
    }

    /// Limits for a component: its core instances, memories and tables
    /// (a JavaScript or Python runtime links several modules).
    pub fn for_component(link: &PluginLink) -> GuestLimits {
        GuestLimits::new(link, 64, 16, 64)
    }

    fn new(link: &PluginLink, instances: usize, memories: usize, tables: usize) -> GuestLimits {
        GuestLimits {
            limits: StoreLimitsBuilder::new()
                .memory_size(link.manifest.memory_limit_bytes)
                .instances(instances)
                .memories(memories)
                .tables(tables)
                .build(),
            stats: link.stats.clone(),
            memory_bytes: 0,
        }
    }
}

impl ResourceLimiter for GuestLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if allowed {
            self.memory_bytes += desired.saturating_sub(current);
            self.stats.note_guest_memory(self.memory_bytes);
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// Sorts a wasmtime error from a guest call into a [`GuestError`].
pub fn classify(error: wasmtime::Error) -> GuestError {
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return GuestError::Trap(format!("proc_exit({})", exit.0));
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => GuestError::Timeout,
        Some(trap) => GuestError::Trap(trap.to_string()),
        None => GuestError::Trap(format!("{error:#}")),
    }
}
