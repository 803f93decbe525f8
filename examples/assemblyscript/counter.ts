// counter, in AssemblyScript: counts the messages of each body in the
// plugin's state. The body is the key (any bytes); each message adds 1 to
// the counter `count/<body>`, and when the new count is a multiple of
// config `every` it publishes `<body> <count>` to config `output`. The
// count and the message's FIN commit together, so a redelivered message is
// not counted twice. A state error (logged) retries the message.
//
// plugins/counter.toml:
//
//   topic = "clicks"
//   state = true
//   publish = ["counts"]
//   [config]
//   every = "10"      # default 10
//   output = "counts" # default counts
import { Level, Message, Outcome, Status, configGet, handle, log, publish, stateIncrement, statusName } from "../../guest-sdk/assemblyscript/wasq";
export { wasq_abi_version, wasq_alloc, wasq_handle, wasq_handle_batch } from "../../guest-sdk/assemblyscript/wasq";

// Read from [config] on the first message (it is fixed for a version).
let every: i64 = 0;
let output = "";

const prefix = Uint8Array.wrap(String.UTF8.encode("count/"));

/** The decimal number in `text` (digits only, at least one); -1 if it is
 * not one, or does not fit an i64. */
function parseDecimal(text: string): i64 {
  if (text.length == 0) return -1;
  let n: i64 = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
    const digit = <i64>(c - 48);
    if (n > (i64.MAX_VALUE - digit) / 10) return -1;
    n = n * 10 + digit;
  }
  return n;
}

/** `a` then `b`, in one new array. */
function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const both = new Uint8Array(a.length + b.length);
  both.set(a);
  both.set(b, a.length);
  return both;
}

handle((message: Message): i64 => {
  if (every == 0) {
    const text = configGet("every");
    const n = parseDecimal(text != null ? text : "10");
    if (n <= 0) {
      log(Level.ERROR, "counter: config `every` is not a positive decimal number");
      return Outcome.RETRY;
    }
    const out = configGet("output");
    output = out != null ? out : "counts";
    every = n;
  }
  const body = message.body;
  const count = stateIncrement(concat(prefix, body), 1);
  if (count.status != Status.OK) {
    log(Level.WARN, "counter: cannot increment: " + statusName(count.status));
    return Outcome.RETRY;
  }
  if (count.value % every != 0) return Outcome.SUCCESS;
  const status = publish(output, concat(body, Uint8Array.wrap(String.UTF8.encode(" " + count.value.toString()))));
  if (status != Status.OK) {
    // The count is discarded with the retry: it and the publish happen
    // again together.
    log(Level.WARN, "counter: cannot publish to " + output + ": " + statusName(status));
    return Outcome.RETRY;
  }
  return Outcome.SUCCESS;
});
