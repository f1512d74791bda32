/* Replays the whole-exchange vectors (`exchanges` in vectors/vectors.json) through the C
 * library, which plays the board: for each gateway step it must do what the step says (hello,
 * execute, repeat, answer, refuse:REASON, ignore), and each board step must be a frame the board
 * may send then. The Rust test exchange_check.rs hands the steps over on standard input:
 *
 *   key <hex>
 *   exchange <name>
 *   gateway <expect> <hex>        board <expect or -> <hex or ->
 *
 * Each gateway step is followed by a silent gap. Prints what failed and exits 1, or a summary. */
#include "locker_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADDRESS 7u
#define DEVICE "lk-0001"

static uint8_t key[LP_KEY_LEN];
static char name[64];
static unsigned step, failures;
static int in_session;
static lp_guard guard;
static uint32_t highest;
static char last_sent[2 * LP_MAX_FRAME + 64];

static size_t unhex(const char *hex, uint8_t *out, size_t cap) {
    size_t n = strcmp(hex, "-") == 0 ? 0u : strlen(hex), i;
    if (n % 2u != 0u || n / 2u > cap) {
        fprintf(stderr, "bad hex in the input\n");
        exit(2);
    }
    for (i = 0; i < n / 2u; i++) {
        unsigned byte;
        if (sscanf(hex + 2u * i, "%2x", &byte) != 1) {
            fprintf(stderr, "bad hex in the input\n");
            exit(2);
        }
        out[i] = (uint8_t)byte;
    }
    return n / 2u;
}

static const char *reason(uint8_t code) {
    static const char *names[] = {"executed", "no_such_door", "busy", "expired", "bad_tag",
                                  "stale_counter", "unsupported", "wrong_session", "malformed"};
    return code <= LP_MALFORMED ? names[code] : "?";
}

/* The first whole frame for our address in `bytes`, followed by a gap; its envelope copied. */
static size_t first_frame(const uint8_t *bytes, size_t len, uint8_t *envelope) {
    static lp_decoder dec;
    lp_frame f;
    size_t i;
    lp_decoder_init(&dec);
    for (i = 0; i < len; i++) {
        if (lp_decoder_feed(&dec, bytes[i], &f) && f.address == ADDRESS) {
            memcpy(envelope, f.envelope, f.len);
            return f.len;
        }
    }
    while (lp_decoder_gap(&dec, &f)) {
        if (f.address == ADDRESS) {
            memcpy(envelope, f.envelope, f.len);
            return f.len;
        }
    }
    return 0;
}

static const char *board_does(const uint8_t *bytes, size_t len) {
    static char out[32];
    static uint8_t buf[LP_MAX_ENVELOPE];
    lp_envelope env;
    uint8_t tag[LP_TAG_LEN];
    uint64_t id;
    lp_verdict v;
    size_t n = first_frame(bytes, len, buf);
    int command;
    if (n == 0 || lp_envelope_parse(buf, n, &env, tag) != LP_OK || env.direction != LP_DOWN) {
        return "ignore";
    }
    command = env.type == LP_UNLOCK || env.type == LP_CONFIGURE;
    if (lp_envelope_open(buf, n, key, &env) != LP_OK || strcmp(env.device_id, DEVICE) != 0) {
        return in_session && command && lp_read_command_id(env.body, env.body_len, &id)
                   ? "refuse:bad_tag"
                   : "ignore";
    }
    if (!in_session) {
        return "hello";
    }
    if (command) {
        if (!lp_read_command_id(env.body, env.body_len, &id)) {
            return "ignore";
        }
        v = lp_guard_check_command(&guard, &env, id);
        if (v.kind == LP_EXECUTE) {
            lp_guard_record(&guard, id, env.counter, LP_EXECUTED);
            return "execute";
        }
        if (v.kind == LP_REPEAT) {
            return "repeat";
        }
        snprintf(out, sizeof out, "refuse:%s", reason(v.result));
        return out;
    }
    v = lp_guard_check_request(&guard, &env);
    if (v.kind == LP_EXECUTE) {
        return "answer";
    }
    return v.result == LP_WRONG_SESSION ? "hello" : "ignore";
}

static void fail(const char *what) {
    failures++;
    fprintf(stderr, "FAIL %s step %u: %s\n", name, step, what);
}

static void board_sent(const char *hex, const uint8_t *bytes, size_t len) {
    static uint8_t buf[LP_MAX_ENVELOPE];
    lp_envelope env;
    size_t n = first_frame(bytes, len, buf);
    if (n == 0 || lp_envelope_open(buf, n, key, &env) != LP_OK || env.direction != LP_UP ||
        strcmp(env.device_id, DEVICE) != 0) {
        fail("a board step that is not a valid uplink frame");
        return;
    }
    if (env.type == LP_HELLO && (!in_session || env.session != guard.session)) {
        lp_guard_init(&guard, env.body_len > 0 ? env.body[0] : 1u, env.session);
        in_session = 1;
        highest = 0;
        last_sent[0] = '\0';
    }
    if (!in_session || env.session != guard.session) {
        fail("a board step outside the board's session");
        return;
    }
    if (env.counter < highest || (env.counter == highest && strcmp(hex, last_sent) != 0)) {
        fail("a board step whose counter is not new and not the same bytes again");
    }
    highest = env.counter;
    snprintf(last_sent, sizeof last_sent, "%s", hex);
}

int main(void) {
    static char line[8192], from[16], expect[64], hex[2 * LP_MAX_FRAME + 64];
    static uint8_t bytes[LP_MAX_FRAME + 64];
    unsigned exchanges = 0, steps = 0;
    while (fgets(line, sizeof line, stdin)) {
        if (sscanf(line, "key %64s", hex) == 1) {
            unhex(hex, key, sizeof key);
        } else if (sscanf(line, "exchange %63s", name) == 1) {
            exchanges++;
            step = 0;
            in_session = 0;
        } else if (sscanf(line, "%15s %63s %2250s", from, expect, hex) == 3) {
            size_t len = unhex(hex, bytes, sizeof bytes);
            if (strcmp(from, "gateway") == 0) {
                const char *did = board_does(bytes, len);
                if (strcmp(did, expect) != 0) {
                    char what[128];
                    snprintf(what, sizeof what, "the board does %s, the vector says %s", did, expect);
                    fail(what);
                }
            } else if (strcmp(expect, "power_cut") == 0) {
                in_session = 0;
            } else {
                board_sent(hex, bytes, len);
            }
            step++;
            steps++;
        }
    }
    if (failures > 0) {
        return 1;
    }
    printf("%u exchanges, %u steps agree\n", exchanges, steps);
    return 0;
}
