/* JSON for MQTT (PROTOCOL.md sections 2.1 and 4.4): the envelope sealed and opened, an uplink's
 * binary body turned into its JSON body, and a downlink's JSON body into its binary body (which
 * the lp_read_* functions then check). A strict reader of the few shapes the protocol uses: no
 * heap, bounded nesting, never reads past the given length. */
#include "lp_json_text.h"

#include <string.h>

#define MAX_DEPTH 16

/* ---- Reading ---- */

static void ws(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) {
        c->p++;
    }
}

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

static int hex4(const char *p, const char *end, unsigned *v) {
    int i;
    *v = 0;
    if (end - p < 4) return 0;
    for (i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0) return 0;
        *v = (*v << 4) | (unsigned)h;
    }
    return 1;
}

static int put_utf8(unsigned cp, char *out, size_t cap, size_t *n) {
    char b[4];
    size_t k, len;
    if (cp < 0x80u) {
        b[0] = (char)cp; len = 1;
    } else if (cp < 0x800u) {
        b[0] = (char)(0xC0u | (cp >> 6)); b[1] = (char)(0x80u | (cp & 0x3Fu)); len = 2;
    } else if (cp < 0x10000u) {
        b[0] = (char)(0xE0u | (cp >> 12)); b[1] = (char)(0x80u | ((cp >> 6) & 0x3Fu));
        b[2] = (char)(0x80u | (cp & 0x3Fu)); len = 3;
    } else {
        b[0] = (char)(0xF0u | (cp >> 18)); b[1] = (char)(0x80u | ((cp >> 12) & 0x3Fu));
        b[2] = (char)(0x80u | ((cp >> 6) & 0x3Fu)); b[3] = (char)(0x80u | (cp & 0x3Fu)); len = 4;
    }
    if (out != NULL) {
        if (cap - *n < len) return 0;
        for (k = 0; k < len; k++) out[*n + k] = b[k];
    }
    *n += len;
    return 1;
}

/* Reads a string at the cursor; unescaped into out (cap bytes; out NULL: only checked). */
int lpj_string(cursor *c, char *out, size_t cap, size_t *n) {
    *n = 0;
    if (c->p >= c->end || *c->p != '"') return 0;
    c->p++;
    while (c->p < c->end) {
        unsigned char ch = (unsigned char)*c->p++;
        if (ch == '"') return 1;
        if (ch < 0x20u) return 0;
        if (ch == '\\') {
            unsigned cp;
            char e;
            if (c->p >= c->end) return 0;
            e = *c->p++;
            switch (e) {
            case '"': case '\\': case '/': cp = (unsigned char)e; break;
            case 'b': cp = 8; break;
            case 'f': cp = 12; break;
            case 'n': cp = 10; break;
            case 'r': cp = 13; break;
            case 't': cp = 9; break;
            case 'u':
                if (!hex4(c->p, c->end, &cp)) return 0;
                c->p += 4;
                if (cp >= 0xD800u && cp < 0xDC00u) {
                    unsigned lo;
                    if (c->end - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u' ||
                        !hex4(c->p + 2, c->end, &lo) || lo < 0xDC00u || lo >= 0xE000u) {
                        return 0;
                    }
                    c->p += 6;
                    cp = 0x10000u + ((cp - 0xD800u) << 10) + (lo - 0xDC00u);
                } else if (cp >= 0xDC00u && cp < 0xE000u) {
                    return 0;
                }
                break;
            default: return 0;
            }
            if (!put_utf8(cp, out, cap, n)) return 0;
        } else {
            if (out != NULL) {
                if (*n >= cap) return 0;
                out[*n] = (char)ch;
            }
            (*n)++;
        }
    }
    return 0;
}

/* A non-negative integer without fraction or exponent, at most 2^53 - 1. */
int lpj_integer(cursor *c, uint64_t *v) {
    const char *start = c->p;
    *v = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        *v = *v * 10u + (uint64_t)(*c->p - '0');
        c->p++;
        if (*v > LP_MAX_SAFE_INTEGER) return 0;
    }
    if (c->p == start || (c->p - start > 1 && *start == '0')) return 0;
    return c->p >= c->end || (*c->p != '.' && *c->p != 'e' && *c->p != 'E');
}

static int value(cursor *c, int depth);

static int literal(cursor *c, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) return 0;
    c->p += n;
    return 1;
}

static int number(cursor *c) {
    const char *start;
    if (c->p < c->end && *c->p == '-') c->p++;
    start = c->p;
    while (c->p < c->end && ((*c->p >= '0' && *c->p <= '9') || *c->p == '.' || *c->p == 'e' ||
                             *c->p == 'E' || *c->p == '+' || *c->p == '-')) {
        c->p++;
    }
    return c->p > start;
}

/* Skips a container: members (object) or elements (array). */
static int container(cursor *c, int depth, char close, int object) {
    size_t n;
    c->p++;
    ws(c);
    if (c->p < c->end && *c->p == close) { c->p++; return 1; }
    for (;;) {
        ws(c);
        if (object) {
            if (!lpj_string(c, NULL, 0, &n)) return 0;
            ws(c);
            if (c->p >= c->end || *c->p != ':') return 0;
            c->p++;
        }
        if (!value(c, depth + 1)) return 0;
        ws(c);
        if (c->p >= c->end) return 0;
        if (*c->p == close) { c->p++; return 1; }
        if (*c->p != ',') return 0;
        c->p++;
    }
}

static int value(cursor *c, int depth) {
    size_t n;
    ws(c);
    if (c->p >= c->end || depth > MAX_DEPTH) return 0;
    switch (*c->p) {
    case '"': return lpj_string(c, NULL, 0, &n);
    case '{': return container(c, depth, '}', 1);
    case '[': return container(c, depth, ']', 0);
    case 't': return literal(c, "true");
    case 'f': return literal(c, "false");
    case 'n': return literal(c, "null");
    default: return number(c);
    }
}

/* Finds member `key` of the object text; *at is the cursor at its value. 1 found, 0 absent,
 * -1 not a well-formed object. */
int lpj_member(const char *text, size_t len, const char *key, cursor *at) {
    cursor c;
    int found = 0;
    char name[32];
    size_t n;
    c.p = text;
    c.end = text + len;
    ws(&c);
    if (c.p >= c.end || *c.p != '{') return -1;
    c.p++;
    ws(&c);
    if (c.p < c.end && *c.p == '}') { c.p++; goto end; }
    for (;;) {
        cursor name_at;
        ws(&c);
        name_at = c;
        if (!lpj_string(&c, NULL, 0, &n)) return -1;
        ws(&c);
        if (c.p >= c.end || *c.p != ':') return -1;
        c.p++;
        ws(&c);
        if (n < sizeof name && lpj_string(&name_at, name, sizeof name, &n) && n == strlen(key) &&
            memcmp(name, key, n) == 0) {
            if (found) return -1; /* a field twice */
            found = 1;
            *at = c;
        }
        if (!value(&c, 1)) return -1;
        ws(&c);
        if (c.p >= c.end) return -1;
        if (*c.p == '}') { c.p++; break; }
        if (*c.p != ',') return -1;
        c.p++;
    }
end:
    ws(&c);
    return c.p == c.end ? found : -1;
}

/* An integer member: 1 read, 0 absent, -1 malformed or out of [0, max]. */
int lpj_int_member(const char *text, size_t len, const char *key, uint64_t max, uint64_t *v) {
    cursor at;
    int found = lpj_member(text, len, key, &at);
    if (found <= 0) return found;
    return lpj_integer(&at, v) && *v <= max ? 1 : -1;
}

/* ---- Writing ---- */

void lpj_put(sink *s, const char *text, size_t len) {
    if (s->cap - s->n < len) { s->full = 1; return; }
    memcpy(s->p + s->n, text, len);
    s->n += len;
}

void lpj_puts(sink *s, const char *text) { lpj_put(s, text, strlen(text)); }

void lpj_putu(sink *s, uint64_t v) {
    char digits[24];
    size_t i = sizeof digits;
    do { digits[--i] = (char)('0' + v % 10u); v /= 10u; } while (v != 0u);
    lpj_put(s, digits + i, sizeof digits - i);
}

void lpj_quoted(sink *s, const char *text, size_t len) {
    size_t i;
    lpj_puts(s, "\"");
    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch == '"' || ch == '\\') {
            char esc[2];
            esc[0] = '\\';
            esc[1] = (char)ch;
            lpj_put(s, esc, 2);
        } else if (ch < 0x20u) {
            static const char hex[] = "0123456789abcdef";
            char esc[6] = {'\\', 'u', '0', '0', 0, 0};
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15u];
            lpj_put(s, esc, 6);
        } else {
            lpj_put(s, (const char *)&text[i], 1);
        }
    }
    lpj_puts(s, "\"");
}

lp_status lpj_done(sink *s, size_t *out_len) {
    if (s->full) return LP_ERR_SPACE;
    *out_len = s->n;
    return LP_OK;
}


/* ---- The envelope (section 4.4) ---- */

static const struct {
    uint8_t code;
    const char *name;
} TYPES[] = {{LP_UNLOCK, "unlock"},       {LP_QUERY_STATE, "query_state"},
             {LP_CONFIGURE, "configure"}, {LP_PING, "ping"},
             {LP_POLL, "poll"},           {LP_HELLO, "hello"},
             {LP_HEARTBEAT, "heartbeat"}, {LP_ACK, "ack"},
             {LP_DOOR_EVENT, "door_event"}, {LP_ALARM, "alarm"},
             {LP_STATE_REPORT, "state_report"}, {LP_PONG, "pong"},
             {LP_UPDATE_OFFER, "update_offer"}, {LP_CHUNK, "chunk"},
             {LP_INSTALL, "install"}, {LP_CHUNK_REQUEST, "chunk_request"},
             {LP_UPDATE_REPORT, "update_report"}};

const char *lp_type_name(uint8_t type) {
    size_t i;
    for (i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++) {
        if (TYPES[i].code == type) return TYPES[i].name;
    }
    return NULL;
}

lp_status lp_json_seal(const lp_envelope *env, const uint8_t key[LP_KEY_LEN], char *out,
                       size_t out_cap, size_t *out_len) {
    uint8_t tag[LP_TAG_LEN];
    char hex[2 * LP_TAG_LEN + 1];
    const char *type = lp_type_name(env->type);
    sink s;
    lp_status st;
    if (type == NULL) return LP_ERR_TYPE;
    if (env->encoding != LP_JSON) return LP_ERR_ENCODING;
    st = lp_envelope_tag(env, key, tag);
    if (st != LP_OK) return st;
    lp_tag_hex(tag, hex);
    s.p = out; s.cap = out_cap; s.n = 0; s.full = 0;
    lpj_puts(&s, "{\"version\":1,\"direction\":");
    lpj_puts(&s, env->direction == LP_DOWN ? "\"down\"" : "\"up\"");
    lpj_puts(&s, ",\"device_id\":");
    lpj_quoted(&s, env->device_id, env->device_id_len);
    lpj_puts(&s, ",\"session\":");
    lpj_putu(&s, env->session);
    lpj_puts(&s, ",\"counter\":");
    lpj_putu(&s, env->counter);
    lpj_puts(&s, ",\"type\":\"");
    lpj_puts(&s, type);
    lpj_puts(&s, "\",\"body\":");
    lpj_quoted(&s, (const char *)env->body, env->body_len);
    lpj_puts(&s, ",\"tag\":\"");
    lpj_puts(&s, hex);
    lpj_puts(&s, "\"}");
    return lpj_done(&s, out_len);
}

/* A string member into out (NUL-terminated); 1 read, else 0. */
static int text_member(const char *payload, size_t len, const char *key, char *out, size_t cap,
                       size_t *n) {
    cursor at;
    if (lpj_member(payload, len, key, &at) != 1 || !lpj_string(&at, out, cap - 1u, n)) return 0;
    out[*n] = '\0';
    return 1;
}

lp_status lp_json_open(const char *payload, size_t len, const uint8_t key[LP_KEY_LEN],
                       lp_envelope *env, char *body, size_t body_cap) {
    uint64_t version, session, counter;
    char word[16], id[LP_MAX_DEVICE_ID + 1], tag_hex[2 * LP_TAG_LEN + 1];
    uint8_t tag[LP_TAG_LEN], expected[LP_TAG_LEN], direction, type = 0;
    size_t n, i;
    lp_status st;
    cursor at;
    if (len > LP_MAX_JSON_PAYLOAD) return LP_ERR_LENGTH;
    if (lpj_int_member(payload, len, "version", 0xFFu, &version) != 1) return LP_ERR_LENGTH;
    if (version != LP_ENVELOPE_VERSION) return LP_ERR_VERSION;
    if (!text_member(payload, len, "direction", word, sizeof word, &n)) return LP_ERR_LENGTH;
    if (strcmp(word, "down") == 0) {
        direction = LP_DOWN;
    } else if (strcmp(word, "up") == 0) {
        direction = LP_UP;
    } else {
        return LP_ERR_DIRECTION;
    }
    if (!text_member(payload, len, "device_id", id, sizeof id, &n)) return LP_ERR_DEVICE_ID;
    if (lpj_int_member(payload, len, "session", 0xFFFFFFFFu, &session) != 1 ||
        lpj_int_member(payload, len, "counter", 0xFFFFFFFFu, &counter) != 1) {
        return LP_ERR_LENGTH;
    }
    if (!text_member(payload, len, "type", word, sizeof word, &n)) return LP_ERR_TYPE;
    for (i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++) {
        if (strcmp(TYPES[i].name, word) == 0) type = TYPES[i].code;
    }
    if (type == 0) return LP_ERR_TYPE;
    st = lp_envelope_init(env, direction, LP_JSON, id, (uint32_t)session, (uint32_t)counter, type);
    if (st != LP_OK) return st;
    if (lpj_member(payload, len, "body", &at) != 1 || !lpj_string(&at, body, body_cap, &n) ||
        n > LP_MAX_JSON_BODY) {
        return LP_ERR_LENGTH;
    }
    env->body = (const uint8_t *)body;
    env->body_len = (uint16_t)n;
    /* 32 lowercase hex digits. */
    if (!text_member(payload, len, "tag", tag_hex, sizeof tag_hex, &n) || n != 2u * LP_TAG_LEN) {
        return LP_ERR_BAD_TAG;
    }
    for (i = 0; i < LP_TAG_LEN; i++) {
        int hi = hexval(tag_hex[2 * i]), lo = hexval(tag_hex[2 * i + 1]);
        if (hi < 0 || lo < 0 || (tag_hex[2 * i] >= 'A' && tag_hex[2 * i] <= 'F') ||
            (tag_hex[2 * i + 1] >= 'A' && tag_hex[2 * i + 1] <= 'F')) {
            return LP_ERR_BAD_TAG;
        }
        tag[i] = (uint8_t)(hi << 4 | lo);
    }
    st = lp_envelope_tag(env, key, expected);
    if (st != LP_OK) return st;
    return lp_tags_equal(tag, expected) ? LP_OK : LP_ERR_BAD_TAG;
}
