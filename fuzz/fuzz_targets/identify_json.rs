//! IDENTIFY bodies: decoded as nsqd's JSON, then validated against the
//! default options as a connection would.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasq_host::protocol::identify::{IdentifyData, Negotiation};

fuzz_target!(|data: &[u8]| {
    if let Ok(identify) = serde_json::from_slice::<IdentifyData>(data) {
        let _ = Negotiation::defaults().validate(&identify);
    }
});
