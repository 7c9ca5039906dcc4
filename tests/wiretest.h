/* Comparisons of decoded AMQP values, for the codec's unit tests and fuzz target. */
#ifndef WARREN_TEST_WIRETEST_H
#define WARREN_TEST_WIRETEST_H

#include <stdbool.h>

#include "warren/wire.h"
#include "warren/wire_gen.h"

/* Same length and bytes. */
bool wiretest_str_same(struct wire_str a, struct wire_str b);
/* The field fi of two method structs (or property sets) a and b holds the same value. */
bool wiretest_field_same(const struct wire_field_info *fi, const void *a, const void *b);

#endif
