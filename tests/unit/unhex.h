/* Test helper shared by the codec's unit tests. */
#ifndef WARREN_TEST_UNHEX_H
#define WARREN_TEST_UNHEX_H

#include <stddef.h>
#include <stdint.h>

/* Parses "0a 0B 'text'" (hex pairs, spaces ignored, ASCII between single quotes) into out;
 * fails the running Check test on malformed input or overflow. Returns the byte count. */
size_t test_unhex(const char *s, uint8_t *out, size_t cap);

#endif
