// scripted in JavaScript (world consumer-with-init): does what each body
// says, so the host's tests hold JavaScript components to every part of
// the contract. Not an example to copy; see uppercase.js and flaky.js.
// Bodies: ok, retry, retry-after MS, fatal REASON, throw, publish TOPIC [BODY],
// print TEXT. A publish's result goes to TOPIC.results (the consumed topic's).
import { log, publish } from "wasq:plugin/host@1.3.0";
import { handleEach } from "../../guest-sdk/js/batch.js";

const decoder = new TextDecoder();
const encoder = new TextEncoder();

export function init() {
  log("info", "init ran in javascript");
}

export function handle(message) {
  const text = decoder.decode(message.body);
  const space = text.indexOf(" ");
  const [command, rest] = space < 0 ? [text, ""] : [text.slice(0, space), text.slice(space + 1)];
  switch (command) {
    case "ok":
      return;
    case "retry":
      throw { tag: "retry" };
    case "retry-after":
      throw { tag: "retry-after", val: Number(rest) };
    case "fatal":
      throw { tag: "fatal", val: rest };
    case "throw":
      throw new Error("not a failure");
    case "publish": {
      const at = rest.indexOf(" ");
      const [topic, body] = at < 0 ? [rest, ""] : [rest.slice(0, at), rest.slice(at + 1)];
      let result = "ok";
      try {
        publish(topic, encoder.encode(body));
      } catch (e) {
        result = e.payload;
      }
      publish(`${message.topic}.results`, encoder.encode(result));
      return;
    }
    case "print":
      console.log(rest);
      return;
    default:
      throw { tag: "fatal", val: `unknown command ${command}` };
  }
}

// Many messages per call (world batch-consumer), each to `handle`.
export const handleBatch = handleEach(handle);
