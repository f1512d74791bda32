/* Ed25519 signature verification (RFC 8032 section 5.1.7) for firmware images, with a bundled
 * SHA-512 (FIPS 180-4). Written for clarity and small code, not speed: verification runs once per
 * offered update and takes only public data, so it need not run in constant time. A firmware
 * with a hardware or vetted implementation builds with -DLP_EXTERNAL_ED25519 and provides
 * lp_ed25519_verify() itself.
 *
 * Field elements mod p = 2^255 - 19 are 16 limbs of 16 bits in int64_t (value = sum of
 * limb[i] * 2^(16 i)); points are extended coordinates (X, Y, Z, T) of the twisted Edwards
 * curve -x^2 + y^2 = 1 + d x^2 y^2. */
#include "locker_update.h"

#include <string.h>

/* ---- SHA-512 ---- */

static const uint64_t K512[80] = {
    0x428a2f98d728ae22ull, 0x7137449123ef65cdull, 0xb5c0fbcfec4d3b2full, 0xe9b5dba58189dbbcull,
    0x3956c25bf348b538ull, 0x59f111f1b605d019ull, 0x923f82a4af194f9bull, 0xab1c5ed5da6d8118ull,
    0xd807aa98a3030242ull, 0x12835b0145706fbeull, 0x243185be4ee4b28cull, 0x550c7dc3d5ffb4e2ull,
    0x72be5d74f27b896full, 0x80deb1fe3b1696b1ull, 0x9bdc06a725c71235ull, 0xc19bf174cf692694ull,
    0xe49b69c19ef14ad2ull, 0xefbe4786384f25e3ull, 0x0fc19dc68b8cd5b5ull, 0x240ca1cc77ac9c65ull,
    0x2de92c6f592b0275ull, 0x4a7484aa6ea6e483ull, 0x5cb0a9dcbd41fbd4ull, 0x76f988da831153b5ull,
    0x983e5152ee66dfabull, 0xa831c66d2db43210ull, 0xb00327c898fb213full, 0xbf597fc7beef0ee4ull,
    0xc6e00bf33da88fc2ull, 0xd5a79147930aa725ull, 0x06ca6351e003826full, 0x142929670a0e6e70ull,
    0x27b70a8546d22ffcull, 0x2e1b21385c26c926ull, 0x4d2c6dfc5ac42aedull, 0x53380d139d95b3dfull,
    0x650a73548baf63deull, 0x766a0abb3c77b2a8ull, 0x81c2c92e47edaee6ull, 0x92722c851482353bull,
    0xa2bfe8a14cf10364ull, 0xa81a664bbc423001ull, 0xc24b8b70d0f89791ull, 0xc76c51a30654be30ull,
    0xd192e819d6ef5218ull, 0xd69906245565a910ull, 0xf40e35855771202aull, 0x106aa07032bbd1b8ull,
    0x19a4c116b8d2d0c8ull, 0x1e376c085141ab53ull, 0x2748774cdf8eeb99ull, 0x34b0bcb5e19b48a8ull,
    0x391c0cb3c5c95a63ull, 0x4ed8aa4ae3418acbull, 0x5b9cca4f7763e373ull, 0x682e6ff3d6b2b8a3ull,
    0x748f82ee5defb2fcull, 0x78a5636f43172f60ull, 0x84c87814a1f0ab72ull, 0x8cc702081a6439ecull,
    0x90befffa23631e28ull, 0xa4506cebde82bde9ull, 0xbef9a3f7b2c67915ull, 0xc67178f2e372532bull,
    0xca273eceea26619cull, 0xd186b8c721c0c207ull, 0xeada7dd6cde0eb1eull, 0xf57d4f7fee6ed178ull,
    0x06f067aa72176fbaull, 0x0a637dc5a2c898a6ull, 0x113f9804bef90daeull, 0x1b710b35131c471bull,
    0x28db77f523047d84ull, 0x32caab7b40c72493ull, 0x3c9ebe0a15c9bebcull, 0x431d67c49c100d4cull,
    0x4cc5d4becb3e42b6ull, 0x597f299cfc657e2aull, 0x5fcb6fab3ad6faecull, 0x6c44198c4a475817ull};
static const uint64_t H512[8] = {
    0x6a09e667f3bcc908ull, 0xbb67ae8584caa73bull, 0x3c6ef372fe94f82bull, 0xa54ff53a5f1d36f1ull,
    0x510e527fade682d1ull, 0x9b05688c2b3e6c1full, 0x1f83d9abfb41bd6bull, 0x5be0cd19137e2179ull};

static uint64_t ror64(uint64_t x, unsigned n) { return (x >> n) | (x << (64u - n)); }

static void sha512_block(lp_sha512 *ctx, const uint8_t *p) {
    uint64_t w[80], a, b, c, d, e, f, g, h;
    unsigned i;
    for (i = 0; i < 16u; i++) {
        unsigned j;
        w[i] = 0;
        for (j = 0; j < 8u; j++) w[i] = (w[i] << 8) | p[8u * i + j];
    }
    for (i = 16; i < 80u; i++) {
        uint64_t s0 = ror64(w[i - 15u], 1) ^ ror64(w[i - 15u], 8) ^ (w[i - 15u] >> 7);
        uint64_t s1 = ror64(w[i - 2u], 19) ^ ror64(w[i - 2u], 61) ^ (w[i - 2u] >> 6);
        w[i] = w[i - 16u] + s0 + w[i - 7u] + s1;
    }
    a = ctx->state[0]; b = ctx->state[1]; c = ctx->state[2]; d = ctx->state[3];
    e = ctx->state[4]; f = ctx->state[5]; g = ctx->state[6]; h = ctx->state[7];
    for (i = 0; i < 80u; i++) {
        uint64_t t1 = h + (ror64(e, 14) ^ ror64(e, 18) ^ ror64(e, 41)) + ((e & f) ^ (~e & g)) +
                      K512[i] + w[i];
        uint64_t t2 = (ror64(a, 28) ^ ror64(a, 34) ^ ror64(a, 39)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g; g = f; f = e; e = d + t1;
        d = c; c = b; b = a; a = t1 + t2;
    }
    ctx->state[0] += a; ctx->state[1] += b; ctx->state[2] += c; ctx->state[3] += d;
    ctx->state[4] += e; ctx->state[5] += f; ctx->state[6] += g; ctx->state[7] += h;
}

void lp_sha512_init(lp_sha512 *ctx) {
    memcpy(ctx->state, H512, sizeof H512);
    ctx->length = 0;
    ctx->used = 0;
}

void lp_sha512_update(lp_sha512 *ctx, const uint8_t *data, size_t len) {
    while (len > 0u) {
        size_t n = 128u - ctx->used;
        if (n > len) n = len;
        memcpy(ctx->block + ctx->used, data, n);
        ctx->used += n;
        ctx->length += n;
        data += n;
        len -= n;
        if (ctx->used == 128u) {
            sha512_block(ctx, ctx->block);
            ctx->used = 0;
        }
    }
}

void lp_sha512_final(lp_sha512 *ctx, uint8_t digest[64]) {
    uint64_t bits = ctx->length * 8u;
    unsigned i;
    ctx->block[ctx->used++] = 0x80u;
    if (ctx->used > 112u) {
        memset(ctx->block + ctx->used, 0, 128u - ctx->used);
        sha512_block(ctx, ctx->block);
        ctx->used = 0;
    }
    memset(ctx->block + ctx->used, 0, 128u - ctx->used);
    /* Messages under 2^61 bytes: the top 64 bits of the 128-bit length are 0. */
    for (i = 0; i < 8u; i++) ctx->block[127u - i] = (uint8_t)(bits >> (8u * i));
    sha512_block(ctx, ctx->block);
    for (i = 0; i < 64u; i++) digest[i] = (uint8_t)(ctx->state[i / 8u] >> (56u - 8u * (i % 8u)));
}

#ifndef LP_EXTERNAL_ED25519

/* ---- The field mod 2^255 - 19 ---- */

typedef int64_t fe[16];

static const fe D = {30883, 4953, 19914, 30187, 55467, 16705, 2637, 112, 59544, 30585, 16505, 36039, 65139, 11119, 27886, 20995};
static const fe D2 = {61785, 9906, 39828, 60374, 45398, 33411, 5274, 224, 53552, 61171, 33010, 6542, 64743, 22239, 55772, 9222};
static const fe BX = {54554, 36645, 11616, 51542, 42930, 38181, 51040, 26924, 56412, 64982, 57905, 49316, 21502, 52590, 14035, 8553};
static const fe BY = {26200, 26214, 26214, 26214, 26214, 26214, 26214, 26214, 26214, 26214, 26214, 26214, 26214, 26214, 26214, 26214};
static const fe SQRTM1 = {41136, 18958, 6951, 50414, 58488, 44335, 6150, 12099, 55207, 15867, 153, 11085, 57099, 20417, 9344, 11139};

/* Floor division by 2^16, for negative values too (no shifts of negative numbers). */
static int64_t floor16(int64_t v) { return v >= 0 ? v / 65536 : -((-v + 65535) / 65536); }

/* Brings every limb into [0, 2^16); the carry out of the top limb is 2^256 = 38 (mod p). */
static void carry(fe o) {
    unsigned i;
    for (i = 0; i < 16u; i++) {
        int64_t c = floor16(o[i]);
        o[i] -= c * 65536;
        if (i < 15u) {
            o[i + 1u] += c;
        } else {
            o[0] += 38 * c;
        }
    }
}

static void fe_copy(fe o, const fe a) { memcpy(o, a, sizeof(fe)); }
static void fe_set(fe o, int64_t v) { memset(o, 0, sizeof(fe)); o[0] = v; }

static void fe_add(fe o, const fe a, const fe b) {
    unsigned i;
    for (i = 0; i < 16u; i++) o[i] = a[i] + b[i];
}

static void fe_sub(fe o, const fe a, const fe b) {
    unsigned i;
    for (i = 0; i < 16u; i++) o[i] = a[i] - b[i];
}

static void fe_mul(fe o, const fe a, const fe b) {
    int64_t t[31];
    unsigned i, j;
    memset(t, 0, sizeof t);
    for (i = 0; i < 16u; i++) {
        for (j = 0; j < 16u; j++) t[i + j] += a[i] * b[j];
    }
    for (i = 0; i < 15u; i++) t[i] += 38 * t[i + 16u];
    for (i = 0; i < 16u; i++) o[i] = t[i];
    carry(o);
    carry(o);
}

/* The canonical 32 bytes (little-endian, fully reduced). */
static void fe_pack(uint8_t out[32], const fe a) {
    fe t, m;
    unsigned i, k;
    fe_copy(t, a);
    carry(t);
    carry(t);
    carry(t);
    /* Now 0 <= t < 2^256 < 2p + 38: subtract p while it fits, at most twice. */
    for (k = 0; k < 2u; k++) {
        int64_t borrow = 0;
        for (i = 0; i < 16u; i++) {
            int64_t limb = i == 0u ? 0xffed : i == 15u ? 0x7fff : 0xffff;
            m[i] = t[i] - limb - borrow;
            borrow = m[i] < 0 ? 1 : 0;
            m[i] += borrow * 65536;
        }
        if (borrow == 0) fe_copy(t, m);
    }
    for (i = 0; i < 16u; i++) {
        out[2u * i] = (uint8_t)(t[i] & 0xff);
        out[2u * i + 1u] = (uint8_t)((t[i] >> 8) & 0xff);
    }
}

static void fe_unpack(fe o, const uint8_t in[32]) {
    unsigned i;
    for (i = 0; i < 16u; i++) o[i] = in[2u * i] + ((int64_t)in[2u * i + 1u] << 8);
    o[15] &= 0x7fff;
}

static int fe_equal(const fe a, const fe b) {
    uint8_t x[32], y[32];
    fe_pack(x, a);
    fe_pack(y, b);
    return memcmp(x, y, 32) == 0;
}

static int fe_is_zero(const fe a) {
    static const fe zero = {0};
    return fe_equal(a, zero);
}

static int fe_parity(const fe a) {
    uint8_t x[32];
    fe_pack(x, a);
    return x[0] & 1;
}

/* a^(2^255 - 21) = 1/a; and a^(2^252 - 3), for square roots. Square and multiply over the
 * exponent's bits from the top: all ones but bits 2 and 4 (resp. bit 1). */
static void fe_invert(fe o, const fe a) {
    fe c;
    int bit;
    fe_copy(c, a);
    for (bit = 253; bit >= 0; bit--) {
        fe_mul(c, c, c);
        if (bit != 2 && bit != 4) fe_mul(c, c, a);
    }
    fe_copy(o, c);
}

static void fe_pow2523(fe o, const fe a) {
    fe c;
    int bit;
    fe_copy(c, a);
    for (bit = 250; bit >= 0; bit--) {
        fe_mul(c, c, c);
        if (bit != 1) fe_mul(c, c, a);
    }
    fe_copy(o, c);
}

/* ---- Points ---- */

typedef struct {
    fe x, y, z, t;
} point;

static void point_identity(point *p) {
    fe_set(p->x, 0);
    fe_set(p->y, 1);
    fe_set(p->z, 1);
    fe_set(p->t, 0);
}

/* p += q (unified: doubles too), "add-2008-hwcd-3" for a = -1. */
static void point_add(point *p, const point *q) {
    fe a, b, c, d, e, f, g, h, t;
    fe_sub(a, p->y, p->x);
    fe_sub(t, q->y, q->x);
    fe_mul(a, a, t);
    fe_add(b, p->x, p->y);
    fe_add(t, q->x, q->y);
    fe_mul(b, b, t);
    fe_mul(c, p->t, q->t);
    fe_mul(c, c, D2);
    fe_mul(d, p->z, q->z);
    fe_add(d, d, d);
    fe_sub(e, b, a);
    fe_sub(f, d, c);
    fe_add(g, d, c);
    fe_add(h, b, a);
    fe_mul(p->x, e, f);
    fe_mul(p->y, h, g);
    fe_mul(p->z, g, f);
    fe_mul(p->t, e, h);
}

/* [s]q, s a 32-byte little-endian scalar; variable time (public inputs only). */
static void point_mul(point *p, const uint8_t s[32], const point *q) {
    int i;
    point_identity(p);
    for (i = 255; i >= 0; i--) {
        point dbl = *p;
        point_add(p, &dbl);
        if ((s[i / 8] >> (i % 8)) & 1) point_add(p, q);
    }
}

static void point_pack(uint8_t out[32], const point *p) {
    fe zi, x, y;
    fe_invert(zi, p->z);
    fe_mul(x, p->x, zi);
    fe_mul(y, p->y, zi);
    fe_pack(out, y);
    out[31] = (uint8_t)(out[31] ^ (fe_parity(x) << 7));
}

/* Decodes a point (RFC 8032 section 5.1.3): 0 for a y >= p, or no x for it. */
static int point_unpack(point *p, const uint8_t in[32]) {
    fe u, v, v3, x2, t;
    uint8_t canonical[32];
    int sign = in[31] >> 7;
    fe_unpack(p->y, in);
    fe_pack(canonical, p->y);
    canonical[31] = (uint8_t)(canonical[31] | (sign << 7));
    if (memcmp(canonical, in, 32) != 0) return 0; /* y not below p */
    fe_set(p->z, 1);
    fe_mul(u, p->y, p->y);
    fe_mul(v, u, D);
    fe_sub(u, u, p->z); /* u = y^2 - 1 */
    fe_add(v, v, p->z); /* v = d y^2 + 1 */
    /* x = u v^3 (u v^7)^((p - 5) / 8) */
    fe_mul(v3, v, v);
    fe_mul(v3, v3, v);
    fe_mul(t, v3, v3);
    fe_mul(t, t, v);
    fe_mul(t, t, u);
    fe_pow2523(t, t);
    fe_mul(t, t, v3);
    fe_mul(p->x, t, u);
    fe_mul(x2, p->x, p->x);
    fe_mul(x2, x2, v);
    if (!fe_equal(x2, u)) {
        fe_add(x2, x2, u);
        if (!fe_is_zero(x2)) return 0;
        fe_mul(p->x, p->x, SQRTM1);
    }
    if (fe_is_zero(p->x) && sign) return 0;
    if (fe_parity(p->x) != sign) {
        fe zero;
        fe_set(zero, 0);
        fe_sub(p->x, zero, p->x);
    }
    fe_mul(p->t, p->x, p->y);
    return 1;
}

/* Whether [8]p is the identity (p of small order: refused as a key or an R, as in strict
 * verification). */
static int small_order(const point *p) {
    point q = *p;
    unsigned i;
    for (i = 0; i < 3u; i++) {
        point dbl = q;
        point_add(&q, &dbl);
    }
    return fe_is_zero(q.x) && fe_equal(q.y, q.z);
}

/* ---- Scalars mod L = 2^252 + 27742317777372353535851937790883648493 ---- */

static const uint32_t L32[9] = {0x5cf5d3edu, 0x5812631au, 0xa2f79cd6u, 0x14def9deu, 0, 0, 0,
                                0x10000000u, 0};

/* r >= L, r as 9 little-endian 32-bit limbs. */
static int at_least_l(const uint32_t r[9]) {
    int i;
    for (i = 8; i >= 0; i--) {
        if (r[i] != L32[i]) return r[i] > L32[i];
    }
    return 1;
}

/* A little-endian number of `len` bytes mod L, as 32 little-endian bytes (bit by bit: shift in,
 * subtract L when it fits). */
static void reduce_l(uint8_t out[32], const uint8_t *in, size_t len) {
    uint32_t r[9];
    size_t bit;
    unsigned i;
    memset(r, 0, sizeof r);
    for (bit = len * 8u; bit-- > 0u;) {
        for (i = 8; i > 0u; i--) r[i] = (r[i] << 1) | (r[i - 1u] >> 31);
        r[0] = (r[0] << 1) | ((in[bit / 8u] >> (bit % 8u)) & 1u);
        if (at_least_l(r)) {
            uint64_t borrow = 0;
            for (i = 0; i < 9u; i++) {
                uint64_t d = (uint64_t)r[i] - L32[i] - borrow;
                r[i] = (uint32_t)d;
                borrow = (d >> 32) & 1u;
            }
        }
    }
    for (i = 0; i < 32u; i++) out[i] = (uint8_t)(r[i / 4u] >> (8u * (i % 4u)));
}

int lp_ed25519_verify(const uint8_t public_key[32], const uint8_t *message, size_t len,
                      const uint8_t signature[64]) {
    point a, r, check, base, ha;
    uint8_t digest[64], h[32], s[32], packed[32];
    lp_sha512 ctx;
    uint32_t sl[9];
    unsigned i;
    /* S must be below L (no malleable signatures). */
    memset(sl, 0, sizeof sl);
    for (i = 0; i < 32u; i++) sl[i / 4u] |= (uint32_t)signature[32u + i] << (8u * (i % 4u));
    if (at_least_l(sl)) return 0;
    if (!point_unpack(&a, public_key) || small_order(&a)) return 0;
    if (!point_unpack(&r, signature) || small_order(&r)) return 0;
    lp_sha512_init(&ctx);
    lp_sha512_update(&ctx, signature, 32);
    lp_sha512_update(&ctx, public_key, 32);
    lp_sha512_update(&ctx, message, len);
    lp_sha512_final(&ctx, digest);
    reduce_l(h, digest, 64);
    memcpy(s, signature + 32, 32);
    /* [S]B - [h]A must be R. */
    fe_copy(base.x, BX);
    fe_copy(base.y, BY);
    fe_set(base.z, 1);
    fe_mul(base.t, BX, BY);
    point_mul(&check, s, &base);
    {
        fe zero;
        fe_set(zero, 0);
        fe_sub(a.x, zero, a.x);
        fe_sub(a.t, zero, a.t);
    }
    point_mul(&ha, h, &a);
    point_add(&check, &ha);
    point_pack(packed, &check);
    return memcmp(packed, signature, 32) == 0;
}

#endif /* LP_EXTERNAL_ED25519 */
