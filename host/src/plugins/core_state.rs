//! The state imports of ABI v1 (guest-sdk/ABI.md, "State"): thin adapters
//! from pointers and statuses to the call's [`CallState`], for the message
//! the guest is handling ([`CoreState::message_under_way`]).

use std::ops::Range;

use wasmtime::{Caller, Linker};

use super::abi::{self, status};
use super::core_module::{CoreState, answer_with_bytes, guest_memory, in_bounds};
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
/// the guest's memory and the ranges of its `pointers` (pointer, length)
/// in it: keys and values are read where they are, not copied. `Err` is
/// the status to return (`NO_STATE` without the grant, `BAD_POINTER` for a
/// range outside the memory).
fn with_state<T, const N: usize>(
    caller: &mut Caller<'_, CoreState>,
    pointers: [(i32, i32); N],
    operation: impl FnOnce(
        &mut CallState,
        &PluginState,
        usize,
        &mut [u8],
        [Range<usize>; N],
    ) -> Result<T, StateError>,
) -> Result<T, i32> {
    let Some(memory) = guest_memory(caller) else {
        return Err(status::BAD_POINTER);
    };
    if caller.data().link.state.is_none() {
        return Err(status::NO_STATE);
    }
    let done = {
        let (guest, data) = memory.data_and_store_mut(&mut *caller);
        let index = data.message_under_way(guest);
        let ranges = pointers.map(|(ptr, len)| in_bounds(guest.len(), ptr, len));
        if ranges.iter().any(Option::is_none) {
            return Err(status::BAD_POINTER);
        }
        let state = data.link.state.as_deref().expect("looked at above");
        operation(
            &mut data.state,
            state,
            index,
            guest,
            ranges.map(Option::unwrap_or_default),
        )
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
            let got = with_state(
                &mut caller,
                [(kp, kl)],
                |call, state, index, guest, [key]| call.get(state, index, &guest[key]),
            );
            match got {
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
            let pointers = [(kp, kl), (vp, vl)];
            let set = with_state(
                &mut caller,
                pointers,
                |call, state, index, guest, [key, value]| {
                    call.set(state, index, &guest[key], &guest[value])
                },
            );
            match set {
                Ok(()) => status::OK,
                Err(status) => status,
            }
        },
    )?;
    linker.func_wrap(
        abi::IMPORT_MODULE,
        "state_delete",
        |mut caller: Caller<'_, CoreState>, kp: i32, kl: i32| -> i32 {
            let deleted = with_state(
                &mut caller,
                [(kp, kl)],
                |call, state, index, guest, [key]| call.delete(state, index, &guest[key]),
            );
            match deleted {
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
            let pointers = [(kp, kl), (out, 8)];
            let added = with_state(
                &mut caller,
                pointers,
                |call, state, index, guest, [key, out]| {
                    let value = call.increment(state, index, &guest[key], by)?;
                    guest[out].copy_from_slice(&value.to_le_bytes());
                    Ok(())
                },
            );
            match added {
                Ok(()) => status::OK,
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
            let limit = usize::try_from(limit).unwrap_or(0);
            let scanned = with_state(
                &mut caller,
                [(pp, pl)],
                |call, state, index, guest, [prefix]| {
                    call.scan(state, index, &guest[prefix], limit)
                },
            );
            match scanned {
                Ok(entries) => answer_with_bytes(&mut caller, &encode_entries(&entries), bp, bc)
                    .unwrap_or(-status::VALUE_TOO_LARGE),
                Err(status) => -status,
            }
        },
    )?;
    Ok(())
}
