//! flaky, in Zig: consumes `jobs`. A body containing "fail" asks to be
//! retried, so after max_attempts it lands in the dead-letter topic; any
//! other body is published to `jobs.done.zig`.
const std = @import("std");
const wasq = @import("wasq");

fn handle(message: *const wasq.Message) wasq.Outcome {
    if (std.mem.indexOf(u8, message.body, "fail") != null) {
        var line: [96]u8 = undefined;
        const text = std.fmt.bufPrint(&line, "job {s} failed (attempt {d})", .{ message.id, message.attempts }) catch "job failed";
        wasq.log(.info, text);
        return .retry;
    }
    wasq.publish("jobs.done.zig", message.body) catch return .retry;
    return .success;
}

comptime {
    wasq.exportPlugin(handle);
}
