//! Core modules: ABI v1 (guest-sdk/ABI.md). The checks a module must pass
//! before it links, the `wasq` imports over the guest's memory, and one
//! instance: the message written into memory from `wasq_alloc`, the outcome
//! read back from `wasq_handle`'s i64; or, when the module exports
//! `wasq_handle_batch`, many messages written at once and their outcomes
//! read back from the batch's table.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::{
    AsContextMut, Caller, ExternType, InstancePre, Linker, Memory, Module, Store, TypedFunc,
    UpdateDeadline, ValType,
};
use wasmtime_wasi::p1::WasiP1Ctx;

use super::abi::{self, Outcome, status};
use super::epoch::ticks_covering;
use super::imports::{self, Level, Refusal};
use super::instance::{
    Deadline, GuestError, GuestLimits, SLICE_TICKS, classify, end_of_slice, end_of_ticks,
    push_single, sandboxed_wasi,
};
use super::outbound::{OutboundError, OutboundRequest, OutboundResponse};
use super::runtime::PluginLink;
use super::state::call::{CallState, CallWrites};
use crate::broker::message::Message;

/// The data of one core instance's `Store`.
pub struct CoreState {
    wasi: WasiP1Ctx,
    limits: GuestLimits,
    pub(super) link: Arc<PluginLink>,
    /// The batch call under way, if any, for the epoch callback.
    batch: Option<BatchWatch>,
    /// Responses `http_request` returned and `http_response_read` has not.
    responses: Responses,
    /// When the handler call under way must end: outbound requests end
    /// by then too.
    call_deadline: Instant,
    /// The instance's exported memory, once instantiated: imports find it
    /// here instead of looking the export up by name on every call.
    memory: Option<Memory>,
    /// The state the call under way read and wrote (state imports).
    pub(super) state: CallState,
    /// Messages of the batch call under way whose outcome the state
    /// imports have seen (a failed one's writes are dropped at once).
    state_seen: usize,
}

/// What the epoch callback needs to give each message of a batch call its
/// own deadline: the batch's outcome slots, and how far the guest got.
struct BatchWatch {
    memory: Memory,
    /// Where the batch starts in guest memory, and its number of messages.
    start: usize,
    count: usize,
    /// Messages with an outcome when last looked.
    done: usize,
    /// Ticks the message under way has left (reset when `done` grows).
    ticks_left: u64,
    /// A message's deadline in ticks.
    ticks: u64,
    /// A new message started since the callback last looked.
    moved: bool,
}

impl BatchWatch {
    /// Called every tick of the batch call: true while the message under
    /// way is within its deadline. A message counts as started at the
    /// tick that first saw its predecessor's outcome, so each gets its
    /// deadline to within one tick, as a single call does.
    fn within_deadline(&mut self, memory: &[u8]) -> bool {
        let Some(batch) = memory.get(self.start..self.start + self.count * abi::BATCH_ENTRY_SIZE)
        else {
            return false;
        };
        let done = (self.done..self.count)
            .find(|&index| abi::batch_outcome(batch, index) == abi::NOT_HANDLED)
            .unwrap_or(self.count);
        if done > self.done {
            self.done = done;
            self.ticks_left = self.ticks;
            self.moved = true;
        }
        self.ticks_left = self.ticks_left.saturating_sub(1);
        self.ticks_left > 0
    }
}

/// The store's epoch callback: outside a batch call the deadline passed
/// (interrupt, as wasmtime's default would); in one, interrupt only when
/// the message under way has had its deadline ([`BatchWatch`]).
fn on_epoch_deadline(
    mut store: wasmtime::StoreContextMut<'_, CoreState>,
) -> wasmtime::Result<UpdateDeadline> {
    let Some(mut watch) = store.data_mut().batch.take() else {
        let data = store.data();
        return Ok(end_of_slice(data.call_deadline, &data.link.clock));
    };
    let within = watch.within_deadline(watch.memory.data(&store));
    if std::mem::take(&mut watch.moved) {
        let data = store.data_mut();
        data.call_deadline = data.link.call_deadline_from_now();
    }
    // The clock was armed for the first message only: keep it ticking for
    // as long as the message under way may still run.
    store.data().link.clock.tick_for(watch.ticks_left);
    store.data_mut().batch = Some(watch);
    Ok(if within {
        // Yields too: each tick is a slice's end for a batch.
        let data = store.data();
        end_of_ticks(data.call_deadline, &data.link.clock, 1)
    } else {
        UpdateDeadline::Interrupt
    })
}

/// A module linked against the `wasq` imports and WASI preview 1.
pub type CorePre = InstancePre<CoreState>;

/// The linker core modules are linked with: WASI preview 1 and `wasq`
/// but its state imports, which `core_state` adds (the runtime puts the
/// two together).
pub fn linker(engine: &wasmtime::Engine) -> anyhow::Result<Linker<CoreState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |state: &mut CoreState| &mut state.wasi)?;
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
    let expected: [(&str, &[ValType], &[ValType], bool); 5] = [
        (abi::EXPORT_VERSION, &[], &[I32], true),
        (abi::EXPORT_ALLOC, &[I32], &[I32], true),
        (abi::EXPORT_HANDLE, &[I32, I32], &[I64], true),
        (abi::EXPORT_HANDLE_BATCH, &[I32, I32, I32], &[], false),
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
            abi::IMPORT_MODULE if abi::IMPORTS.contains(&import.name()) => {}
            module_name => anyhow::bail!(
                "unknown import `{module_name}::{}`: ABI v1 offers wasq::{{{}}} and WASI preview 1",
                import.name(),
                abi::IMPORTS.join(", ")
            ),
        }
    }
    Ok(())
}

impl CoreState {
    /// The index in the call under way of the message the guest is
    /// handling now (`guest`: its memory): 0 outside a batch call; in one,
    /// the first without an outcome. The writes of the messages found
    /// finished since the last look, with a failure as their outcome, are
    /// dropped here, before the next message can read them.
    pub(super) fn message_under_way(&mut self, guest: &[u8]) -> usize {
        let Some(watch) = &self.batch else {
            return 0;
        };
        let (start, count) = (watch.start, watch.count);
        let Some(table) = guest.get(start..start + count * abi::BATCH_ENTRY_SIZE) else {
            return 0;
        };
        while self.state_seen < count {
            let value = abi::batch_outcome(table, self.state_seen);
            if value == abi::NOT_HANDLED {
                break;
            }
            if Outcome::decode(value) != Ok(Outcome::Success) {
                self.state.discard(self.state_seen);
            }
            self.state_seen += 1;
        }
        self.state_seen.min(count - 1)
    }
}

/// A copy of `len` bytes at `ptr` in the caller's memory, if in bounds.
pub(super) fn read_guest(
    caller: &mut Caller<'_, CoreState>,
    ptr: i32,
    len: i32,
) -> Option<Vec<u8>> {
    guest_range(caller, ptr, len).map(|(memory, range)| memory.data(&*caller)[range].to_vec())
}

/// The caller's memory and `ptr..ptr + len` in it, if in bounds.
pub(super) fn guest_range(
    caller: &mut Caller<'_, CoreState>,
    ptr: i32,
    len: i32,
) -> Option<(Memory, std::ops::Range<usize>)> {
    let memory = guest_memory(caller)?;
    let range = in_bounds(memory.data_size(&*caller), ptr, len)?;
    Some((memory, range))
}

/// The caller's memory.
pub(super) fn guest_memory(caller: &mut Caller<'_, CoreState>) -> Option<Memory> {
    match caller.data().memory {
        Some(memory) => Some(memory),
        // A start function calling an import, before `new` saw the export.
        None => caller.get_export(abi::EXPORT_MEMORY)?.into_memory(),
    }
}

/// `ptr..ptr + len`, if within a memory of `size` bytes.
pub(super) fn in_bounds(size: usize, ptr: i32, len: i32) -> Option<std::ops::Range<usize>> {
    let start = usize::try_from(ptr).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    (end <= size).then_some(start..end)
}

/// The answer of an import that returns bytes into a buffer of the
/// guest's (`config_get`, `state_get`, `state_scan`): writes `bytes` at
/// `buf` if they fit in `cap` and returns their length (the guest calls
/// again with a larger buffer if they did not), or `-BAD_POINTER`; `None`
/// when the length is not an `i32`.
pub(super) fn answer_with_bytes(
    caller: &mut Caller<'_, CoreState>,
    bytes: &[u8],
    buf: i32,
    cap: i32,
) -> Option<i32> {
    let len = i32::try_from(bytes.len()).ok()?;
    if len <= cap && !write_guest(caller, buf, len, bytes) {
        return Some(-status::BAD_POINTER);
    }
    Some(len)
}

/// Copies `bytes` to `ptr..ptr + len` in the caller's memory; false if out of bounds.
pub(super) fn write_guest(
    caller: &mut Caller<'_, CoreState>,
    ptr: i32,
    len: i32,
    bytes: &[u8],
) -> bool {
    match guest_range(caller, ptr, len) {
        Some((memory, range)) if range.len() >= bytes.len() => {
            memory.data_mut(&mut *caller)[range.start..range.start + bytes.len()]
                .copy_from_slice(bytes);
            true
        }
        _ => false,
    }
}

/// The `wasq` imports, all in one table (ABI.md, "Imports" and
/// "Outbound HTTP and configuration"): each a thin adapter from pointers
/// and statuses to [`imports`] and [`super::outbound`].
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
    linker.func_wrap_async(
        abi::IMPORT_MODULE,
        "publish",
        |mut caller: Caller<'_, CoreState>, (tp, tl, bp, bl): (i32, i32, i32, i32)| {
            Box::new(async move { publish_from_guest(&mut caller, (tp, tl), (bp, bl), 0).await })
        },
    )?;
    linker.func_wrap_async(
        abi::IMPORT_MODULE,
        "publish_deferred",
        |mut caller: Caller<'_, CoreState>,
         (tp, tl, bp, bl, delay_ms): (i32, i32, i32, i32, i64)| {
            Box::new(
                async move { publish_from_guest(&mut caller, (tp, tl), (bp, bl), delay_ms).await },
            )
        },
    )?;
    linker.func_wrap(
        abi::IMPORT_MODULE,
        "config_get",
        |mut caller: Caller<'_, CoreState>, kp: i32, kl: i32, bp: i32, bc: i32| -> i32 {
            let Some(key) = read_guest(&mut caller, kp, kl) else {
                return -status::BAD_POINTER;
            };
            let link = caller.data().link.clone();
            let Some(value) = imports::config(&link, &key) else {
                return -status::NOT_FOUND;
            };
            answer_with_bytes(&mut caller, value.as_bytes(), bp, bc).unwrap_or(-status::NOT_FOUND)
        },
    )?;
    linker.func_wrap_async(
        abi::IMPORT_MODULE,
        "http_request",
        |mut caller: Caller<'_, CoreState>,
         (mp, ml, up, ul, hp, hl, bp, bl, out): (i32, i32, i32, i32, i32, i32, i32, i32, i32)| {
            Box::new(async move {
                http_request_from_guest(&mut caller, [(mp, ml), (up, ul), (hp, hl), (bp, bl)], out)
                    .await
            })
        },
    )?;
    linker.func_wrap(
        abi::IMPORT_MODULE,
        "http_response_read",
        |mut caller: Caller<'_, CoreState>,
         handle: i32,
         hp: i32,
         hc: i32,
         bp: i32,
         bc: i32|
         -> i32 {
            let Some(response) = caller.data_mut().responses.take(handle as u32) else {
                return status::NOT_FOUND;
            };
            let headers = &response.headers[..response.headers.len().min(hc.max(0) as usize)];
            let body = &response.body[..response.body.len().min(bc.max(0) as usize)];
            if !write_guest(&mut caller, hp, headers.len() as i32, headers)
                || !write_guest(&mut caller, bp, body.len() as i32, body)
            {
                return status::BAD_POINTER;
            }
            status::OK
        },
    )?;
    Ok(())
}

/// Called when an import's wait (a response, an fsync) is over, before
/// the guest runs on. The clock may have parked meanwhile: it ticks again
/// for the rest of the call's deadline. And the wait used up the guest's
/// slice without computing: a fresh one, or the guest would yield its lane
/// at once for nothing (an extra trip through the scheduler per message).
fn resume_after_wait(caller: &mut Caller<'_, CoreState>) {
    let data = caller.data();
    let left = data.call_deadline.saturating_duration_since(Instant::now());
    data.link.clock.tick_for(ticks_covering(left));
    // A batch call's callback looks every tick (`BatchWatch`).
    let slice = if data.batch.is_some() { 1 } else { SLICE_TICKS };
    caller.as_context_mut().set_epoch_deadline(slice);
}

/// `publish` / `publish_deferred`: [`imports::publish`] with its refusal
/// as ABI v1's status; never traps.
async fn publish_from_guest(
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
    let link = caller.data().link.clone();
    let published = imports::publish(&link, &topic, body, delay_ms).await;
    // In durable mode the fiber waited for the fsync.
    resume_after_wait(caller);
    match published {
        Ok(()) => status::OK,
        Err(Refusal::Forbidden) => status::FORBIDDEN,
        Err(Refusal::InvalidTopic) => status::INVALID_TOPIC,
        Err(Refusal::InvalidBody) => status::INVALID_BODY,
        Err(Refusal::InvalidDelay) => status::INVALID_DELAY,
        Err(Refusal::Unavailable) => status::UNAVAILABLE,
    }
}

/// `http_request`: reads method, URL, headers and body from the guest,
/// sends them through the plugin's [`super::outbound::Outbound`] (the
/// fiber waits, the thread does not) and writes the response record.
async fn http_request_from_guest(
    caller: &mut Caller<'_, CoreState>,
    [(mp, ml), (up, ul), (hp, hl), (bp, bl)]: [(i32, i32); 4],
    out: i32,
) -> i32 {
    let (Some(method), Some(url), Some(headers), Some(body)) = (
        read_guest(caller, mp, ml),
        read_guest(caller, up, ul),
        read_guest(caller, hp, hl),
        read_guest(caller, bp, bl),
    ) else {
        return status::BAD_POINTER;
    };
    if guest_range(caller, out, abi::HTTP_RESPONSE_RECORD as i32).is_none() {
        return status::BAD_POINTER;
    }
    if caller.data().responses.is_full() {
        return status::BUSY;
    }
    let link = caller.data().link.clone();
    let deadline = caller.data().call_deadline;
    let request = OutboundRequest {
        method,
        url,
        headers,
        body: body.into(),
    };
    let response = link.outbound.send(request, deadline).await;
    resume_after_wait(caller);
    match response {
        Ok(response) => {
            let (handle, kept) = caller.data_mut().responses.keep(response);
            let record =
                abi::http_response_record(handle, kept.status, kept.headers.len(), kept.body.len());
            write_guest(caller, out, record.len() as i32, &record);
            status::OK
        }
        Err(error) => match error {
            OutboundError::NotAllowed => status::NOT_ALLOWED,
            OutboundError::Timeout => status::TIMEOUT,
            OutboundError::Dns => status::DNS,
            OutboundError::Connect => status::CONNECT,
            OutboundError::TooLarge => status::TOO_LARGE,
            OutboundError::InvalidRequest => status::INVALID_REQUEST,
            OutboundError::Io => status::IO,
        },
    }
}

/// The responses an instance holds for `http_response_read`, by handle;
/// dropped when the handler call returns.
#[derive(Default)]
struct Responses {
    held: Vec<(u32, OutboundResponse)>,
    next_handle: u32,
}

impl Responses {
    fn is_full(&self) -> bool {
        self.held.len() >= abi::MAX_UNREAD_RESPONSES
    }

    /// Keeps `response` under a new handle (never 0), and returns it.
    fn keep(&mut self, response: OutboundResponse) -> (u32, &OutboundResponse) {
        self.next_handle = self.next_handle.wrapping_add(1).max(1);
        self.held.push((self.next_handle, response));
        let (handle, kept) = self.held.last().expect("just pushed");
        (*handle, kept)
    }

    fn take(&mut self, handle: u32) -> Option<OutboundResponse> {
        let at = self.held.iter().position(|(h, _)| *h == handle)?;
        Some(self.held.swap_remove(at).1)
    }

    fn clear(&mut self) {
        self.held.clear();
    }
}

pub struct CoreInstance {
    store: Store<CoreState>,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    handle: TypedFunc<(i32, i32), i64>,
    /// `wasq_handle_batch`, if the module exports it.
    handle_batch: Option<TypedFunc<(i32, i32, i32), ()>>,
    deadline: Deadline,
}

impl CoreInstance {
    /// Instantiates the module, checks its ABI version and runs its
    /// start-up (`_initialize`, then `wasq_init`).
    pub async fn new(pre: &CorePre, link: Arc<PluginLink>) -> Result<CoreInstance, GuestError> {
        let wasi = sandboxed_wasi(&link).build_p1();
        let deadline = Deadline::for_plugin(&link);
        let limits = GuestLimits::for_core_module(&link);
        let state = CoreState {
            call_deadline: link.call_deadline_from_now(),
            wasi,
            limits,
            link,
            batch: None,
            responses: Responses::default(),
            memory: None,
            state: CallState::default(),
            state_seen: 0,
        };
        let mut store = Store::new(pre.module().engine(), state);
        store.limiter(|state| &mut state.limits);
        store.epoch_deadline_callback(on_epoch_deadline);
        deadline.arm(&mut store);

        let instance = pre.instantiate_async(&mut store).await.map_err(classify)?;
        let abi_error = |e: wasmtime::Error| GuestError::Abi(e.to_string());
        let memory = instance
            .get_memory(&mut store, abi::EXPORT_MEMORY)
            .ok_or_else(|| GuestError::Abi("no exported memory".into()))?;
        store.data_mut().memory = Some(memory);
        let version: TypedFunc<(), i32> = instance
            .get_typed_func(&mut store, abi::EXPORT_VERSION)
            .map_err(abi_error)?;
        let alloc = instance
            .get_typed_func(&mut store, abi::EXPORT_ALLOC)
            .map_err(abi_error)?;
        let handle = instance
            .get_typed_func(&mut store, abi::EXPORT_HANDLE)
            .map_err(abi_error)?;
        let handle_batch = instance
            .get_typed_func(&mut store, abi::EXPORT_HANDLE_BATCH)
            .ok();

        if let Ok(reactor_init) =
            instance.get_typed_func::<(), ()>(&mut store, abi::EXPORT_REACTOR_INIT)
        {
            reactor_init
                .call_async(&mut store, ())
                .await
                .map_err(classify)?;
        }
        deadline.arm(&mut store);
        let found = version.call_async(&mut store, ()).await.map_err(classify)?;
        if found != abi::ABI_VERSION {
            return Err(GuestError::Abi(format!(
                "wasq_abi_version() returned {found}; this host speaks version {}",
                abi::ABI_VERSION
            )));
        }
        if let Ok(init) = instance.get_typed_func::<(), i32>(&mut store, abi::EXPORT_INIT) {
            deadline.arm(&mut store);
            let code = init.call_async(&mut store, ()).await.map_err(classify)?;
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
            handle_batch,
            deadline,
        })
    }

    pub fn limits(&self) -> &GuestLimits {
        &self.store.data().limits
    }

    /// A handler call starts: its deadline (for the outbound requests of
    /// the call too), and no state read or written yet (what `wasq_init`
    /// wrote is not any message's).
    fn start_call(&mut self) {
        let data = self.store.data_mut();
        data.call_deadline = data.link.call_deadline_from_now();
        data.state.clear();
        data.state_seen = 0;
    }

    /// What the last call wrote to its plugin's state, message by message.
    pub fn take_state_writes(&mut self) -> CallWrites {
        self.store.data_mut().state.finish()
    }

    /// Handles the first of `messages`, or as many as one batch holds
    /// when the module exports `wasq_handle_batch` (see
    /// [`super::instance::GuestInstance::handle_many`]); false if the
    /// instance failed and must be replaced.
    pub async fn handle_many(
        &mut self,
        messages: &[Message],
        topic: &str,
        channel: &str,
        results: &mut Vec<Result<Outcome, GuestError>>,
    ) -> bool {
        if let Some(handle_batch) = self.handle_batch.clone() {
            // Measured only for a module that takes batches: a walk over
            // up to 64 KiB of messages would be wasted on one per call.
            let (count, len) = abi::batch_extent(messages, topic, channel);
            if count > 1 {
                let batch = &messages[..count];
                let done = self
                    .call_batch(&handle_batch, batch, len, topic, channel, results)
                    .await;
                self.store.data_mut().responses.clear();
                return done;
            }
        }
        let result = self.handle(&messages[0], topic, channel).await;
        push_single(results, result)
    }

    /// Places the message in guest memory and calls `wasq_handle`.
    pub async fn handle(
        &mut self,
        message: &Message,
        topic: &str,
        channel: &str,
    ) -> Result<Outcome, GuestError> {
        let len = abi::encoded_len(message, topic, channel);
        // Two calls: wasq_alloc, then wasq_handle.
        self.deadline.arm_for_calls(&mut self.store, 2);
        self.start_call();
        let (ptr, region) = self
            .alloc_region(len)
            .await?
            .ok_or_else(|| GuestError::Abi(format!("wasq_alloc({len}) returned 0")))?;
        abi::encode_into(region, message, topic, channel);
        self.deadline.restart(&mut self.store);
        let value = self
            .handle
            .call_async(&mut self.store, (ptr, len as i32))
            .await;
        self.store.data_mut().responses.clear();
        let value = value.map_err(classify)?;
        Outcome::decode(value).map_err(|raw| GuestError::Abi(format!("unknown outcome {raw:#x}")))
    }

    /// Calls `wasq_alloc(len)`: the region it returned, `None` for 0.
    async fn alloc_region(&mut self, len: usize) -> Result<Option<(i32, &mut [u8])>, GuestError> {
        let len_i32 =
            i32::try_from(len).map_err(|_| GuestError::Abi("message larger than 2 GiB".into()))?;
        let ptr = self
            .alloc
            .call_async(&mut self.store, len_i32)
            .await
            .map_err(classify)?;
        if ptr == 0 {
            return Ok(None);
        }
        let start = ptr as u32 as usize;
        let region = self
            .memory
            .data_mut(&mut self.store)
            .get_mut(start..start + len)
            .ok_or_else(|| {
                GuestError::Abi(format!("wasq_alloc returned {start}, outside memory"))
            })?;
        Ok(Some((ptr, region)))
    }

    /// One `wasq_handle_batch` call for `messages` (a batch `len` long);
    /// pushes the outcome of each message the guest handled. If the call
    /// failed, the message under way gets the failure and those after it
    /// get nothing: they were not handled, and the caller hands them to
    /// the next instance. False if the instance failed.
    async fn call_batch(
        &mut self,
        handle_batch: &TypedFunc<(i32, i32, i32), ()>,
        messages: &[Message],
        len: usize,
        topic: &str,
        channel: &str,
        results: &mut Vec<Result<Outcome, GuestError>>,
    ) -> bool {
        let count = messages.len();
        // wasq_alloc and the first message; the callback keeps the clock
        // going for the later ones (arming it for the whole batch's worst
        // case would keep it ticking long after the batch).
        self.deadline.arm_for_calls(&mut self.store, 2);
        self.start_call();
        let ptr = match self.alloc_region(len).await {
            Ok(Some((ptr, region))) => {
                abi::encode_batch_into(region, messages, topic, channel);
                ptr
            }
            // The guest cannot hold the whole batch: the first message alone.
            Ok(None) => {
                let result = self.handle(&messages[0], topic, channel).await;
                return push_single(results, result);
            }
            Err(error) => {
                results.push(Err(error));
                return false;
            }
        };
        let start = ptr as u32 as usize;
        let ticks = self.deadline.ticks();
        self.store.data_mut().batch = Some(BatchWatch {
            memory: self.memory,
            start,
            count,
            done: 0,
            ticks_left: ticks,
            ticks,
            moved: false,
        });
        // The callback looks at the batch every tick (`BatchWatch`).
        self.store.set_epoch_deadline(1);
        let called = handle_batch
            .call_async(&mut self.store, (ptr, len as i32, count as i32))
            .await
            .map_err(classify);
        self.store.data_mut().batch = None;
        let table = &self.memory.data(&self.store)[start..start + count * abi::BATCH_ENTRY_SIZE];
        let mut intact = called.is_ok();
        for index in 0..count {
            let value = abi::batch_outcome(table, index);
            let result = match (value, &called) {
                (abi::NOT_HANDLED, Ok(())) => Err(GuestError::Abi(format!(
                    "wasq_handle_batch returned without an outcome in entry {index}"
                ))),
                // The message under way when the call failed.
                (abi::NOT_HANDLED, Err(error)) => {
                    results.push(Err(error.clone()));
                    return false;
                }
                (value, _) => Outcome::decode(value).map_err(|raw| {
                    GuestError::Abi(format!("unknown outcome {raw:#x} in entry {index}"))
                }),
            };
            intact &= result.is_ok();
            results.push(result);
        }
        if let Err(error) = called {
            // Every message has its outcome, but the instance is not to be trusted.
            let name = &self.store.data().link.name;
            tracing::warn!(plugin = %name, %error, "PLUGIN: wasq_handle_batch failed after its last outcome; instance replaced");
        }
        intact
    }
}
