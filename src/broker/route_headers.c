/* Headers exchanges: a binding's arguments are a pattern over the message's headers table,
 * matched as RabbitMQ 3.10's rabbit_exchange_type_headers does (the broker Warren's tests
 * are validated against):
 *  - x-match "all" (the default) needs every pattern entry to match, "any" at least one; a
 *    pattern with no entries left thus matches every message under all and none under any.
 *  - Pattern keys starting with "x-" are left out, except under all-with-x and any-with-x,
 *    which leave out only "x-match" itself. Header keys are never left out.
 *  - A pattern entry of type void ('V') matches when the header is present, whatever its
 *    type and value. Any other entry matches a header of the same key whose value is equal
 *    as Erlang's == compares decoded values: the type tags do not matter (an 'I' 5 equals
 *    an 'l' 5 or a 'T' 5, 1 equals 1.0, a longstr equals a byte array of the same bytes), except
 *    that a boolean equals only a boolean, a decimal only a decimal of the same scale and
 *    value, and a void header nothing; nested tables and arrays are equal when their entries
 *    are, type tags included (empty table and empty array are equal, both being []).
 *  - RabbitMQ sorts both lists by key and merges them, so the k-th pattern entry of a key
 *    meets the k-th header of that key (for duplicate keys; a missing one fails the entry).
 * So does route_headers_route: it sorts the message's headers once per exchange routed and each
 * binding's pattern once per match (an index of entry pointers, qsort: O(n log n)), then
 * merges them, finding each pattern key's headers by binary search; peers send tables of
 * thousands of keys, and a scan per key would stall the event loop for seconds. The indexes
 * are the only allocations, at most 4 times the tables' size. */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route_int.h"
#include "warren/assert.h"
#include "warren/exchange.h"

static bool
is_int_type(enum wire_field_type t)
{
    switch (t) {
    case WIRE_FIELD_I8:
    case WIRE_FIELD_U8:
    case WIRE_FIELD_I16:
    case WIRE_FIELD_U16:
    case WIRE_FIELD_I32:
    case WIRE_FIELD_U32:
    case WIRE_FIELD_I64:
    case WIRE_FIELD_TIMESTAMP:
        return true;
    default:
        return false;
    }
}

/* Integer values are in v.i for the signed tags and v.u for the unsigned ones. */
static bool
is_signed_type(enum wire_field_type t)
{
    return t == WIRE_FIELD_I8 || t == WIRE_FIELD_I16 || t == WIRE_FIELD_I32 || t == WIRE_FIELD_I64;
}

static bool
is_float_type(enum wire_field_type t)
{
    return t == WIRE_FIELD_FLOAT || t == WIRE_FIELD_DOUBLE;
}

static double
float_of(const struct wire_value *v)
{
    return v->type == WIRE_FIELD_FLOAT ? (double)v->v.f : v->v.d;
}

static bool
int_eq(const struct wire_value *a, const struct wire_value *b)
{
    bool sa = is_signed_type(a->type), sb = is_signed_type(b->type);

    if (sa && sb)
        return a->v.i == b->v.i;
    if (!sa && !sb)
        return a->v.u == b->v.u;
    if (sa)
        return a->v.i >= 0 && (uint64_t)a->v.i == b->v.u;
    return b->v.i >= 0 && (uint64_t)b->v.i == a->v.u;
}

/* An integer and a float are == in Erlang when they are the same number. */
static bool
int_float_eq(const struct wire_value *iv, double d)
{
    if (!isfinite(d) || d != floor(d))
        return false;
    if (is_signed_type(iv->type))
        return d >= -9223372036854775808.0 && d < 9223372036854775808.0 && (int64_t)d == iv->v.i;
    return d >= 0 && d < 18446744073709551616.0 && (uint64_t)d == iv->v.u;
}

static bool
str_eq(struct wire_str a, struct wire_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static bool value_eq(const struct wire_value *a, const struct wire_value *b, bool typed);

/* Nested tables: same keys in the same order, same type tags, equal values. */
static bool
table_eq(struct wire_table a, struct wire_table b)
{
    struct wire_table_iter ia, ib;
    struct wire_str ka, kb;
    struct wire_value va, vb;
    bool more_a, more_b;

    wire_table_iter_init(&ia, a);
    wire_table_iter_init(&ib, b);
    for (;;) {
        more_a = wire_table_next(&ia, &ka, &va);
        more_b = wire_table_next(&ib, &kb, &vb);
        if (!more_a || !more_b)
            return more_a == more_b;
        if (!str_eq(ka, kb) || !value_eq(&va, &vb, true))
            return false;
    }
}

static bool
array_eq(struct wire_array a, struct wire_array b)
{
    struct wire_table_iter ia, ib;
    struct wire_value va, vb;
    bool more_a, more_b;

    wire_array_iter_init(&ia, a);
    wire_array_iter_init(&ib, b);
    for (;;) {
        more_a = wire_array_next(&ia, &va);
        more_b = wire_array_next(&ib, &vb);
        if (!more_a || !more_b)
            return more_a == more_b;
        if (!value_eq(&va, &vb, true))
            return false;
    }
}

/* Erlang's == on two decoded field values: a top-level header value is compared without its
 * type (typed = false); inside a table or array the type is part of the value (typed). */
static bool
value_eq(const struct wire_value *a, const struct wire_value *b, bool typed)
{
    if (typed && a->type != b->type)
        return false;
    if (is_int_type(a->type) && is_int_type(b->type))
        return int_eq(a, b);
    if (is_float_type(a->type) && is_float_type(b->type))
        return float_of(a) == float_of(b);
    if (is_int_type(a->type) && is_float_type(b->type))
        return int_float_eq(a, float_of(b));
    if (is_float_type(a->type) && is_int_type(b->type))
        return int_float_eq(b, float_of(a));
    switch (a->type) {
    case WIRE_FIELD_LONGSTR:
    case WIRE_FIELD_BYTES:
        return (b->type == WIRE_FIELD_LONGSTR || b->type == WIRE_FIELD_BYTES) &&
               str_eq(a->v.str, b->v.str);
    case WIRE_FIELD_BOOL:
        return b->type == WIRE_FIELD_BOOL && a->v.b == b->v.b;
    case WIRE_FIELD_DECIMAL:
        return b->type == WIRE_FIELD_DECIMAL && a->v.dec.scale == b->v.dec.scale &&
               a->v.dec.value == b->v.dec.value;
    case WIRE_FIELD_VOID:
        return b->type == WIRE_FIELD_VOID;
    case WIRE_FIELD_TABLE:
        if (b->type == WIRE_FIELD_TABLE)
            return table_eq(a->v.table, b->v.table);
        return b->type == WIRE_FIELD_ARRAY && a->v.table.len == 0 && b->v.array.len == 0;
    case WIRE_FIELD_ARRAY:
        if (b->type == WIRE_FIELD_ARRAY)
            return array_eq(a->v.array, b->v.array);
        return b->type == WIRE_FIELD_TABLE && a->v.array.len == 0 && b->v.table.len == 0;
    default:
        return false;
    }
}

static bool
starts_with_x(struct wire_str k)
{
    return k.len >= 2 && k.ptr[0] == 'x' && k.ptr[1] == '-';
}

enum route_hdr_match
route_headers_parse_match(struct wire_table args)
{
    struct wire_value v;

    if (!wire_table_get(args, "x-match", &v) || v.type != WIRE_FIELD_LONGSTR)
        return ROUTE_HDR_ALL;
    if (wire_str_eq(v.v.str, "any"))
        return ROUTE_HDR_ANY;
    if (wire_str_eq(v.v.str, "all-with-x"))
        return ROUTE_HDR_ALL_WITH_X;
    if (wire_str_eq(v.v.str, "any-with-x"))
        return ROUTE_HDR_ANY_WITH_X;
    return ROUTE_HDR_ALL;
}

/* Whether a pattern entry named key takes part in matching under x-match m: "x-match"
 * never does, other "x-" keys only under all-with-x and any-with-x. */
static bool
pattern_key_counts(struct wire_str key, enum route_hdr_match m)
{
    if (wire_str_eq(key, "x-match"))
        return false;
    return m == ROUTE_HDR_ALL_WITH_X || m == ROUTE_HDR_ANY_WITH_X || !starts_with_x(key);
}

/* The entries of one table sorted by key, entries of equal keys in table order, so that the
 * k-th entry of a key in the table is the k-th of that key here. Each element points at an
 * entry's start, its key (a shortstr). */
struct hdr_index {
    const uint8_t **at; /* owns the array (not the entries) */
    uint32_t n, cap;
};

/* Orders the keys (shortstrs) at x and y as Erlang compares binaries: bytes unsigned, a
 * prefix first. */
static int
key_cmp(const uint8_t *x, const uint8_t *y)
{
    int c = memcmp(x + 1, y + 1, x[0] < y[0] ? x[0] : y[0]);

    return c != 0 ? c : (int)x[0] - (int)y[0];
}

/* qsort's order for hdr_index: by key, then by place in the table. */
static int
cmp_entry(const void *a, const void *b)
{
    const uint8_t *x = *(const uint8_t *const *)a, *y = *(const uint8_t *const *)b;
    int c = key_cmp(x, y);

    return c != 0 ? c : (x > y) - (x < y);
}

/* Fills ix with the entries of t (all of them for a message's headers, pattern NULL; for a
 * binding's arguments, pattern is the binding and only the entries that count under its
 * x-match) and sorts them: O(n log n). The array grows to the number of entries, never more:
 * at most 4 times t's size (an entry takes 2 bytes or more, a pointer 8). 0, or -1 on ENOMEM
 * (ix unchanged but for n = 0). */
static int
hdr_index_build(struct hdr_index *ix, struct wire_table t, const struct binding *pattern)
{
    struct wire_table_iter it;
    struct wire_str key;
    struct wire_value v;
    const uint8_t *at;
    uint32_t n = 0;

    ix->n = 0;
    wire_table_iter_init(&it, t);
    while (wire_table_next(&it, &key, &v))
        n += pattern == NULL || pattern_key_counts(key, pattern->match);
    if (n > ix->cap) {
        const uint8_t **grown = realloc(ix->at, (size_t)n * sizeof *grown);

        if (grown == NULL)
            return -1;
        ix->at = grown;
        ix->cap = n;
    }
    wire_table_iter_init(&it, t);
    for (at = it.p; wire_table_next(&it, &key, &v); at = it.p)
        if (pattern == NULL || pattern_key_counts(key, pattern->match))
            ix->at[ix->n++] = at;
    if (ix->n > 1)
        qsort(ix->at, ix->n, sizeof ix->at[0], cmp_entry);
    return 0;
}

/* The first of ix's entries from j on whose key is not below the key at p: a binary search,
 * so that a pattern of a few keys costs a few steps per key, not a walk past every header. */
static uint32_t
hdr_index_seek(const struct hdr_index *ix, uint32_t j, const uint8_t *p)
{
    uint32_t hi = ix->n;

    while (j < hi) {
        uint32_t mid = j + (hi - j) / 2;

        if (key_cmp(ix->at[mid], p) < 0)
            j = mid + 1;
        else
            hi = mid;
    }
    return j;
}

/* Decodes the entry at `at` of table t. */
static void
entry_at(struct wire_table t, const uint8_t *at, struct wire_str *key, struct wire_value *val)
{
    struct wire_table_iter it;
    bool ok;

    wire_table_iter_init(&it, t);
    it.p = at;
    ok = wire_table_next(&it, key, val);
    WR_ASSERT(ok);
}

/* Whether a message whose headers table is hdrs, sorted in hix, matches binding b, whose
 * counting entries are sorted in pix: one pass over both sorted lists, like RabbitMQ's merge
 * in headers_match/5, where the k-th pattern entry of a key meets the k-th header of that key.
 * Borrows everything; O(pattern entries x log headers) plus the value comparisons. */
static bool
hdr_merge(const struct binding *b, const struct hdr_index *pix, struct wire_table hdrs,
          const struct hdr_index *hix)
{
    bool any = b->match == ROUTE_HDR_ANY || b->match == ROUTE_HDR_ANY_WITH_X;
    struct wire_str pk, hk;
    struct wire_value pv, hv;
    uint32_t j = 0;

    for (uint32_t i = 0; i < pix->n; i++) {
        bool ok = false;

        /* Headers with smaller keys meet no pattern entry; an equal key is this entry's. */
        j = hdr_index_seek(hix, j, pix->at[i]);
        if (j < hix->n && key_cmp(pix->at[i], hix->at[j]) == 0) {
            entry_at(b->args, pix->at[i], &pk, &pv);
            entry_at(hdrs, hix->at[j++], &hk, &hv);
            ok = pv.type == WIRE_FIELD_VOID || value_eq(&pv, &hv, false);
        }
        if (ok && any)
            return true;
        if (!ok && !any)
            return false;
    }
    return !any;
}

int
route_headers_route(struct binding *list, struct wire_table headers, struct route_ctx *c)
{
    struct hdr_index hix = {0}, pix = {0};
    int rc = 0;

    if (list == NULL)
        return 0;
    /* The headers are sorted once for all the bindings; each binding's pattern in turn, in
     * one array reused from binding to binding. */
    if (hdr_index_build(&hix, headers, NULL) < 0)
        return -1;
    for (struct binding *b = list; b != NULL; b = b->next) {
        if (hdr_index_build(&pix, b->args, b) < 0 ||
            (hdr_merge(b, &pix, headers, &hix) && route_ctx_add(c, b) < 0)) {
            rc = -1;
            break;
        }
    }
    free(pix.at);
    free(hix.at);
    return rc;
}

/* ---- binding argument checks ---- */

/* Bounded appends into a reply text (truncating silently). */
struct text {
    char *p;
    size_t len, cap;
};

static void __attribute__((format(printf, 2, 3))) text_add(struct text *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (t->len + 1 >= t->cap)
        return;
    va_start(ap, fmt);
    n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->len = t->len + (size_t)n < t->cap ? t->len + (size_t)n : t->cap - 1;
}

/* An Erlang binary as ~tp prints it: <<"text">> when printable, else <<1,2,3>>. */
static void
text_binary(struct text *t, struct wire_str s)
{
    bool printable = true;

    for (uint32_t i = 0; i < s.len; i++)
        if (s.ptr[i] < 0x20 || s.ptr[i] == 0x7f)
            printable = false;
    if (s.len == 0) {
        text_add(t, "<<>>");
    } else if (printable) {
        text_add(t, "<<\"");
        for (uint32_t i = 0; i < s.len; i++)
            text_add(t, s.ptr[i] == '"' || s.ptr[i] == '\\' ? "\\%c" : "%c", s.ptr[i]);
        text_add(t, "\">>");
    } else {
        text_add(t, "<<");
        for (uint32_t i = 0; i < s.len; i++)
            text_add(t, i == 0 ? "%u" : ",%u", s.ptr[i]);
        text_add(t, ">>");
    }
}

static void
text_float(struct text *t, double d)
{
    char buf[40];

    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    text_add(t, "%s%s", buf, strpbrk(buf, ".eni") == NULL ? ".0" : "");
}

/* A decoded field value as Erlang's ~tp prints RabbitMQ's term for it. */
static void
text_value(struct text *t, const struct wire_value *v, int depth)
{
    struct wire_table_iter it;
    struct wire_str k;
    struct wire_value e;
    bool first = true;

    if (is_int_type(v->type)) {
        if (is_signed_type(v->type))
            text_add(t, "%lld", (long long)v->v.i);
        else
            text_add(t, "%llu", (unsigned long long)v->v.u);
        return;
    }
    switch (v->type) {
    case WIRE_FIELD_BOOL:
        text_add(t, "%s", v->v.b ? "true" : "false");
        break;
    case WIRE_FIELD_FLOAT:
    case WIRE_FIELD_DOUBLE:
        text_float(t, float_of(v));
        break;
    case WIRE_FIELD_DECIMAL:
        text_add(t, "{%u,%ld}", v->v.dec.scale, (long)v->v.dec.value);
        break;
    case WIRE_FIELD_LONGSTR:
    case WIRE_FIELD_BYTES:
        text_binary(t, v->v.str);
        break;
    case WIRE_FIELD_VOID:
        text_add(t, "undefined");
        break;
    case WIRE_FIELD_TABLE:
    case WIRE_FIELD_ARRAY:
        if (depth >= 4) {
            text_add(t, "[...]");
            break;
        }
        text_add(t, "[");
        if (v->type == WIRE_FIELD_TABLE) {
            wire_table_iter_init(&it, v->v.table);
            while (wire_table_next(&it, &k, &e)) {
                text_add(t, first ? "{" : ",{");
                text_binary(t, k);
                text_add(t, ",%s,", wire_field_type_name(e.type));
                text_value(t, &e, depth + 1);
                text_add(t, "}");
                first = false;
            }
        } else {
            wire_array_iter_init(&it, v->v.array);
            while (wire_array_next(&it, &e)) {
                text_add(t, first ? "{%s," : ",{%s,", wire_field_type_name(e.type));
                text_value(t, &e, depth + 1);
                text_add(t, "}");
                first = false;
            }
        }
        text_add(t, "]");
        break;
    default:
        break;
    }
}

int
exch_check_bind_args(const struct exch *e, struct wire_table args, char *why, size_t whylen)
{
    struct text t = {why, 0, whylen};
    struct wire_value v;

    if (e->type != EXCH_HEADERS || !wire_table_get(args, "x-match", &v))
        return 0;
    if (whylen > 0)
        why[0] = '\0';
    if (v.type == WIRE_FIELD_LONGSTR) {
        if (wire_str_eq(v.v.str, "all") || wire_str_eq(v.v.str, "any") ||
            wire_str_eq(v.v.str, "all-with-x") || wire_str_eq(v.v.str, "any-with-x"))
            return 0;
        text_add(&t, "Invalid x-match field value ");
        text_binary(&t, v.v.str);
        text_add(&t, "; expected all, any, all-with-x, or any-with-x");
        return -1;
    }
    text_add(&t, "Invalid x-match field type %s (value ", wire_field_type_name(v.type));
    text_value(&t, &v, 0);
    text_add(&t, "); expected longstr");
    return -1;
}
