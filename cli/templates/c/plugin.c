/* {{name}}: consumes `{{name}}` and publishes each body, its ASCII letters
 * uppercased, to `{{name}}.upper`. */
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
    int status = wasq_publish("{{name}}.upper", upper, message->body_len);
    free(upper);
    if (status != WASQ_OK) {
        wasq_log(WASQ_WARN, "cannot publish to {{name}}.upper");
        return WASQ_RETRY;
    }
    return WASQ_SUCCESS;
}
