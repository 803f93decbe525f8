//! `prefixed`: a second version of `uppercase` for hot-reload tests and
//! demos: publishes `v2:` + the uppercased body to `words.upper`.

use wasq_guest::{Message, Outcome, publish};

pub fn handle(message: &Message) -> Outcome {
    let mut out = b"v2:".to_vec();
    out.extend(message.body.to_ascii_uppercase());
    match publish("words.upper", &out) {
        Ok(()) => Outcome::Finish,
        Err(e) => {
            wasq_guest::log_warn(&format!("cannot publish to words.upper: {e}"));
            Outcome::Retry
        }
    }
}

wasq_guest::plugin!(handle);

#[cfg(test)]
mod tests {
    use super::*;
    use wasq_guest::testing::take_published;

    #[test]
    fn prefixes_the_uppercased_body() {
        let message = Message {
            id: b"0000000000000001",
            attempts: 1,
            timestamp: 0,
            topic: "words",
            channel: "upper",
            body: b"hi",
        };
        assert_eq!(handle(&message), Outcome::Finish);
        assert_eq!(take_published()[0].body, b"v2:HI");
    }
}
