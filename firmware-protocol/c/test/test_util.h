/* What the C test programs share: counting checks (CHECK prints what failed, with the case in
 * `current`), and reading hex from the Rust tests' input ("-" for no bytes; bad hex exits 2). */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned checks, failures;
static const char *current = "-";

#define CHECK(cond, what)                                                                    \
    do {                                                                                     \
        checks++;                                                                            \
        if (!(cond)) {                                                                       \
            failures++;                                                                      \
            fprintf(stderr, "FAIL %s: %s (%s:%d)\n", current, what, __FILE__, __LINE__);      \
        }                                                                                    \
    } while (0)

static size_t unhex(const char *hex, uint8_t *out, size_t cap) {
    size_t n = hex == NULL || strcmp(hex, "-") == 0 ? 0u : strlen(hex), i;
    if (n % 2u != 0u || n / 2u > cap) {
        fprintf(stderr, "bad hex in the input (%s)\n", current);
        exit(2);
    }
    for (i = 0; i < n / 2u; i++) {
        unsigned byte;
        if (sscanf(hex + 2u * i, "%2x", &byte) != 1) {
            fprintf(stderr, "bad hex in the input (%s)\n", current);
            exit(2);
        }
        out[i] = (uint8_t)byte;
    }
    return n / 2u;
}

#endif
