//! `tally`: the state benchmark's plugin (`wasq-bench state-counter`). It
//! increments the counter `count/<body>` in its state and finishes; with
//! `[config] stateless = "true"` it builds the same key and finishes
//! without touching state: the same plugin, without state, as a baseline.

use wasq_guest::{Message, Outcome, config, state};

pub fn handle(message: &Message) -> Outcome {
    let key = [b"count/".as_slice(), message.body].concat();
    if config("stateless").as_deref() == Some("true") {
        std::hint::black_box(key);
        return Outcome::Finish;
    }
    match state::increment(&key, 1) {
        Ok(_) => Outcome::Finish,
        Err(_) => Outcome::Retry,
    }
}

wasq_guest::plugin!(handle);
