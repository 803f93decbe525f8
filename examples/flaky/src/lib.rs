//! `flaky`: consumes `jobs` (channel `flaky`). A body containing `fail`
//! asks to be retried, so after `max_attempts` it lands in the dead-letter
//! topic; any other body succeeds and is published to `jobs.done`.

use wasq_guest::{Message, Outcome, publish};

pub fn handle(message: &Message) -> Outcome {
    if message.body.windows(4).any(|w| w == b"fail") {
        wasq_guest::log_info(&format!(
            "job {} failed (attempt {})",
            message.id_str(),
            message.attempts
        ));
        return Outcome::Retry;
    }
    match publish("jobs.done", message.body) {
        Ok(()) => Outcome::Finish,
        Err(_) => Outcome::Retry,
    }
}

wasq_guest::plugin!(handle);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fails_on_fail() {
        let message = |body| Message {
            id: b"0000000000000001",
            attempts: 1,
            timestamp: 0,
            topic: "jobs",
            channel: "flaky",
            body,
        };
        assert_eq!(handle(&message(b"please fail")), Outcome::Retry);
        assert_eq!(handle(&message(b"fine")), Outcome::Finish);
    }
}
