/* Checks the C library's firmware update pieces (locker_update.h): SHA-512 and CRC-32 known
 * answers, Ed25519 against RFC 8032's vectors and the vectors' signed update, which the Rust test
 * c_update.rs hands over on standard input:
 *
 *   rfc8032 <public key> <message or -> <signature>
 *   update <vendor public key> <image> <version> <chunk size> <sha256> <signature> <crc32,...>
 *
 * Prints what failed and exits 1, or a summary. */
#include "locker_update.h"
#include "test_util.h"



static void known_answers(void) {
    static const uint8_t abc512[64] = {
        0xdd, 0xaf, 0x35, 0xa1, 0x93, 0x61, 0x7a, 0xba, 0xcc, 0x41, 0x73, 0x49, 0xae, 0x20, 0x41, 0x31,
        0x12, 0xe6, 0xfa, 0x4e, 0x89, 0xa9, 0x7e, 0xa2, 0x0a, 0x9e, 0xee, 0xe6, 0x4b, 0x55, 0xd3, 0x9a,
        0x21, 0x92, 0x99, 0x2a, 0x27, 0x4f, 0xc1, 0xa8, 0x36, 0xba, 0x3c, 0x23, 0xa3, 0xfe, 0xeb, 0xbd,
        0x45, 0x4d, 0x44, 0x23, 0x64, 0x3c, 0xe8, 0x0e, 0x2a, 0x9a, 0xc9, 0x4f, 0xa5, 0x4c, 0xa4, 0x9f};
    uint8_t digest[64], again[64], million[1000];
    lp_sha512 ctx;
    size_t i;
    current = "known answers";
    lp_sha512_init(&ctx);
    lp_sha512_update(&ctx, (const uint8_t *)"abc", 3);
    lp_sha512_final(&ctx, digest);
    CHECK(memcmp(digest, abc512, 64) == 0, "SHA-512 of abc (FIPS 180-2)");
    /* Fed in pieces of every size across the 128-byte blocks, the same digest. */
    memset(million, 'a', sizeof million);
    lp_sha512_init(&ctx);
    lp_sha512_update(&ctx, million, sizeof million);
    lp_sha512_final(&ctx, digest);
    for (i = 1; i < 300u; i += 37u) {
        size_t at = 0;
        lp_sha512_init(&ctx);
        while (at < sizeof million) {
            size_t n = sizeof million - at < i ? sizeof million - at : i;
            lp_sha512_update(&ctx, million + at, n);
            at += n;
        }
        lp_sha512_final(&ctx, again);
        CHECK(memcmp(digest, again, 64) == 0, "SHA-512 in pieces");
    }
    CHECK(lp_crc32(0, (const uint8_t *)"123456789", 9) == 0xCBF43926u, "CRC-32 check value");
    CHECK(lp_crc32(lp_crc32(0, (const uint8_t *)"1234", 4), (const uint8_t *)"56789", 5) ==
              0xCBF43926u,
          "CRC-32 in pieces");
}

static void rfc8032(char *line) {
    char *key_hex = strtok(line, " \n"), *msg_hex = strtok(NULL, " \n");
    char *sig_hex = strtok(NULL, " \n");
    static uint8_t msg[1024];
    uint8_t key[32], sig[64], bad[64];
    size_t n, i;
    static const uint8_t l_bytes[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58,
                                        0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
                                        0,    0,    0,    0,    0,    0,    0,    0,
                                        0,    0,    0,    0,    0,    0,    0,    0x10};
    current = "RFC 8032";
    if (sig_hex == NULL) {
        fprintf(stderr, "an rfc8032 line with missing fields\n");
        exit(2);
    }
    unhex(key_hex, key, 32);
    n = unhex(msg_hex, msg, sizeof msg);
    unhex(sig_hex, sig, 64);
    CHECK(lp_ed25519_verify(key, msg, n, sig) == 1, "the signature holds");
    for (i = 0; i < 64u; i += 7u) {
        memcpy(bad, sig, 64);
        bad[i] ^= (uint8_t)(1u << (i % 8u));
        CHECK(lp_ed25519_verify(key, msg, n, bad) == 0, "a signature with a bit flipped");
    }
    key[5] ^= 0x10u;
    CHECK(lp_ed25519_verify(key, msg, n, sig) == 0, "another key");
    key[5] ^= 0x10u;
    if (n > 0u) {
        msg[n - 1u] ^= 1u;
        CHECK(lp_ed25519_verify(key, msg, n, sig) == 0, "another message");
        msg[n - 1u] ^= 1u;
    }
    CHECK(lp_ed25519_verify(key, msg, n + 1u, sig) == 0, "a longer message");
    /* S + L: the same point equation, refused because S is not below L (malleability). */
    {
        unsigned carry = 0;
        memcpy(bad, sig, 64);
        for (i = 0; i < 32u; i++) {
            unsigned sum = bad[32u + i] + l_bytes[i] + carry;
            bad[32u + i] = (uint8_t)sum;
            carry = sum >> 8;
        }
        CHECK(carry == 0u && lp_ed25519_verify(key, msg, n, bad) == 0, "S + L refused");
    }
    /* A key of small order (the identity, y = 1) and a non-canonical y (p itself). */
    {
        uint8_t identity[32] = {1}, p_bytes[32];
        memset(p_bytes, 0xff, 32);
        p_bytes[0] = 0xed;
        p_bytes[31] = 0x7f;
        CHECK(lp_ed25519_verify(identity, msg, n, sig) == 0, "a small-order key refused");
        CHECK(lp_ed25519_verify(p_bytes, msg, n, sig) == 0, "a non-canonical key refused");
    }
}

static void update(char *line) {
    char *key_hex = strtok(line, " \n"), *image_hex = strtok(NULL, " \n");
    char *version = strtok(NULL, " \n"), *chunk = strtok(NULL, " \n");
    char *sha_hex = strtok(NULL, " \n"), *sig_hex = strtok(NULL, " \n");
    char *crcs = strtok(NULL, " \n");
    static uint8_t image[4096];
    uint8_t keys[2][32], manifest[LP_MAX_MANIFEST];
    lp_update_offer offer;
    size_t size, at = 0, len;
    uint32_t index;
    lp_sha256 sha;
    uint8_t digest[32];
    current = "signed update";
    if (crcs == NULL || strlen(version) > LP_MAX_TEXT) {
        fprintf(stderr, "an update line with missing fields\n");
        exit(2);
    }
    memset(keys[0], 0x42, 32); /* a retired vendor key first: tried, then the next */
    unhex(key_hex, keys[1], 32);
    size = unhex(image_hex, image, sizeof image);
    memset(&offer, 0, sizeof offer);
    offer.update_id = 1;
    strcpy(offer.version, version);
    offer.size = (uint32_t)size;
    offer.chunk_size = (uint16_t)atoi(chunk);
    unhex(sha_hex, offer.sha256, 32);
    unhex(sig_hex, offer.signature, 64);
    lp_sha256_init(&sha);
    lp_sha256_update(&sha, image, size);
    lp_sha256_final(&sha, digest);
    CHECK(memcmp(digest, offer.sha256, 32) == 0, "the image's SHA-256");
    len = lp_update_manifest(&offer, manifest);
    CHECK(len == 41u + strlen(version) && memcmp(manifest, "LKFW\x01", 5) == 0, "the manifest");
    CHECK(lp_update_signature_ok(&offer, (const uint8_t(*)[32])keys, 2) == 1,
          "the vendor's signature holds under the second key");
    CHECK(lp_update_signature_ok(&offer, (const uint8_t(*)[32])keys, 1) == 0,
          "not under another key alone");
    offer.version[0] ^= 1;
    CHECK(lp_update_signature_ok(&offer, (const uint8_t(*)[32])keys, 2) == 0,
          "another version is not signed");
    offer.version[0] ^= 1;
    offer.size += 1u;
    CHECK(lp_update_signature_ok(&offer, (const uint8_t(*)[32])keys, 2) == 0,
          "another size is not signed");
    offer.size -= 1u;
    for (index = 0; index < lp_chunk_count(&offer); index++) {
        uint16_t n = lp_chunk_len(&offer, index);
        unsigned long want = strtoul(crcs, &crcs, 16);
        CHECK(n > 0u && lp_crc32(0, image + at, n) == want, "a chunk's CRC-32");
        at += n;
        if (*crcs == ',') crcs++;
    }
    CHECK(at == size && lp_chunk_len(&offer, index) == 0u, "the chunks cover the image");
}

int main(void) {
    static char line[16 * 1024];
    unsigned vectors = 0, updates = 0;
    known_answers();
    while (fgets(line, sizeof line, stdin) != NULL) {
        if (strncmp(line, "rfc8032 ", 8) == 0) {
            rfc8032(line + 8);
            vectors++;
        } else if (strncmp(line, "update ", 7) == 0) {
            update(line + 7);
            updates++;
        }
    }
    if (vectors == 0u || updates == 0u) {
        fprintf(stderr, "no RFC 8032 vectors or no update on standard input\n");
        return 2;
    }
    if (failures > 0u) {
        fprintf(stderr, "%u of %u checks failed\n", failures, checks);
        return 1;
    }
    printf("locker_update: %u RFC 8032 vectors, %u update, %u checks passed\n", vectors, updates,
           checks);
    return 0;
}
