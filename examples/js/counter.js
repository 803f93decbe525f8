// counter in JavaScript: counts the messages of each body in the plugin's
// state (the key `count/BODY`), and every `[config] every` (default 10)
// of one body publishes `BODY COUNT` to `[config] output` (default
// `counts`). The count commits with the message's FIN, so a message is
// counted once however often it is delivered. A state or publish error is
// logged and retried.
//
// Manifest: state = true, publish = ["counts"] (or the output topic).
import { getConfig, log, publish } from "wasq:plugin/host@1.3.0";
import * as state from "wasq:plugin/state@1.3.0";
import { handleEach } from "../../guest-sdk/js/batch.js";

const encoder = new TextEncoder();

export function handle(message) {
  const every = configNumber("every", "10", 1n);
  const output = getConfig("output") ?? "counts";
  // A refusal throws a ComponentError whose payload is the state-error
  // variant: { tag: "full" }, { tag: "io", val: "why" }, …
  let count;
  try {
    count = state.increment(concat(encoder.encode("count/"), message.body), 1n);
  } catch (e) {
    log("warn", `counter: state: ${describe(e)}`);
    throw { tag: "retry" };
  }
  if (count % every !== 0n) return;
  try {
    publish(output, concat(message.body, encoder.encode(` ${count}`)));
  } catch (e) {
    log("warn", `counter: cannot publish to ${output}: ${describe(e)}`);
    throw { tag: "retry" };
  }
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
