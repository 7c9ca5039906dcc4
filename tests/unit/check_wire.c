/* Unit tests for src/wire/wire.c and the generated src/wire/wire_gen.c: the bounded readers
 * and writers, field tables with every type tag (values, nesting, depth limit, every way to be
 * malformed), every method of the spec encoded from a filled struct and decoded back, checked
 * against an independent encoder driven by the method's field list and against hand-written
 * bytes, truncation of every method at every byte offset, trailing bytes, unknown methods,
 * the basic content properties in every combination, and the generated lookup tables. */
#include "config.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "unhex.h"
#include "warren/wire.h"
#include "warren/wire_gen.h"
#include "wiretest.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static struct wire_str
str_of(const char *s)
{
    return (struct wire_str){(const uint8_t *)s, (uint32_t)strlen(s)};
}

/* ---- readers and writers ---- */

START_TEST(test_reader_ints)
{
    static const uint8_t b[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09};
    struct wire_reader r = {b, b + sizeof b};
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;

    ck_assert_int_eq(wire_get_u8(&r, &u8), 0);
    ck_assert_uint_eq(u8, 0x01);
    ck_assert_int_eq(wire_get_u16(&r, &u16), 0);
    ck_assert_uint_eq(u16, 0x0203);
    ck_assert_int_eq(wire_get_u32(&r, &u32), 0);
    ck_assert_uint_eq(u32, 0x04050607);
    /* Short input fails and consumes nothing. */
    ck_assert_int_eq(wire_get_u64(&r, &u64), -1);
    ck_assert_int_eq(wire_get_u32(&r, &u32), -1);
    ck_assert_int_eq(wire_get_u16(&r, &u16), 0);
    ck_assert_uint_eq(u16, 0x0809);
    ck_assert_int_eq(wire_get_u8(&r, &u8), -1);
    ck_assert_ptr_eq(r.p, r.end);

    r = (struct wire_reader){b, b + 8};
    ck_assert_int_eq(wire_get_u64(&r, &u64), 0);
    ck_assert_uint_eq(u64, 0x0102030405060708ull);
}
END_TEST

START_TEST(test_reader_strings)
{
    uint8_t b[300];
    size_t n;
    struct wire_reader r;
    struct wire_str s;

    n = test_unhex("03 'abc' 00000002 'xy' 00", b, sizeof b);
    r = (struct wire_reader){b, b + n};
    ck_assert_int_eq(wire_get_shortstr(&r, &s), 0);
    ck_assert(wire_str_eq(s, "abc"));
    ck_assert_int_eq(wire_get_longstr(&r, &s), 0);
    ck_assert(wire_str_eq(s, "xy"));
    ck_assert_int_eq(wire_get_shortstr(&r, &s), 0);
    ck_assert_uint_eq(s.len, 0);
    ck_assert_ptr_eq(r.p, r.end);

    /* Lengths past the end: nothing consumed. */
    n = test_unhex("04 'abc'", b, sizeof b);
    r = (struct wire_reader){b, b + n};
    ck_assert_int_eq(wire_get_shortstr(&r, &s), -1);
    ck_assert_ptr_eq(r.p, b);
    n = test_unhex("FFFFFFFF 'abc'", b, sizeof b);
    r = (struct wire_reader){b, b + n};
    ck_assert_int_eq(wire_get_longstr(&r, &s), -1);
    ck_assert_ptr_eq(r.p, b);
    n = test_unhex("000000", b, sizeof b);
    r = (struct wire_reader){b, b + n};
    ck_assert_int_eq(wire_get_longstr(&r, &s), -1);
    ck_assert_int_eq(wire_get_shortstr(&r, &s), 0); /* "00" is an empty shortstr */

    /* A 255-byte shortstr is the longest there is. */
    b[0] = 255;
    memset(b + 1, 'a', 255);
    r = (struct wire_reader){b, b + 256};
    ck_assert_int_eq(wire_get_shortstr(&r, &s), 0);
    ck_assert_uint_eq(s.len, 255);
    r = (struct wire_reader){b, b + 255};
    ck_assert_int_eq(wire_get_shortstr(&r, &s), -1);
}
END_TEST

START_TEST(test_writer)
{
    uint8_t b[16], want[16];
    struct wire_writer w;
    size_t n;

    wire_writer_init(&w, b, sizeof b);
    wire_put_u8(&w, 0x01);
    wire_put_u16(&w, 0x0203);
    wire_put_u32(&w, 0x04050607);
    wire_put_shortstr(&w, str_of("ab"));
    ck_assert(!w.overflow);
    n = test_unhex("01 0203 04050607 02 'ab'", want, sizeof want);
    ck_assert_uint_eq(wire_writer_len(&w), n);
    ck_assert_mem_eq(b, want, n);

    /* 10 bytes used: a longstr of 3 needs 7 and does not fit; nothing is written, and the
     * writer refuses everything after. */
    wire_put_u8(&w, 0xEE);
    wire_put_longstr(&w, str_of("xyz"));
    ck_assert(w.overflow);
    ck_assert_uint_eq(wire_writer_len(&w), n + 1);
    wire_put_u8(&w, 0xFF);
    ck_assert_uint_eq(wire_writer_len(&w), n + 1);

    wire_writer_init(&w, b, 8);
    wire_put_u64(&w, 0x0102030405060708ull);
    ck_assert(!w.overflow);
    wire_put_bytes(&w, "", 0);
    ck_assert(!w.overflow);
    wire_put_bytes(&w, "x", 1);
    ck_assert(w.overflow);

    /* A zero-capacity writer over no buffer just overflows. */
    wire_writer_init(&w, NULL, 0);
    wire_put_table(&w, (struct wire_table){NULL, 0});
    ck_assert(w.overflow);
    ck_assert_uint_eq(wire_writer_len(&w), 0);
}
END_TEST

START_TEST(test_shortstr_too_long)
{
    uint8_t b[512], s[256];
    struct wire_writer w;

    memset(s, 'a', sizeof s);
    wire_writer_init(&w, b, sizeof b);
    wire_put_shortstr(&w, (struct wire_str){s, 256}); /* a caller bug: aborts */
}
END_TEST

/* ---- field tables ---- */

/* Renders a table or array as text: key=tag:value, arrays [..], tables {..}. */
static void render_value(char *out, size_t cap, const struct wire_value *v);

static void
render_table(char *out, size_t cap, const uint8_t *p, uint32_t len, bool is_array)
{
    struct wire_table_iter it;
    struct wire_value v;
    struct wire_str key;
    size_t n = strlen(out);
    bool first = true;

    snprintf(out + n, cap - n, "%c", is_array ? '[' : '{');
    if (is_array)
        wire_array_iter_init(&it, (struct wire_array){p, len});
    else
        wire_table_iter_init(&it, (struct wire_table){p, len});
    for (;;) {
        if (is_array ? !wire_array_next(&it, &v) : !wire_table_next(&it, &key, &v))
            break;
        n = strlen(out);
        snprintf(out + n, cap - n, "%s", first ? "" : ",");
        first = false;
        if (!is_array) {
            n = strlen(out);
            snprintf(out + n, cap - n, "%.*s=", WIRE_STR_ARG(key));
        }
        render_value(out, cap, &v);
    }
    ck_assert_ptr_eq(it.p, it.end);
    n = strlen(out);
    snprintf(out + n, cap - n, "%c", is_array ? ']' : '}');
}

static void
render_value(char *out, size_t cap, const struct wire_value *v)
{
    size_t n = strlen(out);

    snprintf(out + n, cap - n, "%c:", (char)v->type);
    n = strlen(out);
    switch (v->type) {
    case WIRE_FIELD_BOOL:
        snprintf(out + n, cap - n, "%s", v->v.b ? "true" : "false");
        break;
    case WIRE_FIELD_I8:
    case WIRE_FIELD_I16:
    case WIRE_FIELD_I32:
    case WIRE_FIELD_I64:
        snprintf(out + n, cap - n, "%" PRId64, v->v.i);
        break;
    case WIRE_FIELD_U8:
    case WIRE_FIELD_U16:
    case WIRE_FIELD_U32:
    case WIRE_FIELD_TIMESTAMP:
        snprintf(out + n, cap - n, "%" PRIu64, v->v.u);
        break;
    case WIRE_FIELD_FLOAT:
        snprintf(out + n, cap - n, "%g", (double)v->v.f);
        break;
    case WIRE_FIELD_DOUBLE:
        snprintf(out + n, cap - n, "%g", v->v.d);
        break;
    case WIRE_FIELD_DECIMAL:
        snprintf(out + n, cap - n, "%d/%u", v->v.dec.value, v->v.dec.scale);
        break;
    case WIRE_FIELD_LONGSTR:
        snprintf(out + n, cap - n, "\"%.*s\"", WIRE_STR_ARG(v->v.str));
        break;
    case WIRE_FIELD_BYTES:
        for (uint32_t i = 0; i < v->v.str.len; i++) {
            n = strlen(out);
            snprintf(out + n, cap - n, "%02x", v->v.str.ptr[i]);
        }
        break;
    case WIRE_FIELD_TABLE:
        render_table(out, cap, v->v.table.ptr, v->v.table.len, false);
        break;
    case WIRE_FIELD_ARRAY:
        render_table(out, cap, v->v.array.ptr, v->v.array.len, true);
        break;
    case WIRE_FIELD_VOID:
        break;
    }
}

/* Good tables: the entries' bytes (without the length prefix) and how they read back. */
static const struct {
    const char *what, *hex, *text;
} good_tables[] = {
    {"empty", "", "{}"},
    {"bool true, false, any non-zero", "01'a' 74 01  01'b' 74 00  01'c' 74 07",
     "{a=t:true,b=t:false,c=t:true}"},
    {"i8 and u8", "01'a' 62 FB  01'b' 42 FA", "{a=b:-5,b=B:250}"},
    {"i16 ('s', RabbitMQ's errata) and u16", "01'a' 73 FED4  01'b' 75 EA60",
     "{a=s:-300,b=u:60000}"},
    {"i32 and u32", "01'a' 49 FFFEEE90  01'b' 69 EE6B2800", "{a=I:-70000,b=i:4000000000}"},
    {"i64 ('l')", "01'a' 6C FFFFFF0000000000  01'b' 6C 7FFFFFFFFFFFFFFF",
     "{a=l:-1099511627776,b=l:9223372036854775807}"},
    {"float and double", "01'f' 66 3FC00000  01'd' 64 C002000000000000", "{f=f:1.5,d=d:-2.25}"},
    {"decimal (signed value)", "01'a' 44 02 FFFFCFC7", "{a=D:-12345/2}"},
    {"longstr, empty longstr", "01'a' 53 00000005'hello'  01'b' 53 00000000",
     "{a=S:\"hello\",b=S:\"\"}"},
    {"byte array 'x'", "01'x' 78 00000003 0001FF", "{x=x:0001ff}"},
    {"timestamp", "01't' 54 000000006553F100", "{t=T:1700000000}"},
    {"void", "01'v' 56", "{v=V:}"},
    {"empty key", "00 56", "{=V:}"},
    {"array: length in bytes, mixed types",
     "01'a' 41 00000013 49 00000001 53 00000003'two' 56 41 00000000",
     "{a=A:[I:1,S:\"two\",V:,A:[]]}"},
    {"nested table", "01'n' 46 0000000D 01'x' 46 00000004 01'y' 74 01 00 56",
     "{n=F:{x=F:{y=t:true},=V:}}"},
    {"table inside array inside table", "01'a' 41 0000000E 46 00000009 01'k' 53 00000002'v1'",
     "{a=A:[F:{k=S:\"v1\"}]}"},
    {"duplicate keys are kept", "01'a' 62 01  01'a' 62 02", "{a=b:1,a=b:2}"},
};

START_TEST(test_good_table)
{
    uint8_t b[512];
    size_t n = test_unhex(good_tables[_i].hex, b, sizeof b);
    struct wire_error err = {0};
    char text[1024] = "";

    if (wire_table_validate(b, (uint32_t)n, 0, &err) != 0)
        ck_abort_msg("%s: %s", good_tables[_i].what, err.text);
    render_table(text, sizeof text, b, (uint32_t)n, false);
    ck_assert_str_eq(text, good_tables[_i].text);
}
END_TEST

/* Bad tables: entries' bytes and the error text. */
static const struct {
    const char *what, *hex, *text;
} bad_tables[] = {
    {"unknown type tag", "03'bad' 5A 00", "unknown field type 'Z' in table"},
    {"0-9-1 text's unsigned 64 'L' is not RabbitMQ's", "01'a' 4C 0000000000000001",
     "unknown field type 'L' in table"},
    {"unprintable tag", "01'a' 00", "unknown field type 0x00 in table"},
    {"unknown tag in an array", "01'a' 41 00000002 74 01 01'b' 41 00000001 5A",
     "unknown field type 'Z' in array"},
    {"key runs past the end", "05'abc'", "table key runs past the end of the table"},
    {"no type after the key", "03'key'", "value of 'key' runs past the end of the table"},
    {"i32 cut short", "01'n' 49 0000", "value of 'n' runs past the end of the table"},
    {"decimal cut short", "01'n' 44 02 0000", "value of 'n' runs past the end of the table"},
    {"longstr length past the end", "01's' 53 00000010 'abc'",
     "value of 's' runs past the end of the table"},
    {"huge longstr length", "01's' 53 FFFFFFFF 'abc'",
     "value of 's' runs past the end of the table"},
    {"byte array past the end", "01's' 78 00000004 'abc'",
     "value of 's' runs past the end of the table"},
    {"nested table length past the end", "01'n' 46 00000009 01'x' 56",
     "value of 'n' runs past the end of the table"},
    {"nested entry runs past the nested table", "01'n' 46 00000003 01'x' 49 00000001",
     "value of 'x' runs past the end of the table"},
    {"array value cut short", "01'a' 41 00000003 49 0000",
     "array value runs past the end of the array"},
    {"unprintable key is not echoed raw", "02 0A0D 5A", "unknown field type 'Z' in table"},
    {"unprintable key in a truncation", "02 0A0D 49 00",
     "value of '?\?' runs past the end of "
     "the table"},
};

START_TEST(test_bad_table)
{
    uint8_t b[512];
    size_t n = test_unhex(bad_tables[_i].hex, b, sizeof b);
    struct wire_error err = {0};

    ck_assert_int_eq(wire_table_validate(b, (uint32_t)n, 0, &err), -1);
    ck_assert_uint_eq(err.code, WIRE_FRAME_ERROR);
    ck_assert_str_eq(err.text, bad_tables[_i].text);
}
END_TEST

/* levels nested tables (or arrays) inside a top-level table. */
static size_t
build_nested(uint8_t *b, size_t cap, int levels, bool arrays)
{
    struct wire_writer w;
    size_t marks[64];

    ck_assert_int_lt(levels, 64);
    wire_writer_init(&w, b, cap);
    for (int i = 0; i < levels; i++) {
        if (!arrays) {
            marks[i] = wire_table_put_table_begin(&w, "k");
            continue;
        }
        if (i == 0)
            wire_put_shortstr(&w, str_of("k"));
        wire_put_u8(&w, WIRE_FIELD_ARRAY);
        marks[i] = wire_writer_len(&w);
        wire_put_u32(&w, 0);
    }
    if (!arrays)
        wire_table_put_bool(&w, "leaf", true);
    else
        wire_put_u8(&w, WIRE_FIELD_VOID);
    for (int i = levels - 1; i >= 0; i--)
        wire_table_put_table_end(&w, marks[i]);
    ck_assert(!w.overflow);
    return wire_writer_len(&w);
}

START_TEST(test_table_depth)
{
    uint8_t b[1024];
    struct wire_error err = {0};
    bool arrays = _i == 1;
    size_t n;

    /* WIRE_TABLE_MAX_DEPTH levels below the top-level table are fine, one more is not. */
    n = build_nested(b, sizeof b, WIRE_TABLE_MAX_DEPTH, arrays);
    if (wire_table_validate(b, (uint32_t)n, 0, &err) != 0)
        ck_abort_msg("%s", err.text);
    n = build_nested(b, sizeof b, WIRE_TABLE_MAX_DEPTH + 1, arrays);
    ck_assert_int_eq(wire_table_validate(b, (uint32_t)n, 0, &err), -1);
    ck_assert_uint_eq(err.code, WIRE_FRAME_ERROR);
    ck_assert_str_eq(err.text, "table nested deeper than 16 levels");
    /* The same bytes as a table nested one level down. */
    n = build_nested(b, sizeof b, WIRE_TABLE_MAX_DEPTH, arrays);
    ck_assert_int_eq(wire_table_validate(b, (uint32_t)n, 1, &err), -1);
}
END_TEST

/* The table with every type, cut at every byte: a cut inside an entry is refused, a cut
 * between entries is a shorter valid table, and wire_get_table refuses any cut of the
 * length-prefixed form. */
START_TEST(test_table_truncated)
{
    uint8_t b[1024], lp[1024];
    size_t n = 0, bounds[64], nb = 0;
    struct wire_error err;
    struct wire_reader r;
    struct wire_table t;
    struct wire_table_iter it;
    struct wire_value v;
    struct wire_str key;

    for (size_t i = 0; i < N_ELEMS(good_tables); i++) {
        if (strcmp(good_tables[i].what, "duplicate keys are kept") != 0)
            n += test_unhex(good_tables[i].hex, b + n, sizeof b - n);
    }
    wire_table_iter_init(&it, (struct wire_table){b, (uint32_t)n});
    bounds[nb++] = 0;
    while (wire_table_next(&it, &key, &v))
        bounds[nb++] = (size_t)(it.p - b);
    ck_assert_uint_eq(bounds[nb - 1], n);
    for (size_t k = 0, j = 0; k <= n; k++) {
        bool boundary = j < nb && bounds[j] == k;
        int rc = wire_table_validate(b, (uint32_t)k, 0, &err);
        if (boundary) {
            ck_assert_msg(rc == 0, "cut at %zu (an entry boundary): %s", k, err.text);
            j++;
        } else {
            ck_assert_msg(rc == -1, "cut at %zu inside an entry was accepted", k);
            ck_assert_uint_eq(err.code, WIRE_FRAME_ERROR);
        }
    }

    lp[0] = (uint8_t)(n >> 24);
    lp[1] = (uint8_t)(n >> 16);
    lp[2] = (uint8_t)(n >> 8);
    lp[3] = (uint8_t)n;
    memcpy(lp + 4, b, n);
    for (size_t k = 0; k < n + 4; k++) {
        r = (struct wire_reader){lp, lp + k};
        ck_assert_int_eq(wire_get_table(&r, &t, &err), -1);
        ck_assert_ptr_eq(r.p, lp);
    }
    r = (struct wire_reader){lp, lp + n + 4};
    ck_assert_int_eq(wire_get_table(&r, &t, &err), 0);
    ck_assert_ptr_eq(t.ptr, lp + 4);
    ck_assert_uint_eq(t.len, n);
    ck_assert_ptr_eq(r.p, r.end);
}
END_TEST

START_TEST(test_table_build_and_get)
{
    uint8_t b[256];
    struct wire_writer w;
    struct wire_error err;
    struct wire_table t, inner;
    struct wire_value v;
    size_t m;
    int64_t i64;

    wire_writer_init(&w, b, sizeof b);
    wire_table_put_longstr(&w, "product", str_of("Warren"));
    m = wire_table_put_table_begin(&w, "capabilities");
    wire_table_put_bool(&w, "publisher_confirms", true);
    wire_table_put_bool(&w, "basic.nack", false);
    wire_table_put_table_end(&w, m);
    wire_table_put_i64(&w, "x-max-length", -42);
    ck_assert(!w.overflow);
    t = (struct wire_table){b, (uint32_t)wire_writer_len(&w)};
    ck_assert_int_eq(wire_table_validate(t.ptr, t.len, 0, &err), 0);

    ck_assert(wire_table_get(t, "product", &v));
    ck_assert_int_eq(v.type, WIRE_FIELD_LONGSTR);
    ck_assert(wire_str_eq(v.v.str, "Warren"));
    ck_assert(wire_table_get(t, "x-max-length", &v));
    ck_assert_int_eq(v.type, WIRE_FIELD_I64);
    ck_assert(wire_value_to_i64(&v, &i64));
    ck_assert_int_eq(i64, -42);
    ck_assert(wire_table_get(t, "capabilities", &v));
    ck_assert_int_eq(v.type, WIRE_FIELD_TABLE);
    inner = v.v.table;
    ck_assert(wire_table_get(inner, "publisher_confirms", &v));
    ck_assert(v.v.b);
    ck_assert(wire_table_get(inner, "basic.nack", &v));
    ck_assert(!v.v.b);
    ck_assert(!wire_table_get(t, "publisher_confirms", &v)); /* not at the top level */
    ck_assert(!wire_table_get(t, "produc", &v));
    ck_assert(!wire_table_get((struct wire_table){NULL, 0}, "x", &v));

    /* A table that does not fit: overflow, and _end leaves the buffer alone. */
    wire_writer_init(&w, b, 20);
    m = wire_table_put_table_begin(&w, "capabilities");
    wire_table_put_bool(&w, "publisher_confirms", true);
    wire_table_put_table_end(&w, m);
    ck_assert(w.overflow);
}
END_TEST

/* wire_value_to_i64 on every integer type and on the edges. */
static const struct {
    const char *hex;
    bool ok;
    int64_t want;
} to_i64[] = {
    {"62 80", true, -128},
    {"42 FF", true, 255},
    {"73 8000", true, -32768},
    {"75 FFFF", true, 65535},
    {"49 80000000", true, INT32_MIN},
    {"69 FFFFFFFF", true, 4294967295},
    {"6C 8000000000000000", true, INT64_MIN},
    {"54 7FFFFFFFFFFFFFFF", true, INT64_MAX},
    {"54 8000000000000000", false, 0},
    {"74 01", false, 0},
    {"53 00000001 '1'", false, 0},
    {"64 3FF0000000000000", false, 0},
    {"56", false, 0},
};

START_TEST(test_value_to_i64)
{
    uint8_t b[64] = {1, 'k'};
    size_t n = 2 + test_unhex(to_i64[_i].hex, b + 2, sizeof b - 2);
    struct wire_value v;
    int64_t got = 12345;

    ck_assert(wire_table_get((struct wire_table){b, (uint32_t)n}, "k", &v));
    ck_assert(wire_value_to_i64(&v, &got) == to_i64[_i].ok);
    if (to_i64[_i].ok)
        ck_assert_int_eq(got, to_i64[_i].want);
}
END_TEST

START_TEST(test_iter_unvalidated)
{
    /* The iterators stop at bad bytes rather than run off the end. */
    static const uint8_t bad[] = {1, 'k', 'S', 0, 0, 0, 9, 'x'};
    struct wire_table_iter it;
    struct wire_value v;
    struct wire_str key;

    wire_table_iter_init(&it, (struct wire_table){bad, sizeof bad});
    ck_assert(!wire_table_next(&it, &key, &v));
    ck_assert(!wire_table_next(&it, &key, &v));
    wire_array_iter_init(&it, (struct wire_array){bad + 2, sizeof bad - 2});
    ck_assert(!wire_array_next(&it, &v));
    wire_array_iter_init(&it, (struct wire_array){NULL, 0});
    ck_assert(!wire_array_next(&it, &v));
    ck_assert(wire_str_eq((struct wire_str){NULL, 0}, ""));
    ck_assert(!wire_str_eq(str_of("a"), ""));
    ck_assert(!wire_str_eq(str_of("ab"), "abc"));
}
END_TEST

/* ---- methods ---- */

/* A valid table with every type tag, used as the value of every table field. */
static uint8_t every_type_table[512];
static uint32_t every_type_len;

static void
setup_tables(void)
{
    size_t n = 0;

    for (size_t i = 0; i < N_ELEMS(good_tables); i++)
        n += test_unhex(good_tables[i].hex, every_type_table + n, sizeof every_type_table - n);
    every_type_len = (uint32_t)n;
}

static void *
field_ptr(void *base, const struct wire_field_info *fi)
{
    return (char *)base + fi->offset;
}

/* Fills every described field. pattern 0 and 1: distinct values, bits alternating (1 flips
 * them); 2: zeros and empty strings; 3: maxima (all bits set, 255-byte shortstrs). */
static char strbuf[64][256];

static void
fill_fields(void *base, const struct wire_field_info *fields, unsigned n, unsigned pattern)
{
    static const uint8_t binary[] = {'b', 0, 0xFF, '\n', 'z'};
    static char longest[256];

    memset(longest, 'L', 255);
    for (unsigned j = 0; j < n; j++) {
        const struct wire_field_info *fi = &fields[j];
        void *p;
        bool zero = pattern == 2, max = pattern == 3;

        if (fi->reserved)
            continue;
        p = field_ptr(base, fi);
        switch (fi->type) {
        case WIRE_TYPE_BIT:
            *(bool *)p = max || (!zero && ((j + pattern) % 2 == 0));
            break;
        case WIRE_TYPE_OCTET:
            *(uint8_t *)p = zero ? 0 : max ? 0xFF : (uint8_t)(0xA0 + j);
            break;
        case WIRE_TYPE_SHORT:
            *(uint16_t *)p = zero ? 0 : max ? 0xFFFF : (uint16_t)(0xB100 + j);
            break;
        case WIRE_TYPE_LONG:
            *(uint32_t *)p = zero ? 0 : max ? 0xFFFFFFFF : 0xC2000000u + j;
            break;
        case WIRE_TYPE_LONGLONG:
        case WIRE_TYPE_TIMESTAMP:
            *(uint64_t *)p = zero ? 0 : max ? UINT64_MAX : 0xD300000000000000ull + j;
            break;
        case WIRE_TYPE_SHORTSTR:
            if (zero)
                *(struct wire_str *)p = (struct wire_str){NULL, 0};
            else if (max)
                *(struct wire_str *)p = (struct wire_str){(const uint8_t *)longest, 255};
            else {
                snprintf(strbuf[j], sizeof strbuf[j], "%s-%u", fi->name, pattern);
                *(struct wire_str *)p = str_of(strbuf[j]);
            }
            break;
        case WIRE_TYPE_LONGSTR:
            if (zero)
                *(struct wire_str *)p = (struct wire_str){NULL, 0};
            else
                *(struct wire_str *)p = (struct wire_str){binary, sizeof binary - pattern};
            break;
        case WIRE_TYPE_TABLE:
            if (zero)
                *(struct wire_table *)p = (struct wire_table){NULL, 0};
            else
                *(struct wire_table *)p = (struct wire_table){every_type_table, every_type_len};
            break;
        }
    }
}

/* An encoder written from the spec's rules alone, driven by the field list: the generated
 * encoder must produce the same bytes. Bits: consecutive bit fields share an octet, low bit
 * first, at most 8 to an octet; reserved fields are zero or empty. */
static size_t
ref_encode(const struct wire_method_info *info, const struct wire_method *m, uint8_t *out)
{
    size_t n = 0;
    int bitpos = -1;
    size_t bitbyte = 0;

    out[n++] = (uint8_t)(WIRE_METHOD_CLASS(info->id) >> 8);
    out[n++] = (uint8_t)WIRE_METHOD_CLASS(info->id);
    out[n++] = (uint8_t)(WIRE_METHOD_INDEX(info->id) >> 8);
    out[n++] = (uint8_t)WIRE_METHOD_INDEX(info->id);
    for (unsigned j = 0; j < info->nfields; j++) {
        const struct wire_field_info *fi = &info->fields[j];
        const void *p = (const char *)m + fi->offset;
        uint64_t v = 0;
        int size = 0;
        struct wire_str s = {NULL, 0};

        if (fi->type == WIRE_TYPE_BIT) {
            if (bitpos < 0 || bitpos == 8) {
                bitbyte = n;
                out[n++] = 0;
                bitpos = 0;
            }
            if (!fi->reserved && *(const bool *)p)
                out[bitbyte] |= (uint8_t)(1u << bitpos);
            bitpos++;
            continue;
        }
        bitpos = -1;
        switch (fi->type) {
        case WIRE_TYPE_OCTET:
            size = 1;
            v = fi->reserved ? 0 : *(const uint8_t *)p;
            break;
        case WIRE_TYPE_SHORT:
            size = 2;
            v = fi->reserved ? 0 : *(const uint16_t *)p;
            break;
        case WIRE_TYPE_LONG:
            size = 4;
            v = fi->reserved ? 0 : *(const uint32_t *)p;
            break;
        case WIRE_TYPE_LONGLONG:
        case WIRE_TYPE_TIMESTAMP:
            size = 8;
            v = fi->reserved ? 0 : *(const uint64_t *)p;
            break;
        case WIRE_TYPE_SHORTSTR:
            if (!fi->reserved)
                s = *(const struct wire_str *)p;
            out[n++] = (uint8_t)s.len;
            break;
        case WIRE_TYPE_LONGSTR:
        case WIRE_TYPE_TABLE:
            if (!fi->reserved && fi->type == WIRE_TYPE_LONGSTR)
                s = *(const struct wire_str *)p;
            if (!fi->reserved && fi->type == WIRE_TYPE_TABLE)
                s = (struct wire_str){((const struct wire_table *)p)->ptr,
                                      ((const struct wire_table *)p)->len};
            for (int k = 3; k >= 0; k--)
                out[n++] = (uint8_t)(s.len >> (8 * k));
            break;
        case WIRE_TYPE_BIT:
            break;
        }
        for (int k = size - 1; k >= 0; k--)
            out[n++] = (uint8_t)(v >> (8 * k));
        if (s.len > 0)
            memcpy(out + n, s.ptr, s.len);
        n += s.len;
    }
    return n;
}

/* Every method x 4 fill patterns: encode, compare with ref_encode, decode, compare fields;
 * an encoding into a writer one byte too small overflows. */
START_TEST(test_method_roundtrip)
{
    const struct wire_method_info *info = &wire_methods[_i / 4];
    unsigned pattern = (unsigned)_i % 4;
    static uint8_t buf[8192], ref[8192];
    struct wire_method m, d;
    struct wire_writer w;
    struct wire_error err = {0};
    size_t n, rn;

    memset(&m, 0, sizeof m);
    m.id = info->id;
    fill_fields(&m, info->fields, info->nfields, pattern);
    wire_writer_init(&w, buf, sizeof buf);
    ck_assert_int_eq(wire_method_encode(&m, &w), 0);
    n = wire_writer_len(&w);
    rn = ref_encode(info, &m, ref);
    ck_assert_msg(n == rn && memcmp(buf, ref, n) == 0, "%s: encoding differs from the spec",
                  info->name);

    memset(&d, 0xA5, sizeof d);
    if (wire_method_decode(buf, n, &d, &err) != 0)
        ck_abort_msg("%s: %s", info->name, err.text);
    ck_assert_int_eq(d.id, info->id);
    for (unsigned j = 0; j < info->nfields; j++)
        if (!info->fields[j].reserved)
            ck_assert_msg(wiretest_field_same(&info->fields[j], &m, &d), "%s: field %s differs",
                          info->name, info->fields[j].name);

    wire_writer_init(&w, buf, n - 1);
    ck_assert_int_eq(wire_method_encode(&m, &w), -1);
    ck_assert(w.overflow);
}
END_TEST

/* Every method cut at every byte offset: a 501 naming the method and the field. */
START_TEST(test_method_truncated)
{
    const struct wire_method_info *info = &wire_methods[_i];
    static uint8_t buf[8192];
    char prefix[128], want[64];
    struct wire_method m, d;
    struct wire_writer w;
    struct wire_error err;
    size_t n;

    memset(&m, 0, sizeof m);
    m.id = info->id;
    fill_fields(&m, info->fields, info->nfields, 0);
    wire_writer_init(&w, buf, sizeof buf);
    ck_assert_int_eq(wire_method_encode(&m, &w), 0);
    n = wire_writer_len(&w);
    snprintf(prefix, sizeof prefix, "cannot decode %s: field '", info->name);
    for (size_t k = 0; k < n; k++) {
        memset(&err, 0, sizeof err);
        ck_assert_msg(wire_method_decode(buf, k, &d, &err) == -1, "%s cut at %zu accepted",
                      info->name, k);
        ck_assert_uint_eq(err.code, WIRE_FRAME_ERROR);
        if (k < 4) {
            snprintf(want, sizeof want, "method frame too short: %zu bytes", k);
            ck_assert_str_eq(err.text, want);
        } else {
            ck_assert_msg(strncmp(err.text, prefix, strlen(prefix)) == 0 &&
                              strstr(err.text, "' truncated") != NULL,
                          "%s cut at %zu: \"%s\"", info->name, k, err.text);
        }
    }
    /* Trailing garbage. */
    buf[n] = 0x00;
    ck_assert_int_eq(wire_method_decode(buf, n + 1, &d, &err), -1);
    ck_assert_uint_eq(err.code, WIRE_FRAME_ERROR);
    snprintf(prefix, sizeof prefix, "cannot decode %s: 1 trailing bytes", info->name);
    ck_assert_str_eq(err.text, prefix);
}
END_TEST

/* Hand-written bytes for methods whose layout is easy to get wrong: decoded, the named
 * fields have the given values; re-encoded, the bytes come back. */
START_TEST(test_method_bytes_queue_declare)
{
    uint8_t b[128], out[128];
    size_t n =
        test_unhex("0032 000A 0000 02'q1' 12 0000000B 01'x' 6C 0000000000000005", b, sizeof b);
    struct wire_method m;
    struct wire_error err;
    struct wire_writer w;
    struct wire_value v;

    ck_assert_int_eq(wire_method_decode(b, n, &m, &err), 0);
    ck_assert_int_eq(m.id, WIRE_QUEUE_DECLARE);
    ck_assert(wire_str_eq(m.u.queue_declare.queue, "q1"));
    ck_assert(!m.u.queue_declare.passive);
    ck_assert(m.u.queue_declare.durable);
    ck_assert(!m.u.queue_declare.exclusive);
    ck_assert(!m.u.queue_declare.auto_delete);
    ck_assert(m.u.queue_declare.no_wait);
    ck_assert(wire_table_get(m.u.queue_declare.arguments, "x", &v));
    ck_assert_int_eq(v.v.i, 5);
    wire_writer_init(&w, out, sizeof out);
    ck_assert_int_eq(wire_method_encode(&m, &w), 0);
    ck_assert_uint_eq(wire_writer_len(&w), n);
    ck_assert_mem_eq(out, b, n);
}
END_TEST

static const struct {
    const char *what, *hex;
    uint32_t id;
} method_bytes[] = {
    {"connection.tune", "000A 001E 07FF 00020000 003C", WIRE_CONNECTION_TUNE},
    {"connection.open: vhost, reserved shortstr and bit", "000A 0028 01'/' 00 00",
     WIRE_CONNECTION_OPEN},
    {"connection.close", "000A 0032 0140 05'bye!!' 0000 0000", WIRE_CONNECTION_CLOSE},
    {"channel.open: reserved shortstr", "0014 000A 00", WIRE_CHANNEL_OPEN},
    {"channel.open_ok: reserved longstr", "0014 000B 00000000", WIRE_CHANNEL_OPEN_OK},
    {"exchange.declare: 5 bits in one octet", "0028 000A 0000 01'e' 05'topic' 1F 00000000",
     WIRE_EXCHANGE_DECLARE},
    {"basic.consume: no_ack and exclusive", "003C 0014 0000 01'q' 03'tag' 06 00000000",
     WIRE_BASIC_CONSUME},
    {"basic.publish: mandatory", "003C 0028 0000 00 02'rk' 01", WIRE_BASIC_PUBLISH},
    {"basic.deliver: bit between fields", "003C 003C 03'tag' 0000000000000001 01 02'ex' 02'rk'",
     WIRE_BASIC_DELIVER},
    {"basic.nack: requeue only", "003C 0078 0000000000000005 02", WIRE_BASIC_NACK},
    {"basic.get_empty: reserved shortstr", "003C 0048 00", WIRE_BASIC_GET_EMPTY},
    {"confirm.select: nowait", "0055 000A 01", WIRE_CONFIRM_SELECT},
    {"tx.select: no fields", "005A 000A", WIRE_TX_SELECT},
    {"connection.blocked (RabbitMQ's)", "000A 003C 0B'low on disk'", WIRE_CONNECTION_BLOCKED},
    {"connection.unblocked (RabbitMQ's)", "000A 003D", WIRE_CONNECTION_UNBLOCKED},
    {"connection.update_secret (RabbitMQ's)", "000A 0046 00000003'tok' 06'expiry'",
     WIRE_CONNECTION_UPDATE_SECRET},
    {"access.request: realm and 5 bits (0-8's)", "001E 000A 05'/data' 1E", WIRE_ACCESS_REQUEST},
    {"access.request_ok", "001E 000B 0001", WIRE_ACCESS_REQUEST_OK},
};

START_TEST(test_method_bytes)
{
    uint8_t b[128], out[128];
    size_t n = test_unhex(method_bytes[_i].hex, b, sizeof b);
    struct wire_method m;
    struct wire_error err;
    struct wire_writer w;

    if (wire_method_decode(b, n, &m, &err) != 0)
        ck_abort_msg("%s: %s", method_bytes[_i].what, err.text);
    ck_assert_uint_eq(m.id, method_bytes[_i].id);
    wire_writer_init(&w, out, sizeof out);
    ck_assert_int_eq(wire_method_encode(&m, &w), 0);
    ck_assert_uint_eq(wire_writer_len(&w), n);
    ck_assert_mem_eq(out, b, n);
}
END_TEST

START_TEST(test_method_fields_from_bytes)
{
    uint8_t b[128];
    size_t n;
    struct wire_method m;
    struct wire_error err;

    n = test_unhex("003C 003C 03'tag' 0000000000000007 01 02'ex' 02'rk'", b, sizeof b);
    ck_assert_int_eq(wire_method_decode(b, n, &m, &err), 0);
    ck_assert(wire_str_eq(m.u.basic_deliver.consumer_tag, "tag"));
    ck_assert_uint_eq(m.u.basic_deliver.delivery_tag, 7);
    ck_assert(m.u.basic_deliver.redelivered);
    ck_assert(wire_str_eq(m.u.basic_deliver.exchange, "ex"));
    ck_assert(wire_str_eq(m.u.basic_deliver.routing_key, "rk"));

    n = test_unhex("003C 0078 0000000000000005 02", b, sizeof b);
    ck_assert_int_eq(wire_method_decode(b, n, &m, &err), 0);
    ck_assert(!m.u.basic_nack.multiple);
    ck_assert(m.u.basic_nack.requeue);

    n = test_unhex("003C 0014 0000 01'q' 03'tag' 06 00000000", b, sizeof b);
    ck_assert_int_eq(wire_method_decode(b, n, &m, &err), 0);
    ck_assert(!m.u.basic_consume.no_local);
    ck_assert(m.u.basic_consume.no_ack);
    ck_assert(m.u.basic_consume.exclusive);
    ck_assert(!m.u.basic_consume.no_wait);

    n = test_unhex("0028 000A 0000 01'e' 05'topic' 0A 00000000", b, sizeof b);
    ck_assert_int_eq(wire_method_decode(b, n, &m, &err), 0);
    ck_assert(!m.u.exchange_declare.passive);
    ck_assert(m.u.exchange_declare.durable);
    ck_assert(!m.u.exchange_declare.auto_delete);
    ck_assert(m.u.exchange_declare.internal);
    ck_assert(!m.u.exchange_declare.no_wait);

    n = test_unhex("000A 001E 07FF 00020000 003C", b, sizeof b);
    ck_assert_int_eq(wire_method_decode(b, n, &m, &err), 0);
    ck_assert_uint_eq(m.u.connection_tune.channel_max, 2047);
    ck_assert_uint_eq(m.u.connection_tune.frame_max, 131072);
    ck_assert_uint_eq(m.u.connection_tune.heartbeat, 60);

    /* Reserved fields are checked for presence, not value: old clients set insist. */
    n = test_unhex("000A 0028 01'/' 05'hosts' 01", b, sizeof b);
    ck_assert_int_eq(wire_method_decode(b, n, &m, &err), 0);
    ck_assert(wire_str_eq(m.u.connection_open.virtual_host, "/"));
    /* Unused bits of a bit octet are ignored. */
    n = test_unhex("003C 0050 0000000000000009 FE", b, sizeof b);
    ck_assert_int_eq(wire_method_decode(b, n, &m, &err), 0);
    ck_assert(!m.u.basic_ack.multiple);
}
END_TEST

static const struct {
    const char *what, *hex;
    uint16_t code;
    const char *text;
} bad_methods[] = {
    {"empty", "", WIRE_FRAME_ERROR, "method frame too short: 0 bytes"},
    {"class id only", "003C", WIRE_FRAME_ERROR, "method frame too short: 2 bytes"},
    {"unknown class", "0063 0001", WIRE_NOT_IMPLEMENTED, "unknown method class-id 99 method-id 1"},
    {"unknown method of a known class", "000A 0063", WIRE_NOT_IMPLEMENTED,
     "unknown method class-id 10 method-id 99"},
    {"access.request-ok's ticket missing", "001E 000B 00", WIRE_FRAME_ERROR,
     "cannot decode access.request_ok: field 'ticket' truncated"},
    {"unknown class 0", "0000 0000", WIRE_NOT_IMPLEMENTED, "unknown method class-id 0 method-id 0"},
    {"arguments truncated", "0032 000A 0000 02'q1' 00 000000", WIRE_FRAME_ERROR,
     "cannot decode queue.declare: field 'arguments' truncated"},
    {"arguments length past the end", "0032 000A 0000 02'q1' 00 00000010 56", WIRE_FRAME_ERROR,
     "cannot decode queue.declare: field 'arguments' truncated"},
    {"bad table in arguments", "0032 000A 0000 02'q1' 00 00000003 01'k' 5A", WIRE_FRAME_ERROR,
     "cannot decode queue.declare: field 'arguments': unknown field type 'Z' in table"},
    {"shortstr past the end", "003C 0028 0000 02'ex' 05'rk'", WIRE_FRAME_ERROR,
     "cannot decode basic.publish: field 'routing_key' truncated"},
    {"bits missing", "003C 0028 0000 00 00", WIRE_FRAME_ERROR,
     "cannot decode basic.publish: field 'mandatory' truncated"},
    {"reserved field missing", "003C 0028", WIRE_FRAME_ERROR,
     "cannot decode basic.publish: field 'reserved_1' truncated"},
    {"trailing garbage", "005A 000A 00 00 00", WIRE_FRAME_ERROR,
     "cannot decode tx.select: 3 trailing bytes"},
    {"bad client_properties", "000A 000B 00000002 01'k'", WIRE_FRAME_ERROR,
     "cannot decode connection.start_ok: field 'client_properties': value of 'k' runs past "
     "the end of the table"},
};

START_TEST(test_bad_method)
{
    uint8_t b[128];
    size_t n = test_unhex(bad_methods[_i].hex, b, sizeof b);
    struct wire_method m;
    struct wire_error err = {0};

    ck_assert_int_eq(wire_method_decode(b, n, &m, &err), -1);
    ck_assert_uint_eq(err.code, bad_methods[_i].code);
    ck_assert_str_eq(err.text, bad_methods[_i].text);
}
END_TEST

START_TEST(test_method_info)
{
    const struct wire_method_info *i;
    char name[64];

    ck_assert_uint_eq(WIRE_METHOD_COUNT, 66);
    for (unsigned k = 0; k < WIRE_METHOD_COUNT; k++) {
        i = &wire_methods[k];
        ck_assert_ptr_eq(wire_method_info(i->id), i);
        ck_assert_str_eq(wire_method_name(i->id), i->name);
        if (k > 0)
            ck_assert_uint_lt(wire_methods[k - 1].id, i->id);
        ck_assert(i->chassis != 0);
        ck_assert(i->response == 0 || i->synchronous);
        if (i->response != 0)
            ck_assert_uint_eq(WIRE_METHOD_CLASS(i->response), WIRE_METHOD_CLASS(i->id));
        ck_assert_uint_eq(WIRE_METHOD_ID(WIRE_METHOD_CLASS(i->id), WIRE_METHOD_INDEX(i->id)),
                          i->id);
    }
    ck_assert_ptr_null(wire_method_info(0x00630001));
    ck_assert_ptr_null(wire_method_info(0));
    ck_assert_str_eq(wire_method_name(0x00630001), "unknown");

    ck_assert_uint_eq(WIRE_CONNECTION_START, 0x000A000A);
    ck_assert_uint_eq(WIRE_BASIC_PUBLISH, 0x003C0028);
    ck_assert_uint_eq(WIRE_METHOD_CLASS(WIRE_BASIC_PUBLISH), WIRE_CLASS_BASIC);
    ck_assert_uint_eq(WIRE_METHOD_INDEX(WIRE_BASIC_PUBLISH), 40);
    ck_assert_uint_eq(WIRE_CONFIRM_SELECT_OK, 0x0055000B);
    ck_assert_uint_eq(WIRE_EXCHANGE_UNBIND_OK, 0x00280033);

    i = wire_method_info(WIRE_BASIC_PUBLISH);
    ck_assert_str_eq(i->name, "basic.publish");
    ck_assert(i->content && !i->synchronous);
    ck_assert_uint_eq(i->chassis, WIRE_CHASSIS_SERVER);
    i = wire_method_info(WIRE_BASIC_GET);
    ck_assert(i->synchronous && !i->content);
    ck_assert_uint_eq(i->response, WIRE_BASIC_GET_OK);
    i = wire_method_info(WIRE_BASIC_GET_OK);
    ck_assert(i->synchronous && i->content);
    ck_assert_uint_eq(i->response, 0);
    ck_assert_uint_eq(i->chassis, WIRE_CHASSIS_CLIENT);
    ck_assert_uint_eq(wire_method_info(WIRE_BASIC_DELIVER)->content, true);
    ck_assert_uint_eq(wire_method_info(WIRE_BASIC_RETURN)->content, true);
    /* Confirms: the server receives and sends basic.ack and basic.nack, and basic.cancel. */
    ck_assert_uint_eq(wire_method_info(WIRE_BASIC_ACK)->chassis,
                      WIRE_CHASSIS_SERVER | WIRE_CHASSIS_CLIENT);
    ck_assert_uint_eq(wire_method_info(WIRE_BASIC_NACK)->chassis,
                      WIRE_CHASSIS_SERVER | WIRE_CHASSIS_CLIENT);
    ck_assert_uint_eq(wire_method_info(WIRE_BASIC_CANCEL)->chassis,
                      WIRE_CHASSIS_SERVER | WIRE_CHASSIS_CLIENT);
    ck_assert_uint_eq(wire_method_info(WIRE_BASIC_REJECT)->chassis, WIRE_CHASSIS_SERVER);
    ck_assert_uint_eq(wire_method_info(WIRE_CONNECTION_START)->chassis, WIRE_CHASSIS_CLIENT);
    ck_assert_uint_eq(wire_method_info(WIRE_CONNECTION_START)->response, WIRE_CONNECTION_START_OK);
    ck_assert_uint_eq(wire_method_info(WIRE_CONNECTION_CLOSE)->response, WIRE_CONNECTION_CLOSE_OK);
    ck_assert_uint_eq(wire_method_info(WIRE_CHANNEL_FLOW_OK)->synchronous, false);
    ck_assert_uint_eq(wire_method_info(WIRE_CONFIRM_SELECT)->response, WIRE_CONFIRM_SELECT_OK);
    ck_assert_uint_eq(wire_method_info(WIRE_TX_COMMIT)->response, WIRE_TX_COMMIT_OK);
    /* RabbitMQ's methods that the XML lacks. */
    ck_assert_uint_eq(WIRE_CONNECTION_BLOCKED, 0x000A003C);
    ck_assert_uint_eq(WIRE_CONNECTION_UNBLOCKED, 0x000A003D);
    ck_assert_uint_eq(WIRE_CONNECTION_UPDATE_SECRET, 0x000A0046);
    ck_assert_uint_eq(WIRE_CONNECTION_UPDATE_SECRET_OK, 0x000A0047);
    ck_assert_uint_eq(WIRE_ACCESS_REQUEST, 0x001E000A);
    ck_assert_uint_eq(wire_method_info(WIRE_CONNECTION_BLOCKED)->chassis, WIRE_CHASSIS_CLIENT);
    ck_assert_uint_eq(wire_method_info(WIRE_CONNECTION_UPDATE_SECRET)->chassis,
                      WIRE_CHASSIS_SERVER);
    ck_assert_uint_eq(wire_method_info(WIRE_CONNECTION_UPDATE_SECRET)->response,
                      WIRE_CONNECTION_UPDATE_SECRET_OK);
    ck_assert_uint_eq(wire_method_info(WIRE_ACCESS_REQUEST)->response, WIRE_ACCESS_REQUEST_OK);

    /* Names: "<class>.<method>", '-' as '_'. */
    for (unsigned k = 0; k < WIRE_METHOD_COUNT; k++) {
        ck_assert_ptr_null(strchr(wire_methods[k].name, '-'));
        ck_assert_ptr_nonnull(strchr(wire_methods[k].name, '.'));
    }
    snprintf(name, sizeof name, "%s", wire_method_name(WIRE_BASIC_RECOVER_ASYNC));
    ck_assert_str_eq(name, "basic.recover_async");
    ck_assert_str_eq(wire_method_name(WIRE_CONNECTION_START_OK), "connection.start_ok");
}
END_TEST

static const struct {
    uint16_t code;
    const char *name;
    bool hard;
} replies[] = {
    {200, "REPLY_SUCCESS", false},
    {311, "CONTENT_TOO_LARGE", false},
    {312, "NO_ROUTE", false},
    {313, "NO_CONSUMERS", false},
    {320, "CONNECTION_FORCED", true},
    {402, "INVALID_PATH", true},
    {403, "ACCESS_REFUSED", false},
    {404, "NOT_FOUND", false},
    {405, "RESOURCE_LOCKED", false},
    {406, "PRECONDITION_FAILED", false},
    {501, "FRAME_ERROR", true},
    {502, "SYNTAX_ERROR", true},
    {503, "COMMAND_INVALID", true},
    {504, "CHANNEL_ERROR", true},
    {505, "UNEXPECTED_FRAME", true},
    {506, "RESOURCE_ERROR", true},
    {530, "NOT_ALLOWED", true},
    {540, "NOT_IMPLEMENTED", true},
    {541, "INTERNAL_ERROR", true},
    {0, NULL, false},
    {1, NULL, false},
    {206, NULL, false},
    {4096, NULL, false},
    {999, NULL, false},
};

START_TEST(test_replies)
{
    const char *name = wire_reply_name(replies[_i].code);

    if (replies[_i].name == NULL)
        ck_assert_ptr_null(name);
    else
        ck_assert_str_eq(name, replies[_i].name);
    ck_assert(wire_reply_is_hard(replies[_i].code) == replies[_i].hard);
}
END_TEST

START_TEST(test_constants)
{
    ck_assert_int_eq(WIRE_FRAME_METHOD, 1);
    ck_assert_int_eq(WIRE_FRAME_HEADER, 2);
    ck_assert_int_eq(WIRE_FRAME_BODY, 3);
    ck_assert_int_eq(WIRE_FRAME_HEARTBEAT, 8);
    ck_assert_int_eq(WIRE_FRAME_MIN_SIZE, 4096);
    ck_assert_int_eq(WIRE_FRAME_END, 206);
    ck_assert_int_eq(WIRE_REPLY_SUCCESS, 200);
    ck_assert_int_eq(WIRE_NO_ROUTE, 312);
    ck_assert_int_eq(WIRE_NOT_FOUND, 404);
    ck_assert_int_eq(WIRE_FRAME_ERROR, 501);
    ck_assert_int_eq(WIRE_NOT_IMPLEMENTED, 540);
    ck_assert_int_eq(WIRE_CLASS_CONNECTION, 10);
    ck_assert_int_eq(WIRE_CLASS_ACCESS, 30);
    ck_assert_int_eq(WIRE_CLASS_CHANNEL, 20);
    ck_assert_int_eq(WIRE_CLASS_EXCHANGE, 40);
    ck_assert_int_eq(WIRE_CLASS_QUEUE, 50);
    ck_assert_int_eq(WIRE_CLASS_BASIC, 60);
    ck_assert_int_eq(WIRE_CLASS_CONFIRM, 85);
    ck_assert_int_eq(WIRE_CLASS_TX, 90);
}
END_TEST

/* ---- basic properties ---- */

/* Property sets by flags: none, all 14, each alone, and mixtures. */
static const uint16_t prop_masks[] = {
    0x0000, 0xFFFC, 0x8000, 0x4000, 0x2000, 0x1000, 0x0800, 0x0400, 0x0200, 0x0100, 0x0080,
    0x0040, 0x0020, 0x0010, 0x0008, 0x0004, 0x9000, 0x2040, 0xAAA8, 0x5554, 0x1004, 0x3000,
};

START_TEST(test_props_roundtrip)
{
    uint16_t mask = prop_masks[_i];
    struct wire_basic_props pr, d;
    struct wire_writer w;
    struct wire_error err = {0};
    static uint8_t buf[4096];
    size_t n;

    for (unsigned pattern = 0; pattern < 4; pattern++) {
        memset(&pr, 0, sizeof pr);
        fill_fields(&pr, wire_basic_props_fields, WIRE_BASIC_PROPS_COUNT, pattern);
        for (unsigned j = 0; j < WIRE_BASIC_PROPS_COUNT; j++) /* absent means zero */
            if ((mask & wire_basic_props_fields[j].flag) == 0)
                fill_fields(&pr, &wire_basic_props_fields[j], 1, 2);
        pr.flags = mask;
        wire_writer_init(&w, buf, sizeof buf);
        ck_assert_int_eq(wire_basic_props_encode(&pr, &w), 0);
        n = wire_writer_len(&w);
        ck_assert_uint_eq(buf[0], mask >> 8);
        ck_assert_uint_eq(buf[1], mask & 0xFF);
        memset(&d, 0xA5, sizeof d);
        if (wire_basic_props_decode(buf, n, &d, &err) != 0)
            ck_abort_msg("flags 0x%04X: %s", mask, err.text);
        ck_assert_uint_eq(d.flags, mask);
        for (unsigned j = 0; j < WIRE_BASIC_PROPS_COUNT; j++)
            ck_assert_msg(wiretest_field_same(&wire_basic_props_fields[j], &pr, &d),
                          "flags 0x%04X: %s differs", mask, wire_basic_props_fields[j].name);
        /* Every cut fails. */
        for (size_t k = 0; k < n; k++) {
            ck_assert_int_eq(wire_basic_props_decode(buf, k, &d, &err), -1);
            ck_assert_uint_eq(err.code, WIRE_FRAME_ERROR);
        }
        buf[n] = 0;
        ck_assert_int_eq(wire_basic_props_decode(buf, n + 1, &d, &err), -1);
        ck_assert_str_eq(err.text, "cannot decode basic properties: 1 trailing bytes");
    }
}
END_TEST

START_TEST(test_props_layout)
{
    static const char *names[] = {
        "content_type",   "content_encoding", "headers",    "delivery_mode", "priority",
        "correlation_id", "reply_to",         "expiration", "message_id",    "timestamp",
        "type",           "user_id",          "app_id",     "cluster_id",
    };
    uint8_t b[64];
    size_t n;
    struct wire_basic_props pr;
    struct wire_error err;

    ck_assert_uint_eq(WIRE_BASIC_PROPS_COUNT, 14);
    for (unsigned j = 0; j < 14; j++) {
        ck_assert_str_eq(wire_basic_props_fields[j].name, names[j]);
        ck_assert_uint_eq(wire_basic_props_fields[j].flag, 0x8000 >> j);
    }
    ck_assert_uint_eq(WIRE_BASIC_CONTENT_TYPE_FLAG, 0x8000);
    ck_assert_uint_eq(WIRE_BASIC_DELIVERY_MODE_FLAG, 0x1000);
    ck_assert_uint_eq(WIRE_BASIC_CLUSTER_ID_FLAG, 0x0004);

    /* Known bytes: delivery-mode 2, content-type "text/plain" and a timestamp. */
    n = test_unhex("9040 0A'text/plain' 02 000000006553F100", b, sizeof b);
    ck_assert_int_eq(wire_basic_props_decode(b, n, &pr, &err), 0);
    ck_assert_uint_eq(pr.flags, 0x9040);
    ck_assert(wire_str_eq(pr.content_type, "text/plain"));
    ck_assert_uint_eq(pr.delivery_mode, 2);
    ck_assert_uint_eq(pr.timestamp, 1700000000);
    ck_assert_uint_eq(pr.priority, 0);
    ck_assert_uint_eq(pr.headers.len, 0);
}
END_TEST

static const struct {
    const char *what, *hex;
    int rc;
    uint16_t flags;
    const char *text;
} props_cases[] = {
    {"a continuation word with no properties", "1001 0000 02", 0, 0x1000, NULL},
    {"two continuation words", "0001 0001 0000", 0, 0x0000, NULL},
    {"bit 1 is no property", "0002", -1, 0,
     "cannot decode basic properties: unknown property flags 0x0002"},
    {"properties in a continuation word", "8001 0100 01'a'", -1, 0,
     "cannot decode basic properties: unknown property flags 0x0100"},
    {"continuation word missing", "8001", -1, 0,
     "cannot decode basic properties: field 'property_flags' truncated"},
    {"no flags at all", "", -1, 0,
     "cannot decode basic properties: field 'property_flags' truncated"},
    {"flagged property missing", "0800", -1, 0,
     "cannot decode basic properties: field 'priority' truncated"},
    {"shortstr past the end", "8000 05'abc'", -1, 0,
     "cannot decode basic properties: field 'content_type' truncated"},
    {"bad headers table", "2000 00000002 01'k'", -1, 0,
     "cannot decode basic properties: field 'headers': value of 'k' runs past the end of the "
     "table"},
    {"headers length past the end", "2000 00000009 01'k' 56", -1, 0,
     "cannot decode basic properties: field 'headers' truncated"},
    {"trailing bytes", "0000 00", -1, 0, "cannot decode basic properties: 1 trailing bytes"},
};

START_TEST(test_props_cases)
{
    uint8_t b[64];
    size_t n = test_unhex(props_cases[_i].hex, b, sizeof b);
    struct wire_basic_props pr;
    struct wire_error err = {0};
    int rc = wire_basic_props_decode(b, n, &pr, &err);

    ck_assert_msg(rc == props_cases[_i].rc, "%s: rc %d (%s)", props_cases[_i].what, rc, err.text);
    if (rc == 0) {
        ck_assert_uint_eq(pr.flags, props_cases[_i].flags);
    } else {
        ck_assert_uint_eq(err.code, WIRE_FRAME_ERROR);
        ck_assert_str_eq(err.text, props_cases[_i].text);
    }
}
END_TEST

static Suite *
wire_suite(void)
{
    Suite *s = suite_create("wire");
    TCase *tc = tcase_create("primitives");
    const char *fork = getenv("CK_FORK");

    tcase_add_test(tc, test_reader_ints);
    tcase_add_test(tc, test_reader_strings);
    tcase_add_test(tc, test_writer);
    /* An abort can only be caught in a forked test. */
    if (fork == NULL || strcmp(fork, "no") != 0)
        tcase_add_test_raise_signal(tc, test_shortstr_too_long, SIGABRT);
    suite_add_tcase(s, tc);

    tc = tcase_create("tables");
    tcase_add_loop_test(tc, test_good_table, 0, N_ELEMS(good_tables));
    tcase_add_loop_test(tc, test_bad_table, 0, N_ELEMS(bad_tables));
    tcase_add_loop_test(tc, test_table_depth, 0, 2);
    tcase_add_test(tc, test_table_truncated);
    tcase_add_test(tc, test_table_build_and_get);
    tcase_add_loop_test(tc, test_value_to_i64, 0, N_ELEMS(to_i64));
    tcase_add_test(tc, test_iter_unvalidated);
    suite_add_tcase(s, tc);

    tc = tcase_create("methods");
    tcase_add_unchecked_fixture(tc, setup_tables, NULL);
    tcase_add_loop_test(tc, test_method_roundtrip, 0, WIRE_METHOD_COUNT * 4);
    tcase_add_loop_test(tc, test_method_truncated, 0, WIRE_METHOD_COUNT);
    tcase_add_test(tc, test_method_bytes_queue_declare);
    tcase_add_loop_test(tc, test_method_bytes, 0, N_ELEMS(method_bytes));
    tcase_add_test(tc, test_method_fields_from_bytes);
    tcase_add_loop_test(tc, test_bad_method, 0, N_ELEMS(bad_methods));
    tcase_add_test(tc, test_method_info);
    tcase_add_loop_test(tc, test_replies, 0, N_ELEMS(replies));
    tcase_add_test(tc, test_constants);
    suite_add_tcase(s, tc);

    tc = tcase_create("properties");
    tcase_add_unchecked_fixture(tc, setup_tables, NULL);
    tcase_add_loop_test(tc, test_props_roundtrip, 0, N_ELEMS(prop_masks));
    tcase_add_test(tc, test_props_layout);
    tcase_add_loop_test(tc, test_props_cases, 0, N_ELEMS(props_cases));
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(wire_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
