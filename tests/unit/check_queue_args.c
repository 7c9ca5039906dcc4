/* Unit tests for src/broker/queue_args.c: queue.declare's arguments checked as RabbitMQ 3.10
 * checks them (each argument's types and values, the order of the checks, arguments of other
 * queue types, quorum queues' properties, server-named queues, x-queue-master-locator), its
 * reply texts with Erlang's printing of strings, texts cut to the caller's buffer, the list of
 * arguments accepted but not applied yet, and what a redeclare compares. The expected texts
 * are RabbitMQ's, as tests/integration/28-queue-args.py checks them against a RabbitMQ. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "unhex.h"
#include "warren/queue_args.h"
#include "warren/wire.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* One table entry: a key and its tagged value in test_unhex's notation, e.g. "'I' 00000005"
 * for a signedint 5, "'S' 00000003 'foo'" for a longstr. */
struct arg {
    const char *key, *value;
};

enum {
    DURABLE = 1,
    EXCLUSIVE = 2,
    AUTO_DELETE = 4,
    SERVER_NAMED = 8,
};

#define I32(hex) "'I' " hex
#define STR(len, text) "'S' 000000" len " '" text "'"
#define QUORUM                                                                                     \
    {                                                                                              \
        "x-queue-type", STR("06", "quorum")                                                        \
    }
#define INVALID(arg, term) "invalid arg '" arg "' for queue 'q' in vhost '/': " term
#define OTHER_TYPE(arg, type)                                                                      \
    "invalid arg '" arg "' for queue 'q' in vhost '/' of queue type rabbit_" type "_queue"

static const struct {
    const char *what;
    struct arg args[4];
    unsigned flags;
    const char *why; /* NULL: accepted */
} check_cases[] = {
    {"no arguments", {{NULL}}, 0, NULL},
    {"unknown x-args are ignored",
     {{"x-foo", "'t' 01"}, {"x-priority", STR("01", "a")}, {"other", "'V'"}},
     0,
     NULL},
    {"byte", {{"x-expires", "'b' 05"}}, 0, NULL},
    {"unsignedbyte", {{"x-expires", "'B' 05"}}, 0, NULL},
    {"short", {{"x-expires", "'s' 0005"}}, 0, NULL},
    {"unsignedshort", {{"x-expires", "'u' 0005"}}, 0, NULL},
    {"unsignedint", {{"x-expires", "'i' ffffffff"}}, 0, NULL},
    {"long", {{"x-expires", "'l' 0000000000000005"}}, 0, NULL},
    {"longstr for an integer",
     {{"x-expires", STR("02", "10")}},
     0,
     INVALID("x-expires", "\"expected integer, got longstr\"")},
    {"timestamp for an integer",
     {{"x-message-ttl", "'T' 0000000000000005"}},
     0,
     INVALID("x-message-ttl", "\"expected integer, got timestamp\"")},
    {"double for an integer",
     {{"x-max-length", "'d' 4014000000000000"}},
     0,
     INVALID("x-max-length", "\"expected integer, got double\"")},
    {"decimal for an integer",
     {{"x-max-length-bytes", "'D' 00 00000005"}},
     0,
     INVALID("x-max-length-bytes", "\"expected integer, got decimal\"")},
    {"x-expires 0", {{"x-expires", I32("00000000")}}, 0, INVALID("x-expires", "{value_zero,0}")},
    {"x-expires -1",
     {{"x-expires", I32("ffffffff")}},
     0,
     INVALID("x-expires", "{value_negative,-1}")},
    {"x-expires ten years", {{"x-expires", "'l' 000000496cebb800"}}, 0, NULL},
    {"x-expires over ten years",
     {{"x-expires", "'l' 000000496cebb801"}},
     0,
     INVALID("x-expires", "{value_too_large,315360000001}")},
    {"x-message-ttl 0", {{"x-message-ttl", I32("00000000")}}, 0, NULL},
    {"x-message-ttl most negative",
     {{"x-message-ttl", "'l' 8000000000000000"}},
     0,
     INVALID("x-message-ttl", "{value_negative,-9223372036854775808}")},
    {"x-max-length -1",
     {{"x-max-length", "'b' ff"}},
     0,
     INVALID("x-max-length", "{value_negative,-1}")},
    {"x-max-priority 255", {{"x-max-priority", "'B' ff"}}, 0, NULL},
    {"x-max-priority 256",
     {{"x-max-priority", "'s' 0100"}},
     0,
     INVALID("x-max-priority", "{max_value_exceeded,256}")},
    {"x-overflow reject-publish-dlx", {{"x-overflow", STR("12", "reject-publish-dlx")}}, 0, NULL},
    {"x-overflow unknown",
     {{"x-overflow", STR("09", "drop-tail")}},
     0,
     INVALID("x-overflow", "invalid_overflow")},
    {"x-overflow binary",
     {{"x-overflow", "'x' 00000009 'drop-head'"}},
     0,
     INVALID("x-overflow", "{unacceptable_type,binary}")},
    {"x-single-active-consumer signedint",
     {{"x-single-active-consumer", I32("00000001")}},
     0,
     INVALID("x-single-active-consumer", "{unacceptable_type,signedint}")},
    {"x-queue-mode lazy", {{"x-queue-mode", STR("04", "lazy")}}, 0, NULL},
    {"x-queue-mode unknown",
     {{"x-queue-mode", STR("05", "eager")}},
     0,
     INVALID("x-queue-mode", "\"unsupported queue mode 'eager'\"")},
    {"x-queue-version 3",
     {{"x-queue-version", I32("00000003")}},
     0,
     INVALID("x-queue-version", "\"unsupported queue version '3'\"")},
    {"x-queue-version array",
     {{"x-queue-version", "'A' 00000000"}},
     0,
     INVALID("x-queue-version", "\"expected integer, got array\"")},
    {"x-dead-letter-exchange signedint",
     {{"x-dead-letter-exchange", I32("00000001")}},
     0,
     "invalid type 'signedint' for arg 'x-dead-letter-exchange' in queue 'q' in vhost '/'"},
    {"x-dead-letter-routing-key alone",
     {{"x-dead-letter-routing-key", STR("02", "rk")}},
     0,
     INVALID("x-dead-letter-routing-key", "routing_key_but_no_dlx_defined")},
    {"x-dead-letter-routing-key before its exchange",
     {{"x-dead-letter-routing-key", STR("02", "rk")}, {"x-dead-letter-exchange", STR("00", "")}},
     0,
     NULL},
    {"x-dead-letter-routing-key table",
     {{"x-dead-letter-exchange", STR("01", "d")}, {"x-dead-letter-routing-key", "'F' 00000000"}},
     0,
     INVALID("x-dead-letter-routing-key", "{unacceptable_type,table}")},
    /* x-queue-type: unknown names printed as Erlang's ~p prints strings. */
    {"x-queue-type classic", {{"x-queue-type", STR("07", "classic")}}, 0, NULL},
    {"x-queue-type unknown",
     {{"x-queue-type", STR("03", "foo")}},
     0,
     INVALID("x-queue-type", "\"unsupported queue type 'foo'\"")},
    {"x-queue-type stream (none here)",
     {{"x-queue-type", STR("06", "stream")}},
     DURABLE,
     INVALID("x-queue-type", "\"unsupported queue type 'stream'\"")},
    {"x-queue-type with escapes",
     {{"x-queue-type", "'S' 00000008 22 5c 0a 0d 09 0b 08 0c"}},
     0,
     INVALID("x-queue-type", "\"unsupported queue type '\\\"\\\\\\n\\r\\t\\v\\b\\f'\"")},
    {"x-queue-type with escape and Latin-1",
     {{"x-queue-type", "'S' 00000003 1b a0 ff"}},
     0,
     INVALID("x-queue-type", "\"unsupported queue type '\\e\xa0\xff'\"")},
    {"x-queue-type not printable: a list",
     {{"x-queue-type", "'S' 00000002 'a' 7f"}},
     0,
     INVALID("x-queue-type", "[117,110,115,117,112,112,111,114,116,101,100,32,113,117,101,117,"
                             "101,32,116,121,112,101,32,39,97,127,39]")},
    {"x-queue-type 0x80: a list",
     {{"x-queue-type", "'S' 00000001 80"}},
     0,
     INVALID("x-queue-type", "[117,110,115,117,112,112,111,114,116,101,100,32,113,117,101,117,"
                             "101,32,116,121,112,101,32,39,128,39]")},
    {"x-queue-type binary",
     {{"x-queue-type", "'x' 00000007 'classic'"}},
     0,
     INVALID("x-queue-type", "{unacceptable_type,binary}")},
    /* The order of the checks. */
    {"dead-letter exchange type first",
     {{"x-queue-type", STR("03", "foo")}, {"x-dead-letter-exchange", I32("00000001")}},
     0,
     "invalid type 'signedint' for arg 'x-dead-letter-exchange' in queue 'q' in vhost '/'"},
    {"x-queue-type before the others",
     {{"x-expires", I32("00000000")}, {"x-queue-type", STR("03", "foo")}},
     0,
     INVALID("x-queue-type", "\"unsupported queue type 'foo'\"")},
    {"RabbitMQ's order, not the table's",
     {{"x-max-priority", I32("00000100")}, {"x-message-ttl", I32("ffffffff")}},
     0,
     INVALID("x-message-ttl", "{value_negative,-1}")},
    {"values before other types' arguments",
     {{"x-delivery-limit", I32("00000001")}, {"x-expires", I32("00000000")}},
     0,
     INVALID("x-expires", "{value_zero,0}")},
    {"the first of two equal keys",
     {{"x-expires", I32("0000000a")}, {"x-expires", I32("00000000")}},
     0,
     NULL},
    /* Arguments of other types, in the table's order. */
    {"x-delivery-limit on a classic queue",
     {{"x-max-age", STR("02", "1D")}, {"x-delivery-limit", I32("00000005")}},
     0,
     OTHER_TYPE("x-max-age", "classic")},
    {"x-dead-letter-strategy on a classic queue",
     {{"x-dead-letter-strategy", STR("0d", "at-least-once")}},
     0,
     OTHER_TYPE("x-dead-letter-strategy", "classic")},
    /* Quorum queues. */
    {"quorum", {QUORUM}, DURABLE, NULL},
    {"quorum non-durable",
     {QUORUM},
     0,
     "invalid property 'non-durable' for queue 'q' in vhost '/'"},
    {"quorum exclusive (RabbitMQ refuses it)", {QUORUM}, DURABLE | EXCLUSIVE, NULL},
    {"quorum exclusive and auto-delete, not durable (RabbitMQ names auto-delete)",
     {QUORUM},
     EXCLUSIVE | AUTO_DELETE,
     "invalid property 'non-durable' for queue 'q' in vhost '/'"},
    {"quorum auto-delete (RabbitMQ refuses it)", {QUORUM}, DURABLE | AUTO_DELETE, NULL},
    {"quorum: arguments before properties",
     {QUORUM, {"x-expires", I32("00000000")}},
     0,
     INVALID("x-expires", "{value_zero,0}")},
    {"quorum x-max-priority (RabbitMQ refuses it)",
     {QUORUM, {"x-max-priority", I32("00000005")}},
     DURABLE,
     NULL},
    {"quorum x-max-priority 256",
     {QUORUM, {"x-max-priority", "'s' 0100"}},
     DURABLE,
     INVALID("x-max-priority", "{max_value_exceeded,256}")},
    {"quorum x-delivery-limit: any value",
     {QUORUM, {"x-delivery-limit", STR("01", "x")}},
     DURABLE,
     NULL},
    {"quorum x-dead-letter-strategy unknown",
     {QUORUM, {"x-dead-letter-strategy", STR("05", "maybe")}},
     DURABLE,
     INVALID("x-dead-letter-strategy", "invalid_dlx_strategy")},
    {"quorum x-quorum-initial-group-size 0",
     {QUORUM, {"x-quorum-initial-group-size", I32("00000000")}},
     DURABLE,
     INVALID("x-quorum-initial-group-size", "{value_zero,0}")},
    {"quorum x-queue-leader-locator",
     {QUORUM, {"x-queue-leader-locator", STR("0d", "least-leaders")}},
     DURABLE,
     NULL},
    {"quorum x-queue-leader-locator unknown",
     {QUORUM, {"x-queue-leader-locator", STR("07", "nearest")}},
     DURABLE,
     INVALID("x-queue-leader-locator", "invalid_queue_locator_arg")},
    {"quorum x-max-in-memory-length -1",
     {QUORUM, {"x-max-in-memory-length", I32("ffffffff")}},
     DURABLE,
     INVALID("x-max-in-memory-length", "{value_negative,-1}")},
    /* Server-named queues. */
    {"server-named quorum",
     {QUORUM},
     DURABLE | SERVER_NAMED,
     "Cannot declare a server-named queue for type rabbit_quorum_queue"},
    {"server-named stream, as binary",
     {{"x-queue-type", "'x' 00000006 'stream'"}},
     SERVER_NAMED,
     "Cannot declare a server-named queue for type rabbit_stream_queue"},
    {"server-named, unknown type",
     {{"x-queue-type", STR("03", "foo")}},
     SERVER_NAMED,
     INVALID("x-queue-type", "\"unsupported queue type 'foo'\"")},
    /* x-queue-master-locator: checked when a classic queue that is not exclusive is placed. */
    {"x-queue-master-locator min-masters",
     {{"x-queue-master-locator", STR("0b", "min-masters")}},
     0,
     NULL},
    {"x-queue-master-locator binary",
     {{"x-queue-master-locator", "'x' 00000006 'random'"}},
     0,
     NULL},
    {"x-queue-master-locator unknown",
     {{"x-queue-master-locator", STR("07", "nearest")}},
     0,
     INVALID("x-queue-master-locator", "invalid_queue_master_locator")},
    {"x-queue-master-locator signedint",
     {{"x-queue-master-locator", I32("00000001")}},
     DURABLE,
     INVALID("x-queue-master-locator", "invalid_queue_master_locator")},
    {"x-queue-master-locator unknown, exclusive",
     {{"x-queue-master-locator", STR("07", "nearest")}},
     EXCLUSIVE,
     NULL},
    {"x-queue-master-locator after other types' arguments",
     {{"x-queue-master-locator", STR("07", "nearest")}, {"x-max-age", STR("02", "1D")}},
     0,
     OTHER_TYPE("x-max-age", "classic")},
    /* Beyond RabbitMQ: classic queues take a delivery limit and a consumer timeout. */
    {"x-delivery-limit and x-consumer-timeout on a classic queue",
     {{"x-delivery-limit", I32("00000005")}, {"x-consumer-timeout", I32("00001000")}},
     0,
     NULL},
    {"x-consumer-timeout negative",
     {{"x-consumer-timeout", I32("ffffffff")}},
     0,
     INVALID("x-consumer-timeout", "{value_negative,-1}")},
};

/* Encodes the n args (up to the first NULL key) as a table's entries into buf. */
static struct wire_table
table_of(const struct arg *args, size_t n, uint8_t *buf, size_t cap)
{
    size_t len = 0;
    for (size_t i = 0; i < n && args[i].key != NULL; i++) {
        size_t klen = strlen(args[i].key);
        ck_assert_uint_lt(len + 1 + klen, cap);
        buf[len++] = (uint8_t)klen;
        memcpy(buf + len, args[i].key, klen);
        len += klen;
        len += test_unhex(args[i].value, buf + len, cap - len);
    }
    struct wire_error err;
    ck_assert_int_eq(wire_table_validate(buf, (uint32_t)len, 0, &err), 0);
    return (struct wire_table){buf, (uint32_t)len};
}

static struct queue_args_decl
decl_of(unsigned flags)
{
    const char *name = flags & SERVER_NAMED ? "amq.gen-x" : "q";
    return (struct queue_args_decl){
        .name = {(const uint8_t *)name, (uint32_t)strlen(name)},
        .vhost = "/",
        .server_named = flags & SERVER_NAMED,
        .durable = flags & DURABLE,
        .exclusive = flags & EXCLUSIVE,
        .auto_delete = flags & AUTO_DELETE,
    };
}

START_TEST(test_check)
{
    uint8_t buf[512];
    char why[256];
    struct wire_table t =
        table_of(check_cases[_i].args, N_ELEMS(check_cases[_i].args), buf, sizeof(buf));
    struct queue_args_decl d = decl_of(check_cases[_i].flags);
    const char *want = check_cases[_i].why;
    memset(why, 'z', sizeof(why));
    int rc = queue_args_check(t, &d, why, sizeof(why));
    if (want == NULL) {
        ck_assert_msg(rc == 0, "%s: refused: %s", check_cases[_i].what, why);
    } else {
        ck_assert_msg(rc == -1, "%s: accepted", check_cases[_i].what);
        if (check_cases[_i].flags & SERVER_NAMED && strstr(want, "'q'") != NULL) {
            char named[256];
            const char *at = strstr(want, "'q'");
            snprintf(named, sizeof(named), "%.*s'amq.gen-x'%s", (int)(at - want), want, at + 3);
            ck_assert_str_eq(why, named);
        } else {
            ck_assert_str_eq(why, want);
        }
    }
}
END_TEST

/* A text longer than the buffer is cut and still NUL-terminated; nothing is written past. */
START_TEST(test_check_truncates)
{
    static const struct arg args[] = {{"x-queue-type", "'S' 00000002 'a' 01"}};
    uint8_t buf[64];
    char why[40];
    struct wire_table t = table_of(args, N_ELEMS(args), buf, sizeof(buf));
    struct queue_args_decl d = decl_of(0);
    memset(why, 'z', sizeof(why));
    ck_assert_int_eq(queue_args_check(t, &d, why, 20), -1);
    ck_assert_str_eq(why, "invalid arg 'x-queu");
    ck_assert_int_eq(why[20], 'z');
}
END_TEST

static const struct {
    const char *what;
    struct arg args[4];
    int count;
    const char *list;
} unapplied_cases[] = {
    {"none", {{NULL}}, 0, ""},
    {"applied or nothing to apply",
     {{"x-queue-type", STR("07", "classic")},
      {"x-queue-mode", STR("04", "lazy")},
      {"x-queue-version", I32("00000002")},
      {"x-foo", I32("00000002")}},
     0,
     ""},
    {"applied: priorities, message TTL, dead-lettering",
     {{"x-max-priority", I32("0000000a")},
      {"x-foo", I32("00000002")},
      {"x-message-ttl", I32("00000001")},
      {"x-dead-letter-exchange", STR("01", "d")}},
     0,
     ""},
    {"priorities, single active consumer, dead-lettering: all applied",
     {{"x-single-active-consumer", "'t' 01"},
      {"x-max-priority", I32("00000005")},
      {"x-dead-letter-routing-key", STR("01", "k")},
      {"x-dead-letter-exchange", STR("01", "d")}},
     0,
     ""},
    {"quorum",
     {{"x-delivery-limit", I32("00000003")},
      {"x-quorum-initial-group-size", I32("00000003")},
      QUORUM,
      {"x-overflow", STR("0e", "reject-publish")}},
     1,
     "x-queue-type 'quorum' (a classic queue here)"},
};

START_TEST(test_unapplied)
{
    uint8_t buf[512];
    char list[256];
    struct wire_table t =
        table_of(unapplied_cases[_i].args, N_ELEMS(unapplied_cases[_i].args), buf, sizeof(buf));
    ck_assert_int_eq(queue_args_unapplied(t, list, sizeof(list)), unapplied_cases[_i].count);
    ck_assert_str_eq(list, unapplied_cases[_i].list);
}
END_TEST

START_TEST(test_unapplied_truncates)
{
    static const struct arg args[] = {QUORUM, {"x-dead-letter-strategy", STR("01", "x")}};
    uint8_t buf[64];
    char list[16];
    struct wire_table t = table_of(args, N_ELEMS(args), buf, sizeof(buf));
    memset(list, 'z', sizeof(list));
    /* x-dead-letter-strategy is applied (at-least-once dead-lettering): the type alone. */
    ck_assert_int_eq(queue_args_unapplied(t, list, 12), 1);
    ck_assert_str_eq(list, "x-queue-typ");
    ck_assert_int_eq(list[12], 'z');
}
END_TEST

/* A redeclare compares the arguments of the existing queue's type, in RabbitMQ's order. */
START_TEST(test_equivalent_keys)
{
    static const struct arg quorum[] = {QUORUM};
    static const struct arg stream[] = {{"x-queue-type", STR("06", "stream")}};
    uint8_t buf[64];
    const char *const *keys = queue_args_equivalent_keys(table_of(NULL, 0, buf, sizeof(buf)));
    ck_assert_str_eq(keys[0], "x-expires");
    ck_assert_str_eq(keys[9], "x-queue-version");
    ck_assert_str_eq(keys[12], "x-queue-master-locator");
    ck_assert_str_eq(keys[13], "x-delivery-limit");
    ck_assert_str_eq(keys[14], "x-consumer-timeout");
    ck_assert_ptr_null(keys[15]);
    /* A stored queue may name a type nobody declares any more: a classic queue. */
    ck_assert_ptr_eq(queue_args_equivalent_keys(table_of(stream, 1, buf, sizeof(buf))), keys);
    keys = queue_args_equivalent_keys(table_of(quorum, 1, buf, sizeof(buf)));
    ck_assert_str_eq(keys[0], "x-dead-letter-exchange");
    ck_assert_str_eq(keys[12], "x-delivery-limit");
    ck_assert_str_eq(keys[15], "x-consumer-timeout");
    ck_assert_str_eq(keys[16], "x-max-priority");
    ck_assert_ptr_null(keys[17]);
}
END_TEST

START_TEST(test_implied)
{
    struct wire_value classic = {.type = WIRE_FIELD_LONGSTR,
                                 .v.str = {(const uint8_t *)"classic", 7}};
    struct wire_value quorum = {.type = WIRE_FIELD_LONGSTR,
                                .v.str = {(const uint8_t *)"quorum", 6}};
    struct wire_value binary = {.type = WIRE_FIELD_BYTES, .v.str = {(const uint8_t *)"classic", 7}};
    ck_assert(queue_args_implied("x-queue-type", &classic));
    ck_assert(!queue_args_implied("x-queue-type", &quorum));
    ck_assert(!queue_args_implied("x-queue-type", &binary));
    ck_assert(!queue_args_implied("x-queue-mode", &classic));
}
END_TEST

static Suite *
queue_args_suite(void)
{
    Suite *s = suite_create("queue_args");
    TCase *tc = tcase_create("check");
    tcase_add_loop_test(tc, test_check, 0, N_ELEMS(check_cases));
    tcase_add_test(tc, test_check_truncates);
    suite_add_tcase(s, tc);
    tc = tcase_create("unapplied");
    tcase_add_loop_test(tc, test_unapplied, 0, N_ELEMS(unapplied_cases));
    tcase_add_test(tc, test_unapplied_truncates);
    suite_add_tcase(s, tc);
    tc = tcase_create("equivalence");
    tcase_add_test(tc, test_equivalent_keys);
    tcase_add_test(tc, test_implied);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(queue_args_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
