// handle-batch for JavaScript components of a `batch-consumer` world (WIT
// 1.3.0): many messages per call, each handed to the plugin's own
// `handle` and its outcome reported with `batch.done` before the next,
// so the plugin still sees one message at a time (guest-sdk/ABI.md,
// "Component batches"). In a plugin:
//
//   import { handleEach } from "../../guest-sdk/js/batch.js";
//   export function handle(message) { ... }
//   export const handleBatch = handleEach(handle);
//
// componentize-js reads this file when it builds the component (a path
// relative to the plugin's source).
import { done } from "wasq:plugin/batch@1.3.0";

const OK = { tag: "ok", val: undefined };

// What `handle` threw, as componentize-js makes an export's `err` of it:
// a ComponentError's payload, or the value itself (`{ tag: "retry" }`);
// an `Error` is a bug in the handler and traps, as it would in `handle`.
function failureOf(thrown) {
  if (thrown && Object.prototype.hasOwnProperty.call(thrown, "payload")) {
    return thrown.payload;
  }
  if (thrown instanceof Error) throw thrown;
  return thrown;
}

export function handleEach(handle) {
  return function handleBatch(messages) {
    for (const message of messages) {
      let outcome = OK;
      try {
        handle(message);
      } catch (thrown) {
        outcome = { tag: "err", val: failureOf(thrown) };
      }
      done(outcome);
    }
  };
}
