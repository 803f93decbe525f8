// dedup in JavaScript: passes on each JSON object body `{"id": …, …}` to
// `[config] output` (default `unique`) unless a message with the same id
// went through less than `[config] ttl_ms` (default 60000) ms before, by
// the messages' timestamps. The id is a string or a number (its text as
// written: 1.50 stays "1.50"); the plugin's state keeps `seen/ID` = the
// time in ms it went through. A body without an id dead-letters; a state
// or publish error is logged and retried.
//
// Manifest: state = true, publish = ["unique"] (or the output topic).
import { getConfig, log, publish } from "wasq:plugin/host@1.3.0";
import * as state from "wasq:plugin/state@1.3.0";
import { handleEach } from "../../guest-sdk/js/batch.js";

const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const lenient = new TextDecoder("utf-8", { ignoreBOM: true });
const encoder = new TextEncoder();

// A number in the body, as written.
class JsonNumber {
  constructor(text) {
    this.text = text;
  }
}

export function handle(message) {
  const ttlMs = configNumber("ttl_ms", "60000", -(2n ** 63n)); // < 1: no dedup
  const output = getConfig("output") ?? "unique";
  const id = idOf(message.body);
  const nowMs = message.timestamp / 1_000_000n; // timestamp: BigInt nanoseconds
  const key = encoder.encode(`seen/${id}`);
  try {
    // get: undefined when the key has no value, else a Uint8Array.
    const seen = state.get(key);
    const seenMs = seen === undefined ? undefined : parseS64(lenient.decode(seen));
    if (seenMs !== undefined && nowMs - seenMs < ttlMs) return;
    state.set(key, encoder.encode(`${nowMs}`));
  } catch (e) {
    // A ComponentError whose payload is the state-error variant:
    // { tag: "full" }, { tag: "io", val: "why" }, …
    log("warn", `dedup: state: ${describe(e)}`);
    throw { tag: "retry" };
  }
  try {
    publish(output, message.body);
  } catch (e) {
    log("warn", `dedup: cannot publish to ${output}: ${describe(e)}`);
    throw { tag: "retry" };
  }
}

// The body's top-level "id", a string or a number's source text; a body
// that is not a JSON object with one dead-letters.
function idOf(body) {
  let document;
  try {
    // The reviver keeps numbers as written (JSON.parse source text access).
    document = JSON.parse(strict.decode(body), (_key, value, context) =>
      typeof value === "number" ? new JsonNumber(context.source) : value,
    );
  } catch (e) {
    throw { tag: "fatal", val: `body is not JSON: ${e}` };
  }
  const isObject = typeof document === "object" && document !== null && !Array.isArray(document);
  const id = isObject && Object.hasOwn(document, "id") ? document.id : undefined;
  if (typeof id === "string" && id.isWellFormed()) return id; // no lone surrogate
  if (id instanceof JsonNumber) return id.text;
  throw { tag: "fatal", val: 'body is not a JSON object with an "id" (a string or a number)' };
}

// `[config] key` (or `fallback`) as a decimal integer of at least `min`
// (a BigInt, as s64s are). Anything else is the manifest's mistake, not
// the message's: logged, and the message retried.
function configNumber(key, fallback, min) {
  const text = getConfig(key) ?? fallback;
  const value = parseS64(text);
  if (value === undefined || value < min) {
    log("warn", `[config] ${key} = "${text}": not an integer >= ${min}`);
    throw { tag: "retry" };
  }
  return value;
}

// A decimal s64 ("42", "-7", "+3") as a BigInt, or undefined.
function parseS64(text) {
  if (!/^[+-]?[0-9]+$/.test(text)) return undefined;
  const value = BigInt(text);
  return value >= -(2n ** 63n) && value < 2n ** 63n ? value : undefined;
}

// A host error's variant or enum as text ("io: disk full", "forbidden").
function describe(error) {
  const payload = error?.payload;
  if (typeof payload === "string") return payload;
  if (payload?.tag === undefined) return String(error);
  return payload.val === undefined ? payload.tag : `${payload.tag}: ${payload.val}`;
}

// Many messages per call (world batch-consumer), each to `handle`.
export const handleBatch = handleEach(handle);
