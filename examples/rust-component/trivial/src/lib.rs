//! trivial, as a component: finishes every message and does nothing else.
//! The benchmark's measure of what one component call costs.

wit_bindgen::generate!({ path: "../../../guest-sdk/wit", world: "consumer" });

struct Trivial;

impl Guest for Trivial {
    fn handle(_message: Message) -> Result<(), Failure> {
        Ok(())
    }
}

export!(Trivial);
