/* The envelope: signed header, body and tag (PROTOCOL.md section 4). */
#include "locker_proto.h"

#include <string.h>

int lp_type_known(uint8_t type) {
    return (type >= LP_UNLOCK && type <= LP_INSTALL) ||
           (type >= LP_HELLO && type <= LP_UPDATE_REPORT);
}

const char *lp_status_name(lp_status status) {
    switch (status) {
    case LP_OK: return "ok";
    case LP_ERR_SPACE: return "output buffer too small";
    case LP_ERR_LENGTH: return "length outside the protocol's limits";
    case LP_ERR_VERSION: return "unsupported envelope version";
    case LP_ERR_DIRECTION: return "unknown direction";
    case LP_ERR_ENCODING: return "wrong encoding";
    case LP_ERR_DEVICE_ID: return "invalid device id";
    case LP_ERR_TYPE: return "unknown message type";
    case LP_ERR_BAD_TAG: return "bad tag";
    case LP_ERR_ADDRESS: return "bus address outside 1..247";
    case LP_ERR_RANGE: return "field outside its range";
    }
    return "unknown status";
}

static int id_char(uint8_t c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

static int valid_id(const uint8_t *id, size_t len) {
    size_t i;
    if (len < 1u || len > LP_MAX_DEVICE_ID) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (!id_char(id[i])) {
            return 0;
        }
    }
    return 1;
}

lp_status lp_envelope_init(lp_envelope *env, uint8_t direction, uint8_t encoding,
                           const char *device_id, uint32_t session, uint32_t counter,
                           uint8_t type) {
    size_t len = 0;
    while (len <= LP_MAX_DEVICE_ID && device_id[len] != '\0') {
        len++;
    }
    if (!valid_id((const uint8_t *)device_id, len)) {
        return LP_ERR_DEVICE_ID;
    }
    memset(env, 0, sizeof *env);
    env->direction = direction;
    env->encoding = encoding;
    env->device_id_len = (uint8_t)len;
    memcpy(env->device_id, device_id, len);
    env->session = session;
    env->counter = counter;
    env->type = type;
    return LP_OK;
}

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Checks the header fields and writes the signed header; returns its length, 0 when invalid. */
static size_t header(const lp_envelope *env, uint8_t out[LP_HEADER_LEN(LP_MAX_DEVICE_ID)],
                     lp_status *status) {
    size_t l = env->device_id_len;
    size_t max_body = env->encoding == LP_BINARY ? LP_MAX_BINARY_BODY : LP_MAX_JSON_BODY;
    if (env->direction != LP_DOWN && env->direction != LP_UP) {
        *status = LP_ERR_DIRECTION;
        return 0;
    }
    if (env->encoding != LP_BINARY && env->encoding != LP_JSON) {
        *status = LP_ERR_ENCODING;
        return 0;
    }
    if (!valid_id((const uint8_t *)env->device_id, l)) {
        *status = LP_ERR_DEVICE_ID;
        return 0;
    }
    if (!lp_type_known(env->type)) {
        *status = LP_ERR_TYPE;
        return 0;
    }
    if (env->body_len > max_body || (env->body_len > 0u && env->body == NULL)) {
        *status = LP_ERR_LENGTH;
        return 0;
    }
    out[0] = LP_ENVELOPE_VERSION;
    out[1] = env->direction;
    out[2] = env->encoding;
    out[3] = (uint8_t)l;
    memcpy(out + 4, env->device_id, l);
    put32(out + 4 + l, env->session);
    put32(out + 8 + l, env->counter);
    out[12 + l] = env->type;
    out[13 + l] = (uint8_t)(env->body_len >> 8);
    out[14 + l] = (uint8_t)env->body_len;
    *status = LP_OK;
    return LP_HEADER_LEN(l);
}

lp_status lp_envelope_tag(const lp_envelope *env, const uint8_t key[LP_KEY_LEN],
                          uint8_t tag[LP_TAG_LEN]) {
    uint8_t head[LP_HEADER_LEN(LP_MAX_DEVICE_ID)];
    uint8_t mac[32];
    lp_status status;
    size_t n = header(env, head, &status);
    if (n == 0u) {
        return status;
    }
    lp_hmac_sha256(key, LP_KEY_LEN, head, n, env->body, env->body_len, mac);
    memcpy(tag, mac, LP_TAG_LEN);
    memset(mac, 0, sizeof mac);
    return LP_OK;
}

lp_status lp_envelope_seal(const lp_envelope *env, const uint8_t key[LP_KEY_LEN], uint8_t *out,
                           size_t out_cap, size_t *out_len) {
    uint8_t head[LP_HEADER_LEN(LP_MAX_DEVICE_ID)];
    uint8_t tag[LP_TAG_LEN] = {0};
    lp_status status;
    size_t n, total;
    if (env->encoding != LP_BINARY) {
        return LP_ERR_ENCODING;
    }
    n = header(env, head, &status);
    if (n == 0u) {
        return status;
    }
    total = n + env->body_len + LP_TAG_LEN;
    if (out_cap < total) {
        return LP_ERR_SPACE;
    }
    status = lp_envelope_tag(env, key, tag);
    if (status != LP_OK) {
        return status;
    }
    /* The body may already sit in `out` where it belongs: move it, never copy over it. */
    if (env->body_len > 0u) {
        memmove(out + n, env->body, env->body_len);
    }
    memcpy(out, head, n);
    memcpy(out + n + env->body_len, tag, LP_TAG_LEN);
    *out_len = total;
    return LP_OK;
}

lp_status lp_envelope_parse(const uint8_t *in, size_t len, lp_envelope *env,
                            uint8_t tag[LP_TAG_LEN]) {
    size_t l, body_len;
    memset(env, 0, sizeof *env);
    if (len < LP_MIN_ENVELOPE || len > LP_MAX_ENVELOPE) {
        return LP_ERR_LENGTH;
    }
    if (in[0] != LP_ENVELOPE_VERSION) {
        return LP_ERR_VERSION;
    }
    if (in[1] != LP_DOWN && in[1] != LP_UP) {
        return LP_ERR_DIRECTION;
    }
    if (in[2] != LP_BINARY) {
        return LP_ERR_ENCODING;
    }
    l = in[3];
    if (len < LP_HEADER_LEN(l) + LP_TAG_LEN) {
        return LP_ERR_LENGTH;
    }
    if (!valid_id(in + 4, l)) {
        return LP_ERR_DEVICE_ID;
    }
    if (!lp_type_known(in[12 + l])) {
        return LP_ERR_TYPE;
    }
    body_len = ((size_t)in[13 + l] << 8) | in[14 + l];
    if (body_len > LP_MAX_BINARY_BODY || len != LP_HEADER_LEN(l) + body_len + LP_TAG_LEN) {
        return LP_ERR_LENGTH;
    }
    env->direction = in[1];
    env->encoding = in[2];
    env->device_id_len = (uint8_t)l;
    memcpy(env->device_id, in + 4, l);
    env->session = get32(in + 4 + l);
    env->counter = get32(in + 8 + l);
    env->type = in[12 + l];
    env->body = in + LP_HEADER_LEN(l);
    env->body_len = (uint16_t)body_len;
    memcpy(tag, in + LP_HEADER_LEN(l) + body_len, LP_TAG_LEN);
    return LP_OK;
}

lp_status lp_envelope_open(const uint8_t *in, size_t len, const uint8_t key[LP_KEY_LEN],
                           lp_envelope *env) {
    uint8_t sent[LP_TAG_LEN] = {0};
    uint8_t expected[LP_TAG_LEN] = {0};
    lp_status status = lp_envelope_parse(in, len, env, sent);
    if (status != LP_OK) {
        return status;
    }
    status = lp_envelope_tag(env, key, expected);
    if (status != LP_OK) {
        return status;
    }
    return lp_tags_equal(sent, expected) ? LP_OK : LP_ERR_BAD_TAG;
}

void lp_tag_hex(const uint8_t tag[LP_TAG_LEN], char hex[2 * LP_TAG_LEN + 1]) {
    static const char digits[] = "0123456789abcdef";
    unsigned i;
    for (i = 0; i < LP_TAG_LEN; i++) {
        hex[2 * i] = digits[tag[i] >> 4];
        hex[2 * i + 1] = digits[tag[i] & 15u];
    }
    hex[2 * LP_TAG_LEN] = '\0';
}
