//! Components: the WIT world `wasq:plugin/consumer@1.3.0`
//! (guest-sdk/wit/plugin.wit), the same contract as ABI v1 in the component
//! model's types. The checks a component must pass before it links, the
//! `host` interface (over [`super::imports`], as ABI v1's imports are), WASI
//! 0.2 without files, sockets, environment or HTTP, and one instance whose
//! `handle` result becomes the same [`Outcome`] a core module returns. A
//! component of a `batch-consumer` world also gets many messages in one
//! `handle-batch` call, each outcome reported through `batch.done` as it
//! is known (component_batch.rs).
//!
//! Calls are async on wasmtime's side (a fiber per call, as for core
//! modules), so an import that waits suspends the guest without holding
//! a thread; to the guest every import is an ordinary blocking call (no
//! `component-model-async`).

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::{
    Component, HasSelf, Instance, InstancePre, Linker, ResourceTable, TypedFunc,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::abi::Outcome;
use super::component_batch::{BatchOutcomes, batch_typed};
use super::imports::{self, Refusal};
use super::instance::{Deadline, GuestError, GuestLimits, classify, end_of_slice, sandboxed_wasi};
use super::outbound::wasi_http::GuestEgress;
use super::runtime::PluginLink;
use super::state::PluginState;
use super::state::call::{CallState, CallWrites};
use super::state::limits::{self, Entries};
use crate::broker::message::Message;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../guest-sdk/wit",
        world: "consumer",
        ownership: Borrowing { duplicate_if_necessary: true },
        // `batch.done` is called per message of a batch and never waits:
        // a plain call, without an async host call's future and fiber
        // switch.
        imports: { default: async, "wasq:plugin/batch.done": trappable },
        exports: { default: async },
    });
}

use bindings::wasq::plugin::state::StateError;
pub(super) use bindings::wasq::plugin::types::{self as wit, Failure};
use bindings::wasq::plugin::types::{Level, PublishError};
use bindings::{Consumer, ConsumerIndices};

/// The WIT package this host implements, as components import it.
pub const PACKAGE: &str = "wasq:plugin";
pub const PACKAGE_VERSION: &str = "1.3.0";
/// Versions of the package a component may import: 1.1.0 added
/// `host.get-config`, 1.2.0 the `state` interface, 1.3.0 `batch`; a
/// component built against an earlier one links unchanged.
const ACCEPTED_VERSIONS: [&str; 4] = ["1.0.0", "1.1.0", "1.2.0", "1.3.0"];
/// The optional start-up export (world `consumer-with-init`).
const EXPORT_INIT: &str = "init";
/// The optional batch export (the `batch-consumer` worlds).
pub(super) const EXPORT_HANDLE_BATCH: &str = "handle-batch";

/// The data of one component instance's `Store`.
pub struct ComponentState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: GuestLimits,
    pub(super) link: Arc<PluginLink>,
    http: WasiHttpCtx,
    /// Where `wasi:http` requests go: the plugin's outbound HTTP.
    pub(super) egress: GuestEgress,
    /// The state the call under way read and wrote.
    pub(super) state: CallState,
    /// The outcomes of a `handle-batch` call under way.
    pub(super) batch: Option<BatchOutcomes>,
}

impl WasiHttpView for ComponentState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.egress,
        }
    }
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wit::Host for ComponentState {}

impl bindings::wasq::plugin::host::Host for ComponentState {
    async fn get_config(&mut self, key: String) -> Option<String> {
        imports::config(&self.link, key.as_bytes()).map(str::to_string)
    }

    async fn log(&mut self, level: Level, text: String) {
        let level = match level {
            Level::Debug => imports::Level::Debug,
            Level::Info => imports::Level::Info,
            Level::Warn => imports::Level::Warn,
            Level::Error => imports::Level::Error,
        };
        imports::log(&self.link, level, &text);
    }

    async fn publish(&mut self, topic: String, body: Vec<u8>) -> Result<(), PublishError> {
        imports::publish(&self.link, topic.as_bytes(), body, 0)
            .await
            .map_err(publish_error)
    }

    async fn publish_deferred(
        &mut self,
        topic: String,
        body: Vec<u8>,
        delay_ms: u32,
    ) -> Result<(), PublishError> {
        imports::publish(&self.link, topic.as_bytes(), body, i64::from(delay_ms))
            .await
            .map_err(publish_error)
    }
}

impl bindings::wasq::plugin::state::Host for ComponentState {
    async fn get(&mut self, key: Vec<u8>) -> Result<Option<Vec<u8>>, StateError> {
        self.with_state(|call, state, index| call.get(state, index, &key))
            .map(|value| value.map(smallvec::SmallVec::into_vec))
    }

    async fn set(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), StateError> {
        self.with_state(|call, state, index| call.set(state, index, &key, &value))
    }

    async fn delete(&mut self, key: Vec<u8>) -> Result<bool, StateError> {
        self.with_state(|call, state, index| call.delete(state, index, &key))
    }

    async fn increment(&mut self, key: Vec<u8>, by: i64) -> Result<i64, StateError> {
        self.with_state(|call, state, index| call.increment(state, index, &key, by))
    }

    async fn scan(&mut self, prefix: Vec<u8>, limit: u32) -> Result<Entries, StateError> {
        self.with_state(|call, state, index| call.scan(state, index, &prefix, limit as usize))
    }
}

impl bindings::wasq::plugin::batch::Host for ComponentState {
    fn done(&mut self, outcome: Result<(), Failure>) -> wasmtime::Result<()> {
        self.batch_done(outcome).map_err(wasmtime::Error::msg)
    }
}

impl ComponentState {
    /// Runs `operation` on the call's state for the message under way (the
    /// first of a batch without an outcome; 0 in a single call); a refusal
    /// is counted and becomes the WIT error.
    fn with_state<T>(
        &mut self,
        operation: impl FnOnce(&mut CallState, &PluginState, usize) -> Result<T, limits::StateError>,
    ) -> Result<T, StateError> {
        let Some(state) = self.link.state.clone() else {
            return Err(StateError::NoState);
        };
        let index = self.batch.as_ref().map_or(0, BatchOutcomes::under_way);
        operation(&mut self.state, &state, index).map_err(|error| {
            imports::state_refused(&self.link, &error);
            match error {
                limits::StateError::EmptyKey | limits::StateError::KeyTooLarge => {
                    StateError::InvalidKey
                }
                limits::StateError::ValueTooLarge => StateError::ValueTooLarge,
                limits::StateError::OverLimit => StateError::Full,
                limits::StateError::NotANumber => StateError::NotANumber,
                limits::StateError::Io(why) => StateError::Io(why),
            }
        })
    }
}

fn publish_error(refusal: Refusal) -> PublishError {
    match refusal {
        Refusal::Forbidden => PublishError::Forbidden,
        Refusal::InvalidTopic => PublishError::InvalidTopic,
        Refusal::InvalidBody => PublishError::InvalidBody,
        Refusal::InvalidDelay => PublishError::InvalidDelay,
        Refusal::Unavailable => PublishError::Unavailable,
    }
}

/// A component linked against `wasq:plugin/host` and WASI 0.2, with its
/// `handle` export found and type-checked.
#[derive(Clone)]
pub struct ComponentPre {
    pre: InstancePre<ComponentState>,
    indices: Arc<ConsumerIndices>,
    has_init: bool,
    has_batch: bool,
}

/// The linker every component is linked with: WASI 0.2, `wasi:http`'s
/// outgoing handler (behind the manifest's allowlist) and the world's
/// `host` interface.
pub fn linker(engine: &wasmtime::Engine) -> anyhow::Result<Linker<ComponentState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    Consumer::add_to_linker::<ComponentState, HasSelf<ComponentState>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// Checks a component against the world and links it.
pub fn link(
    linker: &Linker<ComponentState>,
    component: &Component,
) -> anyhow::Result<ComponentPre> {
    let engine = linker.engine();
    let ty = component.component_type();
    for (name, _) in ty.imports(engine) {
        check_import(name)?;
    }
    let exports = |wanted: &str| ty.exports(engine).any(|(name, _)| name == wanted);
    let (has_init, has_batch) = (exports(EXPORT_INIT), exports(EXPORT_HANDLE_BATCH));
    let pre = linker
        .instantiate_pre(component)
        .map_err(|e| anyhow::Error::from(e).context("cannot link the component's imports"))?;
    let indices = ConsumerIndices::new(&pre).map_err(|e| {
        anyhow::Error::from(e).context(format!(
            "not a {PACKAGE}/consumer@{PACKAGE_VERSION} component (see guest-sdk/wit/plugin.wit)"
        ))
    })?;
    Ok(ComponentPre {
        pre,
        indices: Arc::new(indices),
        has_init,
        has_batch,
    })
}

/// The interfaces a component may import: this world's, and WASI 0.2 but
/// HTTP. Anything else is named in the error, as a core module's is.
fn check_import(name: &str) -> anyhow::Result<()> {
    let (interface, version) = name.split_once('@').unwrap_or((name, ""));
    if let Some(ours) = interface
        .strip_prefix(PACKAGE)
        .and_then(|i| i.strip_prefix('/'))
    {
        if !ACCEPTED_VERSIONS.contains(&version) {
            anyhow::bail!(
                "the component imports `{name}`; this host implements {PACKAGE}@{PACKAGE_VERSION} (and the versions before it: {ACCEPTED_VERSIONS:?})"
            );
        }
        if ["types", "host", "state", "batch"].contains(&ours) {
            return Ok(());
        }
    } else if interface.starts_with("wasi:")
        && (!interface.starts_with("wasi:http/")
            || ["wasi:http/types", "wasi:http/outgoing-handler"].contains(&interface))
        && version.starts_with("0.2.")
    {
        return Ok(());
    }
    anyhow::bail!(
        "unknown import `{name}`: the world {PACKAGE}/consumer@{PACKAGE_VERSION} offers {PACKAGE}/host and WASI 0.2 (HTTP: the outgoing handler only)"
    )
}

pub struct ComponentInstance {
    pub(super) store: Store<ComponentState>,
    consumer: Consumer,
    pub(super) deadline: Deadline,
    /// `handle-batch`, if the component exports it.
    pub(super) handle_batch: Option<wasmtime::component::Func>,
}

impl ComponentInstance {
    /// Instantiates the component (WASI 0.2 with no preopened directories,
    /// no environment, no network; stdout/stderr to the log) and runs its
    /// `init` if it has one.
    pub async fn new(
        pre: &ComponentPre,
        link: Arc<PluginLink>,
    ) -> Result<ComponentInstance, GuestError> {
        let wasi = sandboxed_wasi(&link).build();
        let deadline = Deadline::for_plugin(&link);
        let limits = GuestLimits::for_component(&link);
        let egress = GuestEgress {
            outbound: link.outbound.clone(),
            call_deadline: link.call_deadline_from_now(),
        };
        let state = ComponentState {
            wasi,
            table: ResourceTable::new(),
            limits,
            link,
            http: WasiHttpCtx::new(),
            egress,
            state: CallState::default(),
            batch: None,
        };
        let mut store = Store::new(pre.pre.engine(), state);
        store.limiter(|state| &mut state.limits);
        store.epoch_deadline_callback(|store| {
            let data = store.data();
            Ok(end_of_slice(data.egress.call_deadline, &data.link.clock))
        });
        deadline.arm(&mut store);
        let instance = pre
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(classify)?;
        let consumer = pre
            .indices
            .load(&mut store, &instance)
            .map_err(|e| GuestError::Abi(format!("{e:#}")))?;
        let handle_batch = pre
            .has_batch
            .then(|| instance.get_func(&mut store, EXPORT_HANDLE_BATCH))
            .flatten();
        if let Some(func) = handle_batch {
            // Checked once here, so a version whose export has another
            // type fails to load instead of failing every batch.
            batch_typed(func, &store)?;
        }
        if pre.has_init {
            run_init(&mut store, &instance, &deadline).await?;
        }
        Ok(ComponentInstance {
            store,
            consumer,
            deadline,
            handle_batch,
        })
    }

    pub fn limits(&self) -> &GuestLimits {
        &self.store.data().limits
    }

    /// What the last call wrote to its plugin's state.
    pub fn take_state_writes(&mut self) -> CallWrites {
        self.store.data_mut().state.finish()
    }

    /// Calls `handle` with the message and maps its result to an outcome.
    pub async fn handle(
        &mut self,
        message: &Message,
        topic: &str,
        channel: &str,
    ) -> Result<Outcome, GuestError> {
        let borrowed = borrow_message(message, topic, channel);
        self.start_call();
        let result = self
            .consumer
            .call_handle(&mut self.store, borrowed)
            .await
            .map_err(classify)?;
        Ok(outcome_of(&self.store.data().link, &message.id.0, result))
    }

    /// Arms the deadline of the call about to start, and of its first (or
    /// only) message; the state starts empty.
    pub(super) fn start_call(&mut self) {
        self.deadline.arm(&mut self.store);
        let data = self.store.data_mut();
        data.egress.call_deadline = data.link.call_deadline_from_now();
        data.state.clear();
    }
}

/// A message as `handle` takes it, borrowed (the bindings are generated
/// with `Borrowing`): lowering copies straight from the broker's message
/// into guest memory, without four host allocations and copies first.
pub(super) fn borrow_message<'a>(
    message: &'a Message,
    topic: &'a str,
    channel: &'a str,
) -> wit::Message<'a> {
    wit::Message {
        id: &message.id.0,
        attempts: message.attempts,
        timestamp: message.timestamp,
        topic,
        channel,
        body: &message.body,
    }
}

/// What `handle`'s result (or a `batch.done`) means for message `id`; a
/// fatal failure's reason goes to the log.
pub(super) fn outcome_of(link: &PluginLink, id: &[u8], result: Result<(), Failure>) -> Outcome {
    match result {
        Ok(()) => Outcome::Success,
        Err(Failure::Retry) => Outcome::Retry,
        Err(Failure::RetryAfter(ms)) => {
            Outcome::RetryAfter(std::time::Duration::from_millis(u64::from(ms)))
        }
        Err(Failure::Fatal(reason)) => {
            tracing::warn!(plugin = %link.name, id = %String::from_utf8_lossy(id), "handler failed fatally: {reason}");
            Outcome::Fatal
        }
    }
}

/// `init() -> result<_, string>`: an `err` keeps the instance from serving.
async fn run_init(
    store: &mut Store<ComponentState>,
    instance: &Instance,
    deadline: &Deadline,
) -> Result<(), GuestError> {
    let init: TypedFunc<(), (Result<(), String>,)> = instance
        .get_typed_func(&mut *store, EXPORT_INIT)
        .map_err(|e| {
            GuestError::Abi(format!(
                "export `{EXPORT_INIT}` must be `func() -> result<_, string>`: {e:#}"
            ))
        })?;
    deadline.arm(store);
    let (result,) = init.call_async(&mut *store, ()).await.map_err(classify)?;
    result.map_err(|why| GuestError::Abi(format!("init() failed: {why}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_are_this_world_and_wasi_without_http() {
        for ok in [
            "wasq:plugin/host@1.0.0",
            "wasq:plugin/types@1.0.0",
            "wasq:plugin/host@1.1.0",
            "wasq:plugin/state@1.2.0",
            "wasq:plugin/batch@1.3.0",
            "wasi:http/outgoing-handler@0.2.10",
            "wasi:http/types@0.2.12",
            "wasi:cli/stdout@0.2.9",
            "wasi:filesystem/types@0.2.0",
            "wasi:sockets/tcp@0.2.3",
        ] {
            assert!(check_import(ok).is_ok(), "{ok}");
        }
        for (bad, says) in [
            ("wasq:plugin/host@2.0.0", "implements wasq:plugin@1.3.0"),
            ("wasq:plugin/host@1.4.0", "implements wasq:plugin@1.3.0"),
            ("wasi:http/incoming-handler@0.2.0", "unknown import"),
            ("wasq:plugin/other@1.0.0", "unknown import"),
            ("wasi:cli/stdout@0.3.0", "unknown import"),
            ("acme:thing/api", "unknown import `acme:thing/api`"),
        ] {
            let error = check_import(bad).unwrap_err().to_string();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
}
