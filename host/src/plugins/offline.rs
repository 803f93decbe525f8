//! Running a plugin without a broker, for `wasq plugin test`: the same
//! manifest checks, compiler, linker, ABI or WIT checks, memory and stack
//! limits and handler deadline as in wasqd, one instance reused from
//! message to message (a new one after a trap, as a worker does). What the
//! plugin publishes is checked as wasqd checks it and then recorded, not
//! sent; its outbound HTTP requests are really sent, under the manifest's
//! allowlist, and recorded with their answers. A plugin granted state gets
//! a temporary store (seeded with keys the caller gives); a success
//! commits the message's writes as in wasqd, and they are reported.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::abi::Outcome;
use super::files::read_manifest;
use super::imports::Published;
use super::instance::{CompiledGuest, GuestError, GuestInstance};
use super::outbound::Exchange;
use super::outbound::allowlist::AllowList;
use super::prepare::outbound_for;
use super::runtime::{PluginLink, WasmRuntime};
use super::state::SharedStore;
use super::stats::PluginStats;
use crate::broker::Broker;
use crate::broker::message::{IdGenerator, Message};
use crate::config::Options;
use clap::Parser;

/// A plugin loaded for offline runs.
pub struct OfflinePlugin {
    guest: CompiledGuest,
    link: Arc<PluginLink>,
    instance: Option<GuestInstance>,
    ids: IdGenerator,
    /// The engine, its epoch clock and the executor calls run on.
    runtime: WasmRuntime,
    /// The state's directory, removed at the end.
    _temporary_state: Option<tempfile::TempDir>,
}

/// What one message did.
#[derive(Debug)]
pub struct Delivery {
    pub outcome: Result<Outcome, GuestError>,
    /// Publishes the host accepted during the call.
    pub published: Vec<Published>,
    /// Outbound HTTP requests made during the call, really sent.
    pub exchanges: Vec<Exchange>,
    pub handler_time: Duration,
    /// What the message's success wrote to the plugin's state (committed):
    /// each key with its new value, `None` for a deletion.
    pub state_writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl OfflinePlugin {
    /// Reads, compiles, links and starts the plugin `module` (binary or
    /// text) with `manifest`, under the name of the module's file, its
    /// `allowed_outbound_hosts` extended by `allow_hosts` (for this run),
    /// its state (if granted) a temporary store holding `initial_state`.
    /// `Err` is one line naming the file at fault.
    pub fn load(
        module: &Path,
        manifest: &Path,
        allow_hosts: &[String],
        initial_state: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<OfflinePlugin, String> {
        let name = module
            .file_stem()
            .and_then(|stem| stem.to_str())
            .ok_or_else(|| format!("{}: not a plugin file name", module.display()))?
            .to_string();
        let bytes =
            std::fs::read(module).map_err(|e| format!("{}: cannot read: {e}", module.display()))?;
        let manifest_file = manifest;
        let mut manifest = read_manifest(manifest_file, &name)?;
        if !allow_hosts.is_empty() {
            let mut hosts = manifest.allowed_outbound_hosts.written().to_vec();
            hosts.extend_from_slice(allow_hosts);
            manifest.allowed_outbound_hosts =
                AllowList::parse(&hosts).map_err(|e| format!("--allow-host {e}"))?;
        }
        if manifest.state.is_none() && !initial_state.is_empty() {
            return Err(format!(
                "{}: keys given for the plugin's state, but its manifest does not set state = true",
                manifest_file.display()
            ));
        }
        let temporary_state = match manifest.state {
            Some(_) => {
                Some(tempfile::tempdir().map_err(|e| format!("a directory for the state: {e}"))?)
            }
            None => None,
        };
        let state_dir = temporary_state.as_ref().map(|t| t.path().to_path_buf());
        let shared = SharedStore::new(state_dir, false, Duration::from_secs(1));
        let state = manifest
            .state
            .map(|limits| shared.for_plugin(&name, limits))
            .transpose()
            .map_err(|e| format!("{}: state = true: {e:#}", manifest_file.display()))?;
        let runtime = WasmRuntime::new(None, shared).map_err(|e| format!("Wasm runtime: {e:#}"))?;
        if let Some(state) = &state {
            runtime
                .executor
                .block_on(seed(state, initial_state))
                .map_err(|e| format!("the initial state: {e}"))?;
        }
        let guest = runtime
            .compile(&bytes, "offline")
            .map_err(|e| format!("{}: {e:#}", module.display()))?
            .guest;
        // Default options: the limits a plugin meets in a wasqd started
        // without flags (message size, publish delays).
        let options = Options::parse_from(["wasqd"]);
        let stats: Arc<PluginStats> = Default::default();
        let outbound = outbound_for(&name, &manifest, manifest_file, &stats)
            .map_err(|e| format!("{}: {e:#}", manifest_file.display()))?;
        outbound.record_exchanges();
        let link = Arc::new(PluginLink {
            name: name.as_str().into(),
            manifest,
            broker: Broker::new(options),
            stats,
            outbound,
            clock: runtime.clock.clone(),
            recorded: Some(Default::default()),
            state,
        });
        let instance = runtime
            .executor
            .block_on(guest.instantiate(link.clone()))
            .map_err(|e| format!("{}: {e}", module.display()))?;
        Ok(OfflinePlugin {
            guest,
            link,
            instance: Some(instance),
            ids: IdGenerator::new(0),
            runtime,
            _temporary_state: temporary_state,
        })
    }

    /// Hands `body` to the handler as delivery number `attempt` on the
    /// manifest's topic and channel.
    pub fn deliver(&mut self, body: &[u8], attempt: u16) -> Delivery {
        let mut message = Message::new(self.ids.next_id(), Bytes::copy_from_slice(body));
        message.attempts = attempt;
        let mut handler_time = Duration::ZERO;
        let mut state_writes = Vec::new();
        let executor = &self.runtime.executor;
        let outcome = match self.instance.take() {
            Some(instance) => Ok(instance),
            None => executor.block_on(self.guest.instantiate(self.link.clone())),
        }
        .and_then(|mut instance| {
            let manifest = &self.link.manifest;
            let started = Instant::now();
            let outcome =
                executor.block_on(instance.handle(&message, &manifest.topic, &manifest.channel));
            handler_time = started.elapsed();
            let writes = instance.take_state_writes();
            if let (Ok(Outcome::Success), Some(state)) = (&outcome, &self.link.state) {
                let commits = commits_of_one_message(state, writes);
                let mut written: Vec<_> = commits
                    .iter()
                    .flat_map(|c| c.changes())
                    .map(|(key, value)| (key.to_vec(), value.map(<[u8]>::to_vec)))
                    .collect();
                written.sort();
                match executor.block_on(state.committer.commit(commits)) {
                    Ok(_) => state_writes = written,
                    Err(e) => {
                        tracing::error!(plugin = %self.link.name, error = %e, "STATE: commit failed")
                    }
                }
            }
            // As a worker: a failed instance is dropped, a good one kept
            // unless its memory has grown past its share.
            if outcome.is_ok() && !instance.needs_recycling() {
                self.instance = Some(instance);
            }
            outcome
        });
        let published = self
            .link
            .recorded
            .as_ref()
            .map(|recorded| std::mem::take(&mut *recorded.lock()))
            .unwrap_or_default();
        Delivery {
            outcome,
            published,
            exchanges: self.link.outbound.take_exchanges(),
            handler_time,
            state_writes,
        }
    }
}

/// Commits `entries` to the plugin's store, as one call's writes.
async fn seed(
    state: &super::state::PluginState,
    entries: &[(Vec<u8>, Vec<u8>)],
) -> Result<(), super::state::limits::StateError> {
    let mut call = super::state::call::CallState::default();
    for (key, value) in entries {
        call.set(state, 0, key, value)?;
    }
    let commits = commits_of_one_message(state, call.finish());
    state.committer.commit(commits).await.map(|_| ())
}

/// The commit of a call of one message (it succeeded), without a marker:
/// offline, no message comes back.
fn commits_of_one_message(
    state: &super::state::PluginState,
    writes: super::state::call::CallWrites,
) -> Vec<super::state::store::Commit> {
    writes
        .commit(state, &[0], |_| None)
        .map(|(commit, _)| commit)
        .into_iter()
        .collect()
}
