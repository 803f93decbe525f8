// uppercase, in AssemblyScript: consumes `words` and publishes each body
// uppercased (ASCII letters only, as the Rust example) to `words.upper.as`.
import { Level, Message, Outcome, Status, handle, log, publish } from "../../guest-sdk/assemblyscript/wasq";
export { wasq_abi_version, wasq_alloc, wasq_handle, wasq_handle_batch } from "../../guest-sdk/assemblyscript/wasq";

handle((message: Message): i64 => {
  const body = message.body;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c >= 0x61 && c <= 0x7a) body[i] = c - 0x20;
  }
  if (publish("words.upper.as", body) != Status.OK) {
    log(Level.WARN, "cannot publish to words.upper.as");
    return Outcome.RETRY;
  }
  return Outcome.SUCCESS;
});
