/* Unit tests' look at one entry of a replicated queue's image (image_value.h). */
#include "config.h"

#include "image_value.h"

#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "warren/durable.h"

struct image_value_got {
    char *val;
    size_t len;
};

static int
image_value_got(void *arg, uint64_t seq, const void *val, size_t len)
{
    struct image_value_got *g = arg;
    (void)seq;
    g->val = malloc(len);
    ck_assert_ptr_nonnull(g->val);
    memcpy(g->val, val, len);
    g->len = len;
    return 1;
}

int
image_value(struct store *st, uint64_t group, uint64_t seq, char **val, size_t *len)
{
    struct image_value_got g = {NULL, 0};
    char err[256];
    ck_assert_int_eq(
        durable_image_values(st, group, seq, seq, image_value_got, &g, err, sizeof(err)), 0);
    *val = g.val;
    *len = g.len;
    return g.val != NULL;
}
