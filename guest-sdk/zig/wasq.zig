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
//! `config` reads the manifest's [config] table and `httpRequest` sends an
//! outbound request to a host in allowed_outbound_hosts (ABI.md, "Outbound
//! HTTP and configuration"); see examples/zig/webhook.zig.
//!
//! `state` is the plugin's key-value store, granted by `state = true` in
//! the manifest (ABI.md, "State"): `state.get`, `state.set`,
//! `state.delete`, `state.increment` and `state.scan`; see
//! examples/zig/counter.zig.
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
    // Pointers as addresses (usize, an i32 here): 0 for an empty slice,
    // whose .ptr may be anything (an empty allocation's is maxInt(usize)).
    extern "wasq" fn config_get(key: usize, key_len: i32, buf: usize, buf_cap: i32) i32;
    extern "wasq" fn http_request(method: usize, method_len: i32, url: usize, url_len: i32, headers: usize, headers_len: i32, body: usize, body_len: i32, response: *[4]u32) i32;
    extern "wasq" fn http_response_read(handle: u32, headers: usize, headers_cap: i32, body: usize, body_cap: i32) i32;
    extern "wasq" fn state_get(key: usize, key_len: i32, buf: usize, buf_cap: i32) i32;
    extern "wasq" fn state_set(key: usize, key_len: i32, value: usize, value_len: i32) i32;
    extern "wasq" fn state_delete(key: usize, key_len: i32) i32;
    extern "wasq" fn state_increment(key: usize, key_len: i32, by: i64, result: *i64) i32;
    extern "wasq" fn state_scan(prefix: usize, prefix_len: i32, limit: i32, buf: usize, buf_cap: i32) i32;
};

/// Where `bytes` are, for the host: 0 when there are none.
fn address(bytes: []const u8) usize {
    return if (bytes.len == 0) 0 else @intFromPtr(bytes.ptr);
}

/// A slice's length as the ABI's i32.
fn lengthOf(bytes: []const u8) i32 {
    return @intCast(bytes.len);
}

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

/// Why `config` failed (other than the key not being set).
pub const ConfigError = error{ BadPointer, OutOfMemory };

/// The value of `key` in the manifest's [config] table, allocated with
/// `gpa` (free it), or null if the key is not set.
pub fn config(gpa: std.mem.Allocator, key: []const u8) ConfigError!?[]u8 {
    var small: [256]u8 = undefined; // most values fit: one call
    const len = host.config_get(address(key), lengthOf(key), address(&small), small.len);
    if (len == -7) return null;
    if (len < 0) return error.BadPointer;
    const value = try gpa.alloc(u8, @intCast(len));
    errdefer gpa.free(value);
    if (value.len <= small.len) {
        @memcpy(value, small[0..value.len]);
    } else if (host.config_get(address(key), lengthOf(key), address(value), len) != len) {
        return error.BadPointer; // cannot happen: [config] is fixed for a version
    }
    return value;
}

/// Why an HTTP request failed (the ABI's statuses 7-15, and 5), or
/// OutOfMemory when the response could not be stored. `isTemporary` tells
/// which are worth a retry.
pub const HttpError = error{
    /// No such response handle (the bindings read each once).
    NotFound,
    /// The URL (or a redirect) is not in allowed_outbound_hosts; nothing was sent.
    NotAllowed,
    /// No whole response within http_timeout_ms (or the handler's deadline).
    Timeout,
    /// The host name does not resolve.
    Dns,
    /// The connection was refused or failed, or the TLS handshake failed.
    Connect,
    /// The response body is longer than http_max_response_kib.
    TooLarge,
    /// A method, URL or header line the host cannot send.
    InvalidRequest,
    /// The connection broke, or the answer was not HTTP/1.x.
    Io,
    /// 16 responses not read yet.
    Busy,
    BadPointer,
    OutOfMemory,
};

/// Whether a failed request may succeed when tried again: Timeout, Dns,
/// Connect, Io, Busy and OutOfMemory are; NotAllowed, TooLarge,
/// InvalidRequest and the rest are not.
pub fn isTemporary(err: anyerror) bool {
    return switch (err) {
        error.Timeout, error.Dns, error.Connect, error.Io, error.Busy, error.OutOfMemory => true,
        else => false,
    };
}

fn httpStatus(status: i32) HttpError!void {
    return switch (status) {
        0 => {},
        5 => error.BadPointer,
        7 => error.NotFound,
        8 => error.NotAllowed,
        9 => error.Timeout,
        10 => error.Dns,
        11 => error.Connect,
        12 => error.TooLarge,
        13 => error.InvalidRequest,
        14 => error.Io,
        15 => error.Busy,
        else => error.Io, // a status this version does not know
    };
}

/// One outbound request (to a host in the manifest's allowed_outbound_hosts).
pub const Request = struct {
    /// "GET", "POST", ...
    method: []const u8 = "GET",
    /// Absolute: http:// or https://.
    url: []const u8,
    /// "Name: value" lines separated by "\n".
    headers: []const u8 = "",
    body: []const u8 = "",
};

/// A whole response; `deinit` frees it.
pub const Response = struct {
    /// The HTTP status: 200, 404, 503, ...
    status: u32,
    /// "name: value" lines separated by "\n", names in lower case.
    headers: []u8,
    body: []u8,
    gpa: std.mem.Allocator,

    pub fn deinit(self: *Response) void {
        self.gpa.free(self.headers);
        self.gpa.free(self.body);
        self.* = undefined;
    }

    /// The value of the first header called `name` (any case), without
    /// the spaces around it; null if there is none.
    pub fn header(self: Response, name: []const u8) ?[]const u8 {
        var lines = std.mem.splitScalar(u8, self.headers, '\n');
        while (lines.next()) |line| {
            const field, const value = std.mem.cutScalar(u8, line, ':') orelse continue;
            if (std.ascii.eqlIgnoreCase(std.mem.trim(u8, field, " \t"), name)) {
                return std.mem.trim(u8, value, " \t\r");
            }
        }
        return null;
    }

    /// The delay a `retry-after` header asks for, in milliseconds (at
    /// most maxInt(u32)), when it holds delta-seconds (a non-negative
    /// integer); null if there is none or it is an HTTP date.
    pub fn retryAfterMs(self: Response) ?u32 {
        const value = self.header("retry-after") orelse return null;
        if (value.len == 0) return null;
        for (value) |c| if (!std.ascii.isDigit(c)) return null;
        const seconds = std.fmt.parseInt(u64, value, 10) catch return std.math.maxInt(u32);
        return std.math.cast(u32, seconds *| 1000) orelse std.math.maxInt(u32);
    }
};

/// Sends one request and reads the whole response, whatever its HTTP
/// status (a 4xx or 5xx is the plugin's to judge). The response's buffers
/// come from `gpa`: call `deinit`.
pub fn httpRequest(gpa: std.mem.Allocator, request: Request) HttpError!Response {
    var record: [4]u32 = undefined; // handle, status, headers_len, body_len
    try httpStatus(host.http_request(
        address(request.method),
        lengthOf(request.method),
        address(request.url),
        lengthOf(request.url),
        address(request.headers),
        lengthOf(request.headers),
        address(request.body),
        lengthOf(request.body),
        &record,
    ));
    // On OutOfMemory the response stays unread: the host releases it when
    // the handler returns.
    const headers = try gpa.alloc(u8, record[2]);
    errdefer gpa.free(headers);
    const body = try gpa.alloc(u8, record[3]);
    errdefer gpa.free(body);
    try httpStatus(host.http_response_read(record[0], address(headers), lengthOf(headers), address(body), lengthOf(body)));
    return .{ .status = record[1], .headers = headers, .body = body, .gpa = gpa };
}

/// Why a state operation failed (the ABI's statuses 16-20, 14 and 5), or
/// OutOfMemory when a value could not be stored. A key with no value is
/// not an error: `state.get` returns null, `state.delete` false.
pub const StateError = error{
    /// The manifest does not set `state = true`.
    NoState,
    /// An empty key, or one longer than state_max_key_bytes.
    InvalidKey,
    /// A value longer than state_max_value_kib.
    ValueTooLarge,
    /// The plugin's keys and values would exceed state_limit_mib.
    StateFull,
    /// `state.increment` of a value that is not a decimal i64, or a sum that overflows.
    NotANumber,
    /// The store failed (disk full, damaged); the broker logs it.
    Io,
    BadPointer,
    OutOfMemory,
};

/// The error for a status other than OK (and NOT_FOUND, which callers
/// handle first).
fn stateError(status: i32) StateError {
    return switch (status) {
        5 => error.BadPointer,
        16 => error.NoState,
        17 => error.InvalidKey,
        18 => error.ValueTooLarge,
        19 => error.StateFull,
        20 => error.NotANumber,
        else => error.Io, // 14, or a status this version does not know
    };
}

fn stateStatus(status: i32) StateError!void {
    if (status != 0) return stateError(status);
}

/// The plugin's key-value store (ABI.md, "State"). Keys and values are
/// bytes; a key is 1 to state_max_key_bytes long. A handler's writes are
/// its own until it returns: they commit with `.success` and are
/// discarded with any other outcome, so on a failed write return `.retry`
/// rather than go on.
pub const state = struct {
    /// The value of `key`, allocated with `gpa` (free it), or null if the
    /// key has no value. A counter reads as its decimal text ("42").
    pub fn get(gpa: std.mem.Allocator, key: []const u8) StateError!?[]u8 {
        var small: [256]u8 = undefined; // most values fit: one call
        var len = host.state_get(address(key), lengthOf(key), address(&small), small.len);
        if (len == -7) return null;
        if (len < 0) return stateError(-len);
        if (len <= small.len) return try gpa.dupe(u8, small[0..@intCast(len)]);
        var value = try gpa.alloc(u8, @intCast(len));
        errdefer gpa.free(value);
        // Another instance may change the value between two calls: grow
        // until it fits.
        while (true) {
            len = host.state_get(address(key), lengthOf(key), address(value), lengthOf(value));
            if (len == -7) {
                gpa.free(value);
                return null;
            }
            if (len < 0) return stateError(-len);
            if (len <= value.len) return try gpa.realloc(value, @intCast(len));
            value = try gpa.realloc(value, @intCast(len));
        }
    }

    /// Sets `key` to `value` (an empty value is a value, not a deletion).
    pub fn set(key: []const u8, value: []const u8) StateError!void {
        return stateStatus(host.state_set(address(key), lengthOf(key), address(value), lengthOf(value)));
    }

    /// Removes `key`: true if it had a value, false if it had none.
    pub fn delete(key: []const u8) StateError!bool {
        const status = host.state_delete(address(key), lengthOf(key));
        if (status == 7) return false;
        try stateStatus(status);
        return true;
    }

    /// Adds `by` (negative to subtract) to the counter at `key`, a key
    /// with no value counting as 0, and returns the new value.
    /// error.NotANumber if the value is not a decimal i64 or the sum
    /// overflows.
    pub fn increment(key: []const u8, by: i64) StateError!i64 {
        var result: i64 = undefined;
        try stateStatus(host.state_increment(address(key), lengthOf(key), by, &result));
        return result;
    }

    /// One entry of a `Scan`: slices of its buffer.
    pub const Entry = struct {
        key: []const u8,
        value: []const u8,
    };

    /// The entries `scan` found, in key order (bytewise): `next` yields
    /// them, `deinit` frees them.
    pub const Scan = struct {
        /// The host's encoding: u32 key_len, u32 value_len, key, value; one
        /// entry after another.
        bytes: []u8,
        at: usize = 0,
        gpa: std.mem.Allocator,

        /// The next entry, or null after the last.
        pub fn next(self: *Scan) ?Entry {
            const rest = self.bytes[self.at..];
            if (rest.len < 8) return null;
            const key_len: usize = readU32(rest, 0);
            const value_len: usize = readU32(rest, 4);
            // Checked against the end: a malformed encoding (which the host
            // never writes) ends the scan rather than trap.
            if (key_len > rest.len - 8 or value_len > rest.len - 8 - key_len) return null;
            self.at += 8 + key_len + value_len;
            return .{ .key = rest[8..][0..key_len], .value = rest[8 + key_len ..][0..value_len] };
        }

        pub fn deinit(self: *Scan) void {
            self.gpa.free(self.bytes);
            self.* = undefined;
        }
    };

    /// Up to `limit` entries (the host gives at most 10 000) whose keys
    /// start with `prefix` ("": every key), read into a buffer from `gpa`:
    /// call `deinit`. To page through many keys, scan again with a longer
    /// prefix.
    pub fn scan(gpa: std.mem.Allocator, prefix: []const u8, limit: u32) StateError!Scan {
        const max: i32 = @intCast(@min(limit, std.math.maxInt(i32)));
        var bytes = try gpa.alloc(u8, 1024);
        errdefer gpa.free(bytes);
        while (true) {
            const len = host.state_scan(address(prefix), lengthOf(prefix), max, address(bytes), lengthOf(bytes));
            if (len < 0) return stateError(-len);
            if (len <= bytes.len) return .{ .bytes = try gpa.realloc(bytes, @intCast(len)), .gpa = gpa };
            // Nothing was written; with a buffer that large the next call
            // fits, unless the state grew meanwhile (then this loops again).
            bytes = try gpa.realloc(bytes, @intCast(len));
        }
    }
};

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

        /// The last batch's region, freed by the next alloc: the host
        /// reads the batch's outcomes after handleBatch returns, and a
        /// free before then lets the allocator write over them (ABI.md,
        /// "Batches").
        var handed_batch: ?[]u8 = null;

        fn alloc(size: i32) callconv(.c) ?[*]u8 {
            if (handed_batch) |batch| allocator.free(batch);
            handed_batch = null;
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
            defer handed_batch = bytes;
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
