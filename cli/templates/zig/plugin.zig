//! {{name}}: consumes `{{name}}` and publishes each body, its ASCII letters
//! uppercased, to `{{name}}.upper`.
const std = @import("std");
const wasq = @import("wasq");

fn handle(message: *const wasq.Message) wasq.Outcome {
    const upper = wasq.allocator.alloc(u8, message.body.len) catch return .retry;
    defer wasq.allocator.free(upper);
    _ = std.ascii.upperString(upper, message.body);
    wasq.publish("{{name}}.upper", upper) catch {
        wasq.log(.warn, "cannot publish to {{name}}.upper");
        return .retry;
    };
    return .success;
}

comptime {
    wasq.exportPlugin(handle);
}
