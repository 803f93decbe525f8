//! `handle-batch` for Rust components of a `batch-consumer` world (WIT
//! 1.3.0): many messages per call, each handed to the component's own
//! `handle` and its outcome reported with `batch.done` before the next, so
//! the plugin still sees one message at a time. What the core-module SDKs'
//! `wasq_handle_batch` is for ABI v1.
//!
//! ```ignore
//! wit_bindgen::generate!({ path: "guest-sdk/wit", world: "batch-consumer" });
//! impl Guest for Plugin {
//!     fn handle(message: Message) -> Result<(), Failure> { Ok(()) }
//!     wasq_component_batch::handle_batch_with_handle!();
//! }
//! ```

/// Writes `fn handle_batch` in an `impl Guest` block: each message to
/// `Self::handle`, in order, its outcome to `batch.done` at once. Names
/// the bindings `wit_bindgen::generate!` made in the calling crate.
#[macro_export]
macro_rules! handle_batch_with_handle {
    () => {
        fn handle_batch(messages: Vec<Message>) {
            for message in messages {
                let outcome = Self::handle(message);
                wasq::plugin::batch::done(outcome.as_ref().copied());
            }
        }
    };
}
