/* The durable layer's message record: what a persistent message looks like in the store,
 * inline in a queue entry or shared under an 'M' key. The properties are kept as the raw
 * bytes the publisher sent (re-sent verbatim, as in memory), with the position of their
 * headers table so that routing never decodes them again. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "durable_int.h"
#include "warren/bytes.h"
#include "warren/msg.h"
#include "warren/store.h"

void
durable_msg_header(uint8_t *buf, const struct msg *m)
{
    buf[0] = m->delivery_mode;
    buf[1] = m->priority;
    bytes_put32(buf + 2, m->headers_off);
    bytes_put32(buf + 6, m->headers_len);
    bytes_put32(buf + 10, m->props_len);
    buf[14] = m->exchange_len;
    buf[15] = m->routing_key_len;
}

void
durable_msg_parts(uint8_t *hdr, const struct msg *m, struct iovec *iov)
{
    durable_msg_header(hdr, m);
    /* props, exchange and routing key are contiguous in the message's allocation. */
    iov[0] = (struct iovec){hdr, DURABLE_MSG_HDR_LEN};
    iov[1] = (struct iovec){m->props, m->props_len};
    iov[2] = (struct iovec){m->exchange, (size_t)m->exchange_len + m->routing_key_len};
    iov[3] = (struct iovec){m->body, m->body_len};
}

size_t
durable_entry_head_encode(uint8_t *buf, const struct durable_entry_head *h)
{
    size_t n = 1;
    buf[0] = h->flags;
    if (h->flags & DURABLE_ENTRY_EXPIRES) {
        bytes_put64(buf + n, h->expires_at);
        n += 8;
    }
    if (h->flags & DURABLE_ENTRY_DEAD)
        buf[n++] = h->dead_reason;
    if (h->flags & DURABLE_ENTRY_COUNTED) {
        bytes_put32(buf + n, h->delivery_count);
        n += 4;
    }
    if (h->flags & DURABLE_ENTRY_SHARED) {
        bytes_put64(buf + n, h->shared_id);
        bytes_put32(buf + n + 8, h->body_len);
        n += 12;
    }
    return n;
}

bool
durable_entry_head_decode(const uint8_t *v, size_t vlen, struct durable_entry_head *h)
{
    *h = (struct durable_entry_head){0};
    if (vlen < 1)
        return false;
    size_t n = 1;
    h->flags = v[0];
    if (h->flags & DURABLE_ENTRY_EXPIRES) {
        if (vlen < n + 8)
            return false;
        h->expires_at = bytes_get64(v + n);
        n += 8;
    }
    if (h->flags & DURABLE_ENTRY_DEAD) {
        if (vlen < n + 1)
            return false;
        h->dead_reason = v[n++];
    }
    if (h->flags & DURABLE_ENTRY_COUNTED) {
        if (vlen < n + 4)
            return false;
        h->delivery_count = bytes_get32(v + n);
        n += 4;
    }
    if (h->flags & DURABLE_ENTRY_SHARED) {
        /* Format 1 wrote the id alone. */
        if (vlen != n + 8 && vlen != n + 12)
            return false;
        h->shared_id = bytes_get64(v + n);
        h->body_len = vlen == n + 12 ? bytes_get32(v + n + 8) : 0;
        return true;
    }
    h->msg = v + n;
    h->msg_len = vlen - n;
    return true;
}

uint64_t
durable_msg_body_len(const uint8_t *p, size_t len)
{
    if (len < DURABLE_MSG_HDR_LEN)
        return 0;
    size_t fixed = DURABLE_MSG_HDR_LEN + (size_t)bytes_get32(p + 10) + p[14] + p[15];
    return fixed <= len ? len - fixed : 0;
}

enum durable_load
durable_msg_decode(const uint8_t *p, size_t len, struct msg **mp)
{
    *mp = NULL;
    if (len < DURABLE_MSG_HDR_LEN)
        return DURABLE_LOAD_CORRUPT;
    uint8_t mode = p[0], prio = p[1];
    uint32_t headers_off = bytes_get32(p + 2), headers_len = bytes_get32(p + 6);
    uint32_t props_len = bytes_get32(p + 10);
    uint8_t exch_len = p[14], rk_len = p[15];
    size_t fixed = DURABLE_MSG_HDR_LEN + (size_t)props_len + exch_len + rk_len;
    if (fixed > len ||
        (headers_len != 0 && (headers_off > props_len || headers_len > props_len - headers_off)))
        return DURABLE_LOAD_CORRUPT;
    const uint8_t *props = p + DURABLE_MSG_HDR_LEN;
    struct wire_str exch = {props + props_len, exch_len};
    struct wire_str rk = {exch.ptr + exch_len, rk_len};
    uint64_t body_len = len - fixed;
    struct msg *m = msg_new(props, props_len, mode, prio, exch, rk, body_len);
    if (m == NULL)
        return DURABLE_LOAD_NOMEM;
    if (body_len > 0) {
        memcpy(m->body, p + fixed, body_len);
        msg_body_filled(m, (uint32_t)body_len);
    }
    m->headers_off = headers_off;
    m->headers_len = headers_len;
    *mp = m;
    return DURABLE_LOAD_OK;
}

struct msg *
durable_msg_from_record(const uint8_t *p, size_t len)
{
    struct msg *m;
    return durable_msg_decode(p, len, &m) == DURABLE_LOAD_OK ? m : NULL;
}

enum durable_load
durable_shared_load(struct durable *d, uint64_t id, struct msg **mp, char *err, size_t errlen)
{
    uint8_t key[STORE_KEY_MSG_LEN];
    char *val;
    size_t vlen;
    *mp = NULL;
    store_key_msg(key, id);
    int got = store_get(d->st, key, sizeof(key), &val, &vlen, err, errlen);
    if (got <= 0)
        return got < 0 ? DURABLE_LOAD_READ_ERROR : DURABLE_LOAD_MISSING;
    enum durable_load rc = durable_msg_decode((const uint8_t *)val, vlen, mp);
    free(val);
    if (rc == DURABLE_LOAD_OK)
        (*mp)->store_id = id;
    return rc;
}
