/* The locker's updater (PROTOCOL.md section 11.2) over the caller's flash slot. */
#include "locker_update.h"

#include <string.h>

#define TRIES 3u /* failed tries of one chunk before the update fails with flash_error */

static void save(lp_updater *u) {
    if (u->slot.save != NULL) {
        (void)u->slot.save(u->slot.ctx, &u->record);
    }
}

static void request(const lp_updater *u, uint32_t index, lp_update_answer *a) {
    a->type = 0;
    if (lp_write_chunk_request(u->record.offer.update_id, index, a->body, sizeof a->body,
                               &a->len) == LP_OK) {
        a->type = LP_CHUNK_REQUEST;
    }
}

static void report_of(uint32_t update_id, const char *version, uint8_t status, uint8_t reason,
                      lp_update_answer *a) {
    a->type = 0;
    if (lp_write_update_report(update_id, version, status, reason, a->body, sizeof a->body,
                               &a->len) == LP_OK) {
        a->type = LP_UPDATE_REPORT;
    }
}

/* Ends the update held with this report (kept until a newer offer). */
static void finish(lp_updater *u, uint8_t status, uint8_t reason, lp_update_answer *a) {
    u->record.phase = LP_PHASE_FINISHED;
    u->record.status = status;
    u->record.reason = reason;
    save(u);
    report_of(u->record.offer.update_id, u->record.offer.version, status, reason, a);
}

void lp_updater_init(lp_updater *u, const uint8_t (*keys)[32], size_t key_count,
                     uint32_t capacity, lp_slot slot, const lp_update_record *saved) {
    memset(u, 0, sizeof *u);
    u->keys = keys;
    u->key_count = key_count;
    u->capacity = capacity;
    u->slot = slot;
    if (saved != NULL && saved->phase <= LP_PHASE_FINISHED) {
        u->record = *saved;
    }
}

int lp_updater_report(const lp_updater *u, lp_update_answer *a) {
    if (u->record.phase != LP_PHASE_FINISHED) {
        return 0;
    }
    report_of(u->record.offer.update_id, u->record.offer.version, u->record.status,
              u->record.reason, a);
    return a->type != 0;
}

void lp_updater_offer(lp_updater *u, const lp_update_offer *offer, const char *running,
                      lp_update_answer *a) {
    lp_update_record *r = &u->record;
    a->type = 0;
    if (r->phase != LP_PHASE_IDLE && r->offer.update_id == offer->update_id) {
        /* Offered again: where it stands. */
        if (r->phase == LP_PHASE_DOWNLOADING) {
            request(u, r->next, a);
        } else if (r->phase == LP_PHASE_FINISHED) {
            (void)lp_updater_report(u, a);
        } else {
            report_of(offer->update_id, r->offer.version, LP_UPDATE_DOWNLOADED, 0, a);
        }
        return;
    }
    if (offer->size > u->capacity) {
        report_of(offer->update_id, offer->version, LP_UPDATE_REFUSED, LP_UPDATE_TOO_LARGE, a);
        return;
    }
    if (!lp_update_signature_ok(offer, u->keys, u->key_count)) {
        report_of(offer->update_id, offer->version, LP_UPDATE_REFUSED, LP_UPDATE_BAD_SIGNATURE,
                  a);
        return;
    }
    r->offer = *offer;
    if (strcmp(offer->version, running) == 0) {
        finish(u, LP_UPDATE_INSTALLED, 0, a); /* it runs that version already */
        return;
    }
    if (u->slot.erase(u->slot.ctx, offer->size) != 0) {
        finish(u, LP_UPDATE_FAILED, LP_UPDATE_FLASH_ERROR, a);
        return;
    }
    r->phase = LP_PHASE_DOWNLOADING;
    r->next = 0;
    u->tries = 0;
    save(u);
    request(u, 0, a);
}

/* The slot's SHA-256, read back in blocks. */
static int slot_hash(lp_updater *u, uint8_t digest[32]) {
    uint8_t block[256];
    uint32_t at = 0, size = u->record.offer.size;
    lp_sha256 ctx;
    lp_sha256_init(&ctx);
    while (at < size) {
        size_t n = size - at < sizeof block ? size - at : sizeof block;
        if (u->slot.read(u->slot.ctx, at, block, n) != 0) {
            return 0;
        }
        lp_sha256_update(&ctx, block, n);
        at += (uint32_t)n;
    }
    lp_sha256_final(&ctx, digest);
    return 1;
}

/* The chunk written at `offset` reads back with this CRC. */
static int reads_back(lp_updater *u, uint32_t offset, size_t len, uint32_t crc) {
    uint8_t block[256];
    uint32_t got = 0;
    size_t at = 0;
    while (at < len) {
        size_t n = len - at < sizeof block ? len - at : sizeof block;
        if (u->slot.read(u->slot.ctx, offset + (uint32_t)at, block, n) != 0) {
            return 0;
        }
        got = lp_crc32(got, block, n);
        at += n;
    }
    return got == crc;
}

void lp_updater_chunk(lp_updater *u, const lp_chunk *chunk, lp_update_answer *a) {
    lp_update_record *r = &u->record;
    uint32_t offset;
    uint8_t digest[32];
    a->type = 0;
    if (r->phase == LP_PHASE_IDLE || chunk->update_id != r->offer.update_id) {
        return; /* another update's: ignored */
    }
    if (r->phase != LP_PHASE_DOWNLOADING) {
        lp_updater_offer(u, &r->offer, "", a); /* where it stands */
        return;
    }
    offset = r->next * (uint32_t)r->offer.chunk_size;
    if (chunk->index != r->next) {
        request(u, r->next, a); /* not the one wanted: ask for it */
        return;
    }
    if (chunk->len != lp_chunk_len(&r->offer, chunk->index) ||
        lp_crc32(0, chunk->data, chunk->len) != chunk->crc32 ||
        u->slot.write(u->slot.ctx, offset, chunk->data, chunk->len) != 0 ||
        !reads_back(u, offset, chunk->len, chunk->crc32)) {
        if (++u->tries >= TRIES) {
            finish(u, LP_UPDATE_FAILED, LP_UPDATE_FLASH_ERROR, a);
        } else {
            request(u, r->next, a);
        }
        return;
    }
    u->tries = 0;
    r->next++;
    if (r->next < lp_chunk_count(&r->offer)) {
        save(u);
        request(u, r->next, a);
        return;
    }
    if (!slot_hash(u, digest) || memcmp(digest, r->offer.sha256, 32) != 0) {
        finish(u, LP_UPDATE_FAILED, LP_UPDATE_BAD_HASH, a);
        return;
    }
    r->phase = LP_PHASE_DOWNLOADED;
    save(u);
    report_of(r->offer.update_id, r->offer.version, LP_UPDATE_DOWNLOADED, 0, a);
}

void lp_updater_install(lp_updater *u, uint32_t update_id, const char *running,
                        lp_update_answer *a) {
    lp_update_record *r = &u->record;
    if (r->offer.update_id == update_id && r->phase == LP_PHASE_DOWNLOADED) {
        r->phase = LP_PHASE_INSTALLING;
        save(u);
        u->reboot = 1;
        report_of(update_id, r->offer.version, LP_UPDATE_INSTALLING, 0, a);
    } else if (r->offer.update_id == update_id && r->phase == LP_PHASE_FINISHED) {
        (void)lp_updater_report(u, a);
    } else {
        report_of(update_id, running, LP_UPDATE_REFUSED, LP_UPDATE_UNKNOWN_UPDATE, a);
    }
}

void lp_updater_boot(lp_updater *u, int confirmed) {
    lp_update_answer ignored;
    if (u->record.phase != LP_PHASE_INSTALLING) {
        return;
    }
    u->reboot = 0;
    finish(u, confirmed ? LP_UPDATE_INSTALLED : LP_UPDATE_ROLLED_BACK, 0, &ignored);
}
