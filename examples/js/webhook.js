// webhook, as a JavaScript component: POSTs each body to `[config] url`
// with the standard `fetch` (componentize-js runs it over wasi:http, so
// the broker's allowlist, limits and TLS roots apply). 2xx finishes; 429
// and 5xx retry (after Retry-After seconds when given); a network failure
// retries; any other status dead-letters.
//
// Manifest: as examples/webhook's (allowed_outbound_hosts,
// required_config = ["url"], [config] url, optional authorization and
// content_type).
import { getConfig, log } from "wasq:plugin/host@1.3.0";

export async function handle(message) {
  const url = getConfig("url");
  if (url === undefined) {
    log("warn", "webhook: [config] url is not set");
    throw { tag: "retry" };
  }
  const headers = {
    "content-type": getConfig("content_type") ?? "application/octet-stream",
  };
  const authorization = getConfig("authorization");
  if (authorization !== undefined) headers.authorization = authorization;
  let response;
  try {
    response = await fetch(url, { method: "POST", headers, body: message.body });
  } catch (error) {
    log("warn", `webhook: POST ${url}: ${error}`);
    throw { tag: "retry" };
  }
  if (response.ok) return;
  log("warn", `webhook: POST ${url}: answered ${response.status}`);
  if (response.status === 429 || response.status >= 500) {
    const seconds = Number.parseInt(response.headers.get("retry-after") ?? "", 10);
    if (Number.isInteger(seconds) && seconds >= 0) {
      throw { tag: "retry-after", val: seconds * 1000 };
    }
    throw { tag: "retry" };
  }
  throw { tag: "fatal", val: `answered ${response.status}` };
}
