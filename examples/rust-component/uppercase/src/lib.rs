//! uppercase, as a component: publishes each body of `words`, ASCII
//! letters uppercased (other bytes unchanged), to `words.upper.rs-component`.

wit_bindgen::generate!({ path: "../../../guest-sdk/wit", world: "batch-consumer" });

use wasq::plugin::host::{Level, log, publish};

struct Uppercase;

impl Guest for Uppercase {
    fn handle(message: Message) -> Result<(), Failure> {
        let upper = message.body.to_ascii_uppercase();
        publish("words.upper.rs-component", &upper).map_err(|e| {
            log(
                Level::Warn,
                &format!("cannot publish to words.upper.rs-component: {e:?}"),
            );
            Failure::Retry
        })
    }

    wasq_component_batch::handle_batch_with_handle!();
}

export!(Uppercase);
