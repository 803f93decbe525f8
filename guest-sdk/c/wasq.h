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

/* Statuses of wasq_publish, wasq_publish_deferred and wasq_log. */
enum wasq_status {
    WASQ_OK = 0,
    WASQ_FORBIDDEN = 1,     /* topic not in the manifest's publish list */
    WASQ_INVALID_TOPIC = 2, /* not a valid NSQ topic name */
    WASQ_INVALID_BODY = 3,  /* empty, or over the broker's --max-msg-size */
    WASQ_INVALID_DELAY = 4, /* negative, or over --max-req-timeout */
    WASQ_BAD_POINTER = 5,   /* a pointer/length outside memory */
    WASQ_UNAVAILABLE = 6,   /* shutting down, topic deleted, or not stored */
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
    static const char *const names[] = {"OK",           "FORBIDDEN",   "INVALID_TOPIC",
                                        "INVALID_BODY", "INVALID_DELAY", "BAD_POINTER",
                                        "UNAVAILABLE"};
    return status >= 0 && status <= 6 ? names[status] : "UNKNOWN";
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

__attribute__((export_name("wasq_alloc"))) void *wasq_alloc(int32_t size) {
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
    free(ptr);
}

#endif /* WASQ_NO_EXPORTS */

#ifdef __cplusplus
}
#endif

#endif /* WASQ_H */
