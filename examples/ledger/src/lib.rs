//! `ledger`: a test plugin for exactness. A body `<key> <id>` increments
//! `count/<key>` and `msg/<id>` in the plugin's state; every tenth id
//! (`<id>` ending in 0) fails its first attempt after writing, so its
//! writes must be discarded. A message counted twice shows as `msg/<id>`
//! above 1; one lost, as a key's count below its messages.

use wasq_guest::{Message, Outcome, log_warn, state};

pub fn handle(message: &Message) -> Outcome {
    let Some((key, id)) = std::str::from_utf8(message.body)
        .ok()
        .and_then(|body| body.split_once(' '))
    else {
        return Outcome::Fatal;
    };
    let counted = state::increment(format!("count/{key}"), 1)
        .and_then(|_| state::increment(format!("msg/{id}"), 1));
    if let Err(e) = counted {
        log_warn(&format!("ledger: {e}"));
        return Outcome::Retry;
    }
    if message.attempts == 1 && id.ends_with('0') {
        return Outcome::Retry;
    }
    Outcome::Finish
}

wasq_guest::plugin!(handle);
