/* The example lock board's firmware updates (PROTOCOL.md section 11), with the library's
 * updater (lp_updater). The board's flash is a directory (LOCK_BOARD_FLASH): the spare slot
 * (slot.bin), the updater's record (record.bin) and the version that runs (firmware), so that a
 * power cut (the process killed) and a reboot keep them. "Booting" a new image here is taking
 * its version; LOCK_BOARD_FAIL_BOOT=1 makes it fail to confirm itself (rolled back). */
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_util.h"
#include "lock_board_update.h"

#define SLOT_BYTES (1024u * 1024u)
#define MAX_CHUNK 512u

static struct {
    int enabled;
    char dir[256];
    uint8_t key[1][32];
    lp_updater updater;
    char firmware[LP_MAX_TEXT + 1];
} up;

static void path(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", up.dir, name);
}

static int erase(void *ctx, uint32_t size) {
    char p[300];
    FILE *f;
    (void)ctx;
    path(p, sizeof p, "slot.bin");
    f = fopen(p, "wb");
    if (f == NULL || size > SLOT_BYTES) {
        if (f != NULL) fclose(f);
        return 1;
    }
    return fclose(f) != 0;
}

static int write_slot(void *ctx, uint32_t offset, const uint8_t *data, size_t len) {
    char p[300];
    FILE *f;
    int bad;
    (void)ctx;
    path(p, sizeof p, "slot.bin");
    f = fopen(p, "r+b");
    if (f == NULL) return 1;
    bad = fseek(f, (long)offset, SEEK_SET) != 0 || fwrite(data, 1, len, f) != len;
    return (fclose(f) != 0) || bad;
}

static int read_slot(void *ctx, uint32_t offset, uint8_t *data, size_t len) {
    char p[300];
    FILE *f;
    int bad;
    (void)ctx;
    path(p, sizeof p, "slot.bin");
    f = fopen(p, "rb");
    if (f == NULL) return 1;
    bad = fseek(f, (long)offset, SEEK_SET) != 0 || fread(data, 1, len, f) != len;
    fclose(f);
    return bad;
}

static int save(void *ctx, const lp_update_record *record) {
    char p[300];
    FILE *f;
    int bad;
    (void)ctx;
    path(p, sizeof p, "record.bin");
    f = fopen(p, "wb");
    if (f == NULL) return 1;
    bad = fwrite(record, sizeof *record, 1, f) != 1;
    return (fclose(f) != 0) || bad;
}

/* The text file `name` in the flash directory into out (cap bytes); 1 when read. */
static int read_text(const char *name, char *out, size_t cap) {
    char p[300];
    FILE *f;
    size_t n;
    path(p, sizeof p, name);
    f = fopen(p, "rb");
    if (f == NULL) return 0;
    n = fread(out, 1, cap - 1u, f);
    fclose(f);
    out[n] = '\0';
    out[strcspn(out, "\n")] = '\0';
    return n > 0u;
}

void board_update_init(void) {
    const char *dir = getenv("LOCK_BOARD_FLASH"), *key = getenv("LOCK_BOARD_VENDOR_KEY");
    lp_update_record saved;
    lp_slot slot;
    char p[300];
    FILE *f;
    int have = 0;
    strcpy(up.firmware, "c-lock-board-1.0");
    if (dir == NULL || key == NULL || strlen(dir) >= sizeof up.dir ||
        !example_hex_key(key, up.key[0])) {
        return;
    }
    strcpy(up.dir, dir);
    up.enabled = 1;
    read_text("firmware", up.firmware, sizeof up.firmware);
    path(p, sizeof p, "record.bin");
    f = fopen(p, "rb");
    if (f != NULL) {
        have = fread(&saved, sizeof saved, 1, f) == 1;
        fclose(f);
    }
    slot.ctx = NULL;
    slot.erase = erase;
    slot.write = write_slot;
    slot.read = read_slot;
    slot.save = save;
    lp_updater_init(&up.updater, (const uint8_t(*)[32])up.key, 1, SLOT_BYTES, slot,
                    have ? &saved : NULL);
}

const char *board_firmware(void) { return up.firmware; }

uint16_t board_max_chunk(void) { return up.enabled ? MAX_CHUNK : 0u; }

int board_update_message(uint8_t type) {
    return type == LP_UPDATE_OFFER || type == LP_CHUNK || type == LP_INSTALL;
}

void board_update(const lp_envelope *env, lp_update_answer *answer) {
    lp_update_offer offer;
    lp_chunk chunk;
    uint32_t id;
    answer->type = 0;
    if (!up.enabled) {
        return; /* it announced no max_chunk: nothing to do with them */
    }
    if (env->type == LP_UPDATE_OFFER && lp_read_update_offer(env->body, env->body_len, &offer) == LP_OK) {
        lp_updater_offer(&up.updater, &offer, up.firmware, answer);
    } else if (env->type == LP_CHUNK && lp_read_chunk(env->body, env->body_len, &chunk) == LP_OK) {
        uint32_t before = up.updater.record.next;
        lp_updater_chunk(&up.updater, &chunk, answer);
        if (up.updater.record.next != before || up.updater.record.phase != LP_PHASE_DOWNLOADING) {
            printf("wrote %lu\n", (unsigned long)chunk.index);
            fflush(stdout);
        }
    } else if (env->type == LP_INSTALL && lp_read_install(env->body, env->body_len, &id) == LP_OK) {
        lp_updater_install(&up.updater, id, up.firmware, answer);
    }
}

int board_update_reboot(void) {
    const char *fail = getenv("LOCK_BOARD_FAIL_BOOT");
    int confirmed = fail == NULL || strcmp(fail, "1") != 0;
    char p[300];
    FILE *f;
    if (!up.updater.reboot) {
        return 0;
    }
    /* The boot loader starts the new image; it confirms itself, or is rolled back. */
    lp_updater_boot(&up.updater, confirmed);
    if (confirmed) {
        strcpy(up.firmware, up.updater.record.offer.version);
        path(p, sizeof p, "firmware");
        f = fopen(p, "wb");
        if (f != NULL) {
            fputs(up.firmware, f);
            fclose(f);
        }
    }
    return 1;
}
