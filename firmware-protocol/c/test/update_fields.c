/* The firmware update messages of the test vectors (PROTOCOL.md section 11), for vectors_test.c:
 * each downlink read and compared with its fields, each uplink written and compared with the
 * vector's body, with negative cases built from each. */
#include "locker_update.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "update_fields.h"

static unsigned failed;

#define EXPECT(cond, what)                                                                  \
    do {                                                                                    \
        (*checks)++;                                                                        \
        if (!(cond)) {                                                                      \
            failed++;                                                                       \
            fprintf(stderr, "FAIL %s: %s (%s:%d)\n", name, what, __FILE__, __LINE__);        \
        }                                                                                   \
    } while (0)

static uint64_t num(const char *s) { return s == NULL ? 0u : strtoull(s, NULL, 10); }

static size_t unhex(const char *hex, uint8_t *out, size_t cap) {
    size_t n = hex == NULL ? 0u : strlen(hex), i;
    if (n % 2u != 0u || n / 2u > cap) return (size_t)-1;
    for (i = 0; i < n / 2u; i++) {
        unsigned byte;
        if (sscanf(hex + 2u * i, "%2x", &byte) != 1) return (size_t)-1;
        out[i] = (uint8_t)byte;
    }
    return n / 2u;
}

int update_fields(const char *name, char *const a[6], const uint8_t *body, size_t len,
                  unsigned *checks) {
    static uint8_t out[LP_MAX_BINARY_BODY], bytes[LP_MAX_BINARY_BODY];
    size_t out_len = 0;
    failed = 0;
    if (strcmp(name, "update_offer") == 0) {
        lp_update_offer m;
        uint8_t sha[32], sig[64];
        EXPECT(unhex(a[3], sha, 32) == 32u && unhex(a[4], sig, 64) == 64u, "hex fields");
        EXPECT(lp_read_update_offer(body, len, &m) == LP_OK && m.update_id == num(a[0]) &&
                   strcmp(m.version, a[1]) == 0 && m.size == num(a[2]) &&
                   memcmp(m.sha256, sha, 32) == 0 && memcmp(m.signature, sig, 64) == 0 &&
                   m.chunk_size == num(a[5]),
               "update_offer read");
        EXPECT(lp_read_update_offer(body, len - 1u, &m) == LP_ERR_LENGTH, "a short offer");
        memcpy(bytes, body, len);
        bytes[len - 2u] = 0;
        bytes[len - 1u] = 8; /* chunks of 8 bytes */
        EXPECT(lp_read_update_offer(bytes, len, &m) == LP_ERR_RANGE, "chunk size 8 refused");
        memcpy(bytes, body, len);
        bytes[5] = '\n';
        EXPECT(lp_read_update_offer(bytes, len, &m) == LP_ERR_RANGE, "a version not printable");
    } else if (strcmp(name, "chunk") == 0) {
        lp_chunk m;
        size_t n = unhex(a[3], bytes, sizeof bytes);
        EXPECT(lp_read_chunk(body, len, &m) == LP_OK && m.update_id == num(a[0]) &&
                   m.index == num(a[1]) && m.crc32 == num(a[2]) && m.len == n &&
                   memcmp(m.data, bytes, n) == 0,
               "chunk read");
        EXPECT(lp_crc32(0, m.data, m.len) == m.crc32, "the chunk's CRC-32 holds");
        EXPECT(lp_read_chunk(body, len - 1u, &m) == LP_ERR_LENGTH, "a chunk missing a byte");
        memcpy(bytes, body, len);
        bytes[14] ^= 1u;
        EXPECT(lp_read_chunk(bytes, len, &m) == LP_OK && lp_crc32(0, m.data, m.len) != m.crc32,
               "a corrupted chunk fails its CRC");
    } else if (strcmp(name, "install") == 0) {
        uint32_t id = 0;
        EXPECT(lp_read_install(body, len, &id) == LP_OK && id == num(a[0]), "install read");
        EXPECT(lp_read_install(body, 3, &id) == LP_ERR_LENGTH, "a short install");
    } else if (strcmp(name, "chunk_request") == 0) {
        EXPECT(lp_write_chunk_request((uint32_t)num(a[0]), (uint32_t)num(a[1]), out, sizeof out,
                                      &out_len) == LP_OK &&
                   out_len == len && memcmp(out, body, len) == 0,
               "chunk_request written");
        EXPECT(lp_write_chunk_request(0, 1, out, sizeof out, &out_len) == LP_ERR_RANGE,
               "update id 0 refused");
    } else if (strcmp(name, "update_report") == 0) {
        uint8_t status = (uint8_t)num(a[2]), reason = (uint8_t)num(a[3]);
        EXPECT(lp_write_update_report((uint32_t)num(a[0]), a[1], status, reason, out, sizeof out,
                                      &out_len) == LP_OK &&
                   out_len == len && memcmp(out, body, len) == 0,
               "update_report written");
        EXPECT(lp_write_update_report((uint32_t)num(a[0]), a[1], status, reason, out, len - 1u,
                                      &out_len) == LP_ERR_SPACE,
               "update_report: no room");
        EXPECT(lp_write_update_report((uint32_t)num(a[0]), a[1], 7, 0, out, sizeof out,
                                      &out_len) == LP_ERR_RANGE,
               "status 7 refused");
        EXPECT(lp_write_update_report((uint32_t)num(a[0]), a[1], LP_UPDATE_FAILED, 0, out,
                                      sizeof out, &out_len) == LP_ERR_RANGE,
               "a failure without a reason refused");
    } else {
        return -1;
    }
    return (int)failed;
}
