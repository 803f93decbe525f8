//! uppercase, in Zig: consumes `words` and publishes each body uppercased
//! (ASCII letters only, as the Rust example) to `words.upper.zig`.
const std = @import("std");
const wasq = @import("wasq");

fn handle(message: *const wasq.Message) wasq.Outcome {
    const upper = wasq.allocator.alloc(u8, message.body.len) catch return .retry;
    defer wasq.allocator.free(upper);
    _ = std.ascii.upperString(upper, message.body);
    wasq.publish("words.upper.zig", upper) catch {
        wasq.log(.warn, "cannot publish to words.upper.zig");
        return .retry;
    };
    return .success;
}

comptime {
    wasq.exportPlugin(handle);
}
