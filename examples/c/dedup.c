/* dedup, in C: passes each JSON message on once per id. The body is a JSON
 * object with an "id" (a string, or a number: its text). A message whose
 * id was seen less than config `ttl_ms` before it (by the messages'
 * timestamps) is finished without being published again; any other is
 * published unchanged to config `output`, and the time it was seen kept
 * in the state under `seen/<id>`. A body that is not a JSON object with
 * such an id is dead-lettered; a state error (logged) retries the
 * message.
 *
 * plugins/dedup.toml:
 *
 *     topic = "orders"
 *     state = true
 *     publish = ["unique"]
 *     [config]
 *     ttl_ms = "60000"  # default 60000
 *     output = "unique" # default unique
 */
#include <inttypes.h>
#include <stdio.h>

#include "wasq.h"

static int64_t ttl_ms = -1; /* -1 until the configuration is read */
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
    char *text = wasq_config_dup("ttl_ms");
    const char *value = text ? text : "60000";
    int ok = parse_i64((const uint8_t *)value, strlen(value), &ttl_ms) && ttl_ms >= 0;
    free(text);
    if (!ok) {
        ttl_ms = -1;
        wasq_log(WASQ_ERROR, "dedup: config `ttl_ms` is not a decimal number >= 0");
        return 0;
    }
    output = wasq_config_dup("output");
    if (output == NULL) {
        output = strdup("unique");
    }
    return output != NULL;
}

/* ---- Just enough JSON to find the top-level "id" ---- */

/* 1 if c is one of the characters of `set` (never NUL). */
static int one_of(uint8_t c, const char *set) {
    return c != '\0' && strchr(set, c) != NULL;
}

static size_t skip_space(const uint8_t *s, size_t len, size_t at) {
    while (at < len && one_of(s[at], " \t\n\r")) {
        at++;
    }
    return at;
}

/* Where the string opening at s[at] (a '"') ends, just after its closing
 * quote; 0 if it does not end. */
static size_t string_end(const uint8_t *s, size_t len, size_t at) {
    for (at++; at < len; at++) {
        if (s[at] == '\\') {
            at++; /* the escaped character, whatever it is */
        } else if (s[at] == '"') {
            return at + 1;
        }
    }
    return 0;
}

/* Where the value starting at s[at] ends: a string, an object or array
 * (whatever it holds), or a number or literal (up to the next delimiter);
 * 0 if it does not end or is empty. */
static size_t value_end(const uint8_t *s, size_t len, size_t at) {
    if (s[at] == '"') {
        return string_end(s, len, at);
    }
    if (s[at] == '{' || s[at] == '[') {
        size_t depth = 0;
        while (at < len) {
            if (s[at] == '"') {
                at = string_end(s, len, at);
                if (at == 0) {
                    return 0;
                }
                continue;
            }
            if (s[at] == '{' || s[at] == '[') {
                depth++;
            } else if ((s[at] == '}' || s[at] == ']') && --depth == 0) {
                return at + 1;
            }
            at++;
        }
        return 0;
    }
    size_t start = at;
    while (at < len && !one_of(s[at], ",}] \t\r\n")) {
        at++;
    }
    return at > start ? at : 0;
}

/* Finds the value of the object's top-level "id" (the last one, as JSON
 * parsers keep), s[*id_at..*id_end). 0 if the body is not one object (its
 * members and nesting are checked, not every value inside), or has no
 * "id". */
static int find_id(const uint8_t *s, size_t len, size_t *id_at, size_t *id_end) {
    int found = 0;
    size_t at = skip_space(s, len, 0);
    if (at >= len || s[at] != '{') {
        return 0;
    }
    at = skip_space(s, len, at + 1);
    if (at < len && s[at] == '}') {
        return 0; /* {}: no id */
    }
    for (;;) {
        if (at >= len || s[at] != '"') {
            return 0;
        }
        size_t key_end = string_end(s, len, at);
        if (key_end == 0) {
            return 0;
        }
        int is_id = key_end - at == 4 && memcmp(s + at, "\"id\"", 4) == 0;
        at = skip_space(s, len, key_end);
        if (at >= len || s[at] != ':') {
            return 0;
        }
        at = skip_space(s, len, at + 1);
        size_t end = at < len ? value_end(s, len, at) : 0;
        if (end == 0) {
            return 0;
        }
        if (is_id) {
            *id_at = at;
            *id_end = end;
            found = 1;
        }
        at = skip_space(s, len, end);
        if (at < len && s[at] == ',') {
            at = skip_space(s, len, at + 1);
        } else if (at < len && s[at] == '}') {
            return found && skip_space(s, len, at + 1) == len;
        } else {
            return 0;
        }
    }
}

/* Appends code point c to out in UTF-8; returns the bytes written. */
static size_t put_utf8(uint32_t c, uint8_t *out) {
    if (c < 0x80) {
        out[0] = (uint8_t)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (uint8_t)(0xC0 | c >> 6);
        out[1] = (uint8_t)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (uint8_t)(0xE0 | c >> 12);
        out[1] = (uint8_t)(0x80 | (c >> 6 & 0x3F));
        out[2] = (uint8_t)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | c >> 18);
    out[1] = (uint8_t)(0x80 | (c >> 12 & 0x3F));
    out[2] = (uint8_t)(0x80 | (c >> 6 & 0x3F));
    out[3] = (uint8_t)(0x80 | (c & 0x3F));
    return 4;
}

/* The four hex digits at s[at..at+4) (within len) into *c; 0 if they are not. */
static int hex4(const uint8_t *s, size_t len, size_t at, uint32_t *c) {
    if (len < 4 || at > len - 4) {
        return 0;
    }
    *c = 0;
    for (size_t i = at; i < at + 4; i++) {
        int d = s[i] >= '0' && s[i] <= '9'   ? s[i] - '0'
                : s[i] >= 'a' && s[i] <= 'f' ? s[i] - 'a' + 10
                : s[i] >= 'A' && s[i] <= 'F' ? s[i] - 'A' + 10
                                             : -1;
        if (d < 0) {
            return 0;
        }
        *c = *c << 4 | (uint32_t)d;
    }
    return 1;
}

/* Decodes the characters of a JSON string (s[0..len), between its quotes)
 * into out, which has room for len bytes (UTF-8 is never longer than its
 * escape); returns the decoded length, or (size_t)-1 for a bad escape or a
 * control character. A lone surrogate becomes U+FFFD, as Go and
 * JavaScript make it. */
static size_t json_unescape(const uint8_t *s, size_t len, uint8_t *out) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x20) {
            return (size_t)-1;
        }
        if (s[i] != '\\') {
            out[n++] = s[i];
            continue;
        }
        if (++i == len) {
            return (size_t)-1;
        }
        const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
        const char *escape = one_of(s[i], from) ? strchr(from, s[i]) : NULL;
        if (escape != NULL) {
            out[n++] = (uint8_t)to[escape - from];
            continue;
        }
        uint32_t c, low;
        if (s[i] != 'u' || !hex4(s, len, i + 1, &c)) {
            return (size_t)-1;
        }
        i += 4;
        if (c >= 0xD800 && c < 0xDC00 && i + 2 < len && s[i + 1] == '\\' && s[i + 2] == 'u' &&
            hex4(s, len, i + 3, &low) && low >= 0xDC00 && low < 0xE000) {
            c = 0x10000 + ((c - 0xD800) << 10) + (low - 0xDC00);
            i += 6;
        } else if (c >= 0xD800 && c < 0xE000) {
            c = 0xFFFD;
        }
        n += put_utf8(c, out + n);
    }
    return n;
}

/* Writes the id, the value s[at..end), to out (room for end - at bytes): a
 * string's characters, or a number's text. Returns its length, or
 * (size_t)-1 if it is neither (null, true, an object...) or a bad string. */
static size_t id_text(const uint8_t *s, size_t at, size_t end, uint8_t *out) {
    if (s[at] == '"') {
        return json_unescape(s + at + 1, end - at - 2, out);
    }
    if (s[at] != '-' && (s[at] < '0' || s[at] > '9')) {
        return (size_t)-1;
    }
    for (size_t i = at; i < end; i++) {
        if (!one_of(s[i], "0123456789+-.eE")) {
            return (size_t)-1;
        }
    }
    memcpy(out, s + at, end - at);
    return end - at;
}

/* Logs a state error; the message is retried (its writes are discarded). */
static wasq_outcome state_failed(const char *what, int status) {
    char line[128];
    snprintf(line, sizeof line, "dedup: cannot %s: %s (%s)", what, wasq_status_name(status),
             wasq_status_text(status));
    wasq_log(WASQ_WARN, line);
    return WASQ_RETRY;
}

wasq_outcome wasq_on_message(const wasq_message *message) {
    if (ttl_ms < 0 && !configure()) {
        return WASQ_RETRY;
    }
    static const char prefix[] = "seen/";
    /* The key, "seen/<id>": the id is never longer than the body. */
    char *key = malloc(sizeof prefix + message->body_len);
    if (key == NULL) {
        return WASQ_RETRY;
    }
    memcpy(key, prefix, sizeof prefix - 1);
    size_t id_at, id_end, id_len = (size_t)-1;
    if (find_id(message->body, message->body_len, &id_at, &id_end)) {
        id_len = id_text(message->body, id_at, id_end, (uint8_t *)key + sizeof prefix - 1);
    }
    if (id_len == (size_t)-1) {
        free(key);
        char line[128];
        snprintf(line, sizeof line,
                 "dedup: message %.16s is not a JSON object with a string or number \"id\": "
                 "dead-letter",
                 (const char *)message->id);
        wasq_log(WASQ_WARN, line);
        return WASQ_FATAL;
    }
    size_t key_len = sizeof prefix - 1 + id_len;

    int64_t now_ms = message->timestamp / 1000000, seen_ms;
    uint8_t *seen;
    size_t seen_len;
    int status = wasq_state_dup(key, key_len, &seen, &seen_len);
    if (status == WASQ_OK) {
        int64_t age_ms;
        /* An age past INT64_MAX is no duplicate; one below INT64_MIN is. */
        int duplicate = parse_i64(seen, seen_len, &seen_ms) &&
                        (__builtin_sub_overflow(now_ms, seen_ms, &age_ms) ? seen_ms > now_ms
                                                                           : age_ms < ttl_ms);
        free(seen);
        if (duplicate) {
            free(key);
            return WASQ_SUCCESS;
        }
    } else if (status != WASQ_NOT_FOUND) {
        free(key);
        return state_failed("read the time an id was seen", status);
    }
    char now[24];
    int now_len = snprintf(now, sizeof now, "%" PRId64, now_ms);
    status = wasq_state_set(key, key_len, now, (size_t)now_len);
    free(key);
    if (status != WASQ_OK) {
        return state_failed("keep the time an id was seen", status);
    }
    status = wasq_publish(output, message->body, message->body_len);
    if (status != WASQ_OK) {
        /* Retried, the time seen is discarded with it: the next attempt
         * publishes again. */
        char line[192];
        snprintf(line, sizeof line, "dedup: cannot publish to %s: %s", output,
                 wasq_status_name(status));
        wasq_log(WASQ_WARN, line);
        return WASQ_RETRY;
    }
    return WASQ_SUCCESS;
}
