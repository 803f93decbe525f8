// flaky, in AssemblyScript: consumes `jobs`. A body containing "fail" asks
// to be retried, so after max_attempts it lands in the dead-letter topic;
// any other body is published to `jobs.done.as`.
import { Level, Message, Outcome, Status, handle, log, publish } from "../../guest-sdk/assemblyscript/wasq";
export { wasq_abi_version, wasq_alloc, wasq_handle, wasq_handle_batch } from "../../guest-sdk/assemblyscript/wasq";

handle((message: Message): i64 => {
  const text = String.UTF8.decode(message.body.buffer);
  if (text.includes("fail")) {
    log(Level.INFO, "job " + message.id + " failed (attempt " + message.attempts.toString() + ")");
    return Outcome.RETRY;
  }
  if (publish("jobs.done.as", message.body) != Status.OK) return Outcome.RETRY;
  return Outcome.SUCCESS;
});
