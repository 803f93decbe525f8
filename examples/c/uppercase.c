/* uppercase, in C: consumes `words` and publishes each body uppercased
 * (ASCII letters only, as the Rust example) to `words.upper.c`. */
#include "wasq.h"

wasq_outcome wasq_on_message(const wasq_message *message) {
    uint8_t *upper = malloc(message->body_len ? message->body_len : 1);
    if (upper == NULL) {
        return WASQ_RETRY;
    }
    for (size_t i = 0; i < message->body_len; i++) {
        uint8_t c = message->body[i];
        upper[i] = (c >= 'a' && c <= 'z') ? (uint8_t)(c - 'a' + 'A') : c;
    }
    int status = wasq_publish("words.upper.c", upper, message->body_len);
    free(upper);
    if (status != WASQ_OK) {
        wasq_log(WASQ_WARN, "cannot publish to words.upper.c");
        return WASQ_RETRY;
    }
    return WASQ_SUCCESS;
}
