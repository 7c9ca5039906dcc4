/* Messages: one allocation holding the properties, exchange, routing key and body, shared by
 * reference between every queue it was routed to and every delivery of it. A copy with new
 * properties (a dead-lettered message) points at its original's body instead of copying it. */
#include "config.h"

#include "warren/msg.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "warren/assert.h"

/* Freed memory at the top of the heap that glibc keeps for the next allocations rather than
 * giving it back at once; the memory alarm's periodic check trims the heap after larger
 * drops (SERVER_TRIM_AFTER_FREED). */
#define MSG_HEAP_KEEP (32u << 20)
/* Allocations from this size on are mapped and unmapped on their own: the largest glibc
 * allows (HEAP_MAX_SIZE / 2 on 64-bit hosts). */
#define MSG_HEAP_MMAP_MIN (32u << 20)

uint64_t msg_bytes_live;

int
msg_heap_setup(void)
{
    if (mallopt(M_MMAP_THRESHOLD, MSG_HEAP_MMAP_MIN) != 1 ||
        mallopt(M_TRIM_THRESHOLD, MSG_HEAP_KEEP) != 1)
        return -1;
    return 0;
}

size_t
msg_size(const struct msg *m)
{
    return sizeof(*m) + m->props_len + m->exchange_len + m->routing_key_len + m->body_len;
}

/* What m adds to msg_bytes_live: its allocation as filled so far, without a shared body
 * (its owner counts it). */
static size_t
msg_live_bytes(const struct msg *m)
{
    return msg_size(m) - (m->body_owner != NULL ? m->body_len : m->body_missing);
}

/* A message whose allocation has room for body_room bytes of body after the names; its body
 * is not filled (msg_new) or shared (msg_new_sharing_body) yet. NULL on ENOMEM or a body_len
 * above UINT32_MAX. */
static struct msg *
msg_alloc(const uint8_t *props, uint32_t props_len, uint8_t delivery_mode, uint8_t priority,
          struct wire_str exchange, struct wire_str routing_key, uint64_t body_len,
          uint64_t body_room)
{
    WR_ASSERT(exchange.len <= UINT8_MAX && routing_key.len <= UINT8_MAX); /* shortstrs */
    size_t size = sizeof(struct msg) + props_len + exchange.len + routing_key.len;
    if (body_len > UINT32_MAX || body_room > SIZE_MAX - size)
        return NULL;
    struct msg *m = malloc(size + body_room);
    if (m == NULL)
        return NULL;
    m->refs = 1;
    m->props_len = props_len;
    m->body_len = body_len;
    m->exchange_len = (uint8_t)exchange.len;
    m->routing_key_len = (uint8_t)routing_key.len;
    m->delivery_mode = delivery_mode;
    m->priority = priority;
    m->headers_off = 0;
    m->headers_len = 0;
    m->body_missing = (uint32_t)body_len;
    m->store_id = 0;
    m->expiration_ms = -1;
    m->body_owner = NULL;
    m->props = m->data;
    m->exchange = m->props + props_len;
    m->routing_key = m->exchange + exchange.len;
    m->body = m->routing_key + routing_key.len;
    if (props_len > 0)
        memcpy(m->props, props, props_len);
    if (exchange.len > 0)
        memcpy(m->exchange, exchange.ptr, exchange.len);
    if (routing_key.len > 0)
        memcpy(m->routing_key, routing_key.ptr, routing_key.len);
    return m;
}

struct msg *
msg_new(const uint8_t *props, uint32_t props_len, uint8_t delivery_mode, uint8_t priority,
        struct wire_str exchange, struct wire_str routing_key, uint64_t body_len)
{
    struct msg *m = msg_alloc(props, props_len, delivery_mode, priority, exchange, routing_key,
                              body_len, body_len);
    if (m != NULL)
        msg_bytes_live += msg_live_bytes(m);
    return m;
}

struct msg *
msg_new_sharing_body(const uint8_t *props, uint32_t props_len, uint8_t delivery_mode,
                     uint8_t priority, struct wire_str exchange, struct wire_str routing_key,
                     struct msg *src)
{
    WR_ASSERT(src->body_missing == 0);
    struct msg *owner = src->body_owner != NULL ? src->body_owner : src;
    struct msg *m = msg_alloc(props, props_len, delivery_mode, priority, exchange, routing_key,
                              src->body_len, 0);
    if (m == NULL)
        return NULL;
    m->body_missing = 0;
    m->body_owner = msg_ref(owner);
    m->body = src->body;
    msg_bytes_live += msg_live_bytes(m);
    return m;
}

void
msg_body_filled(struct msg *m, uint32_t n)
{
    WR_ASSERT(n <= m->body_missing);
    m->body_missing -= n;
    msg_bytes_live += n;
}

void
msg_set_headers(struct msg *m, const uint8_t *base, struct wire_table headers)
{
    if (headers.len == 0)
        return;
    WR_ASSERT(headers.ptr >= base && headers.ptr + headers.len <= base + m->props_len);
    m->headers_off = (uint32_t)(headers.ptr - base);
    m->headers_len = headers.len;
}

struct wire_table
msg_headers(const struct msg *m)
{
    return (struct wire_table){m->headers_len > 0 ? m->props + m->headers_off : NULL,
                               m->headers_len};
}

struct msg *
msg_ref(struct msg *m)
{
    WR_ASSERT(m->refs > 0 && m->refs < UINT32_MAX);
    m->refs++;
    return m;
}

void
msg_unref(struct msg **mp)
{
    struct msg *m = *mp;
    *mp = NULL;
    if (m == NULL)
        return;
    WR_ASSERT(m->refs > 0);
    if (--m->refs == 0) {
        msg_bytes_live -= msg_live_bytes(m);
        msg_unref(&m->body_owner);
        free(m);
    }
}
