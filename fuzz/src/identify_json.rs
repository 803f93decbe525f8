//! IDENTIFY bodies: decoded as nsqd's JSON, then validated against the
//! default options as a connection would.

use wasq_host::protocol::identify::{IdentifyData, Negotiation};

/// One input, as the fuzzer and the replay test give it.
pub fn run(data: &[u8]) {
    if let Ok(identify) = serde_json::from_slice::<IdentifyData>(data) {
        let _ = Negotiation::defaults().validate(&identify);
    }
}
