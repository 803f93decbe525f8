//! The state imports of ABI v1 (guest-sdk/ABI.md, "State"): thin adapters
//! from pointers and statuses to the call's [`CallState`], for the message
//! the guest is handling ([`message_under_way`]).

use wasmtime::{Caller, Linker, Memory};

use super::abi::{self, status};
use super::core_module::{
    CoreState, answer_with_bytes, guest_range, message_under_way, write_guest,
};
use super::imports;
use super::state::PluginState;
use super::state::call::CallState;
use super::state::limits::{Entries, StateError};

/// A state operation's result as ABI v1 reports it: a status.
fn refusal(caller: &Caller<'_, CoreState>, error: &StateError) -> i32 {
    imports::state_refused(&caller.data().link, error);
    match error {
        StateError::EmptyKey | StateError::KeyTooLarge => status::INVALID_KEY,
        StateError::ValueTooLarge => status::VALUE_TOO_LARGE,
        StateError::OverLimit => status::STATE_FULL,
        StateError::NotANumber => status::NOT_A_NUMBER,
        StateError::Io(_) => status::IO,
    }
}

/// Runs `operation` on the call's state for the message under way, with
/// the guest's `memory` (keys and values are read where they are, not
/// copied); `Err` is the status to return (`NO_STATE` without the grant).
fn with_state<T>(
    caller: &mut Caller<'_, CoreState>,
    memory: Memory,
    operation: impl FnOnce(&mut CallState, &PluginState, usize, &[u8]) -> Result<T, StateError>,
) -> Result<T, i32> {
    if caller.data().link.state.is_none() {
        return Err(status::NO_STATE);
    }
    let index = message_under_way(caller);
    let done = {
        let (guest, data) = memory.data_and_store_mut(&mut *caller);
        let state = data.link.state.as_deref().expect("looked at above");
        operation(&mut data.state, state, index, guest)
    };
    done.map_err(|e| refusal(caller, &e))
}

/// Scan results as ABI v1 lays them out: `u32 key_len, u32 value_len,
/// key, value`, one after another.
fn encode_entries(entries: &Entries) -> Vec<u8> {
    let size = entries.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
    let mut out = Vec::with_capacity(size);
    for (key, value) in entries {
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(value);
    }
    out
}

pub(super) fn add_state_imports(linker: &mut Linker<CoreState>) -> anyhow::Result<()> {
    linker.func_wrap(
        abi::IMPORT_MODULE,
        "state_get",
        |mut caller: Caller<'_, CoreState>, kp: i32, kl: i32, bp: i32, bc: i32| -> i32 {
            let Some((memory, key)) = guest_range(&mut caller, kp, kl) else {
                return -status::BAD_POINTER;
            };
            match with_state(&mut caller, memory, |call, state, index, guest| {
                call.get(state, index, &guest[key])
            }) {
                Ok(Some(value)) => answer_with_bytes(&mut caller, &value, bp, bc)
                    .unwrap_or(-status::VALUE_TOO_LARGE),
                Ok(None) => -status::NOT_FOUND,
                Err(status) => -status,
            }
        },
    )?;
    linker.func_wrap(
        abi::IMPORT_MODULE,
        "state_set",
        |mut caller: Caller<'_, CoreState>, kp: i32, kl: i32, vp: i32, vl: i32| -> i32 {
            let (Some((memory, key)), Some((_, value))) = (
                guest_range(&mut caller, kp, kl),
                guest_range(&mut caller, vp, vl),
            ) else {
                return status::BAD_POINTER;
            };
            match with_state(&mut caller, memory, |call, state, index, guest| {
                call.set(state, index, &guest[key], &guest[value])
            }) {
                Ok(()) => status::OK,
                Err(status) => status,
            }
        },
    )?;
    linker.func_wrap(
        abi::IMPORT_MODULE,
        "state_delete",
        |mut caller: Caller<'_, CoreState>, kp: i32, kl: i32| -> i32 {
            let Some((memory, key)) = guest_range(&mut caller, kp, kl) else {
                return status::BAD_POINTER;
            };
            match with_state(&mut caller, memory, |call, state, index, guest| {
                call.delete(state, index, &guest[key])
            }) {
                Ok(true) => status::OK,
                Ok(false) => status::NOT_FOUND,
                Err(status) => status,
            }
        },
    )?;
    linker.func_wrap(
        abi::IMPORT_MODULE,
        "state_increment",
        |mut caller: Caller<'_, CoreState>, kp: i32, kl: i32, by: i64, out: i32| -> i32 {
            let Some((memory, key)) = guest_range(&mut caller, kp, kl) else {
                return status::BAD_POINTER;
            };
            if guest_range(&mut caller, out, 8).is_none() {
                return status::BAD_POINTER;
            }
            match with_state(&mut caller, memory, |call, state, index, guest| {
                call.increment(state, index, &guest[key], by)
            }) {
                Ok(value) => {
                    write_guest(&mut caller, out, 8, &value.to_le_bytes());
                    status::OK
                }
                Err(status) => status,
            }
        },
    )?;
    linker.func_wrap(
        abi::IMPORT_MODULE,
        "state_scan",
        |mut caller: Caller<'_, CoreState>,
         pp: i32,
         pl: i32,
         limit: i32,
         bp: i32,
         bc: i32|
         -> i32 {
            let Some((memory, prefix)) = guest_range(&mut caller, pp, pl) else {
                return -status::BAD_POINTER;
            };
            let limit = usize::try_from(limit).unwrap_or(0);
            match with_state(&mut caller, memory, |call, state, index, guest| {
                call.scan(state, index, &guest[prefix], limit)
            }) {
                Ok(entries) => answer_with_bytes(&mut caller, &encode_entries(&entries), bp, bc)
                    .unwrap_or(-status::VALUE_TOO_LARGE),
                Err(status) => -status,
            }
        },
    )?;
    Ok(())
}
