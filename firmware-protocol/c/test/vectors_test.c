/* Checks the C library against the protocol's test vectors (vectors/vectors.json), which the
 * Rust test c_library.rs hands over on standard input, one per line:
 *
 *   secret <hex>
 *   key <hex>
 *   vector <name> <direction> <device_id> <session> <counter> <type> <address> <body hex>
 *          <envelope hex> <tag hex> <frame hex> <JSON body hex> <JSON tag hex>
 *
 * ("-" for an empty body), and against negative cases built from each vector (a bad tag, a wrong key, a cut envelope,
 * noise before a frame, a bad CRC, a gap). Prints what failed and exits 1, or a summary. */
#include "locker_proto.h"
#include "test_util.h"
#include "update_fields.h"

static char current_name[64];
/* The last vector's binary body, for its `fields` line. */
static uint8_t last_body[LP_MAX_BINARY_BODY];
static size_t last_body_len;

static void known_answers(void) {
    static const uint8_t abc_sha[32] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
        0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    /* RFC 4231 test case 2. */
    static const uint8_t jefe_mac[32] = {
        0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7,
        0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
    static const char what[] = "what do ya want for nothing?";
    uint8_t digest[32];
    lp_sha256 ctx;
    size_t i;
    current = "known answers";
    lp_sha256_init(&ctx);
    lp_sha256_update(&ctx, (const uint8_t *)"abc", 3);
    lp_sha256_final(&ctx, digest);
    CHECK(memcmp(digest, abc_sha, 32) == 0, "SHA-256 of abc");
    /* Split anywhere, the same digest. */
    for (i = 0; i <= sizeof what - 1u; i++) {
        uint8_t split[32];
        lp_hmac_sha256((const uint8_t *)"Jefe", 4, (const uint8_t *)what, i,
                       (const uint8_t *)what + i, sizeof what - 1u - i, split);
        CHECK(memcmp(split, jefe_mac, 32) == 0, "HMAC-SHA256, RFC 4231 case 2");
    }
    CHECK(lp_crc16_modbus((const uint8_t *)"123456789", 9) == 0x4B37u, "CRC check value");
}

/* Feeds bytes; returns how many frames came out, the last in *last. */
static unsigned feed(lp_decoder *dec, const uint8_t *bytes, size_t n, lp_frame *last,
                     uint8_t *copy, size_t *copy_len) {
    unsigned frames = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        lp_frame frame;
        if (lp_decoder_feed(dec, bytes[i], &frame)) {
            frames++;
            *last = frame;
            memcpy(copy, frame.envelope, frame.len);
            *copy_len = frame.len;
        }
    }
    return frames;
}

static void vector(char *line, const uint8_t key[LP_KEY_LEN]) {
    char *name = strtok(line, " \n"), *dir = strtok(NULL, " \n"), *id = strtok(NULL, " \n");
    char *session = strtok(NULL, " \n"), *counter = strtok(NULL, " \n");
    char *type = strtok(NULL, " \n"), *address = strtok(NULL, " \n");
    char *body_hex = strtok(NULL, " \n"), *env_hex = strtok(NULL, " \n");
    char *tag_hex = strtok(NULL, " \n"), *frame_hex = strtok(NULL, " \n");
    char *json_hex = strtok(NULL, " \n"), *json_tag_hex = strtok(NULL, " \n");
    static uint8_t body[LP_MAX_BINARY_BODY], envelope[LP_MAX_ENVELOPE], frame[LP_MAX_FRAME];
    static uint8_t json[LP_MAX_JSON_BODY], out[LP_MAX_FRAME], copy[LP_MAX_FRAME];
    static lp_decoder dec;
    uint8_t tag[LP_TAG_LEN], json_tag[LP_TAG_LEN], got_tag[LP_TAG_LEN], wrong[LP_KEY_LEN];
    size_t body_len, env_len, frame_len, json_len, out_len = 0, copy_len = 0;
    lp_envelope env, opened;
    lp_frame found;
    unsigned frames;
    uint8_t addr;
    if (json_tag_hex == NULL) {
        fprintf(stderr, "a vector line with missing fields\n");
        exit(2);
    }
    strncpy(current_name, name, sizeof current_name - 1u);
    current = current_name;
    body_len = unhex(body_hex, body, sizeof body);
    memcpy(last_body, body, body_len);
    last_body_len = body_len;
    env_len = unhex(env_hex, envelope, sizeof envelope);
    unhex(tag_hex, tag, sizeof tag);
    frame_len = unhex(frame_hex, frame, sizeof frame);
    json_len = unhex(json_hex, json, sizeof json);
    unhex(json_tag_hex, json_tag, sizeof json_tag);
    addr = (uint8_t)atoi(address);

    /* Sealing. */
    CHECK(lp_envelope_init(&env, (uint8_t)atoi(dir), LP_BINARY, id, (uint32_t)strtoul(session, NULL, 10),
                           (uint32_t)strtoul(counter, NULL, 10), (uint8_t)strtoul(type, NULL, 16)) == LP_OK,
          "envelope fields accepted");
    env.body = body;
    env.body_len = (uint16_t)body_len;
    CHECK(lp_envelope_tag(&env, key, got_tag) == LP_OK && memcmp(got_tag, tag, LP_TAG_LEN) == 0,
          "binary tag");
    CHECK(lp_envelope_seal(&env, key, out, sizeof out, &out_len) == LP_OK && out_len == env_len &&
              memcmp(out, envelope, env_len) == 0,
          "sealed envelope");
    CHECK(lp_envelope_seal(&env, key, out, env_len - 1u, &out_len) == LP_ERR_SPACE,
          "a buffer one byte short is refused");
    CHECK(lp_frame_encode(addr, envelope, env_len, out, sizeof out, &out_len) == LP_OK &&
              out_len == frame_len && memcmp(out, frame, frame_len) == 0,
          "frame");
    CHECK(lp_frame_encode(0, envelope, env_len, out, sizeof out, &out_len) == LP_ERR_ADDRESS,
          "address 0 refused");
    CHECK(lp_frame_encode(248, envelope, env_len, out, sizeof out, &out_len) == LP_ERR_ADDRESS,
          "address 248 refused");

    /* The JSON form: the same header with encoding 2, over the body text's bytes. */
    env.encoding = LP_JSON;
    env.body = json;
    env.body_len = (uint16_t)json_len;
    CHECK(lp_envelope_tag(&env, key, got_tag) == LP_OK && memcmp(got_tag, json_tag, LP_TAG_LEN) == 0,
          "JSON tag");
    CHECK(lp_envelope_seal(&env, key, out, sizeof out, &out_len) == LP_ERR_ENCODING,
          "a JSON envelope is not sealed as binary");

    /* Opening. */
    CHECK(lp_envelope_open(envelope, env_len, key, &opened) == LP_OK, "envelope opens");
    CHECK(opened.session == strtoul(session, NULL, 10) && opened.counter == strtoul(counter, NULL, 10) &&
              opened.type == strtoul(type, NULL, 16) && strcmp(opened.device_id, id) == 0 &&
              opened.body_len == body_len && memcmp(opened.body, body, body_len) == 0,
          "opened fields");
    memcpy(wrong, key, LP_KEY_LEN);
    wrong[0] ^= 1u;
    CHECK(lp_envelope_open(envelope, env_len, wrong, &opened) == LP_ERR_BAD_TAG, "another key: bad tag");
    envelope[env_len - 1u] ^= 0x80u;
    CHECK(lp_envelope_open(envelope, env_len, key, &opened) == LP_ERR_BAD_TAG, "a changed tag: bad tag");
    envelope[env_len - 1u] ^= 0x80u;
    envelope[11u + envelope[3]] ^= 0x01u; /* the counter's last byte */
    CHECK(lp_envelope_open(envelope, env_len, key, &opened) == LP_ERR_BAD_TAG, "another counter: bad tag");
    envelope[11u + envelope[3]] ^= 0x01u;
    if (body_len > 0u) {
        envelope[env_len - LP_TAG_LEN - 1u] ^= 0x01u;
        CHECK(lp_envelope_open(envelope, env_len, key, &opened) == LP_ERR_BAD_TAG, "a changed body: bad tag");
        envelope[env_len - LP_TAG_LEN - 1u] ^= 0x01u;
    }
    CHECK(lp_envelope_open(envelope, env_len - 1u, key, &opened) == LP_ERR_LENGTH, "a cut envelope");
    envelope[0] = 2;
    CHECK(lp_envelope_open(envelope, env_len, key, &opened) == LP_ERR_VERSION, "envelope version 2");
    envelope[0] = 1;
    envelope[2] = LP_JSON;
    CHECK(lp_envelope_open(envelope, env_len, key, &opened) == LP_ERR_ENCODING, "JSON encoding in a frame");
    envelope[2] = LP_BINARY;

    /* Decoding: noise first (a false start, a header of a bad length, a whole frame with a bad
     * CRC), then the frame, one byte at a time. */
    lp_decoder_init(&dec);
    {
        static const uint8_t noise[] = {0x00, 0xA5, 0x13, 0xA5, 0x5A, 0xFF, 0xFF, 0x07, 0x5A, 0xA5};
        CHECK(feed(&dec, noise, sizeof noise, &found, copy, &copy_len) == 0, "no frame in noise");
    }
    frame[frame_len - 1u] ^= 0xFFu;
    CHECK(feed(&dec, frame, frame_len, &found, copy, &copy_len) == 0, "a bad CRC is no frame");
    frame[frame_len - 1u] ^= 0xFFu;
    frames = feed(&dec, frame, frame_len, &found, copy, &copy_len);
    CHECK(frames == 1 && found.address == addr && copy_len == env_len &&
              memcmp(copy, envelope, env_len) == 0,
          "the frame after noise");
    CHECK(dec.bad_crc >= 1u && dec.skipped > 0u, "the decoder counts what it dropped");
    /* Two frames back to back, then half a frame, a gap, and the frame again. */
    frames = feed(&dec, frame, frame_len, &found, copy, &copy_len);
    frames += feed(&dec, frame, frame_len, &found, copy, &copy_len);
    CHECK(frames == 2, "frames back to back");
    feed(&dec, frame, frame_len / 2u, &found, copy, &copy_len);
    CHECK(lp_decoder_gap(&dec, &found) == 0, "half a frame and a gap: nothing");
    CHECK(feed(&dec, frame, frame_len, &found, copy, &copy_len) == 1 && copy_len == env_len,
          "a frame after a gap drops the half before it");
    /* A header whose length was corrupted (1,024: the decoder waits for more), then a whole
     * frame: the gap gives up on the first and finds the second. */
    {
        static const uint8_t corrupt[] = {0xA5, 0x5A, 0x04, 0x00, 0x07};
        CHECK(feed(&dec, corrupt, sizeof corrupt, &found, copy, &copy_len) == 0 &&
                  feed(&dec, frame, frame_len, &found, copy, &copy_len) == 0,
              "a frame behind a corrupted length waits");
        CHECK(lp_decoder_gap(&dec, &found) == 1 && found.len == env_len &&
                  memcmp(found.envelope, envelope, env_len) == 0,
              "the gap finds the frame behind a corrupted length");
    }
}

static uint64_t num(const char *s) { return s == NULL ? 0u : strtoull(s, NULL, 10); }

/* "cid:code,cid:code" or "-" into pairs; returns the count. */
static uint8_t pairs(const char *text, uint64_t ids[], uint8_t codes[]) {
    uint8_t n = 0;
    const char *p = text;
    if (strcmp(text, "-") == 0) {
        return 0;
    }
    while (*p != '\0' && n < LP_MAX_RECENT) {
        char *end;
        ids[n] = strtoull(p, &end, 10);
        codes[n] = (uint8_t)strtoul(end + 1, &end, 10);
        n++;
        p = *end == ',' ? end + 1 : end;
    }
    return n;
}

/* Checks a vector's body against its message's fields: a downlink read, an uplink written. */
static void fields(char *line) {
    static uint8_t out[LP_MAX_BINARY_BODY], doors[LP_MAX_DOORS];
    char *kind = strtok(line, " \n");
    char *a = strtok(NULL, " \n"), *b = strtok(NULL, " \n"), *c = strtok(NULL, " \n");
    char *d = strtok(NULL, " \n"), *e = strtok(NULL, " \n"), *f = strtok(NULL, " \n");
    char *g = strtok(NULL, " \n");
    const uint8_t *body = last_body;
    size_t len = last_body_len, out_len = 0;
    lp_status st;
    if (kind == NULL) {
        fprintf(stderr, "an empty fields line\n");
        exit(2);
    }
    if (strcmp(kind, "unlock") == 0) {
        lp_unlock m;
        uint64_t id = 0;
        CHECK(lp_read_unlock(body, len, &m) == LP_OK && m.command_id == num(a) &&
                  m.door == num(b) && m.expires_at_ms == num(c),
              "unlock read");
        CHECK(lp_read_command_id(body, len, &id) == 1 && id == num(a), "command id read");
        CHECK(lp_read_unlock(body, len - 1u, &m) == LP_ERR_LENGTH, "a short unlock");
        CHECK(lp_read_command_id(body, 7, &id) == 0, "no command id in 7 bytes");
        memcpy(out, body, len);
        out[8] = 0;
        out[9] = 0;
        CHECK(lp_read_unlock(out, len, &m) == LP_ERR_RANGE, "door 0 is out of range");
        memcpy(out, body, len);
        out[len] = 0xEE; /* a newer gateway's extra byte */
        CHECK(lp_read_unlock(out, len + 1u, &m) == LP_OK, "bytes after the fields are ignored");
    } else if (strcmp(kind, "configure") == 0) {
        lp_configure m;
        CHECK(lp_read_configure(body, len, &m) == LP_OK && m.command_id == num(a) &&
                  m.heartbeat_secs == num(b) && m.open_window_ms == num(c) && m.pulse_ms == num(d) &&
                  m.ajar_alarm_secs == num(e) && m.expires_at_ms == num(f),
              "configure read");
        memcpy(out, body, len);
        out[8] = 0;
        out[9] = 4; /* heartbeat every 4 s */
        CHECK(lp_read_configure(out, len, &m) == LP_ERR_RANGE, "heartbeat 4 s is out of range");
        CHECK(lp_read_configure(body, 23, &m) == LP_ERR_LENGTH, "a short configure");
    } else if (strcmp(kind, "query_state") == 0) {
        uint32_t q = 0;
        CHECK(lp_read_query_state(body, len, &q) == LP_OK && q == num(a), "query_state read");
        CHECK(lp_read_query_state(body, 3, &q) == LP_ERR_LENGTH, "a short query_state");
    } else if (strcmp(kind, "poll") == 0) {
        uint32_t n = 0;
        CHECK(lp_read_poll(body, len, &n) == LP_OK && n == num(a), "poll read");
        CHECK(lp_read_poll(body, 3, &n) == LP_ERR_LENGTH, "a short poll");
    } else if (strcmp(kind, "ping") == 0 || strcmp(kind, "pong") == 0) {
        CHECK(len == 0u, "an empty body");
    } else if (strcmp(kind, "hello") == 0) {
        lp_hello m;
        m.protocol_version = (uint8_t)num(a);
        m.firmware = b;
        m.serial_no = c;
        m.door_count = (uint16_t)num(d);
        m.session = (uint32_t)num(e);
        m.uptime_ms = num(f);
        m.max_chunk = (uint16_t)num(g);
        st = lp_write_hello(&m, out, sizeof out, &out_len);
        CHECK(st == LP_OK && out_len == len && memcmp(out, body, len) == 0, "hello written");
        CHECK(lp_write_hello(&m, out, len - 1u, &out_len) == LP_ERR_SPACE, "hello: no room");
        m.session = 0;
        CHECK(lp_write_hello(&m, out, sizeof out, &out_len) == LP_ERR_RANGE, "session 0 refused");
        m.session = 1;
        m.firmware = "tab\there";
        CHECK(lp_write_hello(&m, out, sizeof out, &out_len) == LP_ERR_RANGE, "firmware not printable");
        m.firmware = b;
        m.max_chunk = 8;
        CHECK(lp_write_hello(&m, out, sizeof out, &out_len) == LP_ERR_RANGE, "max_chunk 8 refused");
    } else if (strcmp(kind, "heartbeat") == 0) {
        size_t n = unhex(c, doors, sizeof doors);
        st = lp_write_heartbeat(num(a), atoi(b), doors, (uint16_t)n, out, sizeof out, &out_len);
        CHECK(st == LP_OK && out_len == len && memcmp(out, body, len) == 0, "heartbeat written");
        doors[0] = 3; /* sensor 3 is invalid */
        CHECK(lp_write_heartbeat(num(a), atoi(b), doors, (uint16_t)n, out, sizeof out, &out_len) ==
                  LP_ERR_RANGE,
              "an invalid door byte refused");
    } else if (strcmp(kind, "ack") == 0) {
        st = lp_write_ack(num(a), (uint8_t)num(b), out, sizeof out, &out_len);
        CHECK(st == LP_OK && out_len == len && memcmp(out, body, len) == 0, "ack written");
        CHECK(lp_write_ack(0, 0, out, sizeof out, &out_len) == LP_ERR_RANGE, "command id 0 refused");
    } else if (strcmp(kind, "door_event") == 0) {
        st = lp_write_door_event((uint16_t)num(a), (uint8_t)num(b), num(c), num(d), out, sizeof out,
                                 &out_len);
        CHECK(st == LP_OK && out_len == len && memcmp(out, body, len) == 0, "door_event written");
    } else if (strcmp(kind, "alarm") == 0) {
        st = lp_write_alarm((uint8_t)num(a), (uint16_t)num(b), num(c), out, sizeof out, &out_len);
        CHECK(st == LP_OK && out_len == len && memcmp(out, body, len) == 0, "alarm written");
        CHECK(lp_write_alarm(6, 0, 0, out, sizeof out, &out_len) == LP_ERR_RANGE, "alarm kind 6 refused");
    } else if (strcmp(kind, "state_report") == 0) {
        uint64_t ids[LP_MAX_RECENT], rids[LP_MAX_RECENT];
        uint8_t codes[LP_MAX_RECENT], rcodes[LP_MAX_RECENT];
        lp_outcome recent[LP_MAX_RECENT];
        lp_door_result results[LP_MAX_RECENT];
        size_t n = unhex(b, doors, sizeof doors);
        uint8_t r = pairs(c, ids, codes), k = pairs(d, rids, rcodes), i;
        for (i = 0; i < r; i++) {
            recent[i].command_id = ids[i];
            recent[i].result = codes[i];
        }
        for (i = 0; i < k; i++) {
            results[i].command_id = rids[i];
            results[i].door = rcodes[i];
        }
        st = lp_write_state_report((uint32_t)num(a), doors, (uint16_t)n, recent, r, results, k, out,
                                   sizeof out, &out_len);
        CHECK(st == LP_OK && out_len == len && memcmp(out, body, len) == 0, "state_report written");
    } else {
        char *args[6];
        int bad;
        args[0] = a; args[1] = b; args[2] = c; args[3] = d; args[4] = e; args[5] = f;
        bad = update_fields(kind, args, body, len, &checks);
        if (bad < 0) {
            fprintf(stderr, "unknown message %s in a fields line\n", kind);
            exit(2);
        }
        failures += (unsigned)bad;
    }
}

/* 512 doors with full lists: the newest door results that fit the 1,024-byte body. */
static void a_full_state_report(void) {
    static uint8_t doors[LP_MAX_DOORS], out[LP_MAX_BINARY_BODY];
    lp_outcome recent[LP_MAX_RECENT];
    lp_door_result results[LP_MAX_RECENT];
    size_t len = 0;
    unsigned i;
    current = "512 doors, full lists";
    memset(doors, LP_DOOR_BYTE(LP_SENSOR_CLOSED, 1, LP_ITEM_NONE), sizeof doors);
    for (i = 0; i < LP_MAX_RECENT; i++) {
        recent[i].command_id = 100u + i;
        recent[i].result = LP_EXECUTED;
        results[i].command_id = 100u + i;
        results[i].door = LP_DOOR_OPENED;
    }
    CHECK(lp_write_state_report(9, doors, LP_MAX_DOORS, recent, LP_MAX_RECENT, results,
                                LP_MAX_RECENT, out, sizeof out, &len) == LP_OK,
          "written");
    /* 7 + 512 + 288 = 807 bytes, then room for 24 results (1 + 216 bytes): the newest 24. */
    CHECK(len == 807u + 1u + 24u * 9u && out[807] == 24u, "24 door results fit");
    CHECK(out[808 + 7] == (uint8_t)(100u + 8u), "the oldest left out");
}

int main(void) {
    static char line[16 * 1024];
    uint8_t secret[LP_KEY_LEN], key[LP_KEY_LEN], derived[LP_KEY_LEN];
    unsigned vectors = 0, bodies = 0;
    int have_secret = 0, have_key = 0;
    known_answers();
    a_full_state_report();
    while (fgets(line, sizeof line, stdin) != NULL) {
        if (strncmp(line, "secret ", 7) == 0) {
            line[strcspn(line, "\n")] = '\0';
            have_secret = unhex(line + 7, secret, sizeof secret) == LP_KEY_LEN;
        } else if (strncmp(line, "key ", 4) == 0) {
            line[strcspn(line, "\n")] = '\0';
            have_key = unhex(line + 4, key, sizeof key) == LP_KEY_LEN;
        } else if (strncmp(line, "fields ", 7) == 0) {
            fields(line + 7);
            bodies++;
        } else if (strncmp(line, "vector ", 7) == 0) {
            if (!have_key) {
                fprintf(stderr, "a vector before the key\n");
                return 2;
            }
            vector(line + 7, key);
            vectors++;
        }
    }
    current = "tag key";
    CHECK(have_secret && have_key, "secret and key given");
    lp_derive_tag_key(secret, derived);
    CHECK(memcmp(derived, key, LP_KEY_LEN) == 0, "tag key derived from the secret");
    if (vectors == 0u) {
        fprintf(stderr, "no vectors on standard input\n");
        return 2;
    }
    if (failures > 0u) {
        fprintf(stderr, "%u of %u checks failed\n", failures, checks);
        return 1;
    }
    printf("locker_proto: %u vectors, %u bodies, %u checks passed\n", vectors, bodies, checks);
    return 0;
}
