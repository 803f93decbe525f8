//! Zig bindings for Wasq plugins (ABI version 1, see ../ABI.md).
//!
//! A plugin is a file that imports this module and exports its handler:
//!
//!     const wasq = @import("wasq");
//!     fn handle(message: *const wasq.Message) wasq.Outcome { ... }
//!     comptime { wasq.exportPlugin(handle); }
//!
//! Build (freestanding, no WASI needed):
//!
//!     python -m ziglang build-exe -target wasm32-freestanding -fno-entry -rdynamic \
//!         -O ReleaseFast -fstrip --dep wasq -Mroot=NAME.zig -Mwasq=guest-sdk/zig/wasq.zig \
//!         -femit-bin=NAME.wasm
//!
//! ReleaseFast, not ReleaseSmall: the size-optimised code made a trivial
//! handler cost 98 ns a message in a batch instead of 21 (and 128 ns a
//! call instead of 84), for 350 bytes less (bench/README.md).

const std = @import("std");

/// One message as the broker delivered it. The slices point into a buffer
/// that lives only while the handler runs: copy what you keep.
pub const Message = struct {
    /// 1 on the first delivery, +1 on each redelivery.
    attempts: u16,
    /// Nanoseconds since the Unix epoch, when it was published.
    timestamp: i64,
    id: *const [16]u8,
    topic: []const u8,
    channel: []const u8,
    body: []const u8,
};

/// What the handler tells the broker to do with the message.
pub const Outcome = union(enum) {
    /// FIN.
    success,
    /// REQ with the broker's backoff delay; dead-lettered after max_attempts.
    retry,
    /// REQ after this many milliseconds.
    retry_after: u32,
    /// Publish the body unchanged to the dead-letter topic, then FIN.
    fatal,

    /// The ABI's i64: code in the low 32 bits, argument in the high 32.
    pub fn encode(self: Outcome) i64 {
        return switch (self) {
            .success => 0,
            .retry => 1,
            .retry_after => |ms| @bitCast((@as(u64, ms) << 32) | 2),
            .fatal => 3,
        };
    }
};

/// Why the host refused a publish (the ABI's statuses 1-6).
pub const PublishError = error{
    Forbidden,
    InvalidTopic,
    InvalidBody,
    InvalidDelay,
    BadPointer,
    Unavailable,
};

pub const Level = enum(i32) { debug = 0, info = 1, warn = 2, err = 3 };

const host = struct {
    extern "wasq" fn log(level: i32, ptr: [*]const u8, len: i32) i32;
    extern "wasq" fn publish(topic: [*]const u8, topic_len: i32, body: [*]const u8, body_len: i32) i32;
    extern "wasq" fn publish_deferred(topic: [*]const u8, topic_len: i32, body: [*]const u8, body_len: i32, delay_ms: i64) i32;
};

fn check(status: i32) PublishError!void {
    return switch (status) {
        0 => {},
        1 => error.Forbidden,
        2 => error.InvalidTopic,
        3 => error.InvalidBody,
        4 => error.InvalidDelay,
        5 => error.BadPointer,
        else => error.Unavailable,
    };
}

/// Publishes `body` to `topic` (listed under `publish` in the manifest).
pub fn publish(topic: []const u8, body: []const u8) PublishError!void {
    return check(host.publish(topic.ptr, @intCast(topic.len), body.ptr, @intCast(body.len)));
}

/// DPUB: `body` reaches `topic` after `delay_ms`.
pub fn publishDeferred(topic: []const u8, body: []const u8, delay_ms: i64) PublishError!void {
    return check(host.publish_deferred(topic.ptr, @intCast(topic.len), body.ptr, @intCast(body.len), delay_ms));
}

/// Logs a line under the plugin's name.
pub fn log(level: Level, text: []const u8) void {
    _ = host.log(@intFromEnum(level), text.ptr, @intCast(text.len));
}

/// The allocator message buffers come from; plugins may use it too.
pub const allocator = std.heap.wasm_allocator;

fn readU32(bytes: []const u8, at: usize) u32 {
    return std.mem.readInt(u32, bytes[at..][0..4], .little);
}

/// Parses the ABI's message layout; null if it is malformed.
pub fn parse(bytes: []const u8) ?Message {
    if (bytes.len < 48) return null;
    const header: usize = readU32(bytes, 0);
    const topic_len: usize = readU32(bytes, 32);
    const channel_len: usize = readU32(bytes, 36);
    const body_len: usize = readU32(bytes, 40);
    if (header < 48 or header > bytes.len) return null;
    if (topic_len + channel_len + body_len != bytes.len - header) return null;
    const data = bytes[header..];
    return .{
        .attempts = std.mem.readInt(u16, bytes[4..6], .little),
        .timestamp = std.mem.readInt(i64, bytes[8..16], .little),
        .id = bytes[16..32],
        .topic = data[0..topic_len],
        .channel = data[topic_len..][0..channel_len],
        .body = data[topic_len + channel_len ..][0..body_len],
    };
}

/// Exports wasq_abi_version, wasq_alloc, wasq_handle and wasq_handle_batch, calling `handler`
/// for each message. Use it in a `comptime` block of the plugin.
pub fn exportPlugin(comptime handler: fn (*const Message) Outcome) void {
    const exports = struct {
        fn abiVersion() callconv(.c) i32 {
            return 1;
        }

        fn alloc(size: i32) callconv(.c) ?[*]u8 {
            if (size <= 0) return null;
            const buffer = allocator.alloc(u8, @intCast(size)) catch return null;
            return buffer.ptr;
        }

        fn run(bytes: []const u8) i64 {
            const message = parse(bytes) orelse {
                log(.err, "wasq.zig: malformed message header");
                return Outcome.encode(.retry);
            };
            return handler(&message).encode();
        }

        fn handle(ptr: [*]u8, len: i32) callconv(.c) i64 {
            const bytes = ptr[0..@intCast(len)];
            defer allocator.free(bytes);
            return run(bytes);
        }

        /// Many messages in one call (ABI.md, "Batches"): entry i of the
        /// table is 16 bytes, the outcome (written here, as soon as it is
        /// known) then the message's offset and length.
        fn handleBatch(ptr: [*]u8, len: i32, count: i32) callconv(.c) void {
            const bytes = ptr[0..@intCast(len)];
            defer allocator.free(bytes);
            if (count < 0 or @as(usize, @intCast(count)) > bytes.len / 16) {
                log(.err, "wasq.zig: malformed batch");
                return;
            }
            for (0..@intCast(count)) |i| {
                const entry = bytes[i * 16 ..][0..16];
                const offset: usize = readU32(entry, 8);
                const length: usize = readU32(entry, 12);
                const outcome = if (offset <= bytes.len and length <= bytes.len - offset)
                    run(bytes[offset..][0..length])
                else
                    Outcome.encode(.retry);
                std.mem.writeInt(i64, entry[0..8], outcome, .little);
            }
        }
    };
    @export(&exports.abiVersion, .{ .name = "wasq_abi_version" });
    @export(&exports.alloc, .{ .name = "wasq_alloc" });
    @export(&exports.handle, .{ .name = "wasq_handle" });
    @export(&exports.handleBatch, .{ .name = "wasq_handle_batch" });
}
