/*
 * locker_update: the locker's side of firmware updates (firmware-protocol/PROTOCOL.md section
 * 11), in C99 with no heap and no operating system calls, beside locker_proto.h.
 *
 *   - the bodies: reading an update_offer, a chunk and an install; writing a chunk_request and
 *     an update_report (binary for serial lines; lp_json_to_binary / lp_json_from_binary turn
 *     them into and out of JSON for MQTT);
 *   - the image's manifest and the vendor's Ed25519 signature over it (RFC 8032), with a bundled
 *     SHA-512; a firmware with its own verifier builds with -DLP_EXTERNAL_ED25519;
 *   - CRC-32 (ISO-HDLC), each chunk's check.
 */
#ifndef LOCKER_UPDATE_H
#define LOCKER_UPDATE_H

#include "locker_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LP_MIN_CHUNK 16u
#define LP_MAX_CHUNK 32768u        /* MQTT */
#define LP_MAX_BINARY_CHUNK 1000u  /* serial: a chunk's body fits a frame */
#define LP_MAX_IMAGE 16777216u     /* 16 MiB */
#define LP_MAX_MANIFEST (5u + 4u + 32u + LP_MAX_TEXT)

/* update_report statuses and reasons. */
enum lp_update_status {
    LP_UPDATE_REFUSED = 1,     /* with a reason; nothing changed */
    LP_UPDATE_DOWNLOADED = 2,  /* the whole image is in the spare slot and checks: ready */
    LP_UPDATE_INSTALLING = 3,  /* rebooting into it now */
    LP_UPDATE_INSTALLED = 4,   /* the new image booted and confirmed itself */
    LP_UPDATE_FAILED = 5,      /* with a reason; the old image runs */
    LP_UPDATE_ROLLED_BACK = 6  /* the new image did not confirm itself; the old one runs */
};
enum lp_update_reason {
    LP_UPDATE_BAD_SIGNATURE = 1,
    LP_UPDATE_BAD_HASH = 2,
    LP_UPDATE_TOO_LARGE = 3,
    LP_UPDATE_BUSY = 4,
    LP_UPDATE_FLASH_ERROR = 5,
    LP_UPDATE_UNKNOWN_UPDATE = 6
};

typedef struct {
    uint32_t update_id;               /* names the update: offered again, it resumes */
    char version[LP_MAX_TEXT + 1u];   /* NUL-terminated */
    uint32_t size;                    /* 1 .. LP_MAX_IMAGE */
    uint8_t sha256[32];
    uint8_t signature[64];            /* Ed25519 over the manifest */
    uint16_t chunk_size;              /* LP_MIN_CHUNK .. LP_MAX_CHUNK */
} lp_update_offer;

typedef struct {
    uint32_t update_id;
    uint32_t index;       /* bytes index * chunk_size .. of the image */
    uint32_t crc32;       /* lp_crc32 of data */
    const uint8_t *data;  /* points into the body */
    uint16_t len;
} lp_chunk;

/* Each returns LP_OK, LP_ERR_LENGTH (bytes missing) or LP_ERR_RANGE (a field outside its
 * range). lp_read_chunk does not check the CRC: compare lp_crc32(data) with crc32, and again
 * after writing the chunk to flash. */
lp_status lp_read_update_offer(const uint8_t *body, size_t len, lp_update_offer *out);
lp_status lp_read_chunk(const uint8_t *body, size_t len, lp_chunk *out);
lp_status lp_read_install(const uint8_t *body, size_t len, uint32_t *update_id);

lp_status lp_write_chunk_request(uint32_t update_id, uint32_t index, uint8_t *out,
                                 size_t out_cap, size_t *out_len);
/* reason: for LP_UPDATE_REFUSED and LP_UPDATE_FAILED (enum lp_update_reason), else 0. */
lp_status lp_write_update_report(uint32_t update_id, const char *version, uint8_t status,
                                 uint8_t reason, uint8_t *out, size_t out_cap, size_t *out_len);

/* How many chunks the offered image has, and the length of chunk `index` (0 past the last). */
uint32_t lp_chunk_count(const lp_update_offer *offer);
uint16_t lp_chunk_len(const lp_update_offer *offer, uint32_t index);

/* CRC-32/ISO-HDLC (zlib's): start with crc 0, feed pieces in order. */
uint32_t lp_crc32(uint32_t crc, const uint8_t *data, size_t len);

/* The manifest the vendor signs: "LKFW" 0x01 | size (u32 BE) | sha256 | version. */
size_t lp_update_manifest(const lp_update_offer *offer, uint8_t out[LP_MAX_MANIFEST]);

/* 1 when the offer's signature holds under one of the `count` vendor public keys. */
int lp_update_signature_ok(const lp_update_offer *offer, const uint8_t (*keys)[32],
                           size_t count);

/* ---- The locker's updater (section 11.2) ----
 *
 * The rules of section 11.2 over the caller's spare flash slot: an offer checked (size, the
 * vendor's signature under any trusted key), chunks checked (CRC on receipt and read back from
 * flash) and written in order, resume after a power cut from the saved record, the whole image
 * hashed at the end, install on command, the report after the boot. */

enum lp_update_phase {
    LP_PHASE_IDLE = 0,
    LP_PHASE_DOWNLOADING = 1,
    LP_PHASE_DOWNLOADED = 2,
    LP_PHASE_INSTALLING = 3,
    LP_PHASE_FINISHED = 4
};

/* What the updater keeps across power cuts: the slot's `save` is called with it after every
 * change; pass it back to lp_updater_init at power-up. */
typedef struct {
    uint8_t phase;          /* enum lp_update_phase */
    lp_update_offer offer;  /* the update held */
    uint32_t next;          /* DOWNLOADING: the next chunk wanted */
    uint8_t status, reason; /* FINISHED: its last report */
} lp_update_record;

/* The spare flash slot, the caller's: each returns 0 when it worked. */
typedef struct {
    void *ctx;
    int (*erase)(void *ctx, uint32_t size);
    int (*write)(void *ctx, uint32_t offset, const uint8_t *data, size_t len);
    int (*read)(void *ctx, uint32_t offset, uint8_t *data, size_t len);
    int (*save)(void *ctx, const lp_update_record *record);
} lp_slot;

typedef struct {
    const uint8_t (*keys)[32]; /* the vendor keys the firmware trusts */
    size_t key_count;
    uint32_t capacity;         /* the slot's size */
    lp_slot slot;
    lp_update_record record;
    uint8_t tries;             /* failed tries of the chunk wanted */
    uint8_t reboot;            /* set by an install: reboot after sending the answer */
} lp_updater;

/* What to send back: `type` LP_CHUNK_REQUEST or LP_UPDATE_REPORT, or 0 for nothing. */
typedef struct {
    uint8_t type;
    uint8_t body[7u + LP_MAX_TEXT];
    size_t len;
} lp_update_answer;

/* An updater over `slot`, trusting `keys`; `saved` is the record saved before (NULL: none). */
void lp_updater_init(lp_updater *u, const uint8_t (*keys)[32], size_t key_count,
                     uint32_t capacity, lp_slot slot, const lp_update_record *saved);
/* The answer to an update_offer, given the version the locker runs. */
void lp_updater_offer(lp_updater *u, const lp_update_offer *offer, const char *running,
                      lp_update_answer *answer);
/* The answer to a chunk (nothing for another update's). */
void lp_updater_chunk(lp_updater *u, const lp_chunk *chunk, lp_update_answer *answer);
/* The answer to an install; a downloaded image sets u->reboot: send the answer, then reboot. */
void lp_updater_install(lp_updater *u, uint32_t update_id, const char *running,
                        lp_update_answer *answer);
/* At power-up after an install: whether the new image confirmed itself (else the boot loader
 * went back to the old one). The report is then the answer to the next offer of the update
 * (and an MQTT locker sends it after its hello: lp_updater_report). */
void lp_updater_boot(lp_updater *u, int confirmed);
/* The last report of a finished update, if there is one: 1 and the answer filled. */
int lp_updater_report(const lp_updater *u, lp_update_answer *answer);

/* ---- Ed25519 and SHA-512 ---- */

typedef struct {
    uint64_t state[8];
    uint64_t length; /* bytes hashed so far */
    uint8_t block[128];
    size_t used;
} lp_sha512;

void lp_sha512_init(lp_sha512 *ctx);
void lp_sha512_update(lp_sha512 *ctx, const uint8_t *data, size_t len);
void lp_sha512_final(lp_sha512 *ctx, uint8_t digest[64]);

/* 1 when `signature` signs `message` under `public_key` (RFC 8032 section 5.1.7, strictly: S
 * below L, canonical points, neither the key nor R of small order), else 0. */
int lp_ed25519_verify(const uint8_t public_key[32], const uint8_t *message, size_t len,
                      const uint8_t signature[64]);

#ifdef __cplusplus
}
#endif

#endif /* LOCKER_UPDATE_H */
