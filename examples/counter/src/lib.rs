//! `counter`: counts each key (the message body) in the plugin's state and
//! publishes `<key> <count>` every `every`-th time a key is seen. The count
//! commits with the message's FIN: a message retried, or delivered again
//! after a crash, is counted once.
//!
//! Its manifest (`plugins/counter.toml`):
//!
//! ```toml
//! topic = "clicks"
//! state = true
//! publish = ["counts"]
//! [config]
//! every = "10"       # default 10
//! output = "counts"  # default "counts"
//! ```

use wasq_guest::{Message, Outcome, config, log_warn, publish, state};

pub fn handle(message: &Message) -> Outcome {
    let every = match config("every").as_deref().unwrap_or("10").parse::<i64>() {
        Ok(every) if every > 0 => every,
        _ => {
            log_warn("counter: [config] every is not a positive number");
            return Outcome::Retry;
        }
    };
    let output = config("output").unwrap_or_else(|| "counts".into());
    let key = [b"count/".as_slice(), message.body].concat();
    let count = match state::increment(&key, 1) {
        Ok(count) => count,
        Err(e) => {
            log_warn(&format!("counter: {e}"));
            return Outcome::Retry;
        }
    };
    if count % every == 0 {
        let body = [message.body, b" ", count.to_string().as_bytes()].concat();
        if let Err(e) = publish(&output, &body) {
            // The count is discarded with the retry: counted again then.
            log_warn(&format!("counter: publish to {output}: {e}"));
            return Outcome::Retry;
        }
    }
    Outcome::Finish
}

wasq_guest::plugin!(handle);

#[cfg(test)]
mod tests {
    use super::*;
    use wasq_guest::testing;

    fn message(body: &[u8]) -> Message<'_> {
        Message {
            id: &[b'0'; 16],
            attempts: 1,
            timestamp: 0,
            topic: "clicks",
            channel: "counter",
            body,
        }
    }

    #[test]
    fn every_third_occurrence_of_a_key_is_published() {
        testing::set_config("every", "3");
        for _ in 0..7 {
            assert_eq!(handle(&message(b"a")), Outcome::Finish);
        }
        assert_eq!(handle(&message(b"b")), Outcome::Finish);
        let bodies: Vec<Vec<u8>> = testing::take_published()
            .into_iter()
            .map(|p| p.body)
            .collect();
        assert_eq!(bodies, vec![b"a 3".to_vec(), b"a 6".to_vec()]);
        assert_eq!(state::get("count/a"), Ok(Some(b"7".to_vec())));
    }
}
