/* Firmware update bodies (PROTOCOL.md section 11): the offer, chunks and install a locker reads,
 * the chunk requests and reports it writes; the manifest, its signature check and CRC-32. */
#include "locker_update.h"

#include <string.h>

static uint16_t get16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }

static uint32_t get32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint8_t *put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return p + 4;
}

/* 1 to 32 printable ASCII characters. */
static int text_ok(const uint8_t *text, size_t n) {
    size_t i;
    if (n == 0u || n > LP_MAX_TEXT) return 0;
    for (i = 0; i < n; i++) {
        if (text[i] < 0x20u || text[i] > 0x7Eu) return 0;
    }
    return 1;
}

lp_status lp_read_update_offer(const uint8_t *body, size_t len, lp_update_offer *out) {
    size_t n;
    const uint8_t *p;
    if (len < 5u) return LP_ERR_LENGTH;
    n = body[4];
    if (len < 5u + n + 4u + 32u + 64u + 2u) return LP_ERR_LENGTH;
    out->update_id = get32(body);
    if (!text_ok(body + 5, n)) return LP_ERR_RANGE;
    memcpy(out->version, body + 5, n);
    out->version[n] = '\0';
    p = body + 5 + n;
    out->size = get32(p);
    memcpy(out->sha256, p + 4, 32);
    memcpy(out->signature, p + 36, 64);
    out->chunk_size = get16(p + 100);
    if (out->update_id == 0u || out->size == 0u || out->size > LP_MAX_IMAGE ||
        out->chunk_size < LP_MIN_CHUNK || out->chunk_size > LP_MAX_CHUNK) {
        return LP_ERR_RANGE;
    }
    return LP_OK;
}

lp_status lp_read_chunk(const uint8_t *body, size_t len, lp_chunk *out) {
    if (len < 14u) return LP_ERR_LENGTH;
    out->update_id = get32(body);
    out->index = get32(body + 4);
    out->crc32 = get32(body + 8);
    out->len = get16(body + 12);
    if (len - 14u < out->len) return LP_ERR_LENGTH;
    out->data = body + 14;
    if (out->update_id == 0u || out->len == 0u || out->len > LP_MAX_CHUNK) return LP_ERR_RANGE;
    return LP_OK;
}

lp_status lp_read_install(const uint8_t *body, size_t len, uint32_t *update_id) {
    if (len < 4u) return LP_ERR_LENGTH;
    *update_id = get32(body);
    return *update_id == 0u ? LP_ERR_RANGE : LP_OK;
}

lp_status lp_write_chunk_request(uint32_t update_id, uint32_t index, uint8_t *out,
                                 size_t out_cap, size_t *out_len) {
    if (update_id == 0u) return LP_ERR_RANGE;
    if (out_cap < 8u) return LP_ERR_SPACE;
    put32(put32(out, update_id), index);
    *out_len = 8;
    return LP_OK;
}

lp_status lp_write_update_report(uint32_t update_id, const char *version, uint8_t status,
                                 uint8_t reason, uint8_t *out, size_t out_cap, size_t *out_len) {
    size_t n = version == NULL ? 0u : strlen(version);
    int with_reason = status == LP_UPDATE_REFUSED || status == LP_UPDATE_FAILED;
    uint8_t *p;
    if (update_id == 0u || !text_ok((const uint8_t *)version, n) || status < LP_UPDATE_REFUSED ||
        status > LP_UPDATE_ROLLED_BACK ||
        (with_reason ? reason < LP_UPDATE_BAD_SIGNATURE || reason > LP_UPDATE_UNKNOWN_UPDATE
                     : reason != 0u)) {
        return LP_ERR_RANGE;
    }
    if (out_cap < 7u + n) return LP_ERR_SPACE;
    p = put32(out, update_id);
    *p++ = (uint8_t)n;
    memcpy(p, version, n);
    p += n;
    p[0] = status;
    p[1] = reason;
    *out_len = 7u + n;
    return LP_OK;
}

uint32_t lp_chunk_count(const lp_update_offer *offer) {
    if (offer->chunk_size == 0u) return 0;
    return offer->size / offer->chunk_size + (offer->size % offer->chunk_size != 0u ? 1u : 0u);
}

uint16_t lp_chunk_len(const lp_update_offer *offer, uint32_t index) {
    uint64_t start = (uint64_t)index * offer->chunk_size;
    uint64_t left;
    if (start >= offer->size) return 0;
    left = offer->size - start;
    return (uint16_t)(left < offer->chunk_size ? left : offer->chunk_size);
}

uint32_t lp_crc32(uint32_t crc, const uint8_t *data, size_t len) {
    size_t i;
    crc = ~crc;
    for (i = 0; i < len; i++) {
        unsigned bit;
        crc ^= data[i];
        for (bit = 0; bit < 8u; bit++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

size_t lp_update_manifest(const lp_update_offer *offer, uint8_t out[LP_MAX_MANIFEST]) {
    size_t n = strlen(offer->version);
    if (n > LP_MAX_TEXT) n = LP_MAX_TEXT;
    memcpy(out, "LKFW\x01", 5);
    put32(out + 5, offer->size);
    memcpy(out + 9, offer->sha256, 32);
    memcpy(out + 41, offer->version, n);
    return 41u + n;
}

int lp_update_signature_ok(const lp_update_offer *offer, const uint8_t (*keys)[32],
                           size_t count) {
    uint8_t manifest[LP_MAX_MANIFEST];
    size_t len = lp_update_manifest(offer, manifest), i;
    for (i = 0; i < count; i++) {
        if (lp_ed25519_verify(keys[i], manifest, len, offer->signature)) return 1;
    }
    return 0;
}
