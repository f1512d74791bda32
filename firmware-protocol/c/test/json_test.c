/* Checks the C library's JSON (MQTT) side against the test vectors, which the Rust test
 * c_json.rs hands over on standard input:
 *
 *   key <hex>
 *   json <name> <down|up> <type code> <session> <counter> <binary body hex or -> <JSON body hex>
 *        <MQTT payload hex>
 *
 * For each: the payload opens (header and body as in the vector), sealing the same envelope
 * gives the payload byte for byte, an uplink's binary body becomes its JSON body and a downlink's
 * JSON body its binary body; then negative cases built from it (a changed body, a cut payload, an
 * uppercase tag, envelope version 2, fields in another order, unknown fields, white space), and
 * hand-made hostile JSON. Prints what failed and exits 1, or a summary. */
#include "locker_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned checks, failures;
static char current[64] = "-";
static uint8_t key[LP_KEY_LEN];

#define CHECK(cond, what)                                                                    \
    do {                                                                                     \
        checks++;                                                                            \
        if (!(cond)) {                                                                       \
            failures++;                                                                      \
            fprintf(stderr, "FAIL %s: %s (line %d)\n", current, what, __LINE__);             \
        }                                                                                    \
    } while (0)

static size_t unhex(const char *hex, uint8_t *out, size_t cap) {
    size_t n = strcmp(hex, "-") == 0 ? 0u : strlen(hex), i;
    if (n % 2u != 0u || n / 2u > cap) {
        fprintf(stderr, "bad hex in the input (%s)\n", current);
        exit(2);
    }
    for (i = 0; i < n / 2u; i++) {
        unsigned byte;
        if (sscanf(hex + 2u * i, "%2x", &byte) != 1) exit(2);
        out[i] = (uint8_t)byte;
    }
    return n / 2u;
}

static lp_status open_text(const char *text, size_t len, lp_envelope *env) {
    static char body[LP_MAX_JSON_BODY];
    return lp_json_open(text, len, key, env, body, sizeof body);
}

static void vector(char *line) {
    static char hex_bin[4096], hex_json[8192], hex_payload[16384];
    static uint8_t bin[2048], json[4096], payload[8192], out[8192];
    static char edited[8300];
    char dir[8];
    unsigned type, session, counter;
    size_t bin_len, json_len, payload_len, n, len;
    lp_envelope env;
    lp_status st;
    if (sscanf(line, "%63s %7s %u %u %u %4095s %8191s %16383s", current, dir, &type, &session,
               &counter, hex_bin, hex_json, hex_payload) != 8) {
        fprintf(stderr, "bad json line\n");
        exit(2);
    }
    bin_len = unhex(hex_bin, bin, sizeof bin);
    json_len = unhex(hex_json, json, sizeof json);
    payload_len = unhex(hex_payload, payload, sizeof payload);
    st = open_text((const char *)payload, payload_len, &env);
    CHECK(st == LP_OK, "the payload opens");
    if (st != LP_OK) return;
    CHECK(env.type == type && env.session == session && env.counter == counter &&
              env.direction == (strcmp(dir, "down") == 0 ? LP_DOWN : LP_UP) &&
              strcmp(env.device_id, "lk-0001") == 0,
          "the header as in the vector");
    CHECK(env.body_len == json_len && memcmp(env.body, json, json_len) == 0, "the body");
    env.body = json;
    CHECK(lp_json_seal(&env, key, (char *)out, sizeof out, &n) == LP_OK && n == payload_len &&
              memcmp(out, payload, n) == 0,
          "sealing gives the payload byte for byte");
    CHECK(lp_json_seal(&env, key, (char *)out, payload_len - 1u, &n) == LP_ERR_SPACE,
          "no room: LP_ERR_SPACE");
    if (env.direction == LP_UP) {
        CHECK(lp_json_from_binary((uint8_t)type, bin, bin_len, (char *)out, sizeof out, &n) ==
                      LP_OK && n == json_len && memcmp(out, json, n) == 0,
              "the binary body written as the JSON body");
    } else {
        CHECK(lp_json_to_binary((uint8_t)type, (const char *)json, json_len, out, sizeof out,
                                &n) == LP_OK && n == bin_len && memcmp(out, bin, n) == 0,
              "the JSON body read as the binary body");
    }
    /* A changed body character: the tag no longer verifies. */
    memcpy(edited, payload, payload_len);
    {
        char *body = strstr(edited, "\"body\":\"{"), *digit = body;
        while (digit != NULL && *digit != '\0' && (*digit < '0' || *digit > '9')) digit++;
        if (digit != NULL && *digit != '\0' && digit < strstr(edited, "\"tag\"")) {
            *digit = (char)('0' + (*digit - '0' + 1) % 10);
            CHECK(open_text(edited, payload_len, &env) == LP_ERR_BAD_TAG,
                  "a changed digit in the body: bad tag");
        }
    }
    for (len = 0; len < payload_len; len++) {
        CHECK(open_text((const char *)payload, len, &env) != LP_OK, "a cut payload is refused");
    }
    /* An uppercase tag, and envelope version 2. */
    memcpy(edited, payload, payload_len);
    {
        char *tag = strstr(edited, "\"tag\":\"");
        size_t i;
        int changed = 0;
        for (i = 7; tag != NULL && i < 7 + 32; i++) {
            if (tag[i] >= 'a' && tag[i] <= 'f') { tag[i] = (char)(tag[i] - 32); changed = 1; }
        }
        if (changed) CHECK(open_text(edited, payload_len, &env) == LP_ERR_BAD_TAG, "an uppercase tag");
    }
    memcpy(edited, payload, payload_len);
    edited[11] = '2'; /* {"version":1 */
    CHECK(open_text(edited, payload_len, &env) == LP_ERR_VERSION, "envelope version 2");
    /* The tag field first, unknown fields, white space: the same message. */
    {
        const char *tag = strstr((const char *)payload, ",\"tag\":");
        size_t head = (size_t)(tag - (const char *)payload), k;
        k = (size_t)snprintf(edited, sizeof edited, "{ %.*s , \"x\" : {\"y\":[1,2.5e3,null,true,\"z\"]},\n",
                             (int)(payload_len - head - 2u), tag + 1);
        memcpy(edited + k, payload + 1, head - 1u);
        k += head - 1u;
        edited[k++] = '}';
        CHECK(open_text(edited, k, &env) == LP_OK, "fields in another order, unknown fields, spaces");
    }
}

static void hostile(void) {
    static const char *const bad[] = {
        "{\"command_id\":1.0,\"door\":1}", "{\"command_id\":1e3,\"door\":1}",
        "{\"command_id\":-1,\"door\":1}",  "{\"command_id\":01,\"door\":1}",
        "{\"command_id\":9007199254740992,\"door\":1}", "{\"command_id\":\"1\",\"door\":1}",
        "{\"command_id\":1,\"door\":70000}", "{\"command_id\":1,\"door\":1,\"door\":2}",
        "{\"command_id\":1,\"door\":1,\"expires_at_ms\":0}", "{\"command_id\":1,\"door\":1",
        "{\"command_id\":1,\"door\":1}}", "[1,2]", "", "{\"a\":\"\\ud800\",\"command_id\":1,\"door\":1}",
        "{\"a\":\"\\x\",\"command_id\":1,\"door\":1}", "{\"a\":\"\x01\",\"command_id\":1,\"door\":1}",
        "{\"command_id\":1}", "{\"door\":1}"};
    static char deep[300];
    uint8_t out[64];
    size_t i, n;
    strcpy(current, "hostile JSON");
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lp_status st = lp_json_to_binary(LP_UNLOCK, bad[i], strlen(bad[i]), out, sizeof out, &n);
        CHECK(st == LP_ERR_RANGE || st == LP_ERR_LENGTH, bad[i]);
    }
    for (i = 0; i < 100; i++) deep[i] = '[';
    memcpy(deep + 100, "]", 2);
    {
        static char text[400];
        size_t k = (size_t)snprintf(text, sizeof text, "{\"a\":%s,\"command_id\":1,\"door\":1}", deep);
        CHECK(lp_json_to_binary(LP_UNLOCK, text, k, out, sizeof out, &n) == LP_ERR_RANGE,
              "nesting beyond the limit is refused, not followed");
    }
    {
        const char *good = "{\"a\":\"\\ud83d\\ude00 \\\"q\\\"\",\"door\":7,\"command_id\":42,\"b\":{}}";
        CHECK(lp_json_to_binary(LP_UNLOCK, good, strlen(good), out, sizeof out, &n) == LP_OK &&
                  n == 18u && out[7] == 42u && out[9] == 7u,
              "escapes, surrogate pairs and any order read");
    }
    CHECK(lp_json_to_binary(LP_PING, "{}", 2, out, sizeof out, &n) == LP_OK && n == 0u, "ping");
    CHECK(lp_json_to_binary(LP_HELLO, "{}", 2, out, sizeof out, &n) == LP_ERR_TYPE, "an uplink");
}

int main(void) {
    static char line[40000];
    unsigned vectors = 0;
    while (fgets(line, sizeof line, stdin) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "key ", 4) == 0) {
            unhex(line + 4, key, sizeof key);
        } else if (strncmp(line, "json ", 5) == 0) {
            vector(line + 5);
            vectors++;
        }
    }
    hostile();
    if (vectors == 0u) {
        fprintf(stderr, "no vectors on standard input\n");
        return 2;
    }
    if (failures > 0u) {
        fprintf(stderr, "%u of %u checks failed\n", failures, checks);
        return 1;
    }
    printf("locker_proto json: %u vectors, %u checks passed\n", vectors, checks);
    return 0;
}
