/* Unit tests' look at one entry of a replicated queue's image (durable_image_values). */
#ifndef WARREN_TESTS_IMAGE_VALUE_H
#define WARREN_TESTS_IMAGE_VALUE_H

#include <stddef.h>
#include <stdint.h>

struct store;

/* The value of entry seq of group in st (malloc'd into *val, the caller's) as
 * durable_image_values gives it: 1, or 0 when there is none here (or its message is
 * missing). A read error fails the test. */
int image_value(struct store *st, uint64_t group, uint64_t seq, char **val, size_t *len);

#endif
