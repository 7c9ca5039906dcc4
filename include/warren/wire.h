/* AMQP 0-9-1 wire primitives: byte strings, field tables and arrays, and the bounded
 * reader/writer every decoder and encoder uses. Nothing here allocates: decoded values
 * borrow the bytes of the frame they came from, and writers fill a caller's buffer.
 * Field tables are kept as their validated encoded bytes and walked on demand, so a
 * message's headers pass through byte-for-byte and cost nothing unless someone looks.
 * The per-method code generated from the spec lives in wire_gen.h. */
#ifndef WARREN_WIRE_H
#define WARREN_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A byte string inside a received frame or a caller's buffer: borrows, not NUL-terminated. */
struct wire_str {
    const uint8_t *ptr;
    uint32_t len;
};
#define WIRE_STR_ARG(s) (int)(s).len, (const char *)(s).ptr
#define WIRE_STR_LIT(lit) ((struct wire_str){(const uint8_t *)(lit), sizeof(lit) - 1})

/* A field table or field array: the encoded entries without the 4-byte length prefix.
 * Borrows. Tables that came from wire_*_decode() were validated and may be walked freely. */
struct wire_table {
    const uint8_t *ptr;
    uint32_t len;
};
struct wire_array {
    const uint8_t *ptr;
    uint32_t len;
};

/* Field value type tags as RabbitMQ and its clients use them (RabbitMQ's errata, not the
 * 0-9-1 text: 's' is a signed 16-bit integer, 'l' a signed 64-bit one, 'x' a byte array). */
enum wire_field_type {
    WIRE_FIELD_BOOL = 't',
    WIRE_FIELD_I8 = 'b',
    WIRE_FIELD_U8 = 'B',
    WIRE_FIELD_I16 = 's',
    WIRE_FIELD_U16 = 'u',
    WIRE_FIELD_I32 = 'I',
    WIRE_FIELD_U32 = 'i',
    WIRE_FIELD_I64 = 'l',
    WIRE_FIELD_FLOAT = 'f',
    WIRE_FIELD_DOUBLE = 'd',
    WIRE_FIELD_DECIMAL = 'D',
    WIRE_FIELD_LONGSTR = 'S',
    WIRE_FIELD_BYTES = 'x',
    WIRE_FIELD_ARRAY = 'A',
    WIRE_FIELD_TIMESTAMP = 'T',
    WIRE_FIELD_TABLE = 'F',
    WIRE_FIELD_VOID = 'V',
};

/* Tables nested deeper than this are refused (a hostile peer could otherwise recurse the
 * validator off the stack). RabbitMQ's clients never nest more than a few levels. */
#define WIRE_TABLE_MAX_DEPTH 16

struct wire_decimal {
    uint8_t scale;
    int32_t value;
};

/* One decoded field value. Which member is set depends on type:
 * b: t;  i: b s I l;  u: B u i T;  f: f;  d: d;  dec: D;  str: S x;  table: F;  array: A. */
struct wire_value {
    enum wire_field_type type;
    union {
        bool b;
        int64_t i;
        uint64_t u;
        float f;
        double d;
        struct wire_decimal dec;
        struct wire_str str;
        struct wire_table table;
        struct wire_array array;
    } v;
};

/* Why a decode failed: the AMQP reply code to raise (501 FRAME_ERROR for malformed bytes,
 * 540 NOT_IMPLEMENTED for an unknown class or method) and a reply text a person can act on,
 * without the "NAME - " prefix, e.g. "unknown field type 'Z' in table". */
struct wire_error {
    uint16_t code;
    char text[200];
};

/* Sets err->code and formats err->text; returns -1 so decoders can `return wire_fail(...)`. */
int wire_fail(struct wire_error *err, uint16_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Bounded reader over received bytes. Every get fails (returns -1, nothing consumed) on short
 * input; none trusts a length it read. */
struct wire_reader {
    const uint8_t *p, *end;
};
int wire_get_u8(struct wire_reader *r, uint8_t *v);
int wire_get_u16(struct wire_reader *r, uint16_t *v);
int wire_get_u32(struct wire_reader *r, uint32_t *v);
int wire_get_u64(struct wire_reader *r, uint64_t *v);
int wire_get_shortstr(struct wire_reader *r, struct wire_str *s);
int wire_get_longstr(struct wire_reader *r, struct wire_str *s);
/* Reads a length-prefixed table and validates every entry (types, lengths, depth). */
int wire_get_table(struct wire_reader *r, struct wire_table *t, struct wire_error *err);

/* Bounded writer into a caller's buffer. A put that does not fit sets overflow and writes
 * nothing; callers check overflow once at the end and retry with a larger buffer. */
struct wire_writer {
    uint8_t *start, *p, *end;
    bool overflow;
};
void wire_writer_init(struct wire_writer *w, uint8_t *buf, size_t cap);
size_t wire_writer_len(const struct wire_writer *w);
void wire_put_u8(struct wire_writer *w, uint8_t v);
void wire_put_u16(struct wire_writer *w, uint16_t v);
void wire_put_u32(struct wire_writer *w, uint32_t v);
void wire_put_u64(struct wire_writer *w, uint64_t v);
void wire_put_bytes(struct wire_writer *w, const void *p, size_t n);
/* Shortstrs longer than 255 bytes are a caller bug: asserted. */
void wire_put_shortstr(struct wire_writer *w, struct wire_str s);
void wire_put_longstr(struct wire_writer *w, struct wire_str s);
/* Writes the 4-byte length and the entries of t. */
void wire_put_table(struct wire_writer *w, struct wire_table t);

/* Building a table: write entries with the wire_table_put_* calls into a writer, then take
 * wire_table{start, len}. Nested tables: m = wire_table_put_table_begin(w, key), entries,
 * wire_table_put_table_end(w, m). Arrays the same way: m = wire_table_put_array_begin(w,
 * key), values (wire_array_put_*), wire_table_put_table_end(w, m), which closes either. */
void wire_table_put_bool(struct wire_writer *w, const char *key, bool v);
void wire_table_put_longstr(struct wire_writer *w, const char *key, struct wire_str v);
void wire_table_put_i64(struct wire_writer *w, const char *key, int64_t v);
void wire_table_put_timestamp(struct wire_writer *w, const char *key, uint64_t v);
size_t wire_table_put_table_begin(struct wire_writer *w, const char *key);
size_t wire_table_put_array_begin(struct wire_writer *w, const char *key);
void wire_table_put_table_end(struct wire_writer *w, size_t mark);
/* Values of an array: a longstr; a table (entries follow, closed by wire_table_put_table_end). */
void wire_array_put_longstr(struct wire_writer *w, struct wire_str v);
size_t wire_array_put_table_begin(struct wire_writer *w);

/* Checks that p[0..n) is a well-formed sequence of table entries at nesting depth `depth`
 * (0 for a top-level table). Returns 0, or -1 with err set to 501 FRAME_ERROR. */
int wire_table_validate(const uint8_t *p, uint32_t n, int depth, struct wire_error *err);

/* Walking a validated table or array. */
struct wire_table_iter {
    const uint8_t *p, *end;
};
void wire_table_iter_init(struct wire_table_iter *it, struct wire_table t);
bool wire_table_next(struct wire_table_iter *it, struct wire_str *key, struct wire_value *val);
/* First entry named key; false if absent. */
bool wire_table_get(struct wire_table t, const char *key, struct wire_value *val);
void wire_array_iter_init(struct wire_table_iter *it, struct wire_array a);
bool wire_array_next(struct wire_table_iter *it, struct wire_value *val);

/* Any integer-typed value (b B s u I i l T) as int64; false for other types or a 'T' above
 * INT64_MAX. x-arguments arrive with whatever integer type the client library picked. */
bool wire_value_to_i64(const struct wire_value *val, int64_t *out);

/* RabbitMQ's name of a field type, as its reply texts print it ("signedint", "longstr",
 * "binary"...); "unknown" for a tag that is not one. */
const char *wire_field_type_name(enum wire_field_type t);

bool wire_str_eq(struct wire_str s, const char *cstr);

#endif
