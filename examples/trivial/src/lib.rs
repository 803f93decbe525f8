//! `trivial`: finishes every message and does nothing else. The benchmark
//! uses it to measure the plugin path itself.

use wasq_guest::{Message, Outcome};

pub fn handle(_message: &Message) -> Outcome {
    Outcome::Finish
}

wasq_guest::plugin!(handle);
