// flaky in JavaScript: consumes `jobs`. A body containing "fail" asks to be
// retried (so after the manifest's max_attempts it is dead-lettered); any
// other body is published to `jobs.done.js`.
import { log, publish } from "wasq:plugin/host@1.3.0";
import { handleEach } from "../../guest-sdk/js/batch.js";

const FAIL = [0x66, 0x61, 0x69, 0x6c]; // "fail"

function containsFail(body) {
  for (let i = 0; i + FAIL.length <= body.length; i++) {
    if (FAIL.every((b, j) => body[i + j] === b)) return true;
  }
  return false;
}

export function handle(message) {
  if (containsFail(message.body)) {
    const id = String.fromCharCode(...message.id);
    log("info", `job ${id} failed (attempt ${message.attempts})`);
    throw { tag: "retry" };
  }
  try {
    publish("jobs.done.js", message.body);
  } catch (e) {
    throw { tag: "retry" };
  }
}

// Many messages per call (world batch-consumer), each to `handle`.
export const handleBatch = handleEach(handle);
