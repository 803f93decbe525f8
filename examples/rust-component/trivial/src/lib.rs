//! trivial, as a component: finishes every message and does nothing else.
//! The benchmark's measure of what one component call costs, one message
//! per call (`handle`) or many (`handle-batch`).

wit_bindgen::generate!({ path: "../../../guest-sdk/wit", world: "batch-consumer" });

struct Trivial;

impl Guest for Trivial {
    fn handle(_message: Message) -> Result<(), Failure> {
        Ok(())
    }

    wasq_component_batch::handle_batch_with_handle!();
}

export!(Trivial);
