/* window, in C: sums readings over tumbling windows. Each body is a reading,
 * a decimal integer, added to the sum of the window its timestamp falls in
 * (windows of config `window_ms`, starting at multiples of it since the
 * epoch), kept in the state under `sum/<start>`. The first reading of a
 * window sends the plugin a timer, `tick <start>`, by a deferred publish to
 * its own topic for when the window ends; the tick publishes
 * `<start> <sum>` to config `output` and forgets the window. A body that
 * is not a number is dead-lettered; a state error (logged) retries the
 * message.
 *
 * plugins/window.toml (the plugin publishes to its own topic):
 *
 *     topic = "readings"
 *     state = true
 *     publish = ["readings", "sums"]
 *     [config]
 *     window_ms = "10000" # default 10000
 *     output = "sums"     # default sums
 */
#include <inttypes.h>
#include <stdio.h>

#include "wasq.h"

static int64_t window_ms; /* 0 until the configuration is read */
static char *output;

/* The decimal number in s[0..len) (an optional sign, then digits) into
 * *out; 0 if it is not one, or does not fit an int64_t. */
static int parse_i64(const uint8_t *s, size_t len, int64_t *out) {
    int negative = len > 0 && s[0] == '-';
    size_t i = len > 0 && (s[0] == '-' || s[0] == '+') ? 1 : 0;
    if (i == len) {
        return 0;
    }
    /* Accumulated as a negative number: -INT64_MIN does not fit. */
    int64_t n = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || n < (INT64_MIN + (s[i] - '0')) / 10) {
            return 0;
        }
        n = n * 10 - (s[i] - '0');
    }
    if (!negative && n == INT64_MIN) {
        return 0;
    }
    *out = negative ? n : -n;
    return 1;
}

/* Reads [config] once per instance (it is fixed for a version). */
static int configure(void) {
    char *text = wasq_config_dup("window_ms");
    const char *value = text ? text : "10000";
    int ok = parse_i64((const uint8_t *)value, strlen(value), &window_ms) && window_ms > 0;
    free(text);
    if (!ok) {
        window_ms = 0;
        wasq_log(WASQ_ERROR, "window: config `window_ms` is not a positive decimal number");
        return 0;
    }
    output = wasq_config_dup("output");
    if (output == NULL) {
        output = strdup("sums");
    }
    return output != NULL;
}

/* Logs a failure; the message is retried (its state writes are
 * discarded). */
static wasq_outcome failed(const char *what, int status) {
    char line[192];
    snprintf(line, sizeof line, "window: cannot %s: %s (%s)", what, wasq_status_name(status),
             wasq_status_text(status));
    wasq_log(WASQ_WARN, line);
    return WASQ_RETRY;
}

/* The timer of the window at `start` (its text, as the tick has it):
 * publishes the window's sum, if it has one, and forgets the window. */
static wasq_outcome tick(const uint8_t *start, size_t start_len) {
    /* Room for "timer/" (or "sum/") and start. */
    char *key = malloc(start_len + 8);
    if (key == NULL) {
        return WASQ_RETRY;
    }
    memcpy(key, "sum/", 4);
    memcpy(key + 4, start, start_len);
    uint8_t *sum;
    size_t sum_len;
    int status = wasq_state_dup(key, 4 + start_len, &sum, &sum_len);
    if (status == WASQ_OK) {
        char *body = malloc(start_len + 1 + sum_len);
        if (body == NULL) {
            free(sum);
            free(key);
            return WASQ_RETRY;
        }
        memcpy(body, start, start_len);
        body[start_len] = ' ';
        memcpy(body + start_len + 1, sum, sum_len);
        status = wasq_publish(output, body, start_len + 1 + sum_len);
        free(body);
        free(sum);
        if (status != WASQ_OK) {
            free(key);
            return failed("publish a sum", status);
        }
        status = wasq_state_delete(key, 4 + start_len);
        if (status != WASQ_OK && status != WASQ_NOT_FOUND) {
            free(key);
            return failed("delete a sum", status);
        }
    } else if (status != WASQ_NOT_FOUND) {
        free(key);
        return failed("read a sum", status);
    }
    memcpy(key, "timer/", 6);
    memcpy(key + 6, start, start_len);
    status = wasq_state_delete(key, 6 + start_len);
    free(key);
    if (status != WASQ_OK && status != WASQ_NOT_FOUND) {
        return failed("delete a timer", status);
    }
    return WASQ_SUCCESS;
}

/* Adds a reading to its window's sum, and sets the window's timer if it
 * has none yet. */
static wasq_outcome add(const wasq_message *message, int64_t reading) {
    int64_t t = message->timestamp / 1000000;
    int64_t start = t - t % window_ms;
    char key[32];
    int key_len = snprintf(key, sizeof key, "sum/%" PRId64, start);
    int status = wasq_state_increment(key, (size_t)key_len, reading, NULL);
    if (status != WASQ_OK) {
        return failed("add to a sum", status);
    }
    key_len = snprintf(key, sizeof key, "timer/%" PRId64, start);
    /* Only whether it has a value: a buffer of 0 bytes. */
    int32_t got = wasq_state_get(key, (size_t)key_len, NULL, 0);
    if (got == -WASQ_NOT_FOUND) {
        status = wasq_state_set(key, (size_t)key_len, "1", 1);
        if (status != WASQ_OK) {
            return failed("set a timer", status);
        }
        char body[32];
        int body_len = snprintf(body, sizeof body, "tick %" PRId64, start);
        int64_t delay_ms = start + window_ms - t;
        /* The import takes the topic's length: message->topic is not
         * NUL-terminated. */
        status = wasq_import_publish_deferred(message->topic, (int32_t)message->topic_len, body,
                                              body_len, delay_ms > 0 ? delay_ms : 0);
        if (status != WASQ_OK) {
            return failed("publish a timer", status);
        }
    } else if (got < 0) {
        return failed("read a timer", -got);
    }
    return WASQ_SUCCESS;
}

wasq_outcome wasq_on_message(const wasq_message *message) {
    if (window_ms == 0 && !configure()) {
        return WASQ_RETRY;
    }
    const uint8_t *body = message->body;
    size_t len = message->body_len;
    int64_t number;
    if (len >= 5 && memcmp(body, "tick ", 5) == 0) {
        if (parse_i64(body + 5, len - 5, &number)) {
            return tick(body + 5, len - 5);
        }
    } else if (parse_i64(body, len, &number)) {
        return add(message, number);
    }
    char line[96];
    snprintf(line, sizeof line, "window: message %.16s is not a number: dead-letter",
             (const char *)message->id);
    wasq_log(WASQ_WARN, line);
    return WASQ_FATAL;
}
