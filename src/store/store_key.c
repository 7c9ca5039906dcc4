/* Key builders for the layout documented in warren/store.h: a tag byte, then big-endian
 * integers (byte order = numeric order) and length-prefixed names (no name's key is a prefix
 * of another's). They only build bytes: the broker decides what goes in the values. */
#include "config.h"

#include <string.h>

#include "warren/assert.h"
#include "warren/bytes.h"
#include "warren/store.h"

/* Writes name as one length byte and its bytes. Returns the bytes written. */
static size_t
store_key_name(uint8_t *p, const void *name, size_t len)
{
    WR_ASSERT(len <= STORE_NAME_MAX); /* AMQP names are shortstrs */
    p[0] = (uint8_t)len;
    if (len != 0)
        memcpy(p + 1, name, len);
    return 1 + len;
}

size_t
store_key_vhost_prefix(uint8_t *buf, enum store_key_tag tag, const void *vhost, size_t vhost_len)
{
    buf[0] = (uint8_t)tag;
    return 1 + store_key_name(buf + 1, vhost, vhost_len);
}

size_t
store_key_exchange(uint8_t *buf, const void *vhost, size_t vhost_len, const void *name,
                   size_t name_len)
{
    size_t n = store_key_vhost_prefix(buf, STORE_TAG_EXCHANGE, vhost, vhost_len);
    return n + store_key_name(buf + n, name, name_len);
}

size_t
store_key_queue(uint8_t *buf, const void *vhost, size_t vhost_len, const void *name,
                size_t name_len)
{
    size_t n = store_key_vhost_prefix(buf, STORE_TAG_QUEUE, vhost, vhost_len);
    return n + store_key_name(buf + n, name, name_len);
}

size_t
store_key_binding(uint8_t *buf, const void *vhost, size_t vhost_len, const void *source,
                  size_t source_len, char dest_kind, const void *dest, size_t dest_len,
                  const void *routing_key, size_t rk_len, const void *args, size_t args_len)
{
    WR_ASSERT(dest_kind == 'q' || dest_kind == 'e');
    size_t n = store_key_vhost_prefix(buf, STORE_TAG_BINDING, vhost, vhost_len);
    n += store_key_name(buf + n, source, source_len);
    buf[n++] = (uint8_t)dest_kind;
    n += store_key_name(buf + n, dest, dest_len);
    n += store_key_name(buf + n, routing_key, rk_len);
    if (args_len != 0)
        memcpy(buf + n, args, args_len);
    return n + args_len;
}

/* tag u64(id): the keys named by one number. */
static size_t
store_key_tag_id(uint8_t *buf, enum store_key_tag tag, uint64_t id)
{
    buf[0] = (uint8_t)tag;
    bytes_put64(buf + 1, id);
    return 9;
}

size_t
store_key_msg(uint8_t *buf, uint64_t msg_id)
{
    return store_key_tag_id(buf, STORE_TAG_MSG, msg_id);
}

size_t
store_key_qentry_prefix(uint8_t *buf, uint64_t queue_id)
{
    return store_key_tag_id(buf, STORE_TAG_QENTRY, queue_id);
}

size_t
store_key_qentry(uint8_t *buf, uint64_t queue_id, uint64_t seq)
{
    size_t n = store_key_qentry_prefix(buf, queue_id);
    bytes_put64(buf + n, seq);
    return STORE_KEY_QENTRY_LEN;
}

size_t
store_key_delivered(uint8_t *buf, uint64_t queue_id)
{
    return store_key_tag_id(buf, STORE_TAG_DELIVERED, queue_id);
}

size_t
store_key_temp_queue(uint8_t *buf, uint64_t queue_id)
{
    return store_key_tag_id(buf, STORE_TAG_TEMP_QUEUE, queue_id);
}

size_t
store_key_names(uint8_t *buf, enum store_key_tag tag, const char *const *names, size_t n)
{
    WR_ASSERT(n <= 3);
    size_t len = 1;
    buf[0] = (uint8_t)tag;
    for (size_t i = 0; i < n; i++)
        len += store_key_name(buf + len, names[i], strlen(names[i]));
    return len;
}
