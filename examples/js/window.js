// window in JavaScript: sums readings over tumbling windows of
// `[config] window_ms` (default 10000) ms, by the messages' timestamps,
// and publishes `START SUM` to `[config] output` (default `sums`) once a
// window is over. A reading is a body holding a decimal integer; it adds
// to the state key `sum/START`, where START is its window's start in ms.
// The first reading of a window also sets `timer/START` and publishes
// `tick START` back to the consumed topic, deferred until the window
// ends: handling that tick publishes the sum and deletes both keys.
// A body that is neither dead-letters; a state or publish error is logged
// and retried (the call's state writes are then discarded, so nothing is
// added twice).
//
// Manifest: state = true, publish = ["sums", and the consumed topic].
import { getConfig, log, publish, publishDeferred } from "wasq:plugin/host@1.3.0";
import * as state from "wasq:plugin/state@1.3.0";
import { handleEach } from "../../guest-sdk/js/batch.js";

const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
const encoder = new TextEncoder();
const TICK = encoder.encode("tick ");

export function handle(message) {
  // It bounds publish-deferred's delay, a u32 that componentize-js 0.23
  // passes wrongly from 2^31 up: at most 2^31 - 1, as in window.py (the
  // broker refuses a delay above --max-req-timeout, 1 h by default, anyway).
  const windowMs = configNumber("window_ms", "10000", 1n, 0x7fff_ffffn);
  const output = getConfig("output") ?? "sums";
  if (startsWith(message.body, TICK)) {
    tick(message.body.subarray(TICK.length), output);
  } else {
    reading(message, windowMs);
  }
}

// The window starting at `start` (its text from the tick) is over.
function tick(start, output) {
  if (parseS64(decoder.decode(start)) === undefined) {
    throw { tag: "fatal", val: "a tick without a window start" };
  }
  const sumKey = concat(encoder.encode("sum/"), start);
  // get: undefined when the key has no value, else a Uint8Array.
  const sum = stateCall(() => state.get(sumKey));
  if (sum !== undefined) {
    publishOrRetry(output, concat(start, concat(encoder.encode(" "), sum)));
    stateCall(() => state.delete(sumKey)); // true: it had a value
  }
  stateCall(() => state.delete(concat(encoder.encode("timer/"), start)));
}

function reading(message, windowMs) {
  const value = parseS64(decoder.decode(message.body));
  if (value === undefined) {
    throw { tag: "fatal", val: "body is neither a decimal integer nor a tick" };
  }
  const t = message.timestamp / 1_000_000n; // timestamp: BigInt nanoseconds
  const start = t - (((t % windowMs) + windowMs) % windowMs); // % rounds toward 0
  add(encoder.encode(`sum/${start}`), value);
  const timerKey = encoder.encode(`timer/${start}`);
  if (stateCall(() => state.get(timerKey)) === undefined) {
    stateCall(() => state.set(timerKey, encoder.encode("1")));
    let delay = start + windowMs - t;
    if (delay < 0n) delay = 0n;
    publishOrRetry(message.topic, encoder.encode(`tick ${start}`), Number(delay));
  }
}

// Adds `amount` to the counter at `key`. componentize-js 0.23 traps on a
// negative s64 argument to an import (ComponentizeJS issue 343), so a
// negative amount is added by get and set, which commit the same way.
function add(key, amount) {
  if (amount >= 0n) {
    stateCall(() => state.increment(key, amount));
    return;
  }
  const old = stateCall(() => state.get(key));
  const current = old === undefined ? 0n : parseS64(decoder.decode(old));
  if (current === undefined || current + amount < -(2n ** 63n)) {
    log("warn", "window: state: not-a-number"); // as increment refuses
    throw { tag: "retry" };
  }
  stateCall(() => state.set(key, encoder.encode(`${current + amount}`)));
}

// Runs a state operation. A refusal throws a ComponentError whose payload
// is the state-error variant ({ tag: "full" }, { tag: "io", val: "why" },
// …): logged, and the message retried.
function stateCall(operation) {
  try {
    return operation();
  } catch (e) {
    log("warn", `window: state: ${describe(e)}`);
    throw { tag: "retry" };
  }
}

// Publishes now, or after `delayMs` when given; a refusal retries.
function publishOrRetry(topic, body, delayMs) {
  try {
    if (delayMs === undefined) publish(topic, body);
    else publishDeferred(topic, body, delayMs);
  } catch (e) {
    log("warn", `window: cannot publish to ${topic}: ${describe(e)}`);
    throw { tag: "retry" };
  }
}

// `[config] key` (or `fallback`) as a decimal integer in min..=max (a
// BigInt, as s64s are). Anything else is the manifest's mistake, not the
// message's: logged, and the message retried.
function configNumber(key, fallback, min, max) {
  const text = getConfig(key) ?? fallback;
  const value = parseS64(text);
  if (value === undefined || value < min || value > max) {
    log("warn", `[config] ${key} = "${text}": not an integer in ${min}..=${max}`);
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

function startsWith(bytes, prefix) {
  return bytes.length >= prefix.length && prefix.every((b, i) => bytes[i] === b);
}

function concat(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
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
