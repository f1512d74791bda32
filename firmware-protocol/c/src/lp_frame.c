/* CRC-16/MODBUS and serial frames (PROTOCOL.md sections 5.1 and 5.2). */
#include "locker_proto.h"

#include <string.h>

#define START0 0xA5u
#define START1 0x5Au
#define HEAD 5u /* A5 5A, length (2), address */
#define TAIL 2u /* CRC, low byte first */

uint16_t lp_crc16_modbus(const uint8_t *data, size_t len) {
    uint16_t crc = 0xFFFFu;
    while (len--) {
        unsigned i;
        crc ^= *data++;
        for (i = 0; i < 8; i++) {
            crc = (crc & 1u) ? (uint16_t)((crc >> 1) ^ 0xA001u) : (uint16_t)(crc >> 1);
        }
    }
    return crc;
}

lp_status lp_frame_encode(uint8_t address, const uint8_t *envelope, size_t len, uint8_t *out,
                          size_t out_cap, size_t *out_len) {
    uint16_t crc;
    if (address < LP_MIN_ADDRESS || address > LP_MAX_ADDRESS) {
        return LP_ERR_ADDRESS;
    }
    if (len < LP_MIN_ENVELOPE || len > LP_MAX_ENVELOPE) {
        return LP_ERR_LENGTH;
    }
    if (out_cap < len + LP_FRAME_OVERHEAD) {
        return LP_ERR_SPACE;
    }
    out[0] = START0;
    out[1] = START1;
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
    out[4] = address;
    memmove(out + HEAD, envelope, len);
    crc = lp_crc16_modbus(out + 2, len + 3u);
    out[HEAD + len] = (uint8_t)crc;
    out[HEAD + len + 1u] = (uint8_t)(crc >> 8);
    *out_len = len + LP_FRAME_OVERHEAD;
    return LP_OK;
}

void lp_decoder_init(lp_decoder *dec) { memset(dec, 0, sizeof *dec); }


/* Looks for a whole valid frame in buf[start..len); drops one byte at a time past anything
 * wrong. Returns 1 with *frame filled, or 0 when more bytes are needed. */
static int scan(lp_decoder *dec, lp_frame *frame) {
    for (;;) {
        const uint8_t *p = dec->buf + dec->start;
        size_t held = dec->len - dec->start;
        size_t n, total;
        uint16_t crc;
        if (held == 0u) {
            return 0;
        }
        if (p[0] != START0 || (held >= 2u && p[1] != START1)) {
            dec->start++;
            dec->skipped++;
            continue;
        }
        if (held < HEAD) {
            return 0;
        }
        n = ((size_t)p[2] << 8) | p[3];
        if (n < LP_MIN_ENVELOPE || n > LP_MAX_ENVELOPE) {
            dec->bad_length++;
            dec->start++;
            dec->skipped++;
            continue;
        }
        total = HEAD + n + TAIL;
        if (held < total) {
            return 0;
        }
        crc = (uint16_t)(p[total - 2u] | ((uint16_t)p[total - 1u] << 8));
        if (lp_crc16_modbus(p + 2, n + 3u) != crc) {
            dec->bad_crc++;
            dec->start++;
            dec->skipped++;
            continue;
        }
        if (p[4] < LP_MIN_ADDRESS || p[4] > LP_MAX_ADDRESS) {
            dec->bad_address++;
            dec->start++;
            dec->skipped++;
            continue;
        }
        frame->address = p[4];
        frame->envelope = p + HEAD;
        frame->len = n;
        dec->consumed = total;
        dec->frames++;
        return 1;
    }
}

int lp_decoder_feed(lp_decoder *dec, uint8_t byte, lp_frame *frame) {
    /* The frame returned last time is gone now. */
    dec->start += dec->consumed;
    dec->consumed = 0;
    if (dec->start == dec->len) {
        dec->start = 0;
        dec->len = 0;
    } else if (dec->len == sizeof dec->buf) {
        /* Full: move what is held to the front (a frame never needs more than the buffer). */
        memmove(dec->buf, dec->buf + dec->start, dec->len - dec->start);
        dec->len -= dec->start;
        dec->start = 0;
    }
    dec->buf[dec->len++] = byte;
    return scan(dec, frame);
}

int lp_decoder_gap(lp_decoder *dec, lp_frame *frame) {
    dec->start += dec->consumed;
    dec->consumed = 0;
    while (dec->start < dec->len) {
        dec->start++;
        dec->skipped++;
        if (scan(dec, frame)) {
            return 1;
        }
    }
    dec->start = 0;
    dec->len = 0;
    return 0;
}
