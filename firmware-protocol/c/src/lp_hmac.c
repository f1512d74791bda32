/* SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), small and portable: no tables beyond the 64
 * round constants, no heap. Build with -DLP_EXTERNAL_HMAC to provide lp_hmac_sha256 from a
 * hardware engine instead (the SHA-256 functions stay available). */
#include "locker_proto.h"

#include <string.h>

static const uint32_t K256[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u,
    0xab1c5ed5u, 0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu,
    0x9bdc06a7u, 0xc19bf174u, 0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu,
    0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau, 0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u,
    0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u, 0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu,
    0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u, 0xa2bfe8a1u, 0xa81a664bu,
    0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u, 0x19a4c116u,
    0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u,
    0xc67178f2u};

static uint32_t rotr(uint32_t x, unsigned n) { return (x >> n) | (x << (32u - n)); }

static void compress(uint32_t state[8], const uint8_t block[64]) {
    uint32_t w[64];
    uint32_t a, b, c, d, e, f, g, h;
    unsigned i;
    for (i = 0; i < 16; i++) {
        w[i] = ((uint32_t)block[4 * i] << 24) | ((uint32_t)block[4 * i + 1] << 16) |
               ((uint32_t)block[4 * i + 2] << 8) | (uint32_t)block[4 * i + 3];
    }
    for (i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = state[0]; b = state[1]; c = state[2]; d = state[3];
    e = state[4]; f = state[5]; g = state[6]; h = state[7];
    for (i = 0; i < 64; i++) {
        uint32_t s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = h + s1 + ch + K256[i] + w[i];
        uint32_t s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
        uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = s0 + maj;
        h = g; g = f; f = e; e = d + t1;
        d = c; c = b; b = a; a = t1 + t2;
    }
    state[0] += a; state[1] += b; state[2] += c; state[3] += d;
    state[4] += e; state[5] += f; state[6] += g; state[7] += h;
}

void lp_sha256_init(lp_sha256 *ctx) {
    static const uint32_t iv[8] = {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                                   0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u};
    memcpy(ctx->state, iv, sizeof iv);
    ctx->length = 0;
    ctx->used = 0;
}

void lp_sha256_update(lp_sha256 *ctx, const uint8_t *data, size_t len) {
    ctx->length += len;
    while (len > 0) {
        size_t take = 64u - ctx->used;
        if (take > len) {
            take = len;
        }
        memcpy(ctx->block + ctx->used, data, take);
        ctx->used += take;
        data += take;
        len -= take;
        if (ctx->used == 64u) {
            compress(ctx->state, ctx->block);
            ctx->used = 0;
        }
    }
}

void lp_sha256_final(lp_sha256 *ctx, uint8_t digest[32]) {
    uint64_t bits = ctx->length * 8u;
    unsigned i;
    ctx->block[ctx->used++] = 0x80u;
    if (ctx->used > 56u) {
        memset(ctx->block + ctx->used, 0, 64u - ctx->used);
        compress(ctx->state, ctx->block);
        ctx->used = 0;
    }
    memset(ctx->block + ctx->used, 0, 56u - ctx->used);
    for (i = 0; i < 8; i++) {
        ctx->block[56 + i] = (uint8_t)(bits >> (56u - 8u * i));
    }
    compress(ctx->state, ctx->block);
    for (i = 0; i < 8; i++) {
        digest[4 * i] = (uint8_t)(ctx->state[i] >> 24);
        digest[4 * i + 1] = (uint8_t)(ctx->state[i] >> 16);
        digest[4 * i + 2] = (uint8_t)(ctx->state[i] >> 8);
        digest[4 * i + 3] = (uint8_t)ctx->state[i];
    }
    memset(ctx, 0, sizeof *ctx);
}

#ifndef LP_EXTERNAL_HMAC
void lp_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *a, size_t a_len,
                    const uint8_t *b, size_t b_len, uint8_t mac[32]) {
    uint8_t pad[64];
    uint8_t inner[32];
    lp_sha256 ctx;
    unsigned i;
    memset(pad, 0, sizeof pad);
    if (key_len > 64u) {
        lp_sha256_init(&ctx);
        lp_sha256_update(&ctx, key, key_len);
        lp_sha256_final(&ctx, pad);
    } else if (key_len > 0u) {
        memcpy(pad, key, key_len);
    }
    for (i = 0; i < 64; i++) {
        pad[i] ^= 0x36u;
    }
    lp_sha256_init(&ctx);
    lp_sha256_update(&ctx, pad, 64);
    if (a_len > 0u) {
        lp_sha256_update(&ctx, a, a_len);
    }
    if (b_len > 0u) {
        lp_sha256_update(&ctx, b, b_len);
    }
    lp_sha256_final(&ctx, inner);
    for (i = 0; i < 64; i++) {
        pad[i] ^= 0x36u ^ 0x5cu;
    }
    lp_sha256_init(&ctx);
    lp_sha256_update(&ctx, pad, 64);
    lp_sha256_update(&ctx, inner, 32);
    lp_sha256_final(&ctx, mac);
    memset(pad, 0, sizeof pad);
    memset(inner, 0, sizeof inner);
}
#endif

void lp_derive_tag_key(const uint8_t secret[LP_KEY_LEN], uint8_t key[LP_KEY_LEN]) {
    static const char label[] = "locker-gateway/tag-key/v1";
    lp_hmac_sha256(secret, LP_KEY_LEN, (const uint8_t *)label, sizeof label - 1u, NULL, 0, key);
}

int lp_tags_equal(const uint8_t a[LP_TAG_LEN], const uint8_t b[LP_TAG_LEN]) {
    uint8_t diff = 0;
    unsigned i;
    for (i = 0; i < LP_TAG_LEN; i++) {
        diff |= (uint8_t)(a[i] ^ b[i]);
    }
    return diff == 0;
}
