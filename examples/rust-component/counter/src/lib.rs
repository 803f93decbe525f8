//! counter, as a component: counts each key (the message body) in the
//! plugin's state (`wasq:plugin/state`, WIT 1.2.0) and publishes `<key>
//! <count>` to `output` (default `counts`) every `every`-th time (default
//! 10). The count commits with the message's FIN.

wit_bindgen::generate!({ path: "../../../guest-sdk/wit", world: "batch-consumer" });

use wasq::plugin::host::{Level, get_config, log, publish};
use wasq::plugin::state;

struct Counter;

fn retry(why: String) -> Failure {
    log(Level::Warn, &format!("counter: {why}"));
    Failure::Retry
}

impl Guest for Counter {
    fn handle(message: Message) -> Result<(), Failure> {
        let every = get_config("every")
            .unwrap_or_else(|| "10".into())
            .parse::<i64>()
            .ok()
            .filter(|every| *every > 0)
            .ok_or_else(|| retry("[config] every is not a positive number".into()))?;
        let output = get_config("output").unwrap_or_else(|| "counts".into());
        let key = [b"count/".as_slice(), &message.body].concat();
        let count = state::increment(&key, 1).map_err(|e| retry(format!("{e:?}")))?;
        if count % every == 0 {
            let body = [&message.body[..], b" ", count.to_string().as_bytes()].concat();
            publish(&output, &body).map_err(|e| retry(format!("publish to {output}: {e:?}")))?;
        }
        Ok(())
    }

    wasq_component_batch::handle_batch_with_handle!();
}

export!(Counter);
