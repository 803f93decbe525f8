/* webhook, in C: nsq_to_http as a plugin. POSTs each message's body to the
 * URL in config `url`. A 2xx answer finishes the message; 429 or 5xx
 * retries it (after `retry-after` seconds when the server says so); any
 * other status (3xx not followed, other 4xx) dead-letters it. A timeout or
 * a failed connection retries; a URL not allowed, a bad request or a too
 * large answer dead-letters. Each failure is a warning in the log.
 *
 * plugins/webhook.toml:
 *
 *     topic = "events"
 *     allowed_outbound_hosts = ["https://hooks.example.com"]
 *     required_config = ["url"]
 *     [config]
 *     url = "https://hooks.example.com/events"
 *     authorization = "Bearer ${WEBHOOK_TOKEN}"  # optional: the Authorization header
 *     content_type = "application/json"          # default application/octet-stream
 */
#include <stdarg.h>
#include <stdio.h>

#include "wasq.h"

static char *url;     /* NULL until the configuration is read */
static char *headers; /* "Content-Type: ...\nAuthorization: ...\n" */

/* Reads [config] once per instance (it is fixed for a version). */
static int configure(void) {
    char *type = wasq_config_dup("content_type");
    char *auth = wasq_config_dup("authorization");
    size_t size = 64 + (type ? strlen(type) : 0) + (auth ? strlen(auth) : 0);
    headers = malloc(size);
    if (headers != NULL) {
        int n = snprintf(headers, size, "Content-Type: %s\n",
                         type ? type : "application/octet-stream");
        if (auth != NULL) {
            snprintf(headers + n, size - (size_t)n, "Authorization: %s\n", auth);
        }
        url = wasq_config_dup("url");
    }
    free(type);
    free(auth);
    if (url == NULL) {
        wasq_log(WASQ_ERROR, "webhook: config `url` is not set");
    }
    return url != NULL;
}

/* Logs why the POST failed and what becomes of the message. */
__attribute__((format(printf, 2, 3))) static wasq_outcome failed(wasq_outcome outcome,
                                                                const char *why, ...) {
    char reason[128], line[1024];
    va_list args;
    va_start(args, why);
    vsnprintf(reason, sizeof reason, why, args);
    va_end(args);
    uint32_t code = (uint32_t)outcome, delay_ms = (uint32_t)((uint64_t)outcome >> 32);
    if (code == 2) {
        snprintf(line, sizeof line, "POST %s: %s: retry in %u ms", url, reason, (unsigned)delay_ms);
    } else {
        snprintf(line, sizeof line, "POST %s: %s: %s", url, reason,
                 code == 1 ? "retry" : "dead-letter");
    }
    wasq_log(WASQ_WARN, line);
    return outcome;
}

wasq_outcome wasq_on_message(const wasq_message *message) {
    if (url == NULL && !configure()) {
        return WASQ_RETRY;
    }
    wasq_http_response response;
    int status = wasq_http_request("POST", url, headers, message->body, message->body_len,
                                   &response);
    if (status != WASQ_OK) {
        return failed(wasq_status_temporary(status) ? WASQ_RETRY : WASQ_FATAL, "%s (%s)",
                      wasq_status_name(status), wasq_status_text(status));
    }
    uint32_t code = response.status, delay_ms;
    wasq_outcome outcome = WASQ_FATAL;
    if (code / 100 == 2) {
        outcome = WASQ_SUCCESS;
    } else if (code == 429 || code / 100 == 5) {
        outcome = wasq_http_retry_after(&response, &delay_ms) ? wasq_retry_after(delay_ms)
                                                                : WASQ_RETRY;
    }
    wasq_http_response_free(&response);
    return outcome == WASQ_SUCCESS ? outcome : failed(outcome, "HTTP %u", (unsigned)code);
}
