/* JSON bodies (PROTOCOL.md section 2.1): an uplink's binary body written out as its JSON body,
 * field for field in the order the gateway writes them, and a downlink's JSON body read into its
 * binary body for the lp_read_* functions. */
#include "lp_json_text.h"

#include <string.h>

static uint64_t get(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    size_t i;
    for (i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

static void set(uint8_t *p, uint64_t v, size_t n) {
    while (n-- > 0u) {
        p[n] = (uint8_t)(v & 0xFFu);
        v >>= 8;
    }
}

static const char *const RESULTS[] = {"executed", "no_such_door", "busy", "expired", "bad_tag",
                                      "stale_counter", "unsupported", "wrong_session",
                                      "malformed"};
static const char *const ALARMS[] = {"", "forced_open", "door_ajar", "tamper", "power_loss",
                                     "jammed"};
static const char *const OUTCOMES[] = {"", "opened", "already_open", "not_opened"};

static void field_u(sink *s, const char *name, uint64_t v, int first) {
    lpj_puts(s, first ? "{\"" : ",\"");
    lpj_puts(s, name);
    lpj_puts(s, "\":");
    lpj_putu(s, v);
}

static void field_s(sink *s, const char *name, const char *v) {
    lpj_puts(s, ",\"");
    lpj_puts(s, name);
    lpj_puts(s, "\":\"");
    lpj_puts(s, v);
    lpj_puts(s, "\"");
}

static int doors(sink *s, const uint8_t *d, size_t n) {
    static const char *const SENSORS[] = {"unknown", "closed", "open"};
    size_t i;
    lpj_puts(s, ",\"doors\":[");
    for (i = 0; i < n; i++) {
        unsigned sensor = d[i] & 3u, item = (d[i] >> 3) & 3u;
        if (sensor == 3u || item == 3u) return 0;
        lpj_puts(s, i ? ",{\"sensor\":\"" : "{\"sensor\":\"");
        lpj_puts(s, SENSORS[sensor]);
        lpj_puts(s, d[i] & 4u ? "\",\"locked\":true" : "\",\"locked\":false");
        if (item != 0u) lpj_puts(s, item == 2u ? ",\"occupied\":true" : ",\"occupied\":false");
        lpj_puts(s, "}");
    }
    lpj_puts(s, "]");
    return 1;
}

static int ack(sink *s, const uint8_t *p, int first) {
    field_u(s, "command_id", get(p, 8), first);
    if (p[8] == 0u) {
        field_s(s, "result", "executed");
    } else if (p[8] <= LP_MALFORMED) {
        field_s(s, "result", "refused");
        field_s(s, "reason", RESULTS[p[8]]);
    } else {
        return 0;
    }
    lpj_puts(s, "}");
    return 1;
}

static int text(sink *s, const char *name, const uint8_t *b, size_t len, size_t *at) {
    size_t n;
    if (*at >= len) return 0;
    n = b[(*at)++];
    if (n == 0u || n > LP_MAX_TEXT || len - *at < n) return 0;
    lpj_puts(s, ",\"");
    lpj_puts(s, name);
    lpj_puts(s, "\":");
    lpj_quoted(s, (const char *)b + *at, n);
    *at += n;
    return 1;
}

static int state_report(sink *s, const uint8_t *b, size_t len) {
    size_t n, r, d, i, at;
    if (len < 7u) return 0;
    field_u(s, "query_id", get(b, 4), 1);
    n = (size_t)get(b + 4, 2);
    if (len < 7u + n || !doors(s, b + 6, n)) return 0;
    at = 6u + n;
    r = b[at++];
    if (len - at < 9u * r) return 0;
    lpj_puts(s, ",\"recent\":[");
    for (i = 0; i < r; i++, at += 9u) {
        if (i) lpj_puts(s, ",");
        if (!ack(s, b + at, 1)) return 0;
    }
    lpj_puts(s, "]");
    if (at < len && (d = b[at++]) > 0u) {
        if (len - at < 9u * d) return 0;
        lpj_puts(s, ",\"door_results\":[");
        for (i = 0; i < d; i++, at += 9u) {
            if (b[at + 8] == 0u || b[at + 8] > 3u) return 0;
            if (i) lpj_puts(s, ",");
            field_u(s, "command_id", get(b + at, 8), 1);
            field_s(s, "door", OUTCOMES[b[at + 8]]);
            lpj_puts(s, "}");
        }
        lpj_puts(s, "]");
    }
    lpj_puts(s, "}");
    return 1;
}

lp_status lp_json_from_binary(uint8_t type, const uint8_t *b, size_t len, char *out,
                              size_t out_cap, size_t *out_len) {
    sink s;
    size_t at = 1;
    int ok = 0;
    s.p = out; s.cap = out_cap; s.n = 0; s.full = 0;
    switch (type) {
    case LP_HELLO:
        if (len < 1u) break;
        field_u(&s, "protocol_version", b[0], 1);
        ok = text(&s, "firmware", b, len, &at) && text(&s, "serial_no", b, len, &at) &&
             (len - at == 14u || len - at == 16u);
        if (ok) {
            field_u(&s, "door_count", get(b + at, 2), 0);
            field_u(&s, "session", get(b + at + 2, 4), 0);
            field_u(&s, "uptime_ms", get(b + at + 6, 8), 0);
            /* Appended: the locker takes updates in chunks of at most this (section 11). */
            if (len - at == 16u && get(b + at + 14, 2) != 0u) {
                field_u(&s, "max_chunk", get(b + at + 14, 2), 0);
            }
            lpj_puts(&s, "}");
        }
        break;
    case LP_HEARTBEAT:
        if (len < 11u || len != 11u + get(b + 9, 2)) break;
        field_u(&s, "uptime_ms", get(b, 8), 1);
        ok = doors(&s, b + 11, len - 11u);
        if (ok && b[8] != 0x80u) {
            int dbm = b[8] < 0x80u ? b[8] : (int)b[8] - 256;
            lpj_puts(&s, ",\"signal\":");
            if (dbm < 0) lpj_puts(&s, "-");
            lpj_putu(&s, (uint64_t)(dbm < 0 ? -dbm : dbm));
        }
        lpj_puts(&s, "}");
        break;
    case LP_ACK:
        ok = len == 9u && ack(&s, b, 1);
        break;
    case LP_DOOR_EVENT:
        if (len != 19u || b[2] < 1u || b[2] > 2u) break;
        field_u(&s, "door", get(b, 2), 1);
        field_s(&s, "state", b[2] == 1u ? "opened" : "closed");
        if (get(b + 3, 8) != 0u) {
            field_s(&s, "cause", "commanded");
            field_u(&s, "command_id", get(b + 3, 8), 0);
        } else {
            field_s(&s, "cause", "uncommanded");
        }
        field_u(&s, "uptime_ms", get(b + 11, 8), 0);
        lpj_puts(&s, "}");
        ok = 1;
        break;
    case LP_ALARM:
        if (len != 11u || b[0] < 1u || b[0] > 5u) break;
        lpj_puts(&s, "{\"kind\":\"");
        lpj_puts(&s, ALARMS[b[0]]);
        lpj_puts(&s, "\"");
        if (get(b + 1, 2) != 0u) field_u(&s, "door", get(b + 1, 2), 0);
        field_u(&s, "uptime_ms", get(b + 3, 8), 0);
        lpj_puts(&s, "}");
        ok = 1;
        break;
    case LP_STATE_REPORT:
        ok = state_report(&s, b, len);
        break;
    case LP_PONG:
    case LP_PING:
        lpj_puts(&s, "{}");
        ok = len == 0u;
        break;
    default:
        ok = lpj_update_from_binary(&s, type, b, len);
        if (ok < 0) return LP_ERR_TYPE;
    }
    return ok ? lpj_done(&s, out_len) : LP_ERR_RANGE;
}

/* The integer member `key` (required unless `optional`) into n big-endian bytes at out. */
static lp_status take(const char *json, size_t len, const char *key, uint64_t max, int optional,
                      uint8_t *out, size_t n) {
    uint64_t v = 0;
    int found = lpj_int_member(json, len, key, max, &v);
    if (found < 0) return LP_ERR_RANGE;
    if (found == 0 && !optional) return LP_ERR_LENGTH;
    if (found == 1 && optional && v == 0u) return LP_ERR_RANGE; /* an expiry of 0 is invalid */
    set(out, v, n);
    return LP_OK;
}

typedef struct {
    const char *key;
    uint8_t size, optional;
} field;

static const field UNLOCK[] = {{"command_id", 8, 0}, {"door", 2, 0}, {"expires_at_ms", 8, 1}};
static const field CONFIGURE[] = {{"command_id", 8, 0},    {"heartbeat_secs", 2, 0},
                                  {"open_window_ms", 2, 0}, {"pulse_ms", 2, 0},
                                  {"ajar_alarm_secs", 2, 0}, {"expires_at_ms", 8, 1}};
static const field QUERY[] = {{"query_id", 4, 0}};
static const field POLL[] = {{"ack_counter", 4, 0}};

lp_status lp_json_to_binary(uint8_t type, const char *json, size_t len, uint8_t *out,
                            size_t out_cap, size_t *out_len) {
    const field *fields;
    size_t count, i, at = 0;
    cursor none;
    switch (type) {
    case LP_UNLOCK: fields = UNLOCK; count = 3; break;
    case LP_CONFIGURE: fields = CONFIGURE; count = 6; break;
    case LP_QUERY_STATE: fields = QUERY; count = 1; break;
    case LP_POLL: fields = POLL; count = 1; break;
    case LP_PING:
        /* An object, whatever it holds. */
        if (lpj_member(json, len, "", &none) < 0) return LP_ERR_RANGE;
        *out_len = 0;
        return LP_OK;
    default: return lpj_update_to_binary(type, json, len, out, out_cap, out_len);
    }
    for (i = 0; i < count; i++) {
        const field *f = &fields[i];
        uint64_t max = f->size == 8u ? LP_MAX_SAFE_INTEGER : f->size == 4u ? 0xFFFFFFFFu : 0xFFFFu;
        lp_status st;
        if (out_cap - at < f->size) return LP_ERR_SPACE;
        st = take(json, len, f->key, max, f->optional, out + at, f->size);
        if (st != LP_OK) return st;
        at += f->size;
    }
    *out_len = at;
    return LP_OK;
}

int lp_json_command_id(const char *json, size_t len, uint64_t *command_id) {
    return lpj_int_member(json, len, "command_id", LP_MAX_SAFE_INTEGER, command_id) == 1 &&
           *command_id >= 1u;
}
