//! {{name}}: consumes `{{name}}` and publishes each body, its ASCII letters
//! uppercased, to `{{name}}.upper`.

use wasq_guest::{Message, Outcome, publish};

pub fn handle(message: &Message) -> Outcome {
    let upper = message.body.to_ascii_uppercase();
    match publish("{{name}}.upper", &upper) {
        Ok(()) => Outcome::Finish,
        Err(e) => {
            wasq_guest::log_warn(&format!("cannot publish to {{name}}.upper: {e}"));
            Outcome::Retry
        }
    }
}

wasq_guest::plugin!(handle);
