/* AMQP 0-9-1 wire primitives: big-endian integers, short and long strings, and field tables
 * and arrays, read through a bounded reader and written through a bounded writer. Field
 * tables stay in their encoded form: wire_table_validate() checks every entry once (type tags,
 * lengths, nesting depth) when the table arrives, and the iterators walk validated bytes on
 * demand. Nothing here allocates or trusts a length read from the peer. */
#include "config.h"

#include "warren/wire.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "warren/assert.h"
#include "warren/wire_gen.h"

int
wire_fail(struct wire_error *err, uint16_t code, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return -1;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof err->text, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- reading ---- */

static size_t
left(const struct wire_reader *r)
{
    return (size_t)(r->end - r->p);
}

int
wire_get_u8(struct wire_reader *r, uint8_t *v)
{
    if (left(r) < 1)
        return -1;
    *v = r->p[0];
    r->p += 1;
    return 0;
}

int
wire_get_u16(struct wire_reader *r, uint16_t *v)
{
    if (left(r) < 2)
        return -1;
    *v = (uint16_t)(r->p[0] << 8 | r->p[1]);
    r->p += 2;
    return 0;
}

int
wire_get_u32(struct wire_reader *r, uint32_t *v)
{
    if (left(r) < 4)
        return -1;
    *v = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
    r->p += 4;
    return 0;
}

int
wire_get_u64(struct wire_reader *r, uint64_t *v)
{
    uint64_t x = 0;

    if (left(r) < 8)
        return -1;
    for (int i = 0; i < 8; i++)
        x = x << 8 | r->p[i];
    *v = x;
    r->p += 8;
    return 0;
}

int
wire_get_shortstr(struct wire_reader *r, struct wire_str *s)
{
    size_t len;

    if (left(r) < 1)
        return -1;
    len = r->p[0];
    if (left(r) - 1 < len)
        return -1;
    s->ptr = r->p + 1;
    s->len = (uint32_t)len;
    r->p += 1 + len;
    return 0;
}

int
wire_get_longstr(struct wire_reader *r, struct wire_str *s)
{
    struct wire_reader t = *r;
    uint32_t len;

    if (wire_get_u32(&t, &len) < 0 || left(&t) < len)
        return -1;
    s->ptr = t.p;
    s->len = len;
    r->p = t.p + len;
    return 0;
}

int
wire_get_table(struct wire_reader *r, struct wire_table *t, struct wire_error *err)
{
    struct wire_reader x = *r;
    uint32_t len;

    if (wire_get_u32(&x, &len) < 0 || left(&x) < len)
        return wire_fail(err, WIRE_FRAME_ERROR, "field table truncated");
    if (wire_table_validate(x.p, len, 0, err) < 0)
        return -1;
    t->ptr = x.p;
    t->len = len;
    r->p = x.p + len;
    return 0;
}

/* ---- writing ---- */

void
wire_writer_init(struct wire_writer *w, uint8_t *buf, size_t cap)
{
    w->start = buf;
    w->p = buf;
    w->end = buf != NULL ? buf + cap : NULL;
    w->overflow = false;
}

size_t
wire_writer_len(const struct wire_writer *w)
{
    return (size_t)(w->p - w->start);
}

/* Room for n more bytes? Sets overflow if not; once overflowed, a writer takes nothing more. */
static bool
room(struct wire_writer *w, size_t n)
{
    if (w->overflow || (size_t)(w->end - w->p) < n) {
        w->overflow = true;
        return false;
    }
    return true;
}

static void
put_be(struct wire_writer *w, uint64_t v, int n)
{
    if (!room(w, (size_t)n))
        return;
    for (int i = n - 1; i >= 0; i--) {
        w->p[i] = (uint8_t)v;
        v >>= 8;
    }
    w->p += n;
}

void
wire_put_u8(struct wire_writer *w, uint8_t v)
{
    put_be(w, v, 1);
}

void
wire_put_u16(struct wire_writer *w, uint16_t v)
{
    put_be(w, v, 2);
}

void
wire_put_u32(struct wire_writer *w, uint32_t v)
{
    put_be(w, v, 4);
}

void
wire_put_u64(struct wire_writer *w, uint64_t v)
{
    put_be(w, v, 8);
}

void
wire_put_bytes(struct wire_writer *w, const void *p, size_t n)
{
    if (!room(w, n) || n == 0)
        return;
    memcpy(w->p, p, n);
    w->p += n;
}

void
wire_put_shortstr(struct wire_writer *w, struct wire_str s)
{
    WR_ASSERT(s.len <= 255);
    if (!room(w, 1 + (size_t)s.len))
        return;
    wire_put_u8(w, (uint8_t)s.len);
    wire_put_bytes(w, s.ptr, s.len);
}

void
wire_put_longstr(struct wire_writer *w, struct wire_str s)
{
    if (!room(w, 4 + (size_t)s.len))
        return;
    wire_put_u32(w, s.len);
    wire_put_bytes(w, s.ptr, s.len);
}

void
wire_put_table(struct wire_writer *w, struct wire_table t)
{
    if (!room(w, 4 + (size_t)t.len))
        return;
    wire_put_u32(w, t.len);
    wire_put_bytes(w, t.ptr, t.len);
}

static void
put_key(struct wire_writer *w, const char *key, uint8_t type)
{
    size_t len = strlen(key);

    WR_ASSERT(len <= 255);
    wire_put_shortstr(w, (struct wire_str){(const uint8_t *)key, (uint32_t)len});
    wire_put_u8(w, type);
}

void
wire_table_put_bool(struct wire_writer *w, const char *key, bool v)
{
    put_key(w, key, WIRE_FIELD_BOOL);
    wire_put_u8(w, v ? 1 : 0);
}

void
wire_table_put_longstr(struct wire_writer *w, const char *key, struct wire_str v)
{
    put_key(w, key, WIRE_FIELD_LONGSTR);
    wire_put_longstr(w, v);
}

void
wire_table_put_i64(struct wire_writer *w, const char *key, int64_t v)
{
    put_key(w, key, WIRE_FIELD_I64);
    wire_put_u64(w, (uint64_t)v);
}

void
wire_table_put_timestamp(struct wire_writer *w, const char *key, uint64_t v)
{
    put_key(w, key, WIRE_FIELD_TIMESTAMP);
    wire_put_u64(w, v);
}

/* Writes the placeholder length of a table or array just begun; returns its position. */
static size_t
put_len_mark(struct wire_writer *w)
{
    size_t mark = wire_writer_len(w);

    wire_put_u32(w, 0); /* patched by wire_table_put_table_end() */
    return mark;
}

size_t
wire_table_put_array_begin(struct wire_writer *w, const char *key)
{
    put_key(w, key, WIRE_FIELD_ARRAY);
    return put_len_mark(w);
}

void
wire_array_put_longstr(struct wire_writer *w, struct wire_str v)
{
    wire_put_u8(w, WIRE_FIELD_LONGSTR);
    wire_put_longstr(w, v);
}

size_t
wire_array_put_table_begin(struct wire_writer *w)
{
    wire_put_u8(w, WIRE_FIELD_TABLE);
    return put_len_mark(w);
}

size_t
wire_table_put_table_begin(struct wire_writer *w, const char *key)
{
    put_key(w, key, WIRE_FIELD_TABLE);
    return put_len_mark(w);
}

void
wire_table_put_table_end(struct wire_writer *w, size_t mark)
{
    size_t len;
    uint8_t *p;

    if (w->overflow)
        return;
    WR_ASSERT(mark + 4 <= wire_writer_len(w));
    len = wire_writer_len(w) - mark - 4;
    WR_ASSERT(len <= UINT32_MAX);
    p = w->start + mark;
    p[0] = (uint8_t)(len >> 24);
    p[1] = (uint8_t)(len >> 16);
    p[2] = (uint8_t)(len >> 8);
    p[3] = (uint8_t)len;
}

/* ---- field values ---- */

enum value_status {
    VALUE_OK = 0,
    VALUE_TRUNCATED,
    VALUE_UNKNOWN_TYPE,
};

/* Reads one type tag and value. On VALUE_UNKNOWN_TYPE, v->type holds the tag. */
static enum value_status
get_value(struct wire_reader *r, struct wire_value *v)
{
    uint8_t tag, u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    struct wire_str s;

    if (wire_get_u8(r, &tag) < 0)
        return VALUE_TRUNCATED;
    v->type = (enum wire_field_type)tag;
    switch (tag) {
    case WIRE_FIELD_BOOL:
        if (wire_get_u8(r, &u8) < 0)
            return VALUE_TRUNCATED;
        v->v.b = u8 != 0;
        return VALUE_OK;
    case WIRE_FIELD_I8:
        if (wire_get_u8(r, &u8) < 0)
            return VALUE_TRUNCATED;
        v->v.i = (int8_t)u8;
        return VALUE_OK;
    case WIRE_FIELD_U8:
        if (wire_get_u8(r, &u8) < 0)
            return VALUE_TRUNCATED;
        v->v.u = u8;
        return VALUE_OK;
    case WIRE_FIELD_I16:
        if (wire_get_u16(r, &u16) < 0)
            return VALUE_TRUNCATED;
        v->v.i = (int16_t)u16;
        return VALUE_OK;
    case WIRE_FIELD_U16:
        if (wire_get_u16(r, &u16) < 0)
            return VALUE_TRUNCATED;
        v->v.u = u16;
        return VALUE_OK;
    case WIRE_FIELD_I32:
        if (wire_get_u32(r, &u32) < 0)
            return VALUE_TRUNCATED;
        v->v.i = (int32_t)u32;
        return VALUE_OK;
    case WIRE_FIELD_U32:
        if (wire_get_u32(r, &u32) < 0)
            return VALUE_TRUNCATED;
        v->v.u = u32;
        return VALUE_OK;
    case WIRE_FIELD_I64:
        if (wire_get_u64(r, &u64) < 0)
            return VALUE_TRUNCATED;
        v->v.i = (int64_t)u64;
        return VALUE_OK;
    case WIRE_FIELD_TIMESTAMP:
        if (wire_get_u64(r, &u64) < 0)
            return VALUE_TRUNCATED;
        v->v.u = u64;
        return VALUE_OK;
    case WIRE_FIELD_FLOAT:
        if (wire_get_u32(r, &u32) < 0)
            return VALUE_TRUNCATED;
        memcpy(&v->v.f, &u32, sizeof v->v.f);
        return VALUE_OK;
    case WIRE_FIELD_DOUBLE:
        if (wire_get_u64(r, &u64) < 0)
            return VALUE_TRUNCATED;
        memcpy(&v->v.d, &u64, sizeof v->v.d);
        return VALUE_OK;
    case WIRE_FIELD_DECIMAL:
        if (left(r) < 5)
            return VALUE_TRUNCATED;
        v->v.dec.scale = r->p[0];
        r->p += 1;
        if (wire_get_u32(r, &u32) < 0)
            return VALUE_TRUNCATED;
        v->v.dec.value = (int32_t)u32;
        return VALUE_OK;
    case WIRE_FIELD_LONGSTR:
    case WIRE_FIELD_BYTES:
        if (wire_get_longstr(r, &v->v.str) < 0)
            return VALUE_TRUNCATED;
        return VALUE_OK;
    case WIRE_FIELD_TABLE:
        if (wire_get_longstr(r, &s) < 0)
            return VALUE_TRUNCATED;
        v->v.table = (struct wire_table){s.ptr, s.len};
        return VALUE_OK;
    case WIRE_FIELD_ARRAY:
        /* RabbitMQ's errata: the length is the array's size in bytes, not its entry count. */
        if (wire_get_longstr(r, &s) < 0)
            return VALUE_TRUNCATED;
        v->v.array = (struct wire_array){s.ptr, s.len};
        return VALUE_OK;
    case WIRE_FIELD_VOID:
        return VALUE_OK;
    default:
        return VALUE_UNKNOWN_TYPE;
    }
}

/* Renders a peer's table key for a reply text: at most 64 bytes, non-printables as '?'. */
static const char *
key_text(char *buf, size_t cap, struct wire_str key)
{
    size_t n = key.len < cap - 1 ? key.len : cap - 1;

    for (size_t i = 0; i < n; i++)
        buf[i] = key.ptr[i] >= 0x20 && key.ptr[i] < 0x7f ? (char)key.ptr[i] : '?';
    buf[n] = '\0';
    return buf;
}

static int array_validate(const uint8_t *p, uint32_t n, int depth, struct wire_error *err);

/* Reads one value of a table (key set) or of an array (key NULL) at nesting depth `depth`,
 * checking nested tables and arrays at depth + 1. */
static int
value_validate(struct wire_reader *r, const struct wire_str *key, int depth, struct wire_error *err)
{
    const char *in = key != NULL ? "table" : "array";
    struct wire_value v;
    char kbuf[65];
    unsigned tag;

    switch (get_value(r, &v)) {
    case VALUE_OK:
        break;
    case VALUE_TRUNCATED:
        if (key != NULL)
            return wire_fail(err, WIRE_FRAME_ERROR, "value of '%s' runs past the end of the table",
                             key_text(kbuf, sizeof kbuf, *key));
        return wire_fail(err, WIRE_FRAME_ERROR, "array value runs past the end of the array");
    case VALUE_UNKNOWN_TYPE:
        tag = (unsigned)v.type;
        if (tag >= 0x21 && tag < 0x7f)
            return wire_fail(err, WIRE_FRAME_ERROR, "unknown field type '%c' in %s", (char)tag, in);
        return wire_fail(err, WIRE_FRAME_ERROR, "unknown field type 0x%02X in %s", tag, in);
    }
    if (v.type == WIRE_FIELD_TABLE)
        return wire_table_validate(v.v.table.ptr, v.v.table.len, depth + 1, err);
    if (v.type == WIRE_FIELD_ARRAY)
        return array_validate(v.v.array.ptr, v.v.array.len, depth + 1, err);
    return 0;
}

static int
too_deep(struct wire_error *err)
{
    return wire_fail(err, WIRE_FRAME_ERROR, "table nested deeper than %d levels",
                     WIRE_TABLE_MAX_DEPTH);
}

int
wire_table_validate(const uint8_t *p, uint32_t n, int depth, struct wire_error *err)
{
    struct wire_reader r = {p, n != 0 ? p + n : p}; /* NULL + 0 is undefined */
    struct wire_str key;

    if (depth > WIRE_TABLE_MAX_DEPTH)
        return too_deep(err);
    while (r.p < r.end) {
        if (wire_get_shortstr(&r, &key) < 0)
            return wire_fail(err, WIRE_FRAME_ERROR, "table key runs past the end of the table");
        if (value_validate(&r, &key, depth, err) < 0)
            return -1;
    }
    return 0;
}

static int
array_validate(const uint8_t *p, uint32_t n, int depth, struct wire_error *err)
{
    struct wire_reader r = {p, n != 0 ? p + n : p}; /* NULL + 0 is undefined */

    if (depth > WIRE_TABLE_MAX_DEPTH)
        return too_deep(err);
    while (r.p < r.end)
        if (value_validate(&r, NULL, depth, err) < 0)
            return -1;
    return 0;
}

/* ---- walking ---- */

void
wire_table_iter_init(struct wire_table_iter *it, struct wire_table t)
{
    it->p = t.ptr;
    it->end = t.ptr != NULL ? t.ptr + t.len : NULL;
}

/* The iterators check bounds anyway: an unvalidated table ends the walk, never the process. */
bool
wire_table_next(struct wire_table_iter *it, struct wire_str *key, struct wire_value *val)
{
    struct wire_reader r = {it->p, it->end};

    if (r.p == r.end || wire_get_shortstr(&r, key) < 0 || get_value(&r, val) != VALUE_OK) {
        it->p = it->end;
        return false;
    }
    it->p = r.p;
    return true;
}

bool
wire_table_get(struct wire_table t, const char *key, struct wire_value *val)
{
    struct wire_table_iter it;
    struct wire_str k;

    wire_table_iter_init(&it, t);
    while (wire_table_next(&it, &k, val))
        if (wire_str_eq(k, key))
            return true;
    return false;
}

void
wire_array_iter_init(struct wire_table_iter *it, struct wire_array a)
{
    it->p = a.ptr;
    it->end = a.ptr != NULL ? a.ptr + a.len : NULL;
}

bool
wire_array_next(struct wire_table_iter *it, struct wire_value *val)
{
    struct wire_reader r = {it->p, it->end};

    if (r.p == r.end || get_value(&r, val) != VALUE_OK) {
        it->p = it->end;
        return false;
    }
    it->p = r.p;
    return true;
}

bool
wire_value_to_i64(const struct wire_value *val, int64_t *out)
{
    switch (val->type) {
    case WIRE_FIELD_I8:
    case WIRE_FIELD_I16:
    case WIRE_FIELD_I32:
    case WIRE_FIELD_I64:
        *out = val->v.i;
        return true;
    case WIRE_FIELD_U8:
    case WIRE_FIELD_U16:
    case WIRE_FIELD_U32:
    case WIRE_FIELD_TIMESTAMP:
        if (val->v.u > INT64_MAX)
            return false;
        *out = (int64_t)val->v.u;
        return true;
    default:
        return false;
    }
}

const char *
wire_field_type_name(enum wire_field_type t)
{
    static const char *const names[128] = {
        [WIRE_FIELD_BOOL] = "bool",           [WIRE_FIELD_I8] = "byte",
        [WIRE_FIELD_U8] = "unsignedbyte",     [WIRE_FIELD_I16] = "short",
        [WIRE_FIELD_U16] = "unsignedshort",   [WIRE_FIELD_I32] = "signedint",
        [WIRE_FIELD_U32] = "unsignedint",     [WIRE_FIELD_I64] = "long",
        [WIRE_FIELD_FLOAT] = "float",         [WIRE_FIELD_DOUBLE] = "double",
        [WIRE_FIELD_DECIMAL] = "decimal",     [WIRE_FIELD_LONGSTR] = "longstr",
        [WIRE_FIELD_BYTES] = "binary",        [WIRE_FIELD_ARRAY] = "array",
        [WIRE_FIELD_TIMESTAMP] = "timestamp", [WIRE_FIELD_TABLE] = "table",
        [WIRE_FIELD_VOID] = "void",
    };
    return (unsigned)t < 128 && names[t] != NULL ? names[t] : "unknown";
}

bool
wire_str_eq(struct wire_str s, const char *cstr)
{
    size_t n = strlen(cstr);

    return s.len == n && (n == 0 || memcmp(s.ptr, cstr, n) == 0);
}
