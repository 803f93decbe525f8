//! webhook, in Zig: nsq_to_http as a plugin. POSTs each message's body to
//! the URL in config `url`. A 2xx answer finishes the message; 429 or 5xx
//! retries it (after `retry-after` seconds when the server says so); any
//! other status (3xx not followed, other 4xx) dead-letters it. A timeout or
//! a failed connection retries; a URL not allowed, a bad request or a too
//! large answer dead-letters. Each failure is a warning in the log.
//!
//! plugins/webhook.toml:
//!
//!     topic = "events"
//!     allowed_outbound_hosts = ["https://hooks.example.com"]
//!     required_config = ["url"]
//!     [config]
//!     url = "https://hooks.example.com/events"
//!     authorization = "Bearer ${WEBHOOK_TOKEN}"  # optional: the Authorization header
//!     content_type = "application/json"          # default application/octet-stream
const std = @import("std");
const wasq = @import("wasq");

/// Read from [config] on the first message (it is fixed for a version).
var url: ?[]const u8 = null;
var headers: []const u8 = "";

fn configure() !void {
    const gpa = wasq.allocator;
    const content_type = try wasq.config(gpa, "content_type");
    defer if (content_type) |value| gpa.free(value);
    const authorization = try wasq.config(gpa, "authorization");
    defer if (authorization) |value| gpa.free(value);
    headers = if (authorization) |value|
        try std.fmt.allocPrint(gpa, "Content-Type: {s}\nAuthorization: {s}\n", .{ content_type orelse "application/octet-stream", value })
    else
        try std.fmt.allocPrint(gpa, "Content-Type: {s}\n", .{content_type orelse "application/octet-stream"});
    url = try wasq.config(gpa, "url") orelse return error.NoUrl;
}

/// Logs why the POST failed and what becomes of the message.
fn failed(outcome: wasq.Outcome, comptime why: []const u8, args: anytype) wasq.Outcome {
    var line: [2048]u8 = undefined;
    const then = switch (outcome) {
        .retry_after => |ms| std.fmt.bufPrint(line[1536..], "retry in {d} ms", .{ms}) catch unreachable,
        .retry => "retry",
        else => "dead-letter",
    };
    const text = std.fmt.bufPrint(line[0..1536], "POST {s}: " ++ why ++ ": {s}", .{url.?} ++ args ++ .{then}) catch "webhook: POST failed (URL too long to log)";
    wasq.log(.warn, text);
    return outcome;
}

fn handle(message: *const wasq.Message) wasq.Outcome {
    if (url == null) configure() catch |err| {
        wasq.log(.err, if (err == error.NoUrl) "webhook: config `url` is not set" else "webhook: cannot read the configuration");
        return .retry;
    };
    var response = wasq.httpRequest(wasq.allocator, .{
        .method = "POST",
        .url = url.?,
        .headers = headers,
        .body = message.body,
    }) catch |err| return failed(if (wasq.isTemporary(err)) .retry else .fatal, "{t}", .{err});
    defer response.deinit();
    return switch (response.status) {
        200...299 => .success,
        429, 500...599 => if (response.retryAfterMs()) |ms|
            failed(.{ .retry_after = ms }, "HTTP {d}", .{response.status})
        else
            failed(.retry, "HTTP {d}", .{response.status}),
        else => failed(.fatal, "HTTP {d}", .{response.status}),
    };
}

comptime {
    wasq.exportPlugin(handle);
}
