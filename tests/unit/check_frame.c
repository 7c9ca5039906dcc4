/* Unit tests for src/wire/frame.c: the protocol header and its variants, frame parsing on
 * partial input fed byte by byte, every way a frame header or end can be wrong (each refused
 * as soon as the bytes that show it are in), heartbeats, content headers, and the writers,
 * whose output is parsed back: methods large enough to need a second reservation, content
 * headers, bodies split at frame_max, and nothing left behind when the buffer refuses. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <event2/buffer.h>

#include "unhex.h"
#include "warren/frame.h"
#include "warren/wire.h"
#include "warren/wire_gen.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static const struct {
    const char *what, *hex;
    enum frame_status st;
} protocol_headers[] = {
    {"AMQP 0-9-1", "'AMQP' 00 00 09 01", FRAME_OK},
    {"AMQP 0-9-1 and more bytes", "'AMQP' 00 00 09 01 01 00", FRAME_OK},
    {"nothing yet", "", FRAME_AGAIN},
    {"'AMQP' only", "'AMQP'", FRAME_AGAIN},
    {"7 bytes", "'AMQP' 00 00 09", FRAME_AGAIN},
    {"AMQP 0-9 (spoken as 0-9-1, as RabbitMQ)", "'AMQP' 01 01 00 09", FRAME_OK},
    {"AMQP 0-8", "'AMQP' 01 01 08 00", FRAME_ERROR},
    {"AMQP 0-10", "'AMQP' 01 01 00 0A", FRAME_ERROR},
    {"AMQP 1.0", "'AMQP' 00 01 00 00", FRAME_ERROR},
    {"AMQP 1.0 over TLS/SASL", "'AMQP' 03 01 00 00", FRAME_ERROR},
    {"0-9-1 revision 0", "'AMQP' 00 00 09 00", FRAME_ERROR},
    {"lower case", "'amqp' 00 00 09 01", FRAME_ERROR},
    {"HTTP", "'GET / HTTP/1.1'", FRAME_ERROR},
    {"a TLS ClientHello", "16 03 01 02 00 01 00 01 FC", FRAME_ERROR},
};

START_TEST(test_protocol_header)
{
    uint8_t b[64];
    size_t n = test_unhex(protocol_headers[_i].hex, b, sizeof b);

    ck_assert_int_eq(frame_parse_protocol_header(b, n), protocol_headers[_i].st);
}
END_TEST

START_TEST(test_protocol_header_bytes)
{
    static const uint8_t want[] = {'A', 'M', 'Q', 'P', 0, 0, 9, 1};

    ck_assert_uint_eq(FRAME_PROTOCOL_HEADER_SIZE, 8);
    ck_assert_mem_eq(frame_protocol_header, want, 8);
}
END_TEST

/* Bad frames: refused from the bytes shown, whatever follows. */
static const struct {
    const char *what, *hex;
    uint32_t frame_max;
    const char *text;
} bad_frames[] = {
    {"frame-end not 0xCE", "01 0001 00000004 0014000A 00", 131072,
     "frame-end octet 0x00, expected 0xCE"},
    {"frame-end 0xCF", "08 0000 00000000 CF", 131072, "frame-end octet 0xCF, expected 0xCE"},
    {"size > frame_max, header only", "01 0001 00030D38", 131072,
     "frame size 200000 exceeds frame_max 131072"},
    {"payload one over frame_max (past RabbitMQ's 8-byte fudge)", "03 0001 00020001", 131072,
     "frame size 131081 exceeds frame_max 131072"},
    {"payload over a small frame_max", "03 0001 0000000B", 10,
     "frame size 19 exceeds frame_max 10"},
    {"huge size", "01 0001 7FFFFFFF", 131072, "frame size 2147483655 exceeds frame_max 131072"},
    {"largest size", "01 0001 FFFFFFFF", 4096, "frame size 4294967303 exceeds frame_max 4096"},
    {"unknown type, header only", "05 0000 00000000", 131072, "unknown frame type 5"},
    {"type 0", "00 0000 00000000", 0, "unknown frame type 0"},
    {"type 4 (0-8's oob-method)", "04 0000 00000000", 0, "unknown frame type 4"},
    {"protocol header sent twice", "'AMQP' 00 00 09 01", 131072, "unknown frame type 65"},
};

START_TEST(test_bad_frame)
{
    uint8_t b[64];
    size_t n = test_unhex(bad_frames[_i].hex, b, sizeof b), need = 99;
    struct wire_error err = {0};
    struct frame f;

    ck_assert_int_eq(frame_parse(b, n, bad_frames[_i].frame_max, &f, &need, &err), FRAME_ERROR);
    ck_assert_uint_eq(err.code, WIRE_FRAME_ERROR);
    ck_assert_str_eq(err.text, bad_frames[_i].text);
}
END_TEST

/* Good frames: type, channel, payload. */
static const struct {
    const char *what, *hex;
    uint32_t frame_max;
    uint8_t type;
    uint16_t channel;
    const char *payload;
} good_frames[] = {
    {"heartbeat", "08 0000 00000000 CE", 131072, WIRE_FRAME_HEARTBEAT, 0, ""},
    {"method", "01 0001 00000005 0014000A 00 CE", 131072, WIRE_FRAME_METHOD, 1, "0014000A 00"},
    {"body on the last channel", "03 FFFF 00000003 'abc' CE", 131072, WIRE_FRAME_BODY, 65535,
     "'abc'"},
    {"exactly frame_max", "03 0001 00000002 'ab' CE", 10, WIRE_FRAME_BODY, 1, "'ab'"},
    {"8 bytes over frame_max: RabbitMQ's fudge", "03 0001 0000000A 'abcdefghij' CE", 10,
     WIRE_FRAME_BODY, 1, "'abcdefghij'"},
    {"no frame_max", "03 0001 00000002 'ab' CE", 0, WIRE_FRAME_BODY, 1, "'ab'"},
    {"trailing bytes are the next frame", "08 0000 00000000 CE 08 00", 131072, WIRE_FRAME_HEARTBEAT,
     0, ""},
};

START_TEST(test_good_frame)
{
    uint8_t b[64], want[64];
    size_t n = test_unhex(good_frames[_i].hex, b, sizeof b), wn, need;
    struct wire_error err = {0};
    struct frame f;

    wn = test_unhex(good_frames[_i].payload, want, sizeof want);
    ck_assert_int_eq(frame_parse(b, n, good_frames[_i].frame_max, &f, &need, &err), FRAME_OK);
    ck_assert_uint_eq(f.type, good_frames[_i].type);
    ck_assert_uint_eq(f.channel, good_frames[_i].channel);
    ck_assert_uint_eq(f.size, wn);
    ck_assert_ptr_eq(f.payload, b + FRAME_HEADER_SIZE);
    ck_assert_uint_eq(need, wn + FRAME_OVERHEAD);
    if (wn > 0)
        ck_assert_mem_eq(f.payload, want, wn);
}
END_TEST

/* A connection's input arriving one byte at a time: FRAME_AGAIN with the right need until
 * each frame is complete, then the frames in order. */
START_TEST(test_partial_input)
{
    static const char *hex = "01 0001 0000000B 003C0028 0000 00 02'rk' 00 CE"      /* publish */
                             "02 0001 0000000E 003C 0000 0000000000000003 0000 CE" /* header */
                             "03 0001 00000003 'abc' CE"                           /* body */
                             "08 0000 00000000 CE"                                 /* heartbeat */
                             "01 0000 00000004 000A0033 CE";                       /* close-ok */
    static const uint8_t types[] = {1, 2, 3, 8, 1};
    static const uint32_t sizes[] = {11, 14, 3, 0, 4};
    uint8_t b[256];
    size_t n = test_unhex(hex, b, sizeof b), start = 0, need;
    unsigned got = 0;
    struct wire_error err;
    struct frame f;

    for (size_t have = 0; have <= n; have++) {
        size_t avail = have - start;
        enum frame_status st = frame_parse(b + start, avail, 131072, &f, &need, &err);
        if (st == FRAME_AGAIN) {
            ck_assert_uint_gt(need, avail);
            if (avail < FRAME_HEADER_SIZE)
                ck_assert_uint_eq(need, FRAME_HEADER_SIZE);
            else
                ck_assert_uint_eq(need, sizes[got] + FRAME_OVERHEAD);
            continue;
        }
        ck_assert_int_eq(st, FRAME_OK);
        ck_assert_uint_lt(got, N_ELEMS(types));
        ck_assert_uint_eq(f.type, types[got]);
        ck_assert_uint_eq(f.size, sizes[got]);
        ck_assert_uint_eq(need, avail); /* complete exactly when the last byte arrives */
        start += need;
        got++;
    }
    ck_assert_uint_eq(got, N_ELEMS(types));
    ck_assert_uint_eq(start, n);
}
END_TEST

START_TEST(test_no_frame_max)
{
    uint8_t b[16];
    size_t n = test_unhex("03 0001 FFFFFFF0 00", b, sizeof b), need;
    struct wire_error err;
    struct frame f;

    ck_assert_int_eq(frame_parse(b, n, 0, &f, &need, &err), FRAME_AGAIN);
    ck_assert_uint_eq(need, (size_t)0xFFFFFFF0 + 8);
}
END_TEST

static const struct {
    const char *what, *hex;
    int rc;
    uint16_t class_id;
    uint64_t body_size;
    uint32_t props_len;
    const char *text;
} content_headers[] = {
    {"no properties", "003C 0000 0000000000000005 0000", 0, 60, 5, 2, NULL},
    {"delivery-mode", "003C 0000 0000000000000005 1000 02", 0, 60, 5, 3, NULL},
    {"64-bit body size", "003C 0000 FFFFFFFFFFFFFFFF 0000", 0, 60, UINT64_MAX, 2, NULL},
    {"weight is ignored", "003C 0001 0000000000000000 0000", 0, 60, 0, 2, NULL},
    {"too short for a flags word", "003C 0000 0000000000000005", -1, 0, 0, 0,
     "content header too short: 12 bytes"},
    {"empty", "", -1, 0, 0, 0, "content header too short: 0 bytes"},
    {"bad basic properties", "003C 0000 0000000000000005 0002", -1, 0, 0, 0,
     "cannot decode basic properties: unknown property flags 0x0002"},
    {"basic properties truncated", "003C 0000 0000000000000005 8000 05'ab'", -1, 0, 0, 0,
     "cannot decode basic properties: field 'content_type' truncated"},
    {"another class: properties left to the channel", "000A 0000 0000000000000001 FFFF 'x'", 0, 10,
     1, 3, NULL},
};

START_TEST(test_content_header)
{
    uint8_t b[64];
    size_t n = test_unhex(content_headers[_i].hex, b, sizeof b);
    struct frame_content_header h;
    struct wire_error err = {0};
    int rc = frame_content_header_decode(b, n, &h, NULL, &err);

    ck_assert_msg(rc == content_headers[_i].rc, "%s: %s", content_headers[_i].what, err.text);
    if (rc == 0) {
        ck_assert_uint_eq(h.class_id, content_headers[_i].class_id);
        ck_assert_uint_eq(h.body_size, content_headers[_i].body_size);
        ck_assert_ptr_eq(h.props, b + 12);
        ck_assert_uint_eq(h.props_len, content_headers[_i].props_len);
    } else {
        ck_assert_uint_eq(err.code, WIRE_FRAME_ERROR);
        ck_assert_str_eq(err.text, content_headers[_i].text);
    }
}
END_TEST

/* Parses the single frame that buf holds; returns it. */
static struct frame
only_frame(struct evbuffer *buf, uint32_t frame_max)
{
    size_t len = evbuffer_get_length(buf), need;
    const uint8_t *p = evbuffer_pullup(buf, -1);
    struct wire_error err = {0};
    struct frame f;

    ck_assert_msg(frame_parse(p, len, frame_max, &f, &need, &err) == FRAME_OK, "%s", err.text);
    ck_assert_uint_eq(need, len);
    return f;
}

START_TEST(test_write_heartbeat)
{
    struct evbuffer *out = evbuffer_new();
    static const uint8_t want[] = {0x08, 0, 0, 0, 0, 0, 0, 0xCE};

    ck_assert_int_eq(frame_write_heartbeat(out), 0);
    ck_assert_uint_eq(evbuffer_get_length(out), 8);
    ck_assert_mem_eq(evbuffer_pullup(out, -1), want, 8);
    evbuffer_free(out);
}
END_TEST

START_TEST(test_write_method)
{
    struct evbuffer *out = evbuffer_new();
    struct wire_method m = {.id = WIRE_CHANNEL_CLOSE}, d;
    struct wire_error err;
    struct frame f;

    m.u.channel_close.reply_code = WIRE_NOT_FOUND;
    m.u.channel_close.reply_text = WIRE_STR_LIT("NOT_FOUND - no queue 'q1' in vhost '/'");
    m.u.channel_close.class_id = WIRE_CLASS_QUEUE;
    m.u.channel_close.method_id = 10;
    /* Appends after what is already there. */
    ck_assert_int_eq(evbuffer_add(out, "xyz", 3), 0);
    ck_assert_int_eq(frame_write_method(out, 3, &m), 0);
    ck_assert_int_eq(evbuffer_drain(out, 3), 0);
    f = only_frame(out, 131072);
    ck_assert_uint_eq(f.type, WIRE_FRAME_METHOD);
    ck_assert_uint_eq(f.channel, 3);
    ck_assert_int_eq(wire_method_decode(f.payload, f.size, &d, &err), 0);
    ck_assert_uint_eq(d.id, WIRE_CHANNEL_CLOSE);
    ck_assert_uint_eq(d.u.channel_close.reply_code, 404);
    ck_assert(wire_str_eq(d.u.channel_close.reply_text, "NOT_FOUND - no queue 'q1' in vhost '/'"));
    ck_assert_uint_eq(d.u.channel_close.class_id, 50);
    ck_assert_uint_eq(d.u.channel_close.method_id, 10);
    evbuffer_drain(out, evbuffer_get_length(out));

    /* A method without fields. */
    m.id = WIRE_TX_SELECT_OK;
    ck_assert_int_eq(frame_write_method(out, 1, &m), 0);
    f = only_frame(out, 131072);
    ck_assert_uint_eq(f.size, 4);
    evbuffer_free(out);
}
END_TEST

/* Methods bigger than the first reservation: a response of each size is written whole. */
static const size_t big_sizes[] = {400, 500, 501, 504, 505, 1000, 4096, 70000, 1 << 20};

START_TEST(test_write_method_big)
{
    size_t len = big_sizes[_i];
    uint8_t *resp = malloc(len);
    struct evbuffer *out = evbuffer_new();
    struct wire_method m = {.id = WIRE_CONNECTION_START_OK}, d;
    struct wire_error err;
    struct frame f;

    ck_assert_ptr_nonnull(resp);
    for (size_t i = 0; i < len; i++)
        resp[i] = (uint8_t)(i * 7);
    m.u.connection_start_ok.mechanism = WIRE_STR_LIT("PLAIN");
    m.u.connection_start_ok.response = (struct wire_str){resp, (uint32_t)len};
    m.u.connection_start_ok.locale = WIRE_STR_LIT("en_US");
    ck_assert_int_eq(frame_write_method(out, 0, &m), 0);
    f = only_frame(out, 0); /* methods ignore frame_max, as in RabbitMQ */
    ck_assert_uint_eq(f.size, 4 + 4 + 6 + 4 + len + 6);
    ck_assert_int_eq(wire_method_decode(f.payload, f.size, &d, &err), 0);
    ck_assert_uint_eq(d.u.connection_start_ok.response.len, len);
    ck_assert_mem_eq(d.u.connection_start_ok.response.ptr, resp, len);
    ck_assert(wire_str_eq(d.u.connection_start_ok.locale, "en_US"));
    evbuffer_free(out);
    free(resp);
}
END_TEST

START_TEST(test_write_content_header)
{
    struct evbuffer *out = evbuffer_new();
    struct frame_content_header h;
    struct wire_basic_props pr = {0}, d;
    struct wire_writer w;
    struct wire_error err;
    uint8_t props[64];
    struct frame f;

    pr.flags = WIRE_BASIC_CONTENT_TYPE_FLAG | WIRE_BASIC_DELIVERY_MODE_FLAG;
    pr.content_type = WIRE_STR_LIT("text/plain");
    pr.delivery_mode = 2;
    wire_writer_init(&w, props, sizeof props);
    ck_assert_int_eq(wire_basic_props_encode(&pr, &w), 0);
    ck_assert_int_eq(frame_write_content_header(out, 9, WIRE_CLASS_BASIC, 123456789012ull, props,
                                                wire_writer_len(&w)),
                     0);
    f = only_frame(out, 4096);
    ck_assert_uint_eq(f.type, WIRE_FRAME_HEADER);
    ck_assert_uint_eq(f.channel, 9);
    ck_assert_int_eq(frame_content_header_decode(f.payload, f.size, &h, NULL, &err), 0);
    ck_assert_uint_eq(h.class_id, 60);
    ck_assert_uint_eq(h.body_size, 123456789012ull);
    ck_assert_uint_eq(h.props_len, wire_writer_len(&w));
    ck_assert_mem_eq(h.props, props, h.props_len);
    ck_assert_int_eq(wire_basic_props_decode(h.props, h.props_len, &d, &err), 0);
    ck_assert_uint_eq(d.delivery_mode, 2);
    ck_assert(wire_str_eq(d.content_type, "text/plain"));
    evbuffer_free(out);
}
END_TEST

/* Bodies split across frame_max: body length, frame_max, number of frames. */
static const struct {
    size_t len;
    uint32_t frame_max;
    unsigned frames;
} bodies[] = {
    {0, 4096, 0},
    {1, 4096, 1},
    {4088, 4096, 1},
    {4089, 4096, 2},
    {3 * 4088 + 5, 4096, 4},
    {8176, 4096, 2},
    {131064, 131072, 1},
    {131065, 131072, 2},
    {300000, 131072, 3},
    {100000, 0, 1},
    {10, 9, 10},
};

START_TEST(test_write_body)
{
    size_t len = bodies[_i].len, off = 0, total, need;
    uint32_t fm = bodies[_i].frame_max;
    uint8_t *body = malloc(len + 1);
    struct evbuffer *out = evbuffer_new();
    struct wire_error err;
    const uint8_t *p;
    unsigned frames = 0;
    struct frame f;

    for (size_t i = 0; i < len; i++)
        body[i] = (uint8_t)(i % 251);
    ck_assert_int_eq(frame_write_body(out, 5, body, len, fm), 0);
    total = evbuffer_get_length(out);
    ck_assert_uint_eq(total, len + bodies[_i].frames * FRAME_OVERHEAD);
    p = evbuffer_pullup(out, -1);
    for (size_t at = 0; at < total; at += need) {
        ck_assert_int_eq(frame_parse(p + at, total - at, fm, &f, &need, &err), FRAME_OK);
        ck_assert_uint_eq(f.type, WIRE_FRAME_BODY);
        ck_assert_uint_eq(f.channel, 5);
        ck_assert_uint_gt(f.size, 0);
        /* Every frame but the last is full. */
        if (at + need < total && fm != 0)
            ck_assert_uint_eq(f.size, fm - FRAME_OVERHEAD);
        ck_assert_mem_eq(f.payload, body + off, f.size);
        off += f.size;
        frames++;
    }
    ck_assert_uint_eq(off, len);
    ck_assert_uint_eq(frames, bodies[_i].frames);
    evbuffer_free(out);
    free(body);
}
END_TEST

/* Writers into a buffer that refuses to grow fail and leave it as it was. */
START_TEST(test_write_refused)
{
    struct evbuffer *out = evbuffer_new();
    struct wire_method m = {.id = WIRE_BASIC_QOS_OK};
    static const uint8_t props[] = {0, 0};
    static const uint8_t body[10000];

    ck_assert_int_eq(evbuffer_add(out, "abc", 3), 0);
    ck_assert_int_eq(evbuffer_freeze(out, 0), 0);
    ck_assert_int_eq(frame_write_method(out, 1, &m), -1);
    ck_assert_int_eq(frame_write_content_header(out, 1, 60, 0, props, 2), -1);
    ck_assert_int_eq(frame_write_body(out, 1, body, sizeof body, 4096), -1);
    ck_assert_int_eq(frame_write_heartbeat(out), -1);
    ck_assert_uint_eq(evbuffer_get_length(out), 3);
    ck_assert_int_eq(evbuffer_unfreeze(out, 0), 0);
    ck_assert_int_eq(frame_write_method(out, 1, &m), 0);
    ck_assert_uint_eq(evbuffer_get_length(out), 3 + 12);
    evbuffer_free(out);
}
END_TEST

static Suite *
frame_suite(void)
{
    Suite *s = suite_create("frame");
    TCase *tc = tcase_create("parse");

    tcase_add_loop_test(tc, test_protocol_header, 0, N_ELEMS(protocol_headers));
    tcase_add_test(tc, test_protocol_header_bytes);
    tcase_add_loop_test(tc, test_bad_frame, 0, N_ELEMS(bad_frames));
    tcase_add_loop_test(tc, test_good_frame, 0, N_ELEMS(good_frames));
    tcase_add_test(tc, test_partial_input);
    tcase_add_test(tc, test_no_frame_max);
    tcase_add_loop_test(tc, test_content_header, 0, N_ELEMS(content_headers));
    suite_add_tcase(s, tc);

    tc = tcase_create("write");
    tcase_add_test(tc, test_write_heartbeat);
    tcase_add_test(tc, test_write_method);
    tcase_add_loop_test(tc, test_write_method_big, 0, N_ELEMS(big_sizes));
    tcase_add_test(tc, test_write_content_header);
    tcase_add_loop_test(tc, test_write_body, 0, N_ELEMS(bodies));
    tcase_add_test(tc, test_write_refused);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(frame_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
