/* Checks of the update messages' fields, shared by vectors_test.c (see update_fields.c). */
#ifndef UPDATE_FIELDS_H
#define UPDATE_FIELDS_H

#include <stddef.h>
#include <stdint.h>

/* Checks the body of vector message `name` against its fields a[0..5]: the number of failed
 * checks (each printed), or -1 when `name` is not an update message. Counts into *checks. */
int update_fields(const char *name, char *const a[6], const uint8_t *body, size_t len,
                  unsigned *checks);

#endif
