/* Checks the C library's updater (lp_updater, PROTOCOL.md section 11.2) on a RAM slot with the
 * vectors' signed update, which the Rust test c_update.rs hands over on standard input:
 *
 *   update <vendor public key> <image> <version> <chunk size> <sha256> <signature> <crc32,...>
 *
 * A whole download, a power cut resumed from the saved record, a write that reads back wrong,
 * a chunk whose CRC fails three times, an image that is not the signed one, a bad signature, an
 * image too large, install and boot (confirmed, rolled back). Exits 1 on a failure. */
#include "locker_update.h"
#include "test_util.h"


static uint8_t flash[4096];      /* the spare slot */
static lp_update_record saved;   /* what the board keeps in flash */
static int saved_any, corrupt_next_write;

static int erase(void *ctx, uint32_t size) {
    (void)ctx;
    if (size > sizeof flash) return 1;
    memset(flash, 0xFF, sizeof flash);
    return 0;
}

static int write_slot(void *ctx, uint32_t offset, const uint8_t *data, size_t len) {
    (void)ctx;
    if (offset + len > sizeof flash) return 1;
    memcpy(flash + offset, data, len);
    if (corrupt_next_write) {
        corrupt_next_write = 0;
        flash[offset] ^= 0x01u; /* a cell that did not take the write */
    }
    return 0;
}

static int read_slot(void *ctx, uint32_t offset, uint8_t *data, size_t len) {
    (void)ctx;
    if (offset + len > sizeof flash) return 1;
    memcpy(data, flash + offset, len);
    return 0;
}

static int save_record(void *ctx, const lp_update_record *record) {
    (void)ctx;
    saved = *record;
    saved_any = 1;
    return 0;
}


static uint8_t image[4096];
static size_t image_len;
static lp_update_offer offer;
static uint8_t keys[2][32];

static lp_slot slot(void) {
    lp_slot s;
    s.ctx = NULL;
    s.erase = erase;
    s.write = write_slot;
    s.read = read_slot;
    s.save = save_record;
    return s;
}

static lp_chunk chunk_of(const uint8_t *img, uint32_t index) {
    lp_chunk c;
    c.update_id = offer.update_id;
    c.index = index;
    c.data = img + (size_t)index * offer.chunk_size;
    c.len = lp_chunk_len(&offer, index);
    c.crc32 = lp_crc32(0, c.data, c.len);
    return c;
}

/* The index an answer asks for, or -1. */
static long wants(const lp_update_answer *a) {
    if (a->type != LP_CHUNK_REQUEST || a->len != 8u) return -1;
    return (long)(((uint32_t)a->body[4] << 24) | ((uint32_t)a->body[5] << 16) |
                  ((uint32_t)a->body[6] << 8) | a->body[7]);
}

/* (status << 8) | reason of a report, or -1. */
static int status(const lp_update_answer *a) {
    size_t n;
    if (a->type != LP_UPDATE_REPORT || a->len < 7u) return -1;
    n = a->body[4];
    return (a->body[5 + n] << 8) | a->body[6 + n];
}

#define REPORT(s, r) (((s) << 8) | (r))

static void scenarios(void) {
    const uint8_t(*trusted)[32] = (const uint8_t(*)[32])keys;
    lp_updater u;
    lp_update_answer a;
    uint32_t chunks = lp_chunk_count(&offer), i;
    uint8_t wrong[4096];

    current = "a whole update";
    lp_updater_init(&u, trusted, 2, sizeof flash, slot(), NULL);
    lp_updater_offer(&u, &offer, "1.0.0", &a);
    CHECK(wants(&a) == 0, "the first chunk is asked for");
    for (i = 0; i + 1 < chunks; i++) {
        lp_chunk c = chunk_of(image, i);
        lp_updater_chunk(&u, &c, &a);
        CHECK(wants(&a) == (long)i + 1, "the next chunk");
    }
    /* A power cut: RAM gone, the saved record and the slot kept; offered again, it resumes. */
    current = "resume after a power cut";
    CHECK(saved_any && saved.phase == LP_PHASE_DOWNLOADING && saved.next == chunks - 1u,
          "the progress is saved");
    lp_updater_init(&u, trusted, 2, sizeof flash, slot(), &saved);
    lp_updater_offer(&u, &offer, "1.0.0", &a);
    CHECK(wants(&a) == (long)chunks - 1, "it asks for the chunk after its last good one");
    {
        lp_chunk c = chunk_of(image, chunks - 1u);
        lp_updater_chunk(&u, &c, &a);
    }
    CHECK(status(&a) == REPORT(LP_UPDATE_DOWNLOADED, 0), "downloaded");
    lp_updater_offer(&u, &offer, "1.0.0", &a);
    CHECK(status(&a) == REPORT(LP_UPDATE_DOWNLOADED, 0), "offered again: downloaded");
    current = "install and boot";
    lp_updater_install(&u, offer.update_id + 1u, "1.0.0", &a);
    CHECK(status(&a) == REPORT(LP_UPDATE_REFUSED, LP_UPDATE_UNKNOWN_UPDATE) && !u.reboot,
          "another update's install is refused");
    lp_updater_install(&u, offer.update_id, "1.0.0", &a);
    CHECK(status(&a) == REPORT(LP_UPDATE_INSTALLING, 0) && u.reboot, "installing, reboot");
    lp_updater_init(&u, trusted, 2, sizeof flash, slot(), &saved);
    lp_updater_boot(&u, 1);
    CHECK(lp_updater_report(&u, &a) && status(&a) == REPORT(LP_UPDATE_INSTALLED, 0),
          "installed after the boot");
    lp_updater_offer(&u, &offer, offer.version, &a);
    CHECK(status(&a) == REPORT(LP_UPDATE_INSTALLED, 0), "offered again: its report");

    current = "a new image that does not confirm itself";
    offer.update_id += 10u;
    lp_updater_init(&u, trusted, 2, sizeof flash, slot(), NULL);
    lp_updater_offer(&u, &offer, "1.0.0", &a);
    for (i = 0; i < chunks; i++) {
        lp_chunk c = chunk_of(image, i);
        lp_updater_chunk(&u, &c, &a);
    }
    lp_updater_install(&u, offer.update_id, "1.0.0", &a);
    lp_updater_boot(&u, 0);
    CHECK(lp_updater_report(&u, &a) && status(&a) == REPORT(LP_UPDATE_ROLLED_BACK, 0),
          "rolled back");

    current = "a write that reads back wrong, a chunk that fails three times";
    offer.update_id += 10u;
    lp_updater_init(&u, trusted, 2, sizeof flash, slot(), NULL);
    lp_updater_offer(&u, &offer, "1.0.0", &a);
    corrupt_next_write = 1;
    {
        lp_chunk c = chunk_of(image, 0), bad;
        lp_updater_chunk(&u, &c, &a);
        CHECK(wants(&a) == 0, "read back wrong: asked again");
        lp_updater_chunk(&u, &c, &a);
        CHECK(wants(&a) == 1, "written right the second time");
        c = chunk_of(image, chunks - 1u);
        lp_updater_chunk(&u, &c, &a);
        CHECK(wants(&a) == 1, "another index: it asks for its own");
        bad = chunk_of(image, 1);
        bad.crc32 ^= 1u;
        lp_updater_chunk(&u, &bad, &a);
        lp_updater_chunk(&u, &bad, &a);
        CHECK(wants(&a) == 1, "a bad CRC twice: asked again");
        lp_updater_chunk(&u, &bad, &a);
        CHECK(status(&a) == REPORT(LP_UPDATE_FAILED, LP_UPDATE_FLASH_ERROR), "flash_error");
    }

    current = "an image that is not the signed one";
    offer.update_id += 10u;
    memcpy(wrong, image, image_len);
    wrong[image_len - 1u] ^= 0x80u;
    lp_updater_init(&u, trusted, 2, sizeof flash, slot(), NULL);
    lp_updater_offer(&u, &offer, "1.0.0", &a);
    for (i = 0; i < chunks; i++) {
        lp_chunk c = chunk_of(wrong, i);
        lp_updater_chunk(&u, &c, &a);
    }
    CHECK(status(&a) == REPORT(LP_UPDATE_FAILED, LP_UPDATE_BAD_HASH), "bad_hash");

    current = "offers refused";
    offer.update_id += 10u;
    lp_updater_init(&u, trusted, 1, sizeof flash, slot(), NULL); /* only the other key */
    lp_updater_offer(&u, &offer, "1.0.0", &a);
    CHECK(status(&a) == REPORT(LP_UPDATE_REFUSED, LP_UPDATE_BAD_SIGNATURE), "bad_signature");
    CHECK(u.record.phase == LP_PHASE_IDLE, "nothing started");
    lp_updater_init(&u, trusted, 2, 16, slot(), NULL);
    lp_updater_offer(&u, &offer, "1.0.0", &a);
    CHECK(status(&a) == REPORT(LP_UPDATE_REFUSED, LP_UPDATE_TOO_LARGE), "too_large");
    lp_updater_init(&u, trusted, 2, sizeof flash, slot(), NULL);
    offer.sha256[0] ^= 1u;
    lp_updater_offer(&u, &offer, "1.0.0", &a);
    CHECK(status(&a) == REPORT(LP_UPDATE_REFUSED, LP_UPDATE_BAD_SIGNATURE),
          "another hash under the vendor's signature");
    offer.sha256[0] ^= 1u;
    lp_updater_offer(&u, &offer, offer.version, &a);
    CHECK(status(&a) == REPORT(LP_UPDATE_INSTALLED, 0), "the version it runs: installed");
}

int main(void) {
    static char line[16 * 1024];
    int have = 0;
    while (fgets(line, sizeof line, stdin) != NULL) {
        char *key, *img, *version, *chunk, *sha, *sig;
        if (strncmp(line, "update ", 7) != 0) continue;
        key = strtok(line + 7, " \n");
        img = strtok(NULL, " \n");
        version = strtok(NULL, " \n");
        chunk = strtok(NULL, " \n");
        sha = strtok(NULL, " \n");
        sig = strtok(NULL, " \n");
        if (sig == NULL || strlen(version) > LP_MAX_TEXT) return 2;
        memset(keys[0], 0x42, 32); /* another vendor's key first */
        unhex(key, keys[1], 32);
        image_len = unhex(img, image, sizeof image);
        memset(&offer, 0, sizeof offer);
        offer.update_id = 31;
        strcpy(offer.version, version);
        offer.size = (uint32_t)image_len;
        offer.chunk_size = (uint16_t)atoi(chunk);
        unhex(sha, offer.sha256, 32);
        unhex(sig, offer.signature, 64);
        have = 1;
    }
    if (!have) {
        fprintf(stderr, "no update on standard input\n");
        return 2;
    }
    scenarios();
    if (failures > 0u) {
        fprintf(stderr, "%u of %u checks failed\n", failures, checks);
        return 1;
    }
    printf("lp_updater: %u checks passed\n", checks);
    return 0;
}
