//! What a handler decides, encoded as ABI.md's `i64` outcome.

use std::time::Duration;

/// The result of handling one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done: the broker FINs the message.
    Finish,
    /// Try again later, after the broker's backoff delay for this attempt.
    Retry,
    /// Try again after this delay (capped by the broker's --max-req-timeout).
    RetryAfter(Duration),
    /// Never going to work: send the message to the dead-letter topic.
    Fatal,
}

impl Outcome {
    /// The ABI encoding: code in the low 32 bits, argument in the high 32.
    pub fn encode(self) -> i64 {
        match self {
            Outcome::Finish => 0,
            Outcome::Retry => 1,
            Outcome::RetryAfter(delay) => {
                let ms = u32::try_from(delay.as_millis()).unwrap_or(u32::MAX);
                (i64::from(ms) << 32) | 2
            }
            Outcome::Fatal => 3,
        }
    }
}

/// `Ok` finishes; `Err` retries with the broker's backoff delay.
impl<E> From<Result<(), E>> for Outcome {
    fn from(result: Result<(), E>) -> Outcome {
        match result {
            Ok(()) => Outcome::Finish,
            Err(_) => Outcome::Retry,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_follow_the_abi() {
        assert_eq!(Outcome::Finish.encode(), 0);
        assert_eq!(Outcome::Retry.encode(), 1);
        assert_eq!(Outcome::Fatal.encode(), 3);
        assert_eq!(
            Outcome::RetryAfter(Duration::from_millis(500)).encode(),
            0x0000_01F4_0000_0002
        );
    }
}
