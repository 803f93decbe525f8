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

@external("wasq", "log")
declare function hostLog(level: i32, ptr: usize, len: i32): i32;

@external("wasq", "publish")
declare function hostPublish(topicPtr: usize, topicLen: i32, bodyPtr: usize, bodyLen: i32): i32;

@external("wasq", "publish_deferred")
declare function hostPublishDeferred(topicPtr: usize, topicLen: i32, bodyPtr: usize, bodyLen: i32, delayMs: i64): i32;

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

/** Statuses of publish, publishDeferred and log. */
export namespace Status {
  export const OK: i32 = 0;
  export const FORBIDDEN: i32 = 1;
  export const INVALID_TOPIC: i32 = 2;
  export const INVALID_BODY: i32 = 3;
  export const INVALID_DELAY: i32 = 4;
  export const BAD_POINTER: i32 = 5;
  export const UNAVAILABLE: i32 = 6;
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
