/* Messages with a header changed (include/warren/msg_props.h). */
#include "config.h"

#include "warren/msg_props.h"

#include <stdlib.h>
#include <string.h>

#include "warren/assert.h"
#include "warren/log.h"
#include "warren/msg.h"
#include "warren/wire_fields.h"

uint32_t
msg_props_headers_offset(const struct wire_basic_props *p)
{
    uint32_t off = 2 + 4;
    if (p->flags & WIRE_BASIC_CONTENT_TYPE_FLAG)
        off += 1 + p->content_type.len;
    if (p->flags & WIRE_BASIC_CONTENT_ENCODING_FLAG)
        off += 1 + p->content_encoding.len;
    return off;
}

/* Decodes m's properties into p and its headers into hdr (which the caller frees, even on
 * failure). 0, or -1 on ENOMEM or properties that do not decode (logged, saying what was
 * being done to header key). */
static int
msg_props_parse(const struct msg *m, const char *key, struct wire_basic_props *p,
                struct wire_fields *hdr)
{
    struct wire_error err;
    *p = (struct wire_basic_props){0};
    if (m->props_len > 0 && wire_basic_props_decode(m->props, m->props_len, p, &err) < 0) {
        log_msg(LOG_ERROR, "changing header %s of a message whose properties do not decode: %s",
                key, err.text);
        return -1;
    }
    return wire_fields_parse(hdr, p->headers);
}

/* A copy of m with p's properties and hdr's entries as its headers, its body shared. buf:
 * scratch room for the headers (hdr_cap bytes) and then the properties (props_cap bytes),
 * freed by the caller. One reference, the caller's; NULL on ENOMEM. */
static struct msg *
msg_props_copy(struct msg *m, struct wire_basic_props *p, const struct wire_fields *hdr,
               uint8_t *buf, size_t hdr_cap, size_t props_cap)
{
    struct wire_writer hw, pw;
    wire_writer_init(&hw, buf, hdr_cap);
    wire_writer_init(&pw, buf + hdr_cap, props_cap);
    wire_fields_write(hdr, &hw);
    p->headers = (struct wire_table){hw.start, (uint32_t)wire_writer_len(&hw)};
    p->flags |= WIRE_BASIC_HEADERS_FLAG;
    int rc = wire_basic_props_encode(p, &pw);
    WR_ASSERT(!hw.overflow && rc == 0);
    struct msg *copy =
        msg_new_sharing_body(pw.start, (uint32_t)wire_writer_len(&pw), m->delivery_mode,
                             m->priority, (struct wire_str){m->exchange, m->exchange_len},
                             (struct wire_str){m->routing_key, m->routing_key_len}, m);
    if (copy != NULL) {
        copy->expiration_ms = m->expiration_ms;
        msg_set_headers(
            copy, pw.start,
            (struct wire_table){pw.start + msg_props_headers_offset(p), p->headers.len});
    }
    return copy;
}

struct msg *
msg_with_long_header(struct msg *m, const char *key, int64_t value)
{
    struct wire_basic_props p;
    struct wire_fields hdr = {0};
    struct msg *copy = NULL;
    /* The new entry (key, 'l', 8 bytes), the headers with it, the properties with those. */
    size_t key_len = strlen(key);
    size_t entry_cap = 1 + key_len + 1 + 8;
    size_t hdr_cap = (size_t)m->props_len + entry_cap;
    size_t props_cap = (size_t)m->props_len + entry_cap + 4 + 2;
    uint8_t *buf = malloc(entry_cap + hdr_cap + props_cap);
    if (buf == NULL || msg_props_parse(m, key, &p, &hdr) < 0)
        goto done;
    struct wire_writer ew;
    wire_writer_init(&ew, buf, entry_cap);
    wire_table_put_i64(&ew, key, value);
    WR_ASSERT(!ew.overflow);
    if (wire_fields_store_written(&hdr, key, &ew, 0) < 0)
        goto done;
    wire_fields_sort(&hdr);
    copy = msg_props_copy(m, &p, &hdr, buf + entry_cap, hdr_cap, props_cap);
done:
    wire_fields_free(&hdr);
    free(buf);
    return copy;
}

struct msg *
msg_without_header(struct msg *m, const char *key)
{
    struct wire_basic_props p;
    struct wire_fields hdr = {0};
    struct msg *copy = NULL;
    /* Fewer bytes than m's properties, which hold the headers; 4 + 2 if it had none. */
    size_t cap = (size_t)m->props_len + 4 + 2;
    uint8_t *buf = malloc(2 * cap);
    if (buf == NULL || msg_props_parse(m, key, &p, &hdr) < 0)
        goto done;
    wire_fields_delete(&hdr, (struct wire_str){(const uint8_t *)key, (uint32_t)strlen(key)});
    copy = msg_props_copy(m, &p, &hdr, buf, cap, cap);
done:
    wire_fields_free(&hdr);
    free(buf);
    return copy;
}
