/*
 * wasq.h: C bindings for Wasq plugins (ABI version 1, see ../ABI.md).
 *
 * A plugin is one C file that includes this header and defines
 *
 *     wasq_outcome wasq_on_message(const wasq_message *message);
 *
 * The header supplies the exports the broker calls (wasq_abi_version,
 * wasq_alloc, wasq_handle, wasq_handle_batch; wasq_init when WASQ_WITH_INIT
 * is defined, which then calls your `int wasq_on_init(void)`), so include it
 * in exactly one
 * translation unit. Build a WASI reactor, not a command:
 *
 *     clang --target=wasm32-wasi -mexec-model=reactor -O2 -I guest-sdk/c \
 *           -o plugins/NAME.wasm NAME.c
 *
 * The message (topic, channel, body) lives in a buffer the header frees
 * when wasq_on_message returns: copy what you want to keep.
 *
 * Configuration and outbound HTTP (granted by the manifest's [config] and
 * allowed_outbound_hosts): wasq_config_dup / wasq_config_get read a
 * [config] value; wasq_http_request sends a request and reads the whole
 * response into a wasq_http_response (free it with
 * wasq_http_response_free); wasq_http_header and wasq_http_retry_after
 * read its headers. See examples/c/webhook.c.
 *
 * State (granted by the manifest's state = true): a key-value store of the
 * plugin's own, whose writes commit with the message's WASQ_SUCCESS and are
 * discarded with any other outcome. wasq_state_dup / wasq_state_get read a
 * value, wasq_state_set and wasq_state_delete write, wasq_state_increment
 * adds to a counter, and wasq_state_scan lists the entries under a prefix
 * into a wasq_state_entries (free it with wasq_state_entries_free). Keys
 * and values are bytes with a length, not strings. See examples/c/counter.c,
 * dedup.c and window.c.
 */
#ifndef WASQ_H
#define WASQ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One message, as the broker delivered it. Pointers are into a buffer that
 * is valid only during wasq_on_message. */
typedef struct wasq_message {
    /* 1 on the first delivery, +1 on each redelivery. */
    uint16_t attempts;
    /* Nanoseconds since the Unix epoch, when it was published. */
    int64_t timestamp;
    /* The message id: 16 bytes, not NUL-terminated. */
    const uint8_t *id;
    const char *topic;
    size_t topic_len;
    const char *channel;
    size_t channel_len;
    const uint8_t *body;
    size_t body_len;
} wasq_message;

/* What wasq_on_message returns: the low 32 bits are the code, the high 32
 * bits its argument (ABI.md, "The outcome"). */
typedef int64_t wasq_outcome;

/* FIN: done with the message. */
#define WASQ_SUCCESS ((wasq_outcome)0)
/* REQ with the broker's backoff delay; dead-lettered after max_attempts. */
#define WASQ_RETRY ((wasq_outcome)1)
/* Publish the body unchanged to the dead-letter topic, then FIN. */
#define WASQ_FATAL ((wasq_outcome)3)

/* REQ after `delay_ms` milliseconds. */
static inline wasq_outcome wasq_retry_after(uint32_t delay_ms) {
    return (wasq_outcome)(((uint64_t)delay_ms << 32) | 2u);
}

/* Statuses of wasq_publish, wasq_publish_deferred and wasq_log (0-6), of
 * the configuration and HTTP helpers (7-15; ABI.md, "Outbound HTTP and
 * configuration"), and of the state helpers (7, 14, 16-20; ABI.md,
 * "State"). */
enum wasq_status {
    WASQ_OK = 0,
    WASQ_FORBIDDEN = 1,        /* topic not in the manifest's publish list */
    WASQ_INVALID_TOPIC = 2,    /* not a valid NSQ topic name */
    WASQ_INVALID_BODY = 3,     /* empty, or over the broker's --max-msg-size */
    WASQ_INVALID_DELAY = 4,    /* negative, or over --max-req-timeout */
    WASQ_BAD_POINTER = 5,      /* a pointer/length outside memory */
    WASQ_UNAVAILABLE = 6,      /* shutting down, topic deleted, or not stored */
    WASQ_NOT_FOUND = 7,        /* no such [config] key; no such response handle; a state key
                                  with no value */
    WASQ_NOT_ALLOWED = 8,      /* URL (or a redirect) not in allowed_outbound_hosts */
    WASQ_TIMEOUT = 9,          /* no whole response within http_timeout_ms */
    WASQ_DNS = 10,             /* the host name does not resolve */
    WASQ_CONNECT = 11,         /* connection refused or failed, or TLS handshake failed */
    WASQ_TOO_LARGE = 12,       /* response body over http_max_response_kib */
    WASQ_INVALID_REQUEST = 13, /* a method, URL or header line the host cannot send */
    WASQ_IO = 14,              /* the connection broke, or the answer was not HTTP/1.x; the
                                  state store failed (disk full, damaged) */
    WASQ_BUSY = 15,            /* 16 responses not read yet */
    WASQ_NO_STATE = 16,        /* the manifest does not set state = true */
    WASQ_INVALID_KEY = 17,     /* an empty state key, or one over state_max_key_bytes */
    WASQ_VALUE_TOO_LARGE = 18, /* a state value over state_max_value_kib */
    WASQ_STATE_FULL = 19,      /* the plugin's state would exceed state_limit_mib */
    WASQ_NOT_A_NUMBER = 20,    /* increment of a value not a decimal int64_t, or an overflow */
    /* Not the host's: these bindings' own, when malloc fails. */
    WASQ_NO_MEMORY = -1,
};

enum wasq_level { WASQ_DEBUG = 0, WASQ_INFO = 1, WASQ_WARN = 2, WASQ_ERROR = 3 };

/* The host's imports (module "wasq"), with the ABI's raw signatures. */
__attribute__((import_module("wasq"), import_name("log")))
int32_t wasq_import_log(int32_t level, const void *ptr, int32_t len);

__attribute__((import_module("wasq"), import_name("publish")))
int32_t wasq_import_publish(const void *topic, int32_t topic_len, const void *body,
                            int32_t body_len);

__attribute__((import_module("wasq"), import_name("publish_deferred")))
int32_t wasq_import_publish_deferred(const void *topic, int32_t topic_len, const void *body,
                                     int32_t body_len, int64_t delay_ms);

__attribute__((import_module("wasq"), import_name("config_get")))
int32_t wasq_import_config_get(const void *key, int32_t key_len, void *buf, int32_t buf_cap);

/* On WASQ_OK, writes the 16-byte record at `response`: handle, HTTP status,
 * headers_len, body_len (u32 each). */
__attribute__((import_module("wasq"), import_name("http_request")))
int32_t wasq_import_http_request(const void *method, int32_t method_len, const void *url,
                                 int32_t url_len, const void *headers, int32_t headers_len,
                                 const void *body, int32_t body_len, void *response);

__attribute__((import_module("wasq"), import_name("http_response_read")))
int32_t wasq_import_http_response_read(int32_t handle, void *headers, int32_t headers_cap,
                                       void *body, int32_t body_cap);

__attribute__((import_module("wasq"), import_name("state_get")))
int32_t wasq_import_state_get(const void *key, int32_t key_len, void *buf, int32_t buf_cap);

__attribute__((import_module("wasq"), import_name("state_set")))
int32_t wasq_import_state_set(const void *key, int32_t key_len, const void *value,
                              int32_t value_len);

__attribute__((import_module("wasq"), import_name("state_delete")))
int32_t wasq_import_state_delete(const void *key, int32_t key_len);

/* On WASQ_OK, writes the counter's new value at `result`. */
__attribute__((import_module("wasq"), import_name("state_increment")))
int32_t wasq_import_state_increment(const void *key, int32_t key_len, int64_t by,
                                    int64_t *result);

/* Returns the length of the entries' encoding (u32 key_len, u32 value_len,
 * key, value; one after another), written at buf only if it fits. */
__attribute__((import_module("wasq"), import_name("state_scan")))
int32_t wasq_import_state_scan(const void *prefix, int32_t prefix_len, int32_t limit, void *buf,
                               int32_t buf_cap);

/* Logs a NUL-terminated line under the plugin's name. */
static inline int wasq_log(enum wasq_level level, const char *text) {
    return wasq_import_log((int32_t)level, text, (int32_t)strlen(text));
}

/* Publishes `len` bytes to `topic` (NUL-terminated); returns a wasq_status. */
static inline int wasq_publish(const char *topic, const void *body, size_t len) {
    return wasq_import_publish(topic, (int32_t)strlen(topic), body, (int32_t)len);
}

/* DPUB: delivered after `delay_ms`; returns a wasq_status. */
static inline int wasq_publish_deferred(const char *topic, const void *body, size_t len,
                                        int64_t delay_ms) {
    return wasq_import_publish_deferred(topic, (int32_t)strlen(topic), body, (int32_t)len,
                                        delay_ms);
}

/* A readable name for a wasq_status, for logs. */
static inline const char *wasq_status_name(int status) {
    static const char *const names[] = {
        "OK",          "FORBIDDEN", "INVALID_TOPIC", "INVALID_BODY", "INVALID_DELAY", "BAD_POINTER",
        "UNAVAILABLE", "NOT_FOUND", "NOT_ALLOWED",   "TIMEOUT",      "DNS",           "CONNECT",
        "TOO_LARGE",   "INVALID_REQUEST", "IO",      "BUSY",         "NO_STATE",      "INVALID_KEY",
        "VALUE_TOO_LARGE", "STATE_FULL", "NOT_A_NUMBER"};
    if (status == WASQ_NO_MEMORY) {
        return "NO_MEMORY";
    }
    return status >= 0 && status < (int)(sizeof names / sizeof names[0]) ? names[status]
                                                                         : "UNKNOWN";
}

/* What a wasq_status means, in a few words, for logs. */
static inline const char *wasq_status_text(int status) {
    static const char *const texts[] = {
        "ok",
        "topic not in the manifest's publish list",
        "invalid topic name",
        "empty or too large body",
        "delay out of range",
        "bad pointer",
        "broker unavailable",
        "not found",
        "not in allowed_outbound_hosts",
        "timed out",
        "host name does not resolve",
        "connection failed",
        "response too large",
        "invalid request",
        "connection broken or not HTTP/1.x, or state store failed",
        "too many unread responses",
        "no state (the manifest lacks state = true)",
        "empty or too long state key",
        "state value too large",
        "state_limit_mib reached",
        "not a decimal int64, or overflow",
    };
    if (status == WASQ_NO_MEMORY) {
        return "out of memory";
    }
    return status >= 0 && status < (int)(sizeof texts / sizeof texts[0]) ? texts[status]
                                                                         : "unknown status";
}

/* 1 if a failed HTTP request may succeed when tried again (TIMEOUT, DNS,
 * CONNECT, IO, BUSY, and NO_MEMORY), 0 if not (NOT_ALLOWED, TOO_LARGE,
 * INVALID_REQUEST, ...). */
static inline int wasq_status_temporary(int status) {
    switch (status) {
    case WASQ_TIMEOUT:
    case WASQ_DNS:
    case WASQ_CONNECT:
    case WASQ_IO:
    case WASQ_BUSY:
    case WASQ_NO_MEMORY:
        return 1;
    default:
        return 0;
    }
}

/* ---- Configuration (the manifest's [config] table) ---- */

/* Looks `key` (NUL-terminated) up in [config]: returns the value's length
 * (>= 0), and has copied the value to buf (not NUL-terminated) if that
 * length is at most cap (if it is larger, nothing was copied: call again
 * with a buffer that large); or a negated wasq_status, -WASQ_NOT_FOUND for
 * a key that is not set. */
static inline int32_t wasq_config_get(const char *key, char *buf, size_t cap) {
    return wasq_import_config_get(key, (int32_t)strlen(key), buf,
                                  cap > INT32_MAX ? INT32_MAX : (int32_t)cap);
}

/* The value of `key` as a NUL-terminated string from malloc (free it), or
 * NULL if the key is not set (or malloc failed). */
static inline char *wasq_config_dup(const char *key) {
    char small[256]; /* most values fit: one call */
    int32_t len = wasq_config_get(key, small, sizeof small);
    if (len < 0) {
        return NULL;
    }
    char *value = (char *)malloc((size_t)len + 1);
    if (value == NULL) {
        return NULL;
    }
    if ((size_t)len <= sizeof small) {
        memcpy(value, small, (size_t)len);
    } else if (wasq_config_get(key, value, (size_t)len) != len) {
        free(value); /* cannot happen: [config] is fixed for a version */
        return NULL;
    }
    value[len] = '\0';
    return value;
}

/* ---- Outbound HTTP (hosts listed in allowed_outbound_hosts) ---- */

/* A whole response. headers and body come from malloc, each with a NUL
 * after its last byte (not counted in its length) so either can be used
 * as a string; wasq_http_response_free releases them. */
typedef struct wasq_http_response {
    /* The HTTP status code: 200, 404, 503, ... */
    uint32_t status;
    /* "name: value" lines separated by "\n", names in lower case. */
    char *headers;
    size_t headers_len;
    uint8_t *body;
    size_t body_len;
} wasq_http_response;

/* Sends one request and reads the whole response into *out. `method` is
 * "GET", "POST", ...; `url` absolute (http:// or https://); `headers` are
 * "Name: value" lines separated by "\n" (or NULL for none); `body` may be
 * NULL when body_len is 0. Returns WASQ_OK, whatever the HTTP status (a 4xx
 * or 5xx is the plugin's to judge), or the status that stopped it (then
 * *out is zeroed). Free *out with wasq_http_response_free either way. */
static inline int wasq_http_request(const char *method, const char *url, const char *headers,
                                    const uint8_t *body, size_t body_len,
                                    wasq_http_response *out) {
    memset(out, 0, sizeof *out);
    if (headers == NULL) {
        headers = "";
    }
    uint32_t record[4]; /* handle, status, headers_len, body_len */
    int32_t status = wasq_import_http_request(
        method, (int32_t)strlen(method), url, (int32_t)strlen(url), headers,
        (int32_t)strlen(headers), body, (int32_t)body_len, record);
    if (status != WASQ_OK) {
        return status;
    }
    char *head = (char *)malloc((size_t)record[2] + 1);
    uint8_t *data = (uint8_t *)malloc((size_t)record[3] + 1);
    if (head == NULL || data == NULL) {
        free(head);
        free(data);
        /* Unread: the host releases it when the handler returns. */
        return WASQ_NO_MEMORY;
    }
    status = wasq_import_http_response_read((int32_t)record[0], head, (int32_t)record[2], data,
                                            (int32_t)record[3]);
    if (status != WASQ_OK) {
        free(head);
        free(data);
        return status;
    }
    head[record[2]] = '\0';
    data[record[3]] = '\0';
    out->status = record[1];
    out->headers = head;
    out->headers_len = record[2];
    out->body = data;
    out->body_len = record[3];
    return WASQ_OK;
}

/* Frees what wasq_http_request put in *response (and zeroes it). */
static inline void wasq_http_response_free(wasq_http_response *response) {
    free(response->headers);
    free(response->body);
    memset(response, 0, sizeof *response);
}

static inline int wasq_ascii_lower(int c) { return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c; }

/* The value of the first header called `name` (any case), without the
 * spaces around it: a pointer into response->headers, *len bytes long (not
 * NUL-terminated), or NULL if there is none. */
static inline const char *wasq_http_header(const wasq_http_response *response, const char *name,
                                           size_t *len) {
    size_t name_len = strlen(name);
    const char *line = response->headers, *end = line + response->headers_len;
    while (line != NULL && line < end) {
        const char *eol = (const char *)memchr(line, '\n', (size_t)(end - line));
        const char *stop = eol != NULL ? eol : end;
        const char *colon = (const char *)memchr(line, ':', (size_t)(stop - line));
        if (colon != NULL && (size_t)(colon - line) == name_len) {
            size_t i = 0;
            while (i < name_len && wasq_ascii_lower((unsigned char)line[i]) ==
                                       wasq_ascii_lower((unsigned char)name[i])) {
                i++;
            }
            if (i == name_len) {
                const char *value = colon + 1;
                while (value < stop && (*value == ' ' || *value == '\t')) {
                    value++;
                }
                while (stop > value &&
                       (stop[-1] == ' ' || stop[-1] == '\t' || stop[-1] == '\r')) {
                    stop--;
                }
                *len = (size_t)(stop - value);
                return value;
            }
        }
        line = eol != NULL ? eol + 1 : NULL;
    }
    *len = 0;
    return NULL;
}

/* 1 if the response has a `retry-after` header holding delta-seconds (a
 * non-negative integer), with *delay_ms set to it in milliseconds (at most
 * UINT32_MAX); 0 if not (none, or an HTTP date). */
static inline int wasq_http_retry_after(const wasq_http_response *response, uint32_t *delay_ms) {
    size_t len;
    const char *value = wasq_http_header(response, "retry-after", &len);
    if (value == NULL || len == 0) {
        return 0;
    }
    uint64_t ms = 0;
    for (size_t i = 0; i < len; i++) {
        if (value[i] < '0' || value[i] > '9') {
            return 0;
        }
        if (ms <= UINT32_MAX) {
            ms = ms * 10 + (uint64_t)(value[i] - '0');
        }
    }
    ms *= 1000;
    *delay_ms = ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
    return 1;
}

/* ---- State (a key-value store of the plugin's own; state = true) ---- */

/* Keys and values are bytes: pass a pointer and a length (a key is 1 to
 * state_max_key_bytes bytes). A handler's writes are its own until it
 * returns: they commit with WASQ_SUCCESS and are discarded with any other
 * outcome, so on a failed write return WASQ_RETRY rather than go on. */

/* Reads `key`'s value: returns its length (>= 0), and has copied it to buf
 * if that length is at most cap (if it is larger, nothing was copied: call
 * again with a buffer that large); or a negated wasq_status,
 * -WASQ_NOT_FOUND for a key with no value. */
static inline int32_t wasq_state_get(const void *key, size_t key_len, void *buf, size_t cap) {
    return wasq_import_state_get(key, (int32_t)key_len, buf,
                                 cap > INT32_MAX ? INT32_MAX : (int32_t)cap);
}

/* Reads `key`'s value into *value, from malloc (free it), with a NUL after
 * its last byte (not counted in *len) so a text value can be used as a
 * string. Returns WASQ_OK; WASQ_NOT_FOUND if the key has no value; or the
 * status that stopped it. *value is NULL unless WASQ_OK. */
static inline int wasq_state_dup(const void *key, size_t key_len, uint8_t **value, size_t *len) {
    *value = NULL;
    *len = 0;
    uint8_t small[256]; /* most values fit: one call */
    int32_t got = wasq_state_get(key, key_len, small, sizeof small);
    if (got < 0) {
        return -got;
    }
    uint8_t *copy = (uint8_t *)malloc((size_t)got + 1);
    if (copy == NULL) {
        return WASQ_NO_MEMORY;
    }
    if ((size_t)got <= sizeof small) {
        memcpy(copy, small, (size_t)got);
    } else {
        /* Another instance may change the value between two calls: grow
         * until it fits. */
        size_t cap = (size_t)got;
        while ((got = wasq_state_get(key, key_len, copy, cap)) > 0 && (size_t)got > cap) {
            uint8_t *grown = (uint8_t *)realloc(copy, (size_t)got + 1);
            if (grown == NULL) {
                free(copy);
                return WASQ_NO_MEMORY;
            }
            copy = grown;
            cap = (size_t)got;
        }
        if (got < 0) {
            free(copy);
            return -got;
        }
    }
    copy[got] = '\0';
    *value = copy;
    *len = (size_t)got;
    return WASQ_OK;
}

/* Sets `key` to `value` (value_len 0 is an empty value, not a deletion);
 * returns a wasq_status. */
static inline int wasq_state_set(const void *key, size_t key_len, const void *value,
                                 size_t value_len) {
    return wasq_import_state_set(key, (int32_t)key_len, value, (int32_t)value_len);
}

/* Removes `key`: returns WASQ_OK if it had a value, WASQ_NOT_FOUND if it
 * had none (neither is a failure), or the status that stopped it. */
static inline int wasq_state_delete(const void *key, size_t key_len) {
    return wasq_import_state_delete(key, (int32_t)key_len);
}

/* Adds `by` (negative to subtract) to the counter at `key`, a key with no
 * value counting as 0, and sets *value (unless NULL) to the new value.
 * Returns a wasq_status: WASQ_NOT_A_NUMBER if the value is not a decimal
 * int64_t or the sum overflows. A counter is stored as decimal text, so
 * wasq_state_dup reads it as "42". */
static inline int wasq_state_increment(const void *key, size_t key_len, int64_t by,
                                       int64_t *value) {
    int64_t result = 0;
    int32_t status = wasq_import_state_increment(key, (int32_t)key_len, by, &result);
    if (value != NULL) {
        *value = status == WASQ_OK ? result : 0;
    }
    return status;
}

/* One entry of a scan: pointers into its wasq_state_entries' buffer, not
 * NUL-terminated. */
typedef struct wasq_state_entry {
    const uint8_t *key;
    size_t key_len;
    const uint8_t *value;
    size_t value_len;
} wasq_state_entry;

/* What wasq_state_scan fills: `count` entries in key order (bytewise).
 * wasq_state_entries_free releases them. */
typedef struct wasq_state_entries {
    wasq_state_entry *entries;
    size_t count;
    /* The host's encoding, which the entries point into. */
    uint8_t *data;
} wasq_state_entries;

/* Frees what wasq_state_scan put in *entries (and zeroes it). */
static inline void wasq_state_entries_free(wasq_state_entries *entries) {
    free(entries->entries);
    free(entries->data);
    memset(entries, 0, sizeof *entries);
}

/* Lists up to `limit` entries (the host gives at most 10 000) whose keys
 * start with `prefix` (prefix_len 0: every key) into *out. Returns WASQ_OK
 * or the status that stopped it (then *out is zeroed). Free *out with
 * wasq_state_entries_free either way. To page through many keys, scan
 * again with a longer prefix. */
static inline int wasq_state_scan(const void *prefix, size_t prefix_len, int32_t limit,
                                  wasq_state_entries *out) {
    memset(out, 0, sizeof *out);
    uint8_t *data = NULL;
    size_t cap = 1024, size;
    for (;;) {
        uint8_t *grown = (uint8_t *)realloc(data, cap);
        if (grown == NULL) {
            free(data);
            return WASQ_NO_MEMORY;
        }
        data = grown;
        int32_t got = wasq_import_state_scan(prefix, (int32_t)prefix_len, limit, data,
                                             cap > INT32_MAX ? INT32_MAX : (int32_t)cap);
        if (got < 0) {
            free(data);
            return -got;
        }
        if ((size_t)got <= cap) {
            size = (size_t)got;
            break;
        }
        /* Nothing was written; with a buffer that large, the next call fits
         * unless the state grew meanwhile (then this loops again). */
        cap = (size_t)got;
    }
    /* Two passes over the records: count them (checking every length
     * against the end), then point the entries at them. */
    size_t count = 0;
    for (size_t at = 0; at < size; count++) {
        uint32_t key_len, value_len;
        if (size - at < 8) {
            free(data);
            return WASQ_IO; /* cannot happen: the host's own encoding */
        }
        memcpy(&key_len, data + at, sizeof key_len);
        memcpy(&value_len, data + at + 4, sizeof value_len);
        at += 8;
        if (key_len > size - at || value_len > size - at - key_len) {
            free(data);
            return WASQ_IO;
        }
        at += (size_t)key_len + value_len;
    }
    wasq_state_entry *entries =
        (wasq_state_entry *)malloc((count ? count : 1) * sizeof(wasq_state_entry));
    if (entries == NULL) {
        free(data);
        return WASQ_NO_MEMORY;
    }
    size_t at = 0;
    for (size_t i = 0; i < count; i++) {
        uint32_t key_len, value_len;
        memcpy(&key_len, data + at, sizeof key_len);
        memcpy(&value_len, data + at + 4, sizeof value_len);
        entries[i].key = data + at + 8;
        entries[i].key_len = key_len;
        entries[i].value = data + at + 8 + key_len;
        entries[i].value_len = value_len;
        at += 8 + (size_t)key_len + value_len;
    }
    out->entries = entries;
    out->count = count;
    out->data = data;
    return WASQ_OK;
}

/* Defined by the plugin. */
wasq_outcome wasq_on_message(const wasq_message *message);
#ifdef WASQ_WITH_INIT
/* Defined by the plugin when WASQ_WITH_INIT is set: non-zero = cannot start. */
int wasq_on_init(void);
#endif

#ifndef WASQ_NO_EXPORTS

static uint32_t wasq_read_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v); /* wasm is little-endian, as the ABI */
    return v;
}

__attribute__((export_name("wasq_abi_version"))) int32_t wasq_abi_version(void) { return 1; }

/* The last batch's region, freed by the next wasq_alloc: the host reads
 * the batch's outcomes after wasq_handle_batch returns, and a free before
 * then lets malloc write its bookkeeping over them (ABI.md, "Batches"). */
static void *wasq_handed_batch;

__attribute__((export_name("wasq_alloc"))) void *wasq_alloc(int32_t size) {
    free(wasq_handed_batch);
    wasq_handed_batch = NULL;
    /* NULL (0) tells the host to retry the message later. */
    return size > 0 ? malloc((size_t)size) : NULL;
}

#ifdef WASQ_WITH_INIT
__attribute__((export_name("wasq_init"))) int32_t wasq_init(void) { return wasq_on_init(); }
#endif

/* Decodes the message at ptr (size bytes, the v1 layout) and runs the
 * plugin's handler on it. */
static wasq_outcome wasq_run(const uint8_t *ptr, size_t size) {
    if (size >= 48) {
        size_t header = wasq_read_u32(ptr);
        size_t topic_len = wasq_read_u32(ptr + 32);
        size_t channel_len = wasq_read_u32(ptr + 36);
        size_t body_len = wasq_read_u32(ptr + 40);
        if (header >= 48 && header <= size &&
            topic_len + channel_len + body_len == size - header) {
            uint16_t attempts;
            int64_t timestamp;
            memcpy(&attempts, ptr + 4, sizeof attempts);
            memcpy(&timestamp, ptr + 8, sizeof timestamp);
            const uint8_t *data = ptr + header;
            wasq_message message = {
                .attempts = attempts,
                .timestamp = timestamp,
                .id = ptr + 16,
                .topic = (const char *)data,
                .topic_len = topic_len,
                .channel = (const char *)data + topic_len,
                .channel_len = channel_len,
                .body = data + topic_len + channel_len,
                .body_len = body_len,
            };
            return wasq_on_message(&message);
        }
    }
    wasq_log(WASQ_ERROR, "wasq.h: malformed message header");
    return WASQ_RETRY;
}

__attribute__((export_name("wasq_handle"))) wasq_outcome wasq_handle(uint8_t *ptr, int32_t len) {
    wasq_outcome outcome = wasq_run(ptr, len > 0 ? (size_t)len : 0);
    free(ptr);
    return outcome;
}

/* Many messages in one call (ABI.md, "Batches"): entry i of the table at
 * ptr is 16 bytes, the outcome (written here) then the message's offset
 * and length; the outcome of each is written as soon as it is known. */
__attribute__((export_name("wasq_handle_batch"))) void wasq_handle_batch(uint8_t *ptr, int32_t len,
                                                                         int32_t count) {
    size_t size = len > 0 ? (size_t)len : 0;
    if (count < 0 || (size_t)count > size / 16) {
        wasq_log(WASQ_ERROR, "wasq.h: malformed batch");
        count = 0;
    }
    for (int32_t i = 0; i < count; i++) {
        uint8_t *entry = ptr + (size_t)i * 16;
        size_t offset = wasq_read_u32(entry + 8);
        size_t length = wasq_read_u32(entry + 12);
        wasq_outcome outcome = offset <= size && length <= size - offset
                                   ? wasq_run(ptr + offset, length)
                                   : WASQ_RETRY;
        memcpy(entry, &outcome, sizeof outcome);
    }
    wasq_handed_batch = ptr;
}

#endif /* WASQ_NO_EXPORTS */

#ifdef __cplusplus
}
#endif

#endif /* WASQ_H */
