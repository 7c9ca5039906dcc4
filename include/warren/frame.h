/* AMQP 0-9-1 framing: the protocol header, splitting received bytes into frames (type,
 * channel, size, payload, 0xCE end octet) with frame_max enforced from the 7-byte header
 * alone, content-header payloads, and writing frames into an output evbuffer. The parser
 * works on a contiguous byte range and never sees a socket, so the fuzzer and the unit
 * tests drive exactly the code the server runs. */
#ifndef WARREN_FRAME_H
#define WARREN_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "warren/wire.h"
#include "warren/wire_gen.h"

struct evbuffer;

#define FRAME_HEADER_SIZE 7 /* type(1) channel(2) size(4) */
#define FRAME_OVERHEAD 8    /* header + frame-end octet */
#define FRAME_PROTOCOL_HEADER_SIZE 8
/* "AMQP" 0 0 9 1: sent as the reply to any protocol header we do not speak. */
extern const uint8_t frame_protocol_header[FRAME_PROTOCOL_HEADER_SIZE];

enum frame_status {
    FRAME_OK = 0, /* a whole frame (or header) was parsed */
    FRAME_AGAIN,  /* need more bytes; nothing consumed */
    FRAME_ERROR,  /* malformed: the error says which reply code and why */
};

/* One received frame. payload borrows the parser's input. */
struct frame {
    uint8_t type; /* WIRE_FRAME_METHOD, _HEADER, _BODY or _HEARTBEAT */
    uint16_t channel;
    uint32_t size;
    const uint8_t *payload;
};

/* Checks the 8-byte protocol header in p[0..n). FRAME_AGAIN while fewer than 8 bytes are
 * present, FRAME_ERROR for anything but "AMQP" 0 0 9 1 or the AMQP 0-9 header "AMQP" 1 1 0 9
 * (which RabbitMQ also answers with 0-9-1). */
enum frame_status frame_parse_protocol_header(const uint8_t *p, size_t n);

/* Parses one frame from p[0..n). frame_max is the negotiated maximum frame size including
 * the 8 bytes of overhead (0 = no limit beyond 2^32-1).
 *  FRAME_OK:    *f set, *need = bytes the frame took (size + 8).
 *  FRAME_AGAIN: *need = total bytes required to make progress (7 until the header is in,
 *               then size + 8); an oversized or unknown-type header is an error at once,
 *               without waiting for its payload.
 *  FRAME_ERROR: err = 501 FRAME_ERROR with the reason (unknown type, size over frame_max,
 *               frame-end octet not 0xCE). Like RabbitMQ (FRAME_SIZE_FUDGE), a frame may
 *               exceed frame_max by up to 8 bytes: only a payload over frame_max is refused. */
enum frame_status frame_parse(const uint8_t *p, size_t n, uint32_t frame_max, struct frame *f,
                              size_t *need, struct wire_error *err);

/* A content-header frame's payload: class-id, weight, body-size, then the property flags and
 * property list, kept raw (props points at the first flags word) so they can be re-sent
 * byte-for-byte. Decoding validates the properties of class basic (wire_basic_props_decode)
 * and leaves them decoded in *props when props is not NULL (else in a local). */
struct frame_content_header {
    uint16_t class_id;
    uint64_t body_size;
    const uint8_t *props; /* borrows */
    uint32_t props_len;
};
int frame_content_header_decode(const uint8_t *p, size_t n, struct frame_content_header *h,
                                struct wire_basic_props *props, struct wire_error *err);

/* Writers append whole frames to out. They return 0, or -1 when out could not grow (ENOMEM)
 * or a method cannot be encoded in frame_max; nothing partial is left behind. */
int frame_write_method(struct evbuffer *out, uint16_t channel, const struct wire_method *m);
int frame_write_content_header(struct evbuffer *out, uint16_t channel, uint16_t class_id,
                               uint64_t body_size, const uint8_t *props, size_t props_len);
/* Splits body into body frames of at most frame_max - 8 payload bytes (copies). */
int frame_write_body(struct evbuffer *out, uint16_t channel, const uint8_t *body, size_t len,
                     uint32_t frame_max);
int frame_write_heartbeat(struct evbuffer *out);

#endif
