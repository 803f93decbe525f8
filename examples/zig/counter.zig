//! counter, in Zig: counts the messages of each body in the plugin's state.
//! The body is the key (any bytes); each message adds 1 to the counter
//! `count/<body>`, and when the new count is a multiple of config `every`
//! it publishes `<body> <count>` to config `output`. The count and the
//! message's FIN commit together, so a redelivered message is not counted
//! twice. A state error (logged) retries the message.
//!
//! plugins/counter.toml:
//!
//!     topic = "clicks"
//!     state = true
//!     publish = ["counts"]
//!     [config]
//!     every = "10"      # default 10
//!     output = "counts" # default counts
const std = @import("std");
const wasq = @import("wasq");

/// Read from [config] on the first message (it is fixed for a version).
var every: i64 = 0;
var output: []const u8 = "";

fn configure() !void {
    const gpa = wasq.allocator;
    const text = try wasq.config(gpa, "every");
    defer if (text) |value| gpa.free(value);
    const value = text orelse "10";
    // Digits only (parseInt would also take a sign and underscores).
    if (value.len == 0) return error.BadEvery;
    for (value) |c| if (!std.ascii.isDigit(c)) return error.BadEvery;
    const n = std.fmt.parseInt(i64, value, 10) catch return error.BadEvery;
    if (n == 0) return error.BadEvery;
    output = try wasq.config(gpa, "output") orelse "counts";
    every = n;
}

fn handle(message: *const wasq.Message) wasq.Outcome {
    if (every == 0) configure() catch |err| {
        wasq.log(.err, if (err == error.BadEvery) "counter: config `every` is not a positive decimal number" else "counter: cannot read the configuration");
        return .retry;
    };
    const gpa = wasq.allocator;
    const key = std.mem.concat(gpa, u8, &.{ "count/", message.body }) catch return .retry;
    defer gpa.free(key);
    const count = wasq.state.increment(key, 1) catch |err| {
        var line: [96]u8 = undefined;
        wasq.log(.warn, std.fmt.bufPrint(&line, "counter: cannot increment: {t}", .{err}) catch "counter: cannot increment");
        return .retry;
    };
    if (@rem(count, every) != 0) return .success;
    const body = std.fmt.allocPrint(gpa, "{s} {d}", .{ message.body, count }) catch return .retry;
    defer gpa.free(body);
    wasq.publish(output, body) catch |err| {
        // The count is discarded with the retry: it and the publish happen
        // again together.
        var line: [192]u8 = undefined;
        wasq.log(.warn, std.fmt.bufPrint(&line, "counter: cannot publish to {s}: {t}", .{ output, err }) catch "counter: cannot publish");
        return .retry;
    };
    return .success;
}

comptime {
    wasq.exportPlugin(handle);
}
