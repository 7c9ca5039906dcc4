/* AMQP 0-9-1 framing. Parsing works on whatever contiguous bytes the connection has buffered
 * and says how many more it needs; frame_max and the frame type are checked from the 7-byte
 * header alone, so an oversized frame is refused before its payload arrives. Writers build
 * whole frames in space reserved in the output evbuffer and commit them only when complete,
 * so a failure leaves nothing partial behind. */
#include "config.h"

#include "warren/frame.h"

#include <string.h>

#include <event2/buffer.h>

#include "warren/assert.h"
#include "warren/bytes.h"

const uint8_t frame_protocol_header[FRAME_PROTOCOL_HEADER_SIZE] = {'A', 'M', 'Q', 'P', 0, 0, 9, 1};

/* RabbitMQ's FRAME_SIZE_FUDGE (rabbit_reader): "quite a few [clients] get it wrong - off-by 1
 * or 8 (empty frame size) are typical", so a frame may overshoot frame_max by the 8 bytes of
 * overhead: only a payload larger than frame_max itself is refused. */
#define FRAME_SIZE_FUDGE FRAME_OVERHEAD

/* The largest frame the size field can describe. */
#define FRAME_SIZE_MAX ((uint64_t)UINT32_MAX + FRAME_OVERHEAD)

/* The AMQP 0-9 header (class 1, instance 1, version 0-9): 0-9-1 is its errata release, and
 * RabbitMQ answers it with a 0-9-1 session, so clients that still send it keep working. */
static const uint8_t frame_protocol_header_09[FRAME_PROTOCOL_HEADER_SIZE] = {'A', 'M', 'Q', 'P',
                                                                             1,   1,   0,   9};

enum frame_status
frame_parse_protocol_header(const uint8_t *p, size_t n)
{
    if (n < FRAME_PROTOCOL_HEADER_SIZE)
        return FRAME_AGAIN;
    if (memcmp(p, frame_protocol_header, FRAME_PROTOCOL_HEADER_SIZE) != 0 &&
        memcmp(p, frame_protocol_header_09, FRAME_PROTOCOL_HEADER_SIZE) != 0)
        return FRAME_ERROR;
    return FRAME_OK;
}

enum frame_status
frame_parse(const uint8_t *p, size_t n, uint32_t frame_max, struct frame *f, size_t *need,
            struct wire_error *err)
{
    uint64_t total;
    uint32_t size;
    uint8_t end;

    *need = 0;
    if (n < FRAME_HEADER_SIZE) {
        *need = FRAME_HEADER_SIZE;
        return FRAME_AGAIN;
    }
    switch (p[0]) {
    case WIRE_FRAME_METHOD:
    case WIRE_FRAME_HEADER:
    case WIRE_FRAME_BODY:
    case WIRE_FRAME_HEARTBEAT:
        break;
    default:
        wire_fail(err, WIRE_FRAME_ERROR, "unknown frame type %u", p[0]);
        return FRAME_ERROR;
    }
    size = bytes_get32(p + 3);
    total = (uint64_t)size + FRAME_OVERHEAD;
    if (frame_max != 0 && total > (uint64_t)frame_max + FRAME_SIZE_FUDGE) {
        wire_fail(err, WIRE_FRAME_ERROR, "frame size %llu exceeds frame_max %u",
                  (unsigned long long)total, frame_max);
        return FRAME_ERROR;
    }
    if (total > SIZE_MAX) { /* only on 32-bit hosts */
        wire_fail(err, WIRE_FRAME_ERROR, "frame size %llu too large", (unsigned long long)total);
        return FRAME_ERROR;
    }
    if (n < total) {
        *need = (size_t)total;
        return FRAME_AGAIN;
    }
    end = p[FRAME_HEADER_SIZE + size];
    if (end != WIRE_FRAME_END) {
        wire_fail(err, WIRE_FRAME_ERROR, "frame-end octet 0x%02X, expected 0x%02X", end,
                  WIRE_FRAME_END);
        return FRAME_ERROR;
    }
    f->type = p[0];
    f->channel = (uint16_t)(p[1] << 8 | p[2]);
    f->size = size;
    f->payload = p + FRAME_HEADER_SIZE;
    *need = (size_t)total;
    return FRAME_OK;
}

int
frame_content_header_decode(const uint8_t *p, size_t n, struct frame_content_header *h,
                            struct wire_basic_props *props, struct wire_error *err)
{
    struct wire_basic_props local;
    struct wire_reader r;
    uint16_t weight;

    /* class-id, weight, body-size and at least one property-flags word */
    if (n < 14)
        return wire_fail(err, WIRE_FRAME_ERROR, "content header too short: %zu bytes", n);
    r = (struct wire_reader){p, p + n};
    wire_get_u16(&r, &h->class_id);
    wire_get_u16(&r, &weight); /* unused by 0-9-1; RabbitMQ ignores it too */
    wire_get_u64(&r, &h->body_size);
    h->props = r.p;
    h->props_len = (uint32_t)(r.end - r.p);
    /* Only class basic has content. For another class the channel refuses the header anyway
     * (it does not match the method), with 505 as RabbitMQ does: no 501 here. */
    if (h->class_id == WIRE_CLASS_BASIC &&
        wire_basic_props_decode(h->props, h->props_len, props != NULL ? props : &local, err) < 0)
        return -1;
    return 0;
}

/* Method payloads are small; a bigger reservation is tried only when a method overflows it. */
#define FRAME_METHOD_FIRST_RESERVE 512

int
frame_write_method(struct evbuffer *out, uint16_t channel, const struct wire_method *m)
{
    struct evbuffer_iovec v;
    struct wire_writer w;
    size_t want = FRAME_METHOD_FIRST_RESERVE, cap, len;
    uint8_t *b;

    for (;;) {
        if (evbuffer_reserve_space(out, (ev_ssize_t)want, &v, 1) != 1 || v.iov_len < want)
            return -1;
        cap = v.iov_len < FRAME_SIZE_MAX ? v.iov_len : (size_t)FRAME_SIZE_MAX;
        b = v.iov_base;
        wire_writer_init(&w, b + FRAME_HEADER_SIZE, cap - FRAME_OVERHEAD);
        if (wire_method_encode(m, &w) == 0)
            break;
        if (cap >= FRAME_SIZE_MAX) /* nothing committed: the reservation is dropped */
            return -1;
        want = cap * 2 < FRAME_SIZE_MAX ? cap * 2 : (size_t)FRAME_SIZE_MAX;
    }
    len = wire_writer_len(&w);
    b[0] = WIRE_FRAME_METHOD;
    bytes_put16(b + 1, channel);
    bytes_put32(b + 3, (uint32_t)len);
    b[FRAME_HEADER_SIZE + len] = WIRE_FRAME_END;
    v.iov_len = len + FRAME_OVERHEAD;
    return evbuffer_commit_space(out, &v, 1);
}

int
frame_write_content_header(struct evbuffer *out, uint16_t channel, uint16_t class_id,
                           uint64_t body_size, const uint8_t *props, size_t props_len)
{
    struct evbuffer_iovec v;
    size_t size = 12 + props_len;
    uint8_t *b;

    if (props_len > UINT32_MAX - 12)
        return -1;
    if (evbuffer_reserve_space(out, (ev_ssize_t)(size + FRAME_OVERHEAD), &v, 1) != 1 ||
        v.iov_len < size + FRAME_OVERHEAD)
        return -1;
    b = v.iov_base;
    b[0] = WIRE_FRAME_HEADER;
    bytes_put16(b + 1, channel);
    bytes_put32(b + 3, (uint32_t)size);
    bytes_put16(b + 7, class_id);
    bytes_put16(b + 9, 0);
    bytes_put64(b + 11, body_size);
    if (props_len > 0)
        memcpy(b + 19, props, props_len);
    b[FRAME_HEADER_SIZE + size] = WIRE_FRAME_END;
    v.iov_len = size + FRAME_OVERHEAD;
    return evbuffer_commit_space(out, &v, 1);
}

int
frame_write_body(struct evbuffer *out, uint16_t channel, const uint8_t *body, size_t len,
                 uint32_t frame_max)
{
    size_t chunk, frames, total, off = 0, n;
    struct evbuffer_iovec v;
    uint8_t *b;

    if (len == 0)
        return 0; /* an empty body has no body frames */
    /* frame_max is at least WIRE_FRAME_MIN_SIZE once negotiated */
    WR_ASSERT(frame_max == 0 || frame_max > FRAME_OVERHEAD);
    chunk = frame_max != 0 ? frame_max - FRAME_OVERHEAD : UINT32_MAX;
    frames = len / chunk + (len % chunk != 0);
    if (frames > (SIZE_MAX - len) / FRAME_OVERHEAD || len + frames * FRAME_OVERHEAD > PTRDIFF_MAX)
        return -1;
    total = len + frames * FRAME_OVERHEAD;
    /* One reservation for every frame: all of them are committed, or none. */
    if (evbuffer_reserve_space(out, (ev_ssize_t)total, &v, 1) != 1 || v.iov_len < total)
        return -1;
    b = v.iov_base;
    while (off < len) {
        n = len - off < chunk ? len - off : chunk;
        b[0] = WIRE_FRAME_BODY;
        bytes_put16(b + 1, channel);
        bytes_put32(b + 3, (uint32_t)n);
        memcpy(b + FRAME_HEADER_SIZE, body + off, n);
        b[FRAME_HEADER_SIZE + n] = WIRE_FRAME_END;
        b += n + FRAME_OVERHEAD;
        off += n;
    }
    v.iov_len = total;
    return evbuffer_commit_space(out, &v, 1);
}

int
frame_write_heartbeat(struct evbuffer *out)
{
    static const uint8_t hb[FRAME_OVERHEAD] = {WIRE_FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0,
                                               WIRE_FRAME_END};

    return evbuffer_add(out, hb, sizeof hb);
}
