/* flaky, in C: consumes `jobs`. A body containing "fail" asks to be
 * retried, so after max_attempts it lands in the dead-letter topic; any
 * other body is published to `jobs.done.c`. */
#include <stdio.h>

#include "wasq.h"

static int contains(const uint8_t *haystack, size_t len, const char *needle) {
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++) {
        if (memcmp(haystack + i, needle, n) == 0) {
            return 1;
        }
    }
    return 0;
}

wasq_outcome wasq_on_message(const wasq_message *message) {
    if (contains(message->body, message->body_len, "fail")) {
        char line[96];
        snprintf(line, sizeof line, "job %.16s failed (attempt %u)", (const char *)message->id,
                 (unsigned)message->attempts);
        wasq_log(WASQ_INFO, line);
        return WASQ_RETRY;
    }
    if (wasq_publish("jobs.done.c", message->body, message->body_len) != WASQ_OK) {
        return WASQ_RETRY;
    }
    return WASQ_SUCCESS;
}
