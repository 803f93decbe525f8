//! Write [Wasq](../README.md) plugins in Rust.
//!
//! A plugin is a WebAssembly module the broker calls once per message of its
//! channel. This crate implements the ABI (`ABI.md` beside this crate) so a
//! plugin is a function from [`Message`] to [`Outcome`]:
//!
//! ```no_run
//! use wasq_guest::{Message, Outcome, publish};
//!
//! fn handle(message: &Message) -> Outcome {
//!     let upper = message.body.to_ascii_uppercase();
//!     match publish("words.upper", &upper) {
//!         Ok(()) => Outcome::Finish,
//!         Err(e) => {
//!             wasq_guest::log_warn(&format!("publish failed: {e}"));
//!             Outcome::Retry
//!         }
//!     }
//! }
//!
//! wasq_guest::plugin!(handle);
//! ```
//!
//! Build it as a `cdylib` for `wasm32-wasip1` (or `wasm32-unknown-unknown`)
//! and copy the `.wasm` with its manifest into the broker's `plugins/`.
//!
//! Off WebAssembly (in your crate's unit tests) the host functions are
//! simulated: [`publish`] records into [`testing::published`] and [`log`]
//! prints to stderr, so handlers can be tested with `cargo test`.

mod host;
pub mod http;
mod message;
mod outcome;
pub mod state;

pub use host::{
    LogLevel, PublishError, config, log, log_debug, log_error, log_info, log_warn, publish,
    publish_deferred,
};
pub use message::Message;
pub use outcome::Outcome;

/// The ABI version this crate implements.
pub const ABI_VERSION: i32 = 1;

/// Exports the ABI for a handler `fn(&Message) -> Outcome`, and optionally an
/// `init` function `fn() -> Result<(), i32>` run once per instance.
///
/// ```ignore
/// wasq_guest::plugin!(handle);
/// wasq_guest::plugin!(handler = handle, init = setup);
/// ```
#[macro_export]
macro_rules! plugin {
    ($handler:path) => {
        $crate::plugin!(handler = $handler);
    };
    (handler = $handler:path $(, init = $init:path)? $(,)?) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn wasq_abi_version() -> i32 {
            $crate::ABI_VERSION
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn wasq_alloc(size: i32) -> i32 {
            $crate::__private::alloc(size)
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn wasq_handle(ptr: i32, len: i32) -> i64 {
            $crate::__private::handle(ptr, len, $handler)
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn wasq_handle_batch(ptr: i32, len: i32, count: i32) {
            $crate::__private::handle_batch(ptr, len, count, $handler)
        }

        $(
            #[unsafe(no_mangle)]
            pub extern "C" fn wasq_init() -> i32 {
                $crate::__private::init($init)
            }
        )?
    };
}

/// Support for the `plugin!` macro; not part of the API.
#[doc(hidden)]
pub mod __private {
    use super::{Message, Outcome};
    use std::alloc::Layout;

    fn layout(size: i32) -> Option<Layout> {
        let size = usize::try_from(size).ok()?.max(1);
        Layout::from_size_align(size, 8).ok()
    }

    std::thread_local! {
        /// The last batch's region, freed by the next `alloc`: the host
        /// reads the batch's outcomes after `handle_batch` returns, and a
        /// free before then lets the allocator write its bookkeeping over
        /// them (ABI.md, "Batches").
        static HANDED_BATCH: std::cell::Cell<Option<(usize, Layout)>> =
            const { std::cell::Cell::new(None) };
    }

    /// `wasq_alloc`: memory for one message, freed when `handle` returns
    /// (a batch's: at the next `alloc`).
    pub fn alloc(size: i32) -> i32 {
        if let Some((ptr, layout)) = HANDED_BATCH.take() {
            // SAFETY: allocated by `alloc` with this layout; the host is
            // done with it (it asks for a new region only after reading).
            unsafe { std::alloc::dealloc(ptr as *mut u8, layout) };
        }
        let Some(layout) = layout(size) else { return 0 };
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc(layout) };
        ptr as usize as i32
    }

    /// `wasq_handle`: decode, run the handler, free the message, encode the outcome.
    pub fn handle(ptr: i32, len: i32, handler: fn(&Message) -> Outcome) -> i64 {
        let Some(layout) = layout(len) else {
            return Outcome::Retry.encode();
        };
        let raw = ptr as usize as *mut u8;
        // SAFETY: the host wrote `len` bytes at `ptr`, which `alloc(len)`
        // returned; nothing else refers to it until we free it below.
        let bytes = unsafe { std::slice::from_raw_parts(raw, len as usize) };
        let outcome = match Message::decode(bytes) {
            Some(message) => handler(&message),
            None => {
                super::log_error("wasq-guest: malformed message from host");
                Outcome::Retry
            }
        };
        // SAFETY: allocated by `alloc` with this same layout.
        unsafe { std::alloc::dealloc(raw, layout) };
        outcome.encode()
    }

    /// `wasq_handle_batch`: the handler for each message of the batch, in
    /// order, each outcome written to its entry as soon as it is known;
    /// the batch is freed by the next `alloc`, once the host has read it.
    pub fn handle_batch(ptr: i32, len: i32, count: i32, handler: fn(&Message) -> Outcome) {
        let (Some(layout), Ok(count)) = (layout(len), usize::try_from(count)) else {
            return;
        };
        let raw = ptr as usize as *mut u8;
        // SAFETY: as in `handle`: the host wrote the batch, `len` bytes at
        // `ptr`, which `alloc(len)` returned.
        let batch = unsafe { std::slice::from_raw_parts_mut(raw, len as usize) };
        handle_entries(batch, count, handler);
        HANDED_BATCH.set(Some((raw as usize, layout)));
    }

    /// Size of one entry of a batch's table (ABI.md, "Batches").
    const ENTRY: usize = 16;

    /// Runs the handler for the `count` messages of a batch and writes
    /// their outcomes into its table.
    pub(crate) fn handle_entries(batch: &mut [u8], count: usize, handler: fn(&Message) -> Outcome) {
        if count.checked_mul(ENTRY).is_none_or(|len| len > batch.len()) {
            super::log_error("wasq-guest: malformed batch from host");
            return;
        }
        let u32_at = |batch: &[u8], at: usize| {
            u32::from_le_bytes(batch[at..at + 4].try_into().expect("4 bytes")) as usize
        };
        for index in 0..count {
            let entry = index * ENTRY;
            let (offset, len) = (u32_at(batch, entry + 8), u32_at(batch, entry + 12));
            let message = offset
                .checked_add(len)
                .and_then(|end| batch.get(offset..end))
                .and_then(Message::decode);
            let outcome = match message {
                Some(message) => handler(&message),
                None => {
                    super::log_error("wasq-guest: malformed message from host");
                    Outcome::Retry
                }
            };
            batch[entry..entry + 8].copy_from_slice(&outcome.encode().to_le_bytes());
        }
    }

    /// `wasq_init`: 0 on success, the plugin's code otherwise.
    pub fn init(init: fn() -> Result<(), i32>) -> i32 {
        match init() {
            Ok(()) => 0,
            Err(0) => -1,
            Err(code) => code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{__private::handle_entries, Message, Outcome};

    fn by_body(message: &Message) -> Outcome {
        match message.body {
            b"ok" => Outcome::Finish,
            b"later" => Outcome::RetryAfter(std::time::Duration::from_millis(500)),
            _ => Outcome::Fatal,
        }
    }

    /// A message in the host's layout.
    fn message(topic: &str, channel: &str, body: &[u8]) -> Vec<u8> {
        Message {
            id: b"0123456789abcdef",
            attempts: 1,
            timestamp: 0,
            topic,
            channel,
            body,
        }
        .encode()
    }

    /// The batch the host would write: the table, then each message at a
    /// multiple of 8.
    fn batch_of(messages: &[Vec<u8>]) -> Vec<u8> {
        let mut batch = vec![0xFF; messages.len() * 16];
        for (index, message) in messages.iter().enumerate() {
            let offset = batch.len();
            batch[index * 16 + 8..index * 16 + 12].copy_from_slice(&(offset as u32).to_le_bytes());
            batch[index * 16 + 12..index * 16 + 16]
                .copy_from_slice(&(message.len() as u32).to_le_bytes());
            batch.extend_from_slice(message);
            batch.resize(batch.len().next_multiple_of(8), 0);
        }
        batch
    }

    /// The outcomes the guest wrote into the table.
    fn outcomes(batch: &[u8], count: usize) -> Vec<i64> {
        (0..count)
            .map(|index| i64::from_le_bytes(batch[index * 16..index * 16 + 8].try_into().unwrap()))
            .collect()
    }

    #[test]
    fn a_batch_gets_each_outcome_in_its_entry() {
        let messages = [b"ok".as_slice(), b"later", b"bad"].map(|body| message("t", "c", body));
        let mut batch = batch_of(&messages);
        handle_entries(&mut batch, 3, by_body);
        assert_eq!(outcomes(&batch, 3), [0, (500 << 32) | 2, 3]);
    }

    fn by_names(message: &Message) -> Outcome {
        match (message.topic, message.channel) {
            ("t", "c") => Outcome::Finish,
            ("t2", "c") => Outcome::Fatal,
            ("t", "c2") => Outcome::RetryAfter(std::time::Duration::from_millis(7)),
            _ => Outcome::Retry,
        }
    }

    #[test]
    fn each_message_of_a_batch_is_read_with_its_own_names() {
        let mut not_utf8 = message("x", "c", b"");
        let topic_at = not_utf8.len() - 2;
        not_utf8[topic_at] = 0xFF;
        let messages = [
            message("t", "c", b""),
            message("t2", "c", b""),
            message("t", "c2", b""),
            message("t", "c", b""),
            not_utf8,
            message("t", "c", b""),
        ];
        let mut batch = batch_of(&messages);
        handle_entries(&mut batch, messages.len(), by_names);
        assert_eq!(
            outcomes(&batch, messages.len()),
            [0, 3, (7 << 32) | 2, 0, 1, 0],
            "a topic that is not UTF-8 is malformed (retried), and the batch goes on"
        );
    }

    #[test]
    fn a_malformed_batch_is_not_read_past_its_end() {
        let mut batch = vec![0u8; 20];
        handle_entries(&mut batch, 2, by_body);
        assert_eq!(
            batch,
            vec![0u8; 20],
            "a table longer than the batch: nothing written"
        );
        let mut batch = vec![0u8; 16];
        batch[8..12].copy_from_slice(&1000u32.to_le_bytes());
        handle_entries(&mut batch, 1, by_body);
        assert_eq!(
            &batch[0..8],
            &1i64.to_le_bytes(),
            "a message outside: retried"
        );
    }
}

/// Natively (unit tests): inspect what a handler published, and set the
/// configuration and HTTP answers it sees.
pub mod testing {
    pub use crate::host::testing::{
        Published, clear_state, published, set_config, state_entries, take_published,
    };
    #[cfg(not(target_arch = "wasm32"))]
    pub use crate::http::simulated::set_http_handler;
}
