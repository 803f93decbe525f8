/* counter, in C: counts the messages of each body in the plugin's state.
 * The body is the key (any bytes); each message adds 1 to the counter
 * `count/<body>`, and when the new count is a multiple of config `every`
 * it publishes `<body> <count>` to config `output`. The count and the
 * message's FIN commit together, so a redelivered message is not counted
 * twice. A state error (logged) retries the message.
 *
 * plugins/counter.toml:
 *
 *     topic = "clicks"
 *     state = true
 *     publish = ["counts"]
 *     [config]
 *     every = "10"      # default 10
 *     output = "counts" # default counts
 */
#include <inttypes.h>
#include <stdio.h>

#include "wasq.h"

static int64_t every; /* 0 until the configuration is read */
static char *output;

/* The decimal number in s[0..len) (digits only, at least one) into *out;
 * 0 if it is not one, or does not fit an int64_t. */
static int parse_decimal(const char *s, size_t len, int64_t *out) {
    int64_t n = 0;
    if (len == 0) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || n > (INT64_MAX - (s[i] - '0')) / 10) {
            return 0;
        }
        n = n * 10 + (s[i] - '0');
    }
    *out = n;
    return 1;
}

/* Reads [config] once per instance (it is fixed for a version). */
static int configure(void) {
    char *text = wasq_config_dup("every");
    int ok = parse_decimal(text ? text : "10", text ? strlen(text) : 2, &every) && every > 0;
    free(text);
    if (!ok) {
        every = 0;
        wasq_log(WASQ_ERROR, "counter: config `every` is not a positive decimal number");
        return 0;
    }
    output = wasq_config_dup("output");
    if (output == NULL) {
        output = strdup("counts");
    }
    return output != NULL;
}

wasq_outcome wasq_on_message(const wasq_message *message) {
    if (every == 0 && !configure()) {
        return WASQ_RETRY;
    }
    static const char prefix[] = "count/";
    size_t key_len = sizeof prefix - 1 + message->body_len;
    /* Room for the key, then for "<body> <count>" (at most 20 digits). */
    char *buffer = malloc(key_len + message->body_len + 24);
    if (buffer == NULL) {
        return WASQ_RETRY;
    }
    memcpy(buffer, prefix, sizeof prefix - 1);
    memcpy(buffer + sizeof prefix - 1, message->body, message->body_len);
    int64_t count;
    int status = wasq_state_increment(buffer, key_len, 1, &count);
    if (status != WASQ_OK) {
        char line[128];
        snprintf(line, sizeof line, "counter: cannot increment: %s (%s)",
                 wasq_status_name(status), wasq_status_text(status));
        wasq_log(WASQ_WARN, line);
        free(buffer);
        return WASQ_RETRY;
    }
    wasq_outcome outcome = WASQ_SUCCESS;
    if (count % every == 0) {
        char *body = buffer + key_len;
        memcpy(body, message->body, message->body_len);
        int n = snprintf(body + message->body_len, 24, " %" PRId64, count);
        status = wasq_publish(output, body, message->body_len + (size_t)n);
        if (status != WASQ_OK) {
            /* The count is discarded with the retry: it and the publish
             * happen again together. */
            char line[192];
            snprintf(line, sizeof line, "counter: cannot publish to %s: %s", output,
                     wasq_status_name(status));
            wasq_log(WASQ_WARN, line);
            outcome = WASQ_RETRY;
        }
    }
    free(buffer);
    return outcome;
}
