/* JSON bodies of the firmware update messages (PROTOCOL.md section 11), for lp_json_to_binary and
 * lp_json_from_binary: hashes and signatures are lowercase hex strings, chunk data is base64. */
#include "locker_update.h"
#include "lp_json_text.h"

#include <string.h>

static void set(uint8_t *p, uint64_t v, size_t n) {
    while (n-- > 0u) {
        p[n] = (uint8_t)(v & 0xFFu);
        v >>= 8;
    }
}

static uint64_t get(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    size_t i;
    for (i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

/* An integer member into n bytes: LP_ERR_LENGTH when absent, LP_ERR_RANGE when malformed. */
static lp_status take(const char *json, size_t len, const char *key, uint64_t max, uint8_t *out,
                      size_t n) {
    uint64_t v = 0;
    int found = lpj_int_member(json, len, key, max, &v);
    if (found < 0) return LP_ERR_RANGE;
    if (found == 0) return LP_ERR_LENGTH;
    set(out, v, n);
    return LP_OK;
}

/* A string member unescaped into buf (cap bytes): its length, or -1 absent, -2 malformed. */
static long string(const char *json, size_t len, const char *key, char *buf, size_t cap) {
    cursor at;
    size_t n = 0;
    int found = lpj_member(json, len, key, &at);
    if (found < 0) return -2;
    if (found == 0) return -1;
    return lpj_string(&at, buf, cap, &n) ? (long)n : -2;
}

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Exactly 2 n hex digits of member `key` into n bytes. */
static lp_status hex_member(const char *json, size_t len, const char *key, uint8_t *out,
                            size_t n) {
    char text[129];
    long got = string(json, len, key, text, sizeof text);
    size_t i;
    if (got == -1) return LP_ERR_LENGTH;
    if (got != (long)(2u * n)) return LP_ERR_RANGE;
    for (i = 0; i < n; i++) {
        int hi = hexval(text[2u * i]), lo = hexval(text[2u * i + 1u]);
        if (hi < 0 || lo < 0) return LP_ERR_RANGE;
        out[i] = (uint8_t)(hi * 16 + lo);
    }
    return LP_OK;
}

static int b64val(char ch) {
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '+') return 62;
    if (ch == '/') return 63;
    return -1;
}

/* The base64 string (standard alphabet, padded) of member `key` decoded into out; read in place
 * (only the escape \/ is allowed inside), so a 32 KiB chunk needs no second buffer. */
static lp_status base64_member(const char *json, size_t len, const char *key, uint8_t *out,
                               size_t cap, size_t *out_len) {
    cursor at;
    uint32_t acc = 0;
    size_t n = 0, digits = 0, pad = 0;
    int found = lpj_member(json, len, key, &at);
    if (found < 0) return LP_ERR_RANGE;
    if (found == 0) return LP_ERR_LENGTH;
    if (at.p >= at.end || *at.p != '"') return LP_ERR_RANGE;
    for (at.p++; at.p < at.end && *at.p != '"'; at.p++) {
        char ch = *at.p;
        int v;
        if (ch == '\\') {
            if (at.end - at.p < 2 || at.p[1] != '/') return LP_ERR_RANGE;
            ch = *++at.p;
        }
        if (ch == '=') {
            pad++;
            digits++;
            acc <<= 6;
        } else {
            if (pad > 0u || (v = b64val(ch)) < 0) return LP_ERR_RANGE;
            acc = (acc << 6) | (uint32_t)v;
            digits++;
        }
        if (digits % 4u == 0u) {
            size_t k, bytes = 3u - pad;
            if (pad > 2u || cap - n < bytes) return pad > 2u ? LP_ERR_RANGE : LP_ERR_SPACE;
            for (k = 0; k < bytes; k++) out[n++] = (uint8_t)(acc >> (16u - 8u * k));
            /* Canonical: the bits under the padding are zero. */
            if ((pad == 1u && (acc & 0xFFu) != 0u) || (pad == 2u && (acc & 0xFFFFu) != 0u)) {
                return LP_ERR_RANGE;
            }
            acc = 0;
            if (pad > 0u && at.p + 1 < at.end && at.p[1] != '"') return LP_ERR_RANGE;
        }
    }
    if (at.p >= at.end || digits % 4u != 0u) return LP_ERR_RANGE;
    *out_len = n;
    return LP_OK;
}

lp_status lpj_update_to_binary(uint8_t type, const char *json, size_t len, uint8_t *out,
                               size_t out_cap, size_t *out_len) {
    lp_status st;
    size_t n = 0;
    if (type == LP_INSTALL) {
        if (out_cap < 4u) return LP_ERR_SPACE;
        *out_len = 4;
        return take(json, len, "update_id", 0xFFFFFFFFu, out, 4);
    }
    if (type == LP_UPDATE_OFFER) {
        char version[LP_MAX_TEXT + 1u];
        long v = string(json, len, "version", version, sizeof version);
        if (v == -1) return LP_ERR_LENGTH;
        if (v < 1 || v > (long)LP_MAX_TEXT) return LP_ERR_RANGE;
        if (out_cap < 4u + 1u + (size_t)v + 102u) return LP_ERR_SPACE;
        if ((st = take(json, len, "update_id", 0xFFFFFFFFu, out, 4)) != LP_OK) return st;
        out[4] = (uint8_t)v;
        memcpy(out + 5, version, (size_t)v);
        n = 5u + (size_t)v;
        if ((st = take(json, len, "size", 0xFFFFFFFFu, out + n, 4)) != LP_OK ||
            (st = hex_member(json, len, "sha256", out + n + 4u, 32)) != LP_OK ||
            (st = hex_member(json, len, "signature", out + n + 36u, 64)) != LP_OK ||
            (st = take(json, len, "chunk_size", 0xFFFFu, out + n + 100u, 2)) != LP_OK) {
            return st;
        }
        *out_len = n + 102u;
        return LP_OK;
    }
    if (type == LP_CHUNK) {
        if (out_cap < 14u) return LP_ERR_SPACE;
        if ((st = take(json, len, "update_id", 0xFFFFFFFFu, out, 4)) != LP_OK ||
            (st = take(json, len, "index", 0xFFFFFFFFu, out + 4, 4)) != LP_OK ||
            (st = take(json, len, "crc32", 0xFFFFFFFFu, out + 8, 4)) != LP_OK ||
            (st = base64_member(json, len, "data", out + 14, out_cap - 14u, &n)) != LP_OK) {
            return st;
        }
        if (n > LP_MAX_CHUNK) return LP_ERR_RANGE;
        set(out + 12, n, 2);
        *out_len = 14u + n;
        return LP_OK;
    }
    return LP_ERR_TYPE;
}

static const char *const STATUSES[] = {"", "refused", "downloaded", "installing", "installed",
                                       "failed", "rolled_back"};
static const char *const REASONS[] = {"", "bad_signature", "bad_hash", "too_large", "busy",
                                      "flash_error", "unknown_update"};

int lpj_update_from_binary(sink *s, uint8_t type, const uint8_t *b, size_t len) {
    if (type == LP_CHUNK_REQUEST) {
        if (len != 8u) return 0;
        lpj_puts(s, "{\"update_id\":");
        lpj_putu(s, get(b, 4));
        lpj_puts(s, ",\"index\":");
        lpj_putu(s, get(b + 4, 4));
        lpj_puts(s, "}");
        return 1;
    }
    if (type == LP_UPDATE_REPORT) {
        size_t n;
        uint8_t status, reason;
        int with_reason;
        if (len < 5u || (n = b[4]) == 0u || n > LP_MAX_TEXT || len != 7u + n) return 0;
        status = b[5 + n];
        reason = b[6 + n];
        with_reason = status == LP_UPDATE_REFUSED || status == LP_UPDATE_FAILED;
        if (status < 1u || status > 6u || (with_reason && (reason < 1u || reason > 6u))) return 0;
        lpj_puts(s, "{\"update_id\":");
        lpj_putu(s, get(b, 4));
        lpj_puts(s, ",\"version\":");
        lpj_quoted(s, (const char *)b + 5, n);
        lpj_puts(s, ",\"status\":\"");
        lpj_puts(s, STATUSES[status]);
        if (with_reason) {
            lpj_puts(s, "\",\"reason\":\"");
            lpj_puts(s, REASONS[reason]);
        }
        lpj_puts(s, "\"}");
        return 1;
    }
    return -1;
}
