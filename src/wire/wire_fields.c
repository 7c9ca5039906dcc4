/* Field tables as lists of entries (include/warren/wire_fields.h). */
#include "config.h"

#include "warren/wire_fields.h"

#include <stdlib.h>
#include <string.h>

void
wire_fields_free(struct wire_fields *f)
{
    free(f->v);
    *f = (struct wire_fields){0};
}

/* Appends an entry. 0, or -1 on ENOMEM. */
int
wire_fields_push(struct wire_fields *f, struct wire_str key, const uint8_t *raw, uint32_t len)
{
    if (f->n == f->cap) {
        uint32_t cap = f->cap != 0 ? 2 * f->cap : 16;
        struct wire_field *v = realloc(f->v, (size_t)cap * sizeof(*v));
        if (v == NULL)
            return -1;
        f->v = v;
        f->cap = cap;
    }
    f->v[f->n] = (struct wire_field){key, raw, len, f->n};
    f->n++;
    return 0;
}

/* Appends t's entries (a validated table). 0, or -1 on ENOMEM. */
int
wire_fields_parse(struct wire_fields *f, struct wire_table t)
{
    struct wire_table_iter it;
    struct wire_str key;
    struct wire_value val;
    wire_table_iter_init(&it, t);
    const uint8_t *start = it.p;
    while (wire_table_next(&it, &key, &val)) {
        if (wire_fields_push(f, key, start, (uint32_t)(it.p - start)) < 0)
            return -1;
        start = it.p;
    }
    return 0;
}

/* The first entry named key, or NULL (lists:keyfind). */
struct wire_field *
wire_fields_find(struct wire_fields *f, struct wire_str key)
{
    for (uint32_t i = 0; i < f->n; i++)
        if (f->v[i].key.len == key.len && memcmp(f->v[i].key.ptr, key.ptr, key.len) == 0)
            return &f->v[i];
    return NULL;
}

/* Replaces the first entry named key, or appends one (lists:keystore). 0, or -1 on ENOMEM. */
int
wire_fields_store(struct wire_fields *f, struct wire_str key, const uint8_t *raw, uint32_t len)
{
    struct wire_field *e = wire_fields_find(f, key);
    if (e == NULL)
        return wire_fields_push(f, key, raw, len);
    e->raw = raw;
    e->len = len;
    return 0;
}

/* Removes the first entry named key, if any (lists:keydelete). */
void
wire_fields_delete(struct wire_fields *f, struct wire_str key)
{
    struct wire_field *e = wire_fields_find(f, key);
    if (e != NULL) {
        memmove(e, e + 1, (size_t)(f->v + f->n - (e + 1)) * sizeof(*e));
        f->n--;
    }
}

/* Erlang's order of binaries: bytewise, a prefix first; then the original place. */
static int
wire_field_cmp(const void *a, const void *b)
{
    const struct wire_field *x = a, *y = b;
    uint32_t n = x->key.len < y->key.len ? x->key.len : y->key.len;
    int c = n > 0 ? memcmp(x->key.ptr, y->key.ptr, n) : 0;
    if (c != 0)
        return c;
    if (x->key.len != y->key.len)
        return x->key.len < y->key.len ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Sorts by key, stably (rabbit_misc:sort_field_table). */
void
wire_fields_sort(struct wire_fields *f)
{
    for (uint32_t i = 0; i < f->n; i++)
        f->v[i].pos = i;
    if (f->n > 1)
        qsort(f->v, f->n, sizeof(f->v[0]), wire_field_cmp);
}

/* Writes the entries, in their order, as a table's content. */
void
wire_fields_write(const struct wire_fields *f, struct wire_writer *w)
{
    for (uint32_t i = 0; i < f->n; i++)
        wire_put_bytes(w, f->v[i].raw, f->v[i].len);
}

/* Records the entry written to w since mark, named key, into f. 0, or -1 on ENOMEM. */
int
wire_fields_store_written(struct wire_fields *f, const char *key, struct wire_writer *w,
                          size_t mark)
{
    struct wire_str k = {(const uint8_t *)key, (uint32_t)strlen(key)};
    return wire_fields_store(f, k, w->start + mark, (uint32_t)(wire_writer_len(w) - mark));
}
