//! The plugin's own key-value store (ABI.md, "State"; granted by the
//! manifest's `state = true`).
//!
//! Writes made while handling a message are the broker's to keep until the
//! handler returns: [`Outcome::Finish`](crate::Outcome::Finish) commits
//! them with the message's FIN, any other outcome (or a trap) discards
//! them. Reads see the handler's own writes.
//!
//! ```no_run
//! use wasq_guest::{Message, Outcome, state};
//!
//! fn handle(message: &Message) -> Outcome {
//!     let key = [b"count/".as_slice(), &message.body].concat();
//!     match state::increment(&key, 1) {
//!         Ok(_count) => Outcome::Finish,
//!         Err(_) => Outcome::Retry,
//!     }
//! }
//! # wasq_guest::plugin!(handle);
//! ```
//!
//! Off WebAssembly (unit tests) the store is simulated per thread and every
//! write is kept at once; [`crate::testing::state_entries`] shows it.

use std::fmt;

/// The most entries one [`scan`] returns.
pub const MAX_SCAN: u32 = 10_000;

/// Keys and their values, in key order, as [`scan`] returns them.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Why the host refused a state operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateError {
    /// The manifest does not set `state = true`.
    NoState,
    /// An empty key, or one longer than `state_max_key_bytes`.
    InvalidKey,
    /// A value longer than `state_max_value_kib`.
    ValueTooLarge,
    /// The plugin's state would exceed `state_limit_mib`.
    Full,
    /// [`increment`] of a value that is not a decimal `i64`, or overflow.
    NotANumber,
    /// The store failed (the broker logged why).
    Io,
    /// Any other status (a newer host's).
    Other(i32),
}

impl StateError {
    fn from_status(status: i32) -> StateError {
        match status {
            14 => StateError::Io,
            16 => StateError::NoState,
            17 => StateError::InvalidKey,
            18 => StateError::ValueTooLarge,
            19 => StateError::Full,
            20 => StateError::NotANumber,
            other => StateError::Other(other),
        }
    }
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::NoState => write!(f, "no state: the manifest does not set state = true"),
            StateError::InvalidKey => write!(f, "empty key, or longer than state_max_key_bytes"),
            StateError::ValueTooLarge => write!(f, "value longer than state_max_value_kib"),
            StateError::Full => write!(f, "the plugin's state would exceed state_limit_mib"),
            StateError::NotANumber => write!(f, "not a decimal i64, or the sum overflows"),
            StateError::Io => write!(f, "the state store failed"),
            StateError::Other(status) => write!(f, "state status {status}"),
        }
    }
}

impl std::error::Error for StateError {}

const OK: i32 = 0;
const NOT_FOUND: i32 = 7;

/// The value of `key`, `None` if it has none.
pub fn get(key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, StateError> {
    match imports::get(key.as_ref()) {
        Ok(value) => Ok(Some(value)),
        Err(NOT_FOUND) => Ok(None),
        Err(status) => Err(StateError::from_status(status)),
    }
}

/// Sets `key` to `value`.
pub fn set(key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), StateError> {
    match imports::set(key.as_ref(), value.as_ref()) {
        OK => Ok(()),
        status => Err(StateError::from_status(status)),
    }
}

/// Removes `key`: true if it had a value.
pub fn delete(key: impl AsRef<[u8]>) -> Result<bool, StateError> {
    match imports::delete(key.as_ref()) {
        OK => Ok(true),
        NOT_FOUND => Ok(false),
        status => Err(StateError::from_status(status)),
    }
}

/// Adds `by` to the counter at `key` (none counts as 0) and returns the
/// new value. The counter is kept as decimal text, so [`get`] reads `b"42"`.
pub fn increment(key: impl AsRef<[u8]>, by: i64) -> Result<i64, StateError> {
    imports::increment(key.as_ref(), by).map_err(StateError::from_status)
}

/// Up to `limit` (at most [`MAX_SCAN`]) entries whose keys start with
/// `prefix`, in bytewise key order.
pub fn scan(prefix: impl AsRef<[u8]>, limit: u32) -> Result<Entries, StateError> {
    imports::scan(prefix.as_ref(), limit.min(MAX_SCAN)).map_err(StateError::from_status)
}

/// Decodes a scan's records: `u32 key_len, u32 value_len, key, value`.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn decode_entries(mut bytes: &[u8]) -> Result<Entries, i32> {
    let mut entries = Vec::new();
    let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    while !bytes.is_empty() {
        if bytes.len() < 8 {
            return Err(14);
        }
        let (key_len, value_len) = (word(bytes), word(&bytes[4..]));
        let rest = &bytes[8..];
        if rest.len() < key_len + value_len {
            return Err(14);
        }
        entries.push((
            rest[..key_len].to_vec(),
            rest[key_len..key_len + value_len].to_vec(),
        ));
        bytes = &rest[key_len + value_len..];
    }
    Ok(entries)
}

#[cfg(target_arch = "wasm32")]
mod imports {
    #[link(wasm_import_module = "wasq")]
    unsafe extern "C" {
        #[link_name = "state_get"]
        fn wasq_state_get(key_ptr: i32, key_len: i32, buf_ptr: i32, buf_cap: i32) -> i32;
        #[link_name = "state_set"]
        fn wasq_state_set(key_ptr: i32, key_len: i32, value_ptr: i32, value_len: i32) -> i32;
        #[link_name = "state_delete"]
        fn wasq_state_delete(key_ptr: i32, key_len: i32) -> i32;
        #[link_name = "state_increment"]
        fn wasq_state_increment(key_ptr: i32, key_len: i32, by: i64, result_ptr: i32) -> i32;
        #[link_name = "state_scan"]
        fn wasq_state_scan(
            prefix_ptr: i32,
            prefix_len: i32,
            limit: i32,
            buf_ptr: i32,
            buf_cap: i32,
        ) -> i32;
    }

    /// Calls `ask(buf_ptr, buf_cap)` until what it answers fits: a value
    /// may grow between two calls (another instance committed).
    fn read_growing(mut ask: impl FnMut(i32, i32) -> i32) -> Result<Vec<u8>, i32> {
        let mut buf = vec![0u8; 256];
        loop {
            let len = ask(buf.as_mut_ptr() as i32, buf.len() as i32);
            let Ok(len) = usize::try_from(len) else {
                return Err(-len);
            };
            if len <= buf.len() {
                buf.truncate(len);
                return Ok(buf);
            }
            buf.resize(len, 0);
        }
    }

    pub fn get(key: &[u8]) -> Result<Vec<u8>, i32> {
        // SAFETY: the host reads the key and writes at most `cap` bytes at `ptr`.
        read_growing(|ptr, cap| unsafe {
            wasq_state_get(key.as_ptr() as i32, key.len() as i32, ptr, cap)
        })
    }

    pub fn set(key: &[u8], value: &[u8]) -> i32 {
        // SAFETY: the host only reads the given ranges of our memory.
        unsafe {
            wasq_state_set(
                key.as_ptr() as i32,
                key.len() as i32,
                value.as_ptr() as i32,
                value.len() as i32,
            )
        }
    }

    pub fn delete(key: &[u8]) -> i32 {
        // SAFETY: the host only reads the given range of our memory.
        unsafe { wasq_state_delete(key.as_ptr() as i32, key.len() as i32) }
    }

    pub fn increment(key: &[u8], by: i64) -> Result<i64, i32> {
        let mut value = 0i64;
        // SAFETY: the host reads the key and writes 8 bytes at `value`.
        let status = unsafe {
            wasq_state_increment(
                key.as_ptr() as i32,
                key.len() as i32,
                by,
                &mut value as *mut i64 as i32,
            )
        };
        if status == 0 { Ok(value) } else { Err(status) }
    }

    pub fn scan(prefix: &[u8], limit: u32) -> Result<super::Entries, i32> {
        // SAFETY: the host reads the prefix and writes at most `cap` bytes at `ptr`.
        let bytes = read_growing(|ptr, cap| unsafe {
            wasq_state_scan(
                prefix.as_ptr() as i32,
                prefix.len() as i32,
                limit as i32,
                ptr,
                cap,
            )
        })?;
        super::decode_entries(&bytes)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imports {
    use crate::host::testing::STATE;

    pub fn get(key: &[u8]) -> Result<Vec<u8>, i32> {
        check_key(key)?;
        STATE.with(|state| state.borrow().get(key).cloned().ok_or(super::NOT_FOUND))
    }

    fn check_key(key: &[u8]) -> Result<(), i32> {
        if key.is_empty() { Err(17) } else { Ok(()) }
    }

    pub fn set(key: &[u8], value: &[u8]) -> i32 {
        if let Err(status) = check_key(key) {
            return status;
        }
        STATE.with(|state| state.borrow_mut().insert(key.to_vec(), value.to_vec()));
        0
    }

    pub fn delete(key: &[u8]) -> i32 {
        if let Err(status) = check_key(key) {
            return status;
        }
        match STATE.with(|state| state.borrow_mut().remove(key)) {
            Some(_) => 0,
            None => super::NOT_FOUND,
        }
    }

    pub fn increment(key: &[u8], by: i64) -> Result<i64, i32> {
        let current = match get(key) {
            Ok(text) => std::str::from_utf8(&text)
                .ok()
                .and_then(|t| t.parse::<i64>().ok())
                .ok_or(20)?,
            Err(super::NOT_FOUND) => 0,
            Err(status) => return Err(status),
        };
        let new = current.checked_add(by).ok_or(20)?;
        set(key, new.to_string().as_bytes());
        Ok(new)
    }

    pub fn scan(prefix: &[u8], limit: u32) -> Result<super::Entries, i32> {
        Ok(STATE.with(|state| {
            state
                .borrow()
                .range(prefix.to_vec()..)
                .take_while(|(key, _)| key.starts_with(prefix))
                .take(limit as usize)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulated_store_counts_scans_and_deletes() {
        crate::testing::clear_state();
        assert_eq!(increment("count/a", 2), Ok(2));
        assert_eq!(increment("count/a", 3), Ok(5));
        assert_eq!(get("count/a"), Ok(Some(b"5".to_vec())));
        set("count/b", "x").unwrap();
        assert_eq!(increment("count/b", 1), Err(StateError::NotANumber));
        assert_eq!(
            scan("count/", 10).unwrap(),
            vec![
                (b"count/a".to_vec(), b"5".to_vec()),
                (b"count/b".to_vec(), b"x".to_vec())
            ]
        );
        assert_eq!(delete("count/b"), Ok(true));
        assert_eq!(delete("count/b"), Ok(false));
        assert_eq!(get(""), Err(StateError::InvalidKey));
    }

    #[test]
    fn scan_records_decode_and_a_short_one_is_an_error() {
        let mut bytes = Vec::new();
        for (key, value) in [(&b"k1"[..], &b"v"[..]), (b"k2", b"")] {
            bytes.extend_from_slice(&(key.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&(value.len() as u32).to_le_bytes());
            bytes.extend_from_slice(key);
            bytes.extend_from_slice(value);
        }
        assert_eq!(
            decode_entries(&bytes).unwrap(),
            vec![(b"k1".to_vec(), b"v".to_vec()), (b"k2".to_vec(), vec![])]
        );
        assert!(decode_entries(&bytes[..bytes.len() - 1]).is_err());
    }
}
