//! `router`: consumes `events` (channel `router`). Each body must be a JSON
//! object with a string field `type`; it is republished unchanged to
//! `events.<type>`. Anything else is fatal: it goes to the dead-letter topic.

use wasq_guest::{Message, Outcome, PublishError, publish};

pub fn handle(message: &Message) -> Outcome {
    let Some(kind) = event_type(message.body) else {
        wasq_guest::log_warn(&format!(
            "message {} is not an event with a string `type`",
            message.id_str()
        ));
        return Outcome::Fatal;
    };
    match publish(&format!("events.{kind}"), message.body) {
        Ok(()) => Outcome::Finish,
        // A type that makes no valid topic name can never be routed.
        Err(PublishError::InvalidTopic | PublishError::Forbidden) => Outcome::Fatal,
        Err(e) => {
            wasq_guest::log_warn(&format!("cannot route {}: {e}", message.id_str()));
            Outcome::Retry
        }
    }
}

fn event_type(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(value.as_object()?.get("type")?.as_str()?.to_string())
}

wasq_guest::plugin!(handle);

#[cfg(test)]
mod tests {
    use super::*;
    use wasq_guest::testing::take_published;

    fn message(body: &[u8]) -> Message<'_> {
        Message {
            id: b"0000000000000001",
            attempts: 1,
            timestamp: 0,
            topic: "events",
            channel: "router",
            body,
        }
    }

    #[test]
    fn routes_by_type_and_rejects_the_rest() {
        assert_eq!(
            handle(&message(br#"{"type":"click","x":1}"#)),
            Outcome::Finish
        );
        let published = take_published();
        assert_eq!(published[0].topic, "events.click");
        for bad in [
            &b"not json"[..],
            b"[1,2]",
            br#"{"type":5}"#,
            br#"{"kind":"x"}"#,
        ] {
            assert_eq!(handle(&message(bad)), Outcome::Fatal);
        }
        assert!(take_published().is_empty());
    }
}
