/* The JSON reader and writer that lp_json.c and lp_json_body.c share (not part of the public
 * header). */
#ifndef LP_JSON_TEXT_H
#define LP_JSON_TEXT_H

#include "locker_proto.h"

/* A place in a JSON text. */
typedef struct {
    const char *p, *end;
} cursor;

/* Output with a fixed capacity; `full` once something did not fit. */
typedef struct {
    char *p;
    size_t cap, n;
    int full;
} sink;

/* The string at the cursor, unescaped into out (cap bytes; out NULL: only checked). 1 when well
 * formed and it fitted. */
int lpj_string(cursor *c, char *out, size_t cap, size_t *n);
/* A non-negative integer (no fraction, no exponent) up to 2^53 - 1. */
int lpj_integer(cursor *c, uint64_t *v);
/* Member `key` of the object `text`: 1 found (*at at its value), 0 absent, -1 not a well-formed
 * object (or the key twice). */
int lpj_member(const char *text, size_t len, const char *key, cursor *at);
/* An integer member in [0, max]: 1 read, 0 absent, -1 malformed or out of range. */
int lpj_int_member(const char *text, size_t len, const char *key, uint64_t max, uint64_t *v);

void lpj_put(sink *s, const char *text, size_t len);
void lpj_puts(sink *s, const char *text);
void lpj_putu(sink *s, uint64_t v);
/* A JSON string of these bytes, escaping quote, backslash and control characters. */
void lpj_quoted(sink *s, const char *text, size_t len);
/* LP_ERR_SPACE if something did not fit, else the length written. */
lp_status lpj_done(sink *s, size_t *out_len);

/* The update messages (lp_update_json.c): a downlink's JSON body into its binary body
 * (LP_ERR_TYPE for another type); an uplink's binary body written as JSON: 1 written, 0 not a
 * valid body, -1 another type. */
lp_status lpj_update_to_binary(uint8_t type, const char *json, size_t len, uint8_t *out,
                               size_t out_cap, size_t *out_len);
int lpj_update_from_binary(sink *s, uint8_t type, const uint8_t *b, size_t len);

#endif
