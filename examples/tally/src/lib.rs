//! `tally`: the state benchmark's plugin (`wasq-bench state-counter`). It
//! increments the counter `count/<body>` in its state and finishes; with
//! `[config] stateless = "true"` it builds the same key and finishes
//! without touching state: the same plugin, without state, as a baseline.
//! The setting is read once, so that both do the same work per message
//! but for the state (a `config` call per message would cost the
//! stateless one a string copy the other does not make).

use std::sync::OnceLock;

use wasq_guest::{Message, Outcome, config, state};

fn stateless() -> bool {
    static STATELESS: OnceLock<bool> = OnceLock::new();
    *STATELESS.get_or_init(|| config("stateless").as_deref() == Some("true"))
}

pub fn handle(message: &Message) -> Outcome {
    let key = [b"count/".as_slice(), message.body].concat();
    if stateless() {
        std::hint::black_box(key);
        return Outcome::Finish;
    }
    match state::increment(&key, 1) {
        Ok(_) => Outcome::Finish,
        Err(_) => Outcome::Retry,
    }
}

wasq_guest::plugin!(handle);
