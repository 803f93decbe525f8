// {{name}}: consumes `{{name}}` and publishes each body, its ASCII letters
// uppercased, to `{{name}}.upper`.
import { Level, Message, Outcome, Status, handle, log, publish } from "./wasq";
export { wasq_abi_version, wasq_alloc, wasq_handle, wasq_handle_batch } from "./wasq";

handle((message: Message): i64 => {
  const body = message.body;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c >= 0x61 && c <= 0x7a) body[i] = c - 0x20;
  }
  if (publish("{{name}}.upper", body) != Status.OK) {
    log(Level.WARN, "cannot publish to {{name}}.upper");
    return Outcome.RETRY;
  }
  return Outcome.SUCCESS;
});
