//! flaky, as a component: consumes `jobs`. A body containing "fail" asks to
//! be retried (so after the manifest's max_attempts it is dead-lettered);
//! any other body is published to `jobs.done.rs-component`.

wit_bindgen::generate!({ path: "../../../guest-sdk/wit", world: "batch-consumer" });

use wasq::plugin::host::{Level, log, publish};

struct Flaky;

impl Guest for Flaky {
    fn handle(message: Message) -> Result<(), Failure> {
        if message.body.windows(4).any(|w| w == b"fail") {
            log(
                Level::Info,
                &format!(
                    "job {} failed (attempt {})",
                    String::from_utf8_lossy(&message.id),
                    message.attempts
                ),
            );
            return Err(Failure::Retry);
        }
        publish("jobs.done.rs-component", &message.body).map_err(|_| Failure::Retry)
    }

    wasq_component_batch::handle_batch_with_handle!();
}

export!(Flaky);
