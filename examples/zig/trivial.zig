//! trivial, in Zig: finishes every message and does nothing else; the
//! per-message cost of the Zig bindings (wasq-bench guests).
const wasq = @import("wasq");

fn handle(message: *const wasq.Message) wasq.Outcome {
    _ = message;
    return .success;
}

comptime {
    wasq.exportPlugin(handle);
}
