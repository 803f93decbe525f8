// AssemblyScript bindings for Wasq plugins (ABI version 1, see ../ABI.md).
//
// A plugin registers its handler and re-exports the ABI functions:
//
//   import { Message, Outcome, handle, publish } from "<path>/guest-sdk/assemblyscript/wasq";
//   export { wasq_abi_version, wasq_alloc, wasq_handle, wasq_handle_batch } from "<path>/guest-sdk/assemblyscript/wasq";
//   handle((message: Message): i64 => { ...; return Outcome.SUCCESS; });
//
// (`wasq_handle_batch` is optional: without it the host calls wasq_handle
// once per message; with it, many messages per call, which is faster.)
//
// Build (the default incremental runtime frees memory; `--use abort=` drops
// the `env.abort` import the host does not provide):
//
//   asc NAME.ts --outFile NAME.wasm --optimize --use abort=
//
// AssemblyScript strings are UTF-16: the ABI passes bytes, so topics are
// encoded to UTF-8 before they reach the host, and the body is bytes.
//
// configGet reads the manifest's [config] table and httpRequest sends an
// outbound request to a host in allowed_outbound_hosts (ABI.md, "Outbound
// HTTP and configuration"); see examples/assemblyscript/webhook.ts.
//
// stateGet, stateSet, stateDelete, stateIncrement and stateScan use the
// plugin's key-value store, granted by `state = true` in the manifest
// (ABI.md, "State"); a key or value is a string (its UTF-8) or a
// Uint8Array (bytes as they are). See examples/assemblyscript/counter.ts.

@external("wasq", "log")
declare function hostLog(level: i32, ptr: usize, len: i32): i32;

@external("wasq", "publish")
declare function hostPublish(topicPtr: usize, topicLen: i32, bodyPtr: usize, bodyLen: i32): i32;

@external("wasq", "publish_deferred")
declare function hostPublishDeferred(topicPtr: usize, topicLen: i32, bodyPtr: usize, bodyLen: i32, delayMs: i64): i32;

@external("wasq", "config_get")
declare function hostConfigGet(keyPtr: usize, keyLen: i32, bufPtr: usize, bufCap: i32): i32;

@external("wasq", "http_request")
declare function hostHttpRequest(
  methodPtr: usize, methodLen: i32, urlPtr: usize, urlLen: i32, headersPtr: usize, headersLen: i32,
  bodyPtr: usize, bodyLen: i32, responsePtr: usize,
): i32;

@external("wasq", "http_response_read")
declare function hostHttpResponseRead(handle: u32, headersPtr: usize, headersCap: i32, bodyPtr: usize, bodyCap: i32): i32;

@external("wasq", "state_get")
declare function hostStateGet(keyPtr: usize, keyLen: i32, bufPtr: usize, bufCap: i32): i32;

@external("wasq", "state_set")
declare function hostStateSet(keyPtr: usize, keyLen: i32, valuePtr: usize, valueLen: i32): i32;

@external("wasq", "state_delete")
declare function hostStateDelete(keyPtr: usize, keyLen: i32): i32;

@external("wasq", "state_increment")
declare function hostStateIncrement(keyPtr: usize, keyLen: i32, by: i64, resultPtr: usize): i32;

@external("wasq", "state_scan")
declare function hostStateScan(prefixPtr: usize, prefixLen: i32, limit: i32, bufPtr: usize, bufCap: i32): i32;

/** One message as the broker delivered it. The bindings fill the same
 * Message for each message (valid while the handler runs); `body` is a
 * copy, yours to keep. */
export class Message {
  /** 1 on the first delivery, +1 on each redelivery. */
  attempts: u16 = 0;
  /** Nanoseconds since the Unix epoch, when it was published. */
  timestamp: i64 = 0;
  /** The id's 16 bytes, kept as two words: most handlers never read it,
   * so it is made into a string only when asked for (`id`). */
  idLow: u64 = 0;
  idHigh: u64 = 0;
  /** The 16-byte id, as text (Wasq's ids are hex digits). */
  get id(): string {
    const bytes = new ArrayBuffer(16);
    store<u64>(changetype<usize>(bytes), this.idLow);
    store<u64>(changetype<usize>(bytes), this.idHigh, 8);
    return String.UTF8.decode(bytes);
  }
  topic: string = "";
  channel: string = "";
  /** Where the body lies in the message region, until it is copied. */
  bodyPtr: usize = 0;
  bodyLen: usize = 0;
  bodyCopy: Uint8Array | null = null;
  /** The body: a copy, yours to keep, made when first read (a handler
   * that never reads it costs no copy). */
  get body(): Uint8Array {
    let copy = this.bodyCopy;
    if (copy == null) {
      copy = new Uint8Array(<i32>this.bodyLen);
      memory.copy(copy.dataStart, this.bodyPtr, this.bodyLen);
      this.bodyCopy = copy;
    }
    return copy;
  }
}

/** What the handler returns: the ABI's outcome (code low, argument high). */
export namespace Outcome {
  /** FIN. */
  export const SUCCESS: i64 = 0;
  /** REQ with the broker's backoff; dead-lettered after max_attempts. */
  export const RETRY: i64 = 1;
  /** Publish the body unchanged to the dead-letter topic, then FIN. */
  export const FATAL: i64 = 3;
  /** REQ after `delayMs` milliseconds. */
  export function retryAfter(delayMs: u32): i64 {
    return ((<i64>delayMs) << 32) | 2;
  }
}

/** Statuses of publish, publishDeferred and log (0-6), of httpRequest (7-15),
 * and of the state functions (7, 14, 16-20). */
export namespace Status {
  export const OK: i32 = 0;
  export const FORBIDDEN: i32 = 1;
  export const INVALID_TOPIC: i32 = 2;
  export const INVALID_BODY: i32 = 3;
  export const INVALID_DELAY: i32 = 4;
  export const BAD_POINTER: i32 = 5;
  export const UNAVAILABLE: i32 = 6;
  /** No such [config] key, no such response handle, or a state key with no value. */
  export const NOT_FOUND: i32 = 7;
  /** The URL (or a redirect) is not in allowed_outbound_hosts; nothing was sent. */
  export const NOT_ALLOWED: i32 = 8;
  /** No whole response within http_timeout_ms (or the handler's deadline). */
  export const TIMEOUT: i32 = 9;
  /** The host name does not resolve. */
  export const DNS: i32 = 10;
  /** The connection was refused or failed, or the TLS handshake failed. */
  export const CONNECT: i32 = 11;
  /** The response body is longer than http_max_response_kib. */
  export const TOO_LARGE: i32 = 12;
  /** A method, URL or header line the host cannot send. */
  export const INVALID_REQUEST: i32 = 13;
  /** The connection broke, or the answer was not HTTP/1.x; or the state
   * store failed (disk full, damaged). */
  export const IO: i32 = 14;
  /** 16 responses not read yet. */
  export const BUSY: i32 = 15;
  /** The manifest does not set `state = true`. */
  export const NO_STATE: i32 = 16;
  /** An empty state key, or one longer than state_max_key_bytes. */
  export const INVALID_KEY: i32 = 17;
  /** A state value longer than state_max_value_kib. */
  export const VALUE_TOO_LARGE: i32 = 18;
  /** The plugin's state would exceed state_limit_mib. */
  export const STATE_FULL: i32 = 19;
  /** stateIncrement of a value that is not a decimal i64, or a sum that overflows. */
  export const NOT_A_NUMBER: i32 = 20;
}

/** A Status's name ("TIMEOUT", ...), for logs. */
export function statusName(status: i32): string {
  const names: string[] = [
    "OK", "FORBIDDEN", "INVALID_TOPIC", "INVALID_BODY", "INVALID_DELAY", "BAD_POINTER", "UNAVAILABLE",
    "NOT_FOUND", "NOT_ALLOWED", "TIMEOUT", "DNS", "CONNECT", "TOO_LARGE", "INVALID_REQUEST", "IO", "BUSY",
    "NO_STATE", "INVALID_KEY", "VALUE_TOO_LARGE", "STATE_FULL", "NOT_A_NUMBER",
  ];
  return status >= 0 && status < names.length ? names[status] : "UNKNOWN";
}

/** Whether a failed request may succeed when tried again: TIMEOUT, DNS,
 * CONNECT, IO and BUSY are; NOT_ALLOWED, TOO_LARGE, INVALID_REQUEST and the
 * others are not. */
export function isTemporary(status: i32): bool {
  return status == Status.TIMEOUT || status == Status.DNS || status == Status.CONNECT ||
    status == Status.IO || status == Status.BUSY;
}

export namespace Level {
  export const DEBUG: i32 = 0;
  export const INFO: i32 = 1;
  export const WARN: i32 = 2;
  export const ERROR: i32 = 3;
}

/** Publishes `body` to `topic` (listed under `publish` in the manifest); returns a Status. */
export function publish(topic: string, body: Uint8Array): i32 {
  const t = String.UTF8.encode(topic);
  return hostPublish(changetype<usize>(t), t.byteLength, body.dataStart, body.byteLength);
}

/** DPUB: `body` reaches `topic` after `delayMs`; returns a Status. */
export function publishDeferred(topic: string, body: Uint8Array, delayMs: i64): i32 {
  const t = String.UTF8.encode(topic);
  return hostPublishDeferred(changetype<usize>(t), t.byteLength, body.dataStart, body.byteLength, delayMs);
}

/** Logs a line under the plugin's name. */
export function log(level: i32, text: string): void {
  const b = String.UTF8.encode(text);
  hostLog(level, changetype<usize>(b), b.byteLength);
}

/** Where `len` bytes at `ptr` are, for the host: 0 when there are none. */
function at(ptr: usize, len: i32): usize {
  return len == 0 ? 0 : ptr;
}

/** The value of `key` in the manifest's [config] table, or null if it is not set. */
export function configGet(key: string): string | null {
  const k = String.UTF8.encode(key);
  let buffer = new ArrayBuffer(256); // most values fit: one call
  const len = hostConfigGet(at(changetype<usize>(k), k.byteLength), k.byteLength, changetype<usize>(buffer), 256);
  if (len < 0) return null;
  if (len > 256) {
    buffer = new ArrayBuffer(len);
    if (hostConfigGet(changetype<usize>(k), k.byteLength, changetype<usize>(buffer), len) != len) return null;
  }
  return String.UTF8.decodeUnsafe(changetype<usize>(buffer), <usize>len);
}

/** What httpRequest returns: a whole response when `status` is Status.OK,
 * else why there is none (Status.TIMEOUT, Status.NOT_ALLOWED, ...). */
export class HttpResponse {
  /** The import's Status: OK, or why the request failed. */
  status: i32 = Status.OK;
  /** The HTTP status (200, 404, 503, ...); 0 when `status` is not OK. */
  httpStatus: i32 = 0;
  /** "name: value" lines separated by "\n", names in lower case. */
  headers: string = "";
  body: Uint8Array = new Uint8Array(0);

  /** The value of the first header called `name` (any case), without the
   * spaces around it; null if there is none. */
  header(name: string): string | null {
    const wanted = name.toLowerCase();
    const lines = this.headers.split("\n");
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      const colon = line.indexOf(":");
      if (colon >= 0 && line.substring(0, colon).trim().toLowerCase() == wanted) {
        return line.substring(colon + 1).trim();
      }
    }
    return null;
  }

  /** The delay a `retry-after` header asks for, in milliseconds (at most
   * 2^32-1), when it holds delta-seconds (a non-negative integer); -1 if
   * there is none or it is an HTTP date. */
  retryAfterMs(): i64 {
    const value = this.header("retry-after");
    if (value == null || value.length == 0) return -1;
    let seconds: u64 = 0;
    for (let i = 0; i < value.length; i++) {
      const c = value.charCodeAt(i);
      if (c < 48 || c > 57) return -1;
      if (seconds <= <u64>u32.MAX_VALUE) seconds = seconds * 10 + <u64>(c - 48);
    }
    const ms = seconds * 1000;
    return ms > <u64>u32.MAX_VALUE ? <i64>u32.MAX_VALUE : <i64>ms;
  }
}

/** Sends one request (`method` "GET", "POST", ...; `url` absolute, to a
 * host in allowed_outbound_hosts; `headers` "Name: value" lines separated
 * by "\n") and reads the whole response, whatever its HTTP status (a 4xx or
 * 5xx is the plugin's to judge). Check `status` first: it is Status.OK
 * when there is a response. */
export function httpRequest(method: string, url: string, headers: string = "", body: Uint8Array | null = null): HttpResponse {
  // The 16-byte record http_request writes: handle, status, headers_len,
  // body_len (static: one request at a time).
  const record = memory.data(16, 4);
  const response = new HttpResponse();
  const m = String.UTF8.encode(method);
  const u = String.UTF8.encode(url);
  const h = String.UTF8.encode(headers);
  const bodyPtr = body != null ? at(body.dataStart, body.byteLength) : 0;
  const bodyLen = body != null ? body.byteLength : 0;
  response.status = hostHttpRequest(
    at(changetype<usize>(m), m.byteLength), m.byteLength, at(changetype<usize>(u), u.byteLength), u.byteLength,
    at(changetype<usize>(h), h.byteLength), h.byteLength, bodyPtr, bodyLen, record,
  );
  if (response.status != Status.OK) return response;
  const head = new ArrayBuffer(<i32>load<u32>(record, 8));
  const data = new Uint8Array(<i32>load<u32>(record, 12));
  const httpStatus = <i32>load<u32>(record, 4);
  response.status = hostHttpResponseRead(
    load<u32>(record), at(changetype<usize>(head), head.byteLength), head.byteLength,
    at(data.dataStart, data.byteLength), data.byteLength,
  );
  if (response.status != Status.OK) return response;
  response.httpStatus = httpStatus;
  response.headers = String.UTF8.decode(head);
  response.body = data;
  return response;
}

/** A state key or value as bytes: a string's UTF-8, or a Uint8Array as it is. */
function stateBytes<T>(data: T): Uint8Array {
  if (isString<T>()) {
    return Uint8Array.wrap(String.UTF8.encode(changetype<string>(data)));
  } else if (data instanceof Uint8Array) {
    return changetype<Uint8Array>(data);
  } else {
    ERROR("a state key or value is a string or a Uint8Array");
    return unreachable();
  }
}

/** `len` bytes of `buffer` in a Uint8Array of their own (so its `.buffer`
 * holds just them). */
function ownBytes(buffer: ArrayBuffer, offset: i32, len: i32): Uint8Array {
  return Uint8Array.wrap(offset == 0 && len == buffer.byteLength ? buffer : buffer.slice(offset, offset + len));
}

/** What stateGet returns: the value when `status` is Status.OK;
 * Status.NOT_FOUND when the key has none, or why it could not be read. */
export class StateValue {
  status: i32 = Status.OK;
  /** The value's bytes, yours to keep; empty unless `status` is OK. */
  value: Uint8Array = new Uint8Array(0);
  /** The value as UTF-8 text (a counter reads as its decimal text, "42"). */
  get text(): string {
    return String.UTF8.decodeUnsafe(this.value.dataStart, <usize>this.value.byteLength);
  }
}

/** What stateIncrement returns: the counter's new value when `status` is Status.OK. */
export class StateCount {
  status: i32 = Status.OK;
  value: i64 = 0;
}

/** One entry of a StateScan: a key and its value, each a copy of its own. */
export class StateEntry {
  key: Uint8Array = new Uint8Array(0);
  value: Uint8Array = new Uint8Array(0);
}

/** What stateScan returns: the entries in key order (bytewise) when
 * `status` is Status.OK, else why there are none. */
export class StateScan {
  status: i32 = Status.OK;
  entries: StateEntry[] = [];
}

// The state functions: a key is 1 to state_max_key_bytes bytes. A
// handler's writes are its own until it returns: they commit with
// Outcome.SUCCESS and are discarded with any other outcome, so on a failed
// write return Outcome.RETRY rather than go on.

/** The value of `key` (a string or a Uint8Array); check `status` first:
 * Status.NOT_FOUND when the key has no value. */
export function stateGet<K>(key: K): StateValue {
  const k = stateBytes(key);
  const result = new StateValue();
  let buffer = new ArrayBuffer(256); // most values fit: one call
  let len = hostStateGet(at(k.dataStart, k.byteLength), k.byteLength, changetype<usize>(buffer), buffer.byteLength);
  // Another instance may change the value between two calls: grow until it fits.
  while (len > buffer.byteLength) {
    buffer = new ArrayBuffer(len);
    len = hostStateGet(at(k.dataStart, k.byteLength), k.byteLength, changetype<usize>(buffer), len);
  }
  if (len < 0) {
    result.status = -len;
  } else {
    result.value = ownBytes(buffer, 0, len);
  }
  return result;
}

/** Sets `key` to `value` (each a string or a Uint8Array; an empty value
 * is a value, not a deletion); returns a Status. */
export function stateSet<K, V>(key: K, value: V): i32 {
  const k = stateBytes(key);
  const v = stateBytes(value);
  return hostStateSet(at(k.dataStart, k.byteLength), k.byteLength, at(v.dataStart, v.byteLength), v.byteLength);
}

/** Removes `key`: returns Status.OK if it had a value, Status.NOT_FOUND if
 * it had none (neither is a failure), or why it could not. */
export function stateDelete<K>(key: K): i32 {
  const k = stateBytes(key);
  return hostStateDelete(at(k.dataStart, k.byteLength), k.byteLength);
}

/** Adds `by` (negative to subtract) to the counter at `key`, a key with no
 * value counting as 0; check `status` first (Status.NOT_A_NUMBER if the
 * value is not a decimal i64 or the sum overflows), then `value` is the
 * new value. */
export function stateIncrement<K>(key: K, by: i64): StateCount {
  // The 8 bytes state_increment writes (static: one call at a time).
  const slot = memory.data(8, 8);
  const k = stateBytes(key);
  const result = new StateCount();
  result.status = hostStateIncrement(at(k.dataStart, k.byteLength), k.byteLength, by, slot);
  if (result.status == Status.OK) result.value = load<i64>(slot);
  return result;
}

/** Up to `limit` entries (the host gives at most 10 000) whose keys start
 * with `prefix` (a string or a Uint8Array; "" for every key); check
 * `status` first. To page through many keys, scan again with a longer
 * prefix. */
export function stateScan<P>(prefix: P, limit: i32): StateScan {
  const p = stateBytes(prefix);
  const result = new StateScan();
  let buffer = new ArrayBuffer(1024);
  let len = hostStateScan(at(p.dataStart, p.byteLength), p.byteLength, limit, changetype<usize>(buffer), buffer.byteLength);
  // Nothing was written when it did not fit; with a buffer that large the
  // next call fits, unless the state grew meanwhile (then this loops again).
  while (len > buffer.byteLength) {
    buffer = new ArrayBuffer(len);
    len = hostStateScan(at(p.dataStart, p.byteLength), p.byteLength, limit, changetype<usize>(buffer), len);
  }
  if (len < 0) {
    result.status = -len;
    return result;
  }
  // Records of u32 key_len, u32 value_len, key, value; each length is
  // checked against the end (the host's encoding never fails it).
  const base = changetype<usize>(buffer);
  let offset: u32 = 0;
  while (<u32>len - offset >= 8) {
    const keyLen = load<u32>(base + offset);
    const valueLen = load<u32>(base + offset, 4);
    const rest = <u32>len - offset - 8;
    if (keyLen > rest || valueLen > rest - keyLen) break;
    const entry = new StateEntry();
    entry.key = ownBytes(buffer, <i32>(offset + 8), <i32>keyLen);
    entry.value = ownBytes(buffer, <i32>(offset + 8 + keyLen), <i32>valueLen);
    result.entries.push(entry);
    offset += 8 + keyLen + valueLen;
  }
  return result;
}

let handler: ((message: Message) => i64) | null = null;

/** Registers the plugin's handler (top-level code of the plugin). */
export function handle(h: (message: Message) => i64): void {
  handler = h;
}

export function wasq_abi_version(): i32 {
  return 1;
}

/** The region handed to the host, in unmanaged memory (the collector leaves
 * it alone) and reused message after message, grown when a message needs
 * more: the host calls an instance with one message at a time, and parse
 * copies out what the handler may keep. */
let scratch: usize = 0;
let scratchSize: usize = 0;

export function wasq_alloc(size: i32): usize {
  if (size <= 0) return 0;
  if (<usize>size > scratchSize) {
    scratch = scratch == 0 ? heap.alloc(<usize>size) : heap.realloc(scratch, <usize>size);
    scratchSize = <usize>size;
  }
  return scratch;
}

/** Parses the message at ptr..ptr+len and calls the handler. */
function run(ptr: usize, len: i32): i64 {
  if (!parseInto(current, ptr, len)) {
    log(Level.ERROR, "wasq.ts: malformed message header");
    return Outcome.RETRY;
  }
  const h = handler;
  if (h == null) {
    log(Level.ERROR, "wasq.ts: no handler registered (call handle())");
    return Outcome.RETRY;
  }
  return h(current);
}

export function wasq_handle(ptr: usize, len: i32): i64 {
  return run(ptr, len);
}

/** Many messages in one call (ABI.md, "Batches"): entry i of the table at
 * ptr is 16 bytes, the outcome (written here, as soon as it is known) then
 * the message's offset and length. */
export function wasq_handle_batch(ptr: usize, len: i32, count: i32): void {
  if (len < 0 || count < 0 || <usize>count > <usize>len / 16) {
    log(Level.ERROR, "wasq.ts: malformed batch");
    return;
  }
  for (let i: usize = 0; i < <usize>count; i++) {
    const entry = ptr + i * 16;
    const offset = <usize>load<u32>(entry, 8);
    const size = <usize>load<u32>(entry, 12);
    let outcome: i64 = Outcome.RETRY;
    if (offset <= <usize>len && size <= <usize>len - offset) {
      outcome = run(ptr + offset, <i32>size);
    }
    store<i64>(entry, outcome);
  }
}

/** A name decoded once: the topic and channel of a plugin's messages do not change. */
class LastName {
  bytes: ArrayBuffer = new ArrayBuffer(0);
  decoded: string = "";

  /** The `len` UTF-8 bytes at `ptr` as a string; the same string as last time if they are the same bytes. */
  text(ptr: usize, len: usize): string {
    if (<usize>this.bytes.byteLength != len || memory.compare(changetype<usize>(this.bytes), ptr, len) != 0) {
      this.bytes = new ArrayBuffer(<i32>len);
      memory.copy(changetype<usize>(this.bytes), ptr, len);
      this.decoded = String.UTF8.decodeUnsafe(ptr, len);
    }
    return this.decoded;
  }
}

const lastTopic = new LastName();
const lastChannel = new LastName();

/** The Message handed to the handler, filled anew for each message: one
 * managed allocation fewer per message. */
const current = new Message();

/** Reads the ABI's message layout at ptr..ptr+len into a new Message; null if malformed. */
export function parse(ptr: usize, len: i32): Message | null {
  const m = new Message();
  if (!parseInto(m, ptr, len)) return null;
  m.bodyCopy = m.body; // copied now: this Message outlives the region
  return m;
}

/** Reads the ABI's message layout at ptr..ptr+len into m; false if malformed. */
function parseInto(m: Message, ptr: usize, len: i32): bool {
  if (len < 48) return false;
  const header = <usize>load<u32>(ptr);
  const topicLen = <usize>load<u32>(ptr, 32);
  const channelLen = <usize>load<u32>(ptr, 36);
  const bodyLen = <usize>load<u32>(ptr, 40);
  if (header < 48 || header > <usize>len) return false;
  if (topicLen + channelLen + bodyLen != <usize>len - header) return false;
  const data = ptr + header;
  m.attempts = load<u16>(ptr, 4);
  m.timestamp = load<i64>(ptr, 8);
  m.idLow = load<u64>(ptr, 16);
  m.idHigh = load<u64>(ptr, 24);
  m.topic = lastTopic.text(data, topicLen);
  m.channel = lastChannel.text(data + topicLen, channelLen);
  m.bodyPtr = data + topicLen + channelLen;
  m.bodyLen = bodyLen;
  m.bodyCopy = null;
  return true;
}
