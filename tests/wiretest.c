/* Test helpers shared by the codec's unit tests and its fuzz target: comparing decoded method
 * fields by their generated descriptions, so a round trip can be checked field by field. */
#include "config.h"

#include "wiretest.h"

#include <string.h>

bool
wiretest_str_same(struct wire_str a, struct wire_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

bool
wiretest_field_same(const struct wire_field_info *fi, const void *a, const void *b)
{
    const char *pa = (const char *)a + fi->offset, *pb = (const char *)b + fi->offset;

    switch (fi->type) {
    case WIRE_TYPE_BIT:
        return *(const bool *)pa == *(const bool *)pb;
    case WIRE_TYPE_OCTET:
        return *(const uint8_t *)pa == *(const uint8_t *)pb;
    case WIRE_TYPE_SHORT:
        return *(const uint16_t *)pa == *(const uint16_t *)pb;
    case WIRE_TYPE_LONG:
        return *(const uint32_t *)pa == *(const uint32_t *)pb;
    case WIRE_TYPE_LONGLONG:
    case WIRE_TYPE_TIMESTAMP:
        return *(const uint64_t *)pa == *(const uint64_t *)pb;
    case WIRE_TYPE_SHORTSTR:
    case WIRE_TYPE_LONGSTR:
        return wiretest_str_same(*(const struct wire_str *)pa, *(const struct wire_str *)pb);
    case WIRE_TYPE_TABLE: {
        const struct wire_table *ta = (const void *)pa, *tb = (const void *)pb;
        return ta->len == tb->len && (ta->len == 0 || memcmp(ta->ptr, tb->ptr, ta->len) == 0);
    }
    }
    return false;
}
