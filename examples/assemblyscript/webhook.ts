// webhook, in AssemblyScript: nsq_to_http as a plugin. POSTs each message's
// body to the URL in config `url`. A 2xx answer finishes the message; 429 or
// 5xx retries it (after `retry-after` seconds when the server says so); any
// other status (3xx not followed, other 4xx) dead-letters it. A timeout or a
// failed connection retries; a URL not allowed, a bad request or a too large
// answer dead-letters. Each failure is a warning in the log.
//
// plugins/webhook.toml:
//
//   topic = "events"
//   allowed_outbound_hosts = ["https://hooks.example.com"]
//   required_config = ["url"]
//   [config]
//   url = "https://hooks.example.com/events"
//   authorization = "Bearer ${WEBHOOK_TOKEN}"  # optional: the Authorization header
//   content_type = "application/json"          # default application/octet-stream
import { Level, Message, Outcome, Status, configGet, handle, httpRequest, isTemporary, log, statusName } from "../../guest-sdk/assemblyscript/wasq";
export { wasq_abi_version, wasq_alloc, wasq_handle, wasq_handle_batch } from "../../guest-sdk/assemblyscript/wasq";

// Read from [config] on the first message (it is fixed for a version).
let url: string | null = null;
let headers = "";

/** Logs why the POST failed and what becomes of the message. */
function failed(outcome: i64, why: string): i64 {
  const code = outcome & 0xffffffff;
  const then = code == 2 ? "retry in " + (outcome >>> 32).toString() + " ms" : code == 1 ? "retry" : "dead-letter";
  log(Level.WARN, "POST " + url! + ": " + why + ": " + then);
  return outcome;
}

handle((message: Message): i64 => {
  if (url == null) {
    const contentType = configGet("content_type");
    headers = "Content-Type: " + (contentType != null ? contentType : "application/octet-stream") + "\n";
    const authorization = configGet("authorization");
    if (authorization != null) headers += "Authorization: " + authorization + "\n";
    url = configGet("url");
    if (url == null) {
      log(Level.ERROR, "webhook: config `url` is not set");
      return Outcome.RETRY;
    }
  }
  const response = httpRequest("POST", url!, headers, message.body);
  if (response.status != Status.OK) {
    return failed(isTemporary(response.status) ? Outcome.RETRY : Outcome.FATAL, statusName(response.status));
  }
  const code = response.httpStatus;
  if (code >= 200 && code < 300) return Outcome.SUCCESS;
  if (code == 429 || (code >= 500 && code < 600)) {
    const ms = response.retryAfterMs();
    return failed(ms >= 0 ? Outcome.retryAfter(<u32>ms) : Outcome.RETRY, "HTTP " + code.toString());
  }
  return failed(Outcome.FATAL, "HTTP " + code.toString());
});
