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
mod message;
mod outcome;

pub use host::{
    LogLevel, PublishError, log, log_debug, log_error, log_info, log_warn, publish,
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

    /// `wasq_alloc`: memory for one message, freed when `handle` returns.
    pub fn alloc(size: i32) -> i32 {
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

    /// `wasq_init`: 0 on success, the plugin's code otherwise.
    pub fn init(init: fn() -> Result<(), i32>) -> i32 {
        match init() {
            Ok(()) => 0,
            Err(0) => -1,
            Err(code) => code,
        }
    }
}

/// Inspect what a handler published, when running natively (unit tests).
pub mod testing {
    pub use crate::host::testing::{Published, published, take_published};
}
