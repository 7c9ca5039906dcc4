/* libFuzzer target for the AMQP codec. The input is what a client sends after the protocol
 * header: frames are split with frame_parse() (frame_max 131072), method frames decoded with
 * wire_method_decode(), content headers with frame_content_header_decode() and
 * wire_basic_props_decode(). Everything decoded is then checked the hard way: every field
 * table and array is walked recursively and re-encoded byte for byte, every method is
 * re-encoded, framed with frame_write_method(), parsed and decoded again and must come back
 * equal, and so must the basic properties. Any disagreement aborts. The same file is linked
 * into tests/fuzz/fuzz_frame_replay, which `make check` runs over the corpus and crashers. */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "warren/frame.h"
#include "warren/wire.h"
#include "warren/wire_gen.h"
#include "wiretest.h"

#define FUZZ_FRAME_MAX 131072

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void put_value(struct wire_writer *w, const struct wire_value *v, int depth);

/* Walks a validated table (is_array false) or array, re-encoding every entry into w;
 * the result must equal the original bytes. */
static void
walk(const uint8_t *p, uint32_t len, bool is_array, int depth, struct wire_writer *w)
{
    struct wire_table_iter it;
    struct wire_value v;
    struct wire_str key;
    int64_t i64;

    CHECK(depth <= WIRE_TABLE_MAX_DEPTH);
    if (is_array)
        wire_array_iter_init(&it, (struct wire_array){p, len});
    else
        wire_table_iter_init(&it, (struct wire_table){p, len});
    for (;;) {
        if (is_array) {
            if (!wire_array_next(&it, &v))
                break;
        } else {
            if (!wire_table_next(&it, &key, &v))
                break;
            wire_put_shortstr(w, key);
        }
        (void)wire_value_to_i64(&v, &i64);
        put_value(w, &v, depth);
    }
}

static void
put_nested(struct wire_writer *w, const uint8_t *p, uint32_t len, bool is_array, int depth)
{
    size_t mark = wire_writer_len(w), start;

    wire_put_u32(w, 0);
    start = wire_writer_len(w);
    walk(p, len, is_array, depth + 1, w);
    CHECK(!w->overflow);
    CHECK(wire_writer_len(w) - start == len);
    w->start[mark] = (uint8_t)(len >> 24);
    w->start[mark + 1] = (uint8_t)(len >> 16);
    w->start[mark + 2] = (uint8_t)(len >> 8);
    w->start[mark + 3] = (uint8_t)len;
}

static void
put_value(struct wire_writer *w, const struct wire_value *v, int depth)
{
    uint32_t u32;
    uint64_t u64;

    wire_put_u8(w, (uint8_t)v->type);
    switch (v->type) {
    case WIRE_FIELD_BOOL:
        /* Any non-zero octet is true; re-encoding writes 1. */
        wire_put_u8(w, v->v.b ? 1 : 0);
        break;
    case WIRE_FIELD_I8:
        wire_put_u8(w, (uint8_t)v->v.i);
        break;
    case WIRE_FIELD_U8:
        wire_put_u8(w, (uint8_t)v->v.u);
        break;
    case WIRE_FIELD_I16:
        wire_put_u16(w, (uint16_t)v->v.i);
        break;
    case WIRE_FIELD_U16:
        wire_put_u16(w, (uint16_t)v->v.u);
        break;
    case WIRE_FIELD_I32:
        wire_put_u32(w, (uint32_t)v->v.i);
        break;
    case WIRE_FIELD_U32:
        wire_put_u32(w, (uint32_t)v->v.u);
        break;
    case WIRE_FIELD_I64:
        wire_put_u64(w, (uint64_t)v->v.i);
        break;
    case WIRE_FIELD_TIMESTAMP:
        wire_put_u64(w, v->v.u);
        break;
    case WIRE_FIELD_FLOAT:
        memcpy(&u32, &v->v.f, 4);
        wire_put_u32(w, u32);
        break;
    case WIRE_FIELD_DOUBLE:
        memcpy(&u64, &v->v.d, 8);
        wire_put_u64(w, u64);
        break;
    case WIRE_FIELD_DECIMAL:
        wire_put_u8(w, v->v.dec.scale);
        wire_put_u32(w, (uint32_t)v->v.dec.value);
        break;
    case WIRE_FIELD_LONGSTR:
    case WIRE_FIELD_BYTES:
        wire_put_longstr(w, v->v.str);
        break;
    case WIRE_FIELD_TABLE:
        put_nested(w, v->v.table.ptr, v->v.table.len, false, depth);
        break;
    case WIRE_FIELD_ARRAY:
        put_nested(w, v->v.array.ptr, v->v.array.len, true, depth);
        break;
    case WIRE_FIELD_VOID:
        break;
    }
}

/* Walks a table that came out of a decoder, re-encoding it entry by entry. The copy has the
 * same length and is valid; walking the copy gives the copy again byte for byte (the original
 * may differ only in booleans other than 0 and 1, which re-encode as 1). */
static void
check_table(struct wire_table t)
{
    struct wire_writer w;
    struct wire_error err;
    struct wire_table_iter it;
    struct wire_value v, got;
    struct wire_str key;
    uint8_t *b1 = malloc(t.len + 1u), *b2 = malloc(t.len + 1u);
    char name[256];

    CHECK(b1 != NULL && b2 != NULL);
    CHECK(wire_table_validate(t.ptr, t.len, 0, &err) == 0);
    wire_writer_init(&w, b1, t.len);
    walk(t.ptr, t.len, false, 0, &w);
    CHECK(!w.overflow && wire_writer_len(&w) == t.len);
    CHECK(wire_table_validate(b1, t.len, 0, &err) == 0);
    wire_writer_init(&w, b2, t.len);
    walk(b1, t.len, false, 0, &w);
    CHECK(!w.overflow && wire_writer_len(&w) == t.len);
    CHECK(t.len == 0 || memcmp(b1, b2, t.len) == 0);
    /* wire_table_get finds the first key. */
    wire_table_iter_init(&it, t);
    if (wire_table_next(&it, &key, &v) && (key.len == 0 || memchr(key.ptr, 0, key.len) == NULL)) {
        if (key.len > 0)
            memcpy(name, key.ptr, key.len);
        name[key.len] = '\0';
        CHECK(wire_table_get(t, name, &got));
        CHECK(got.type == v.type);
    }
    free(b1);
    free(b2);
}

static void
check_tables(const struct wire_field_info *fields, unsigned n, const void *base)
{
    for (unsigned i = 0; i < n; i++)
        if (!fields[i].reserved && fields[i].type == WIRE_TYPE_TABLE)
            check_table(*(const struct wire_table *)((const char *)base + fields[i].offset));
}

static void
check_method(const uint8_t *p, size_t n)
{
    const struct wire_method_info *info;
    struct wire_method m, m2, m3;
    struct wire_error err;
    struct wire_writer w;
    struct evbuffer *out;
    struct frame f;
    uint8_t *buf, *buf2;
    size_t len, need, flen;
    const uint8_t *fp;

    if (wire_method_decode(p, n, &m, &err) < 0) {
        CHECK(err.code == WIRE_FRAME_ERROR || err.code == WIRE_NOT_IMPLEMENTED);
        CHECK(err.text[0] != '\0');
        return;
    }
    info = wire_method_info(m.id);
    CHECK(info != NULL && info->id == m.id);
    CHECK(wire_method_name(m.id) == info->name);
    check_tables(info->fields, info->nfields, &m);

    /* Re-encoding never grows a method: reserved fields shrink to their minimum. */
    buf = malloc(n + 1);
    buf2 = malloc(n + 1);
    CHECK(buf != NULL && buf2 != NULL);
    wire_writer_init(&w, buf, n);
    CHECK(wire_method_encode(&m, &w) == 0);
    len = wire_writer_len(&w);
    CHECK(len <= n);
    CHECK(wire_method_decode(buf, len, &m2, &err) == 0);
    CHECK(m2.id == m.id);
    for (unsigned i = 0; i < info->nfields; i++)
        if (!info->fields[i].reserved)
            CHECK(wiretest_field_same(&info->fields[i], &m, &m2));
    wire_writer_init(&w, buf2, n);
    CHECK(wire_method_encode(&m2, &w) == 0);
    CHECK(wire_writer_len(&w) == len && memcmp(buf, buf2, len) == 0);

    /* Framed by frame_write_method, parsed and decoded again. */
    out = evbuffer_new();
    CHECK(out != NULL);
    CHECK(frame_write_method(out, 7, &m) == 0);
    flen = evbuffer_get_length(out);
    fp = evbuffer_pullup(out, -1);
    CHECK(frame_parse(fp, flen, 0, &f, &need, &err) == FRAME_OK);
    CHECK(need == flen && f.type == WIRE_FRAME_METHOD && f.channel == 7 && f.size == len);
    CHECK(memcmp(f.payload, buf, len) == 0);
    CHECK(wire_method_decode(f.payload, f.size, &m3, &err) == 0 && m3.id == m.id);
    evbuffer_free(out);
    free(buf);
    free(buf2);
}

static void
check_header(const uint8_t *p, size_t n)
{
    struct frame_content_header h;
    struct wire_basic_props pr, pr2;
    struct wire_error err;
    struct wire_writer w;
    struct evbuffer *out;
    struct frame f;
    size_t len, need, flen;
    const uint8_t *fp;
    uint8_t *buf, *buf2;

    if (frame_content_header_decode(p, n, &h, NULL, &err) < 0) {
        CHECK(err.code == WIRE_FRAME_ERROR && err.text[0] != '\0');
        return;
    }
    CHECK(h.props == p + 12 && h.props_len == n - 12);
    if (h.class_id != WIRE_CLASS_BASIC) {
        (void)wire_basic_props_decode(h.props, h.props_len, &pr, &err);
        return;
    }
    CHECK(wire_basic_props_decode(h.props, h.props_len, &pr, &err) == 0);
    CHECK((pr.flags & ~WIRE_BASIC_PROPS_KNOWN_FLAGS) == 0);
    check_tables(wire_basic_props_fields, WIRE_BASIC_PROPS_COUNT, &pr);

    buf = malloc(h.props_len + 1);
    buf2 = malloc(h.props_len + 1);
    CHECK(buf != NULL && buf2 != NULL);
    wire_writer_init(&w, buf, h.props_len);
    CHECK(wire_basic_props_encode(&pr, &w) == 0);
    len = wire_writer_len(&w);
    CHECK(wire_basic_props_decode(buf, len, &pr2, &err) == 0);
    CHECK(pr2.flags == pr.flags);
    for (unsigned i = 0; i < WIRE_BASIC_PROPS_COUNT; i++)
        CHECK(wiretest_field_same(&wire_basic_props_fields[i], &pr, &pr2));
    wire_writer_init(&w, buf2, h.props_len);
    CHECK(wire_basic_props_encode(&pr2, &w) == 0);
    CHECK(wire_writer_len(&w) == len && memcmp(buf, buf2, len) == 0);

    out = evbuffer_new();
    CHECK(out != NULL);
    CHECK(frame_write_content_header(out, 1, h.class_id, h.body_size, buf, len) == 0);
    flen = evbuffer_get_length(out);
    fp = evbuffer_pullup(out, -1);
    CHECK(frame_parse(fp, flen, 0, &f, &need, &err) == FRAME_OK && f.type == WIRE_FRAME_HEADER);
    CHECK(frame_content_header_decode(f.payload, f.size, &h, NULL, &err) == 0);
    CHECK(h.props_len == len && memcmp(h.props, buf, len) == 0);
    evbuffer_free(out);
    free(buf);
    free(buf2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wire_error err;
    struct frame f;
    size_t off = 0, need, need2;
    enum frame_status st;

    (void)frame_parse_protocol_header(data, size);
    while (off < size) {
        const uint8_t *p = data + off;
        size_t n = size - off;

        st = frame_parse(p, n, FUZZ_FRAME_MAX, &f, &need, &err);
        if (st == FRAME_AGAIN) {
            CHECK(need > n);
            break;
        }
        if (st == FRAME_ERROR) {
            CHECK(err.code == WIRE_FRAME_ERROR && err.text[0] != '\0');
            break;
        }
        CHECK(need == (size_t)f.size + FRAME_OVERHEAD && need <= n);
        CHECK(need <= FUZZ_FRAME_MAX + FRAME_OVERHEAD); /* RabbitMQ's 8-byte fudge */
        CHECK(f.payload == p + FRAME_HEADER_SIZE);
        /* One byte less must only ever mean "more, please". */
        CHECK(frame_parse(p, need - 1, FUZZ_FRAME_MAX, &f, &need2, &err) == FRAME_AGAIN);
        CHECK(need2 == (need - 1 < FRAME_HEADER_SIZE ? FRAME_HEADER_SIZE : need));
        CHECK(frame_parse(p, need, FUZZ_FRAME_MAX, &f, &need2, &err) == FRAME_OK);
        switch (f.type) {
        case WIRE_FRAME_METHOD:
            check_method(f.payload, f.size);
            break;
        case WIRE_FRAME_HEADER:
            check_header(f.payload, f.size);
            break;
        default:
            break;
        }
        off += need;
    }
    return 0;
}
