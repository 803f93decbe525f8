// uppercase in JavaScript: publishes each body of `words`, ASCII letters
// uppercased (every other byte unchanged), to `words.upper.js`.
import { log, publish } from "wasq:plugin/host@1.3.0";
import { handleEach } from "../../guest-sdk/js/batch.js";

export function handle(message) {
  const upper = message.body.map((b) => (b >= 0x61 && b <= 0x7a ? b - 0x20 : b));
  try {
    publish("words.upper.js", upper);
  } catch (e) {
    log("warn", `cannot publish to words.upper.js: ${e.payload ?? e}`);
    throw { tag: "retry" };
  }
}

// Many messages per call (world batch-consumer), each to `handle`.
export const handleBatch = handleEach(handle);
