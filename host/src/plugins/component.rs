//! Components: the WIT world `wasq:plugin/consumer@1.2.0`
//! (guest-sdk/wit/plugin.wit), the same contract as ABI v1 in the component
//! model's types. The checks a component must pass before it links, the
//! `host` interface (over [`super::imports`], as ABI v1's imports are), WASI
//! 0.2 without files, sockets, environment or HTTP, and one instance whose
//! `handle` result becomes the same [`Outcome`] a core module returns.
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
        imports: { default: async },
        exports: { default: async },
    });
}

use bindings::wasq::plugin::state::StateError;
use bindings::wasq::plugin::types::{self as wit, Failure, Level, PublishError};
use bindings::{Consumer, ConsumerIndices};

/// The WIT package this host implements, as components import it.
pub const PACKAGE: &str = "wasq:plugin";
pub const PACKAGE_VERSION: &str = "1.2.0";
/// Versions of the package a component may import: 1.1.0 added
/// `host.get-config`, 1.2.0 the `state` interface; a component built
/// against an earlier one links unchanged.
const ACCEPTED_VERSIONS: [&str; 3] = ["1.0.0", "1.1.0", "1.2.0"];
/// The optional start-up export (world `consumer-with-init`).
const EXPORT_INIT: &str = "init";

/// The data of one component instance's `Store`.
pub struct ComponentState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: GuestLimits,
    link: Arc<PluginLink>,
    http: WasiHttpCtx,
    /// Where `wasi:http` requests go: the plugin's outbound HTTP.
    egress: GuestEgress,
    /// The state the call under way read and wrote.
    state: CallState,
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
        self.with_state(|call, state| call.get(state, 0, &key))
            .map(|value| value.map(smallvec::SmallVec::into_vec))
    }

    async fn set(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), StateError> {
        self.with_state(|call, state| call.set(state, 0, &key, &value))
    }

    async fn delete(&mut self, key: Vec<u8>) -> Result<bool, StateError> {
        self.with_state(|call, state| call.delete(state, 0, &key))
    }

    async fn increment(&mut self, key: Vec<u8>, by: i64) -> Result<i64, StateError> {
        self.with_state(|call, state| call.increment(state, 0, &key, by))
    }

    async fn scan(&mut self, prefix: Vec<u8>, limit: u32) -> Result<Entries, StateError> {
        self.with_state(|call, state| call.scan(state, 0, &prefix, limit as usize))
    }
}

impl ComponentState {
    /// Runs `operation` on the call's state (a component's call is one
    /// message); a refusal is counted and becomes the WIT error.
    fn with_state<T>(
        &mut self,
        operation: impl FnOnce(&mut CallState, &PluginState) -> Result<T, limits::StateError>,
    ) -> Result<T, StateError> {
        let Some(state) = self.link.state.clone() else {
            return Err(StateError::NoState);
        };
        operation(&mut self.state, &state).map_err(|error| {
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
    let init = ty.exports(engine).find(|(name, _)| *name == EXPORT_INIT);
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
        has_init: init.is_some(),
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
        if ["types", "host", "state"].contains(&ours) {
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
    store: Store<ComponentState>,
    consumer: Consumer,
    deadline: Deadline,
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
        if pre.has_init {
            run_init(&mut store, &instance, &deadline).await?;
        }
        Ok(ComponentInstance {
            store,
            consumer,
            deadline,
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
        // Borrowed (the bindings are generated with `Borrowing`): lowering
        // copies straight from the broker's message into guest memory,
        // without four host allocations and copies first.
        let id = &message.id.0;
        let borrowed = wit::Message {
            id,
            attempts: message.attempts,
            timestamp: message.timestamp,
            topic,
            channel,
            body: &message.body,
        };
        self.deadline.arm(&mut self.store);
        let data = self.store.data_mut();
        data.egress.call_deadline = data.link.call_deadline_from_now();
        data.state.clear();
        let result = self
            .consumer
            .call_handle(&mut self.store, borrowed)
            .await
            .map_err(classify)?;
        Ok(match result {
            Ok(()) => Outcome::Success,
            Err(Failure::Retry) => Outcome::Retry,
            Err(Failure::RetryAfter(ms)) => {
                Outcome::RetryAfter(std::time::Duration::from_millis(u64::from(ms)))
            }
            Err(Failure::Fatal(reason)) => {
                let link = &self.store.data().link;
                tracing::warn!(plugin = %link.name, id = %String::from_utf8_lossy(id), "handler failed fatally: {reason}");
                Outcome::Fatal
            }
        })
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
            "wasi:http/outgoing-handler@0.2.10",
            "wasi:http/types@0.2.12",
            "wasi:cli/stdout@0.2.9",
            "wasi:filesystem/types@0.2.0",
            "wasi:sockets/tcp@0.2.3",
        ] {
            assert!(check_import(ok).is_ok(), "{ok}");
        }
        for (bad, says) in [
            ("wasq:plugin/host@2.0.0", "implements wasq:plugin@1.2.0"),
            ("wasq:plugin/host@1.3.0", "implements wasq:plugin@1.2.0"),
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
