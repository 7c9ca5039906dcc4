/* Test helper: hex strings with quoted ASCII into bytes, for tables of wire-level cases. */
#include "config.h"

#include "unhex.h"

#include <stdio.h>

#include <check.h>

/* Parses "0a 0B 'text'" (hex pairs, spaces ignored, ASCII between single quotes) into out. */
size_t
test_unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;

    while (*s != '\0') {
        if (*s == ' ') {
            s++;
        } else if (*s == '\'') {
            for (s++; *s != '\''; s++) {
                ck_assert_int_ne(*s, '\0');
                ck_assert_uint_lt(n, cap);
                out[n++] = (uint8_t)*s;
            }
            s++;
        } else {
            unsigned v;
            ck_assert_int_eq(sscanf(s, "%2x", &v), 1);
            ck_assert_uint_lt(n, cap);
            out[n++] = (uint8_t)v;
            s += 2;
        }
    }
    return n;
}
