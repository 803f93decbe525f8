// {{name}}: consumes `{{name}}` and publishes each body, its ASCII letters
// uppercased, to `{{name}}.upper`. Built into a component of the WIT world
// in wit/ (throw { tag: "retry" } or { tag: "fatal" } to not finish).
import { log, publish } from "wasq:plugin/host@1.3.0";
import { handleEach } from "./wasq-batch.js";

export function handle(message) {
  const upper = message.body.map((b) => (b >= 0x61 && b <= 0x7a ? b - 0x20 : b));
  try {
    publish("{{name}}.upper", upper);
  } catch (e) {
    log("warn", `cannot publish to {{name}}.upper: ${e.payload ?? e}`);
    throw { tag: "retry" };
  }
}

// Many messages per call (world batch-consumer), each to `handle`.
export const handleBatch = handleEach(handle);
