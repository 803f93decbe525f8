//! `uppercase`: consumes `words` (channel `upper`) and publishes each body
//! uppercased to `words.upper`.

use wasq_guest::{Message, Outcome, publish};

pub fn handle(message: &Message) -> Outcome {
    let upper = message.body.to_ascii_uppercase();
    match publish("words.upper", &upper) {
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
    fn publishes_the_uppercased_body() {
        let message = Message {
            id: b"0000000000000001",
            attempts: 1,
            timestamp: 0,
            topic: "words",
            channel: "upper",
            body: b"hello",
        };
        assert_eq!(handle(&message), Outcome::Finish);
        let published = take_published();
        assert_eq!(published.len(), 1);
        assert_eq!(
            (published[0].topic.as_str(), published[0].body.as_slice()),
            ("words.upper", &b"HELLO"[..])
        );
    }
}
