/*
 * A libFuzzer target for everything a locker does with bytes from outside: the frame decoder
 * (fed byte by byte, with gaps), envelope parsing and opening, every body reader (firmware
 * updates and their Ed25519 check too), the guard's
 * verdicts and the board's queue, and writing the answers. Any crash, sanitizer report or
 * out-of-bounds access is a bug. Run it with ./run.sh (clang, outside the test command); the
 * test command replays the corpus in corpus/ through replay.c under the sanitizers.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "locker_proto.h"
#include "locker_update.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The vectors' tag key, so that inputs grown from the vectors' frames verify. */
static const uint8_t KEY[LP_KEY_LEN] = {
    0x29, 0x92, 0x2c, 0x88, 0x42, 0x21, 0x40, 0xdc, 0xb5, 0xf0, 0xc3, 0x91, 0x93, 0x0c, 0x43, 0x0b,
    0x65, 0x60, 0xb7, 0x3a, 0x60, 0x9a, 0x77, 0x9e, 0xbd, 0x26, 0xc3, 0xa5, 0x78, 0x16, 0xa3, 0xd1};

static lp_guard guard;
static lp_board_queue queue;
static uint32_t up_counter;

static void bodies(const uint8_t *body, size_t len) {
    lp_unlock u;
    lp_configure c;
    uint32_t v;
    uint64_t id;
    uint8_t out[LP_MAX_BINARY_BODY];
    size_t n;
    (void)lp_read_unlock(body, len, &u);
    (void)lp_read_configure(body, len, &c);
    (void)lp_read_query_state(body, len, &v);
    (void)lp_read_poll(body, len, &v);
    if (lp_read_command_id(body, len, &id)) {
        (void)lp_write_ack(id, LP_MALFORMED, out, sizeof out, &n);
    }
    {
        lp_update_offer offer;
        lp_chunk chunk;
        uint8_t keys[1][32] = {{0}};
        if (lp_read_update_offer(body, len, &offer) == LP_OK) {
            (void)lp_chunk_len(&offer, lp_chunk_count(&offer) - 1u);
            (void)lp_update_signature_ok(&offer, (const uint8_t(*)[32])keys, 1);
            (void)lp_write_update_report(offer.update_id, offer.version, LP_UPDATE_REFUSED,
                                         LP_UPDATE_BAD_SIGNATURE, out, sizeof out, &n);
        }
        if (lp_read_chunk(body, len, &chunk) == LP_OK) {
            (void)lp_crc32(0, chunk.data, chunk.len);
            (void)lp_write_chunk_request(chunk.update_id, chunk.index + 1u, out, sizeof out, &n);
        }
        (void)lp_read_install(body, len, &v);
        /* Any 96 bytes as a key and a signature over the rest. */
        if (len >= 96u) {
            (void)lp_ed25519_verify(body, body + 96, len - 96u, body + 32);
        }
    }
    if (len <= LP_MAX_QUEUED_BODY) {
        (void)lp_queue_push(&queue, len % 2 ? LP_ALARM : LP_DOOR_EVENT, body, (uint8_t)len);
    }
}

static void envelope(const uint8_t *bytes, size_t len) {
    lp_envelope env;
    uint8_t tag[LP_TAG_LEN], sealed[LP_MAX_ENVELOPE];
    size_t n;
    if (lp_envelope_parse(bytes, len, &env, tag) == LP_OK) {
        bodies(env.body, env.body_len);
    }
    if (lp_envelope_open(bytes, len, KEY, &env) != LP_OK) {
        return;
    }
    if (env.type == LP_UNLOCK || env.type == LP_CONFIGURE) {
        uint64_t id = 0;
        lp_verdict v;
        (void)lp_read_command_id(env.body, env.body_len, &id);
        v = lp_guard_check_command(&guard, &env, id);
        if (v.kind == LP_EXECUTE) {
            lp_guard_record(&guard, id, env.counter, LP_EXECUTED);
        }
    } else {
        lp_verdict v = lp_guard_check_request(&guard, &env);
        uint32_t ack = 0;
        if (v.kind == LP_EXECUTE && env.type == LP_POLL &&
            lp_read_poll(env.body, env.body_len, &ack) == LP_OK) {
            const lp_queued *q = NULL;
            uint32_t counter = 0;
            if (lp_queue_answer_poll(&queue, ack, up_counter, up_counter + 1u, &q, &counter) ==
                LP_SEND_QUEUED) {
                up_counter = counter;
            }
        } else if (v.kind == LP_EXECUTE && env.type == LP_QUERY_STATE) {
            lp_outcome recent[LP_RECENT];
            uint8_t doors[4] = {1, 2, 5, 0x11}, out[LP_MAX_BINARY_BODY];
            uint8_t count = lp_guard_recent(&guard, recent);
            (void)lp_write_state_report(env.counter, doors, 4, recent, count, NULL, 0, out,
                                        sizeof out, &n);
        }
    }
    /* Answer it: seal an envelope of the same header and body, and open it again. */
    env.direction = LP_UP;
    if (lp_envelope_seal(&env, KEY, sealed, sizeof sealed, &n) == LP_OK &&
        lp_envelope_open(sealed, n, KEY, &env) != LP_OK) {
        __builtin_trap(); /* what was sealed must open */
    }
}

/* The JSON side: the input as an MQTT payload, as every downlink's JSON body, and as every
 * uplink's binary body turned into JSON. */
static void json(const uint8_t *data, size_t size) {
    static char body[LP_MAX_JSON_BODY], out[LP_MAX_JSON_PAYLOAD];
    static const uint8_t down[] = {LP_UNLOCK, LP_QUERY_STATE, LP_CONFIGURE, LP_PING, LP_POLL,
                                   LP_UPDATE_OFFER, LP_CHUNK, LP_INSTALL};
    static const uint8_t up[] = {LP_HELLO, LP_HEARTBEAT, LP_ACK, LP_DOOR_EVENT, LP_ALARM,
                                 LP_STATE_REPORT, LP_PONG, LP_CHUNK_REQUEST, LP_UPDATE_REPORT};
    uint8_t bin[LP_MAX_BINARY_BODY];
    lp_envelope env;
    size_t i, n;
    if (lp_json_open((const char *)data, size, KEY, &env, body, sizeof body) == LP_OK &&
        (lp_json_seal(&env, KEY, out, sizeof out, &n) != LP_OK ||
         lp_json_open(out, n, KEY, &env, body, sizeof body) != LP_OK)) {
        __builtin_trap(); /* what opened must seal and open again */
    }
    for (i = 0; i < sizeof down; i++) {
        if (lp_json_to_binary(down[i], (const char *)data, size, bin, sizeof bin, &n) == LP_OK) {
            bodies(bin, n);
        }
    }
    for (i = 0; i < sizeof up; i++) {
        (void)lp_json_from_binary(up[i], data, size, out, sizeof out, &n);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static lp_decoder dec;
    lp_frame frame;
    size_t i;
    lp_guard_init(&guard, (uint8_t)(size % 2 + 1), 0x5eed0001u);
    lp_guard_renew(&guard, 0x5eed0001u);
    lp_queue_init(&queue);
    up_counter = 0;
    lp_decoder_init(&dec);
    envelope(data, size);
    bodies(data, size);
    json(data, size);
    for (i = 0; i < size; i++) {
        if (lp_decoder_feed(&dec, data[i], &frame)) {
            envelope(frame.envelope, frame.len);
        }
        /* A gap where the input says so: a byte 0xFE followed by 0xFD. */
        if (i + 1 < size && data[i] == 0xFE && data[i + 1] == 0xFD) {
            while (lp_decoder_gap(&dec, &frame)) {
                envelope(frame.envelope, frame.len);
            }
        }
    }
    while (lp_decoder_gap(&dec, &frame)) {
        envelope(frame.envelope, frame.len);
    }
    return 0;
}
