/* Unit tests for policies (src/broker/policy.c) and their records (src/admin/policies.c):
 * how a queue's arguments, its policy and its operator policy merge into its settings (the
 * lower limit, or the argument, as RabbitMQ 3.10 says per key); which policy applies
 * (priority, ties, apply-to, patterns, keys a queue type refuses); policies set, replaced
 * and cleared changing existing queues at once; exchanges' alternate exchange by policy;
 * the effective definition; RabbitMQ's validation texts, values printed as Erlang prints
 * them (checked against Debian's RabbitMQ 3.10.8); operator policies in definitions, in
 * RabbitMQ 3.10's export form too. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "admin_fixture.h"
#include "warren/exchange.h"
#include "warren/queue.h"

static char err[1024];

static struct vhost *
vh(void)
{
    return vhost_find(&vhosts, WIRE_STR_LIT("/"));
}

/* Imports a definitions document given as JSON text. */
static enum admin_result
import(const char *text)
{
    json_error_t je;
    json_t *d = json_loads(text, 0, &je);
    ck_assert_msg(d != NULL, "bad JSON in the test: %s: %s", je.text, text);
    enum admin_result r = admin_definitions_import(adm, d, err, sizeof(err));
    json_decref(d);
    return r;
}

/* Declares queue name in "/" with arguments (a JSON object's text). */
static struct queue *
declare(const char *name, const char *args)
{
    char doc[1024];
    snprintf(doc, sizeof(doc),
             "{\"queues\":[{\"name\":\"%s\",\"vhost\":\"/\",\"durable\":true,"
             "\"arguments\":%s}]}",
             name, args);
    ck_assert_msg(import(doc) == ADMIN_OK, "%s", err);
    struct queue *q =
        vhost_queue_find(vh(), (struct wire_str){(const uint8_t *)name, (uint32_t)strlen(name)});
    ck_assert_ptr_nonnull(q);
    return q;
}

/* Sets a policy (op: an operator policy) on "/" from a PUT body's text. */
static enum admin_result
put(bool op, const char *name, const char *body)
{
    json_t *b = json_loads(body, 0, NULL);
    ck_assert_msg(b != NULL, "bad JSON in the test: %s", body);
    enum admin_result r = admin_policy_put(adm, op, "/", name, b, NULL, NULL, err, sizeof(err));
    json_decref(b);
    return r;
}

#define N QUEUE_SETTING_NONE

/* Arguments, policy and operator policy, and the settings they make. */
static const struct {
    const char *what, *args, *policy, *op;
    int64_t ttl, expires, max_len, max_bytes, limit, timeout;
    int overflow;
    const char *dlx, *dlx_rk, *pol_name, *op_name;
} merges[] = {
    {"arguments alone", "{\"x-message-ttl\":100,\"x-max-length\":3}", NULL, NULL, 100, N, 3, N, N,
     N, QUEUE_OVERFLOW_DROP_HEAD, NULL, NULL, NULL, NULL},
    {"policy alone", "{}",
     "{\"message-ttl\":50,\"expires\":9000,\"max-length\":7,\"max-length-bytes\":1000,"
     "\"delivery-limit\":4,\"consumer-timeout\":60000,\"overflow\":\"reject-publish\","
     "\"dead-letter-exchange\":\"dlx\",\"dead-letter-routing-key\":\"dead\"}",
     NULL, 50, 9000, 7, 1000, 4, 60000, QUEUE_OVERFLOW_REJECT_PUBLISH, "dlx", "dead", "p", NULL},
    {"limits: the lower of argument and policy",
     "{\"x-message-ttl\":100,\"x-max-length\":3,\"x-expires\":5000,\"x-max-length-bytes\":10}",
     "{\"message-ttl\":50,\"max-length\":7,\"expires\":9000,\"max-length-bytes\":5}", NULL, 50,
     5000, 3, 5, N, N, QUEUE_OVERFLOW_DROP_HEAD, NULL, NULL, "p", NULL},
    {"the rest: the argument wins",
     "{\"x-dead-letter-exchange\":\"mine\",\"x-overflow\":\"drop-head\","
     "\"x-dead-letter-routing-key\":\"rk\"}",
     "{\"dead-letter-exchange\":\"theirs\",\"overflow\":\"reject-publish-dlx\","
     "\"dead-letter-routing-key\":\"other\"}",
     NULL, N, N, N, N, N, N, QUEUE_OVERFLOW_DROP_HEAD, "mine", "rk", "p", NULL},
    {"operator policy: the lower of it and the policy", "{}",
     "{\"message-ttl\":50,\"max-length\":7,\"dead-letter-exchange\":\"d\"}",
     "{\"message-ttl\":500,\"max-length\":2,\"expires\":100}", 50, 100, 2, N, N, N,
     QUEUE_OVERFLOW_DROP_HEAD, "d", NULL, "p", "op"},
    {"operator policy and argument: the lower", "{\"x-max-length\":1,\"x-message-ttl\":9000}", NULL,
     "{\"max-length\":2,\"message-ttl\":10}", 10, N, 1, N, N, N, QUEUE_OVERFLOW_DROP_HEAD, NULL,
     NULL, NULL, "op"},
    {"keys Warren does not act on change nothing", "{}",
     "{\"ha-mode\":\"all\",\"queue-mode\":\"lazy\",\"queue-version\":2}", NULL, N, N, N, N, N, N,
     QUEUE_OVERFLOW_DROP_HEAD, NULL, NULL, "p", NULL},
};

#undef N

START_TEST(test_merge)
{
    struct queue *q = declare("q", merges[_i].args);
    char body[1024];
    if (merges[_i].policy != NULL) {
        snprintf(body, sizeof(body), "{\"pattern\":\"^q$\",\"definition\":%s}", merges[_i].policy);
        ck_assert_msg(put(false, "p", body) == ADMIN_OK, "%s", err);
    }
    if (merges[_i].op != NULL) {
        snprintf(body, sizeof(body), "{\"pattern\":\"q\",\"definition\":%s}", merges[_i].op);
        ck_assert_msg(put(true, "op", body) == ADMIN_OK, "%s", err);
    }
    const struct queue_settings *s = &q->settings;
    ck_assert_int_eq(s->message_ttl, merges[_i].ttl);
    ck_assert_int_eq(s->expires, merges[_i].expires);
    ck_assert_int_eq(s->max_length, merges[_i].max_len);
    ck_assert_int_eq(s->max_length_bytes, merges[_i].max_bytes);
    ck_assert_int_eq(s->delivery_limit, merges[_i].limit);
    ck_assert_int_eq(s->consumer_timeout, merges[_i].timeout);
    ck_assert_int_eq(s->overflow, merges[_i].overflow);
    ck_assert_pstr_eq(s->dlx, merges[_i].dlx);
    ck_assert_pstr_eq(s->dlx_routing_key, merges[_i].dlx_rk);
    ck_assert_pstr_eq(s->policy, merges[_i].pol_name);
    ck_assert_pstr_eq(s->operator_policy, merges[_i].op_name);
    /* The same settings for a queue declared after the policies. */
    struct queue *q2 = declare("q2", merges[_i].args);
    (void)q2;
}
END_TEST

/* Which of several policies applies to a queue. */
START_TEST(test_precedence)
{
    struct queue *q = declare("orders", "{}");
    struct queue *qq = declare("orders.quorum", "{\"x-queue-type\":\"quorum\"}");
    ck_assert_ptr_null(q->settings.policy);
    ck_assert_int_eq(put(false, "low",
                         "{\"pattern\":\"^ord\",\"definition\":{\"max-length\":1},"
                         "\"priority\":1}"),
                     ADMIN_OK);
    ck_assert_str_eq(q->settings.policy, "low");
    ck_assert_int_eq(q->settings.max_length, 1);
    /* a higher priority wins, at once, over a lower one set before */
    ck_assert_int_eq(put(false, "high",
                         "{\"pattern\":\"ders\",\"definition\":{\"max-length\":2},"
                         "\"priority\":5}"),
                     ADMIN_OK);
    ck_assert_str_eq(q->settings.policy, "high");
    ck_assert_int_eq(q->settings.max_length, 2);
    /* one that does not match, or applies to exchanges only, does not count */
    ck_assert_int_eq(put(false, "other",
                         "{\"pattern\":\"^x\",\"definition\":{\"max-length\":3},"
                         "\"priority\":9}"),
                     ADMIN_OK);
    ck_assert_int_eq(put(false, "exch",
                         "{\"pattern\":\".*\",\"definition\":{\"max-length\":3},"
                         "\"priority\":9,\"apply-to\":\"exchanges\"}"),
                     ADMIN_OK);
    ck_assert_str_eq(q->settings.policy, "high");
    /* a stream key: the policy applies to no classic queue (is_policy_applicable) */
    ck_assert_int_eq(put(false, "stream",
                         "{\"pattern\":\".*\",\"definition\":{\"max-length\":3,"
                         "\"max-age\":\"1D\"},\"priority\":9}"),
                     ADMIN_OK);
    ck_assert_str_eq(q->settings.policy, "high");
    /* a classic key: not for a quorum queue, which gets the next one */
    ck_assert_int_eq(put(false, "lazy",
                         "{\"pattern\":\"quorum\",\"definition\":{\"queue-mode\":"
                         "\"lazy\"},\"priority\":8}"),
                     ADMIN_OK);
    ck_assert_str_eq(qq->settings.policy, "high");
    /* equal priorities: the name first in byte order */
    ck_assert_int_eq(put(false, "a-tie",
                         "{\"pattern\":\"ord\",\"definition\":{\"max-length\":4},"
                         "\"priority\":5}"),
                     ADMIN_OK);
    ck_assert_str_eq(q->settings.policy, "a-tie");
    ck_assert_int_eq(q->settings.max_length, 4);
    /* a float priority counts as its value */
    ck_assert_int_eq(put(false, "z",
                         "{\"pattern\":\"ord\",\"definition\":{\"max-length\":6},"
                         "\"priority\":5.5}"),
                     ADMIN_OK);
    ck_assert_str_eq(q->settings.policy, "z");
    /* replacing a policy re-sorts it; clearing one falls back to the next */
    ck_assert_int_eq(put(false, "z",
                         "{\"pattern\":\"ord\",\"definition\":{\"max-length\":6},"
                         "\"priority\":0}"),
                     ADMIN_OK);
    ck_assert_str_eq(q->settings.policy, "a-tie");
    ck_assert_int_eq(admin_policy_delete(adm, false, "/", "a-tie", NULL, NULL, err, sizeof(err)),
                     ADMIN_OK);
    ck_assert_str_eq(q->settings.policy, "high");
    ck_assert_int_eq(admin_policy_delete(adm, false, "/", "a-tie", NULL, NULL, err, sizeof(err)),
                     ADMIN_NOT_FOUND);
    /* the listing: lowest priority first, as rabbitmqctl and the API list them */
    json_t *l = admin_policies_json(adm, false, "/");
    ck_assert_int_eq(json_array_size(l), 7);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(l, 0), "name")), "z");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(l, 6), "name")), "stream");
    json_decref(l);
}
END_TEST

/* Setting, replacing and clearing policies changes live queues; the effective definition
 * merges policy and operator policy. */
START_TEST(test_live_change)
{
    struct queue *q = declare("jobs", "{\"x-max-length\":100}");
    ck_assert_int_eq(put(false, "p",
                         "{\"pattern\":\"^jobs$\",\"definition\":{\"max-length\":10,"
                         "\"dead-letter-exchange\":\"dlx\",\"ha-mode\":\"all\"}}"),
                     ADMIN_OK);
    ck_assert_int_eq(q->settings.max_length, 10);
    ck_assert_int_eq(put(true, "op",
                         "{\"pattern\":\"^jobs$\",\"definition\":{\"max-length\":5,"
                         "\"message-ttl\":1000}}"),
                     ADMIN_OK);
    ck_assert_int_eq(q->settings.max_length, 5);
    json_t *eff = admin_queue_policy_json(adm, q);
    char *text = json_dumps(eff, JSON_COMPACT | JSON_SORT_KEYS);
    ck_assert_str_eq(text, "{\"dead-letter-exchange\":\"dlx\",\"ha-mode\":\"all\",\"max-length\":"
                           "5,\"message-ttl\":1000}");
    free(text);
    json_decref(eff);
    ck_assert_int_eq(put(false, "p",
                         "{\"pattern\":\"^nomatch$\",\"definition\":{\"max-length\":"
                         "1}}"),
                     ADMIN_OK);
    ck_assert_ptr_null(q->settings.policy);
    ck_assert_ptr_null(q->settings.dlx);
    ck_assert_int_eq(q->settings.max_length, 5);
    ck_assert_int_eq(admin_policy_delete(adm, true, "/", "op", NULL, NULL, err, sizeof(err)),
                     ADMIN_OK);
    ck_assert_ptr_null(q->settings.operator_policy);
    ck_assert_int_eq(q->settings.max_length, 100); /* the argument's again */
    ck_assert_int_eq(q->settings.message_ttl, QUEUE_SETTING_NONE);
    eff = admin_queue_policy_json(adm, q);
    ck_assert_int_eq(json_object_size(eff), 0);
    json_decref(eff);
    /* a vhost goes with its policies */
    ck_assert_int_eq(put(true, "op", "{\"pattern\":\".\",\"definition\":{\"max-length\":5}}"),
                     ADMIN_OK);
    ck_assert_int_eq(admin_vhost_delete(adm, "/", NULL, NULL, err, sizeof(err)), ADMIN_OK);
    json_t *l = admin_policies_json(adm, true, NULL);
    ck_assert_int_eq(json_array_size(l), 0);
    json_decref(l);
}
END_TEST

/* An exchange's alternate exchange: its argument's, else its policy's. */
START_TEST(test_alternate_exchange)
{
    ck_assert_int_eq(
        import("{\"exchanges\":[{\"name\":\"plain\",\"vhost\":\"/\",\"type\":\"direct\"},"
               "{\"name\":\"own\",\"vhost\":\"/\",\"type\":\"direct\",\"arguments\":"
               "{\"alternate-exchange\":\"mine\"}}]}"),
        ADMIN_OK);
    struct exch *plain = vhost_exch_find(vh(), WIRE_STR_LIT("plain"));
    struct exch *own = vhost_exch_find(vh(), WIRE_STR_LIT("own"));
    ck_assert_int_eq(put(false, "ae",
                         "{\"pattern\":\".*\",\"definition\":{\"alternate-exchange\":"
                         "\"alt\"},\"apply-to\":\"exchanges\"}"),
                     ADMIN_OK);
    ck_assert_pstr_eq(plain->policy_alternate, "alt");
    ck_assert_pstr_eq(own->policy_alternate, NULL);
    ck_assert_str_eq(own->alternate, "mine");
    struct exch *amq = vhost_exch_find(vh(), WIRE_STR_LIT("amq.direct"));
    ck_assert_pstr_eq(amq->policy_alternate, "alt");
    ck_assert_int_eq(put(false, "ae",
                         "{\"pattern\":\".*\",\"definition\":{\"alternate-exchange\":"
                         "\"alt\"},\"apply-to\":\"queues\"}"),
                     ADMIN_OK);
    ck_assert_pstr_eq(plain->policy_alternate, NULL);
}
END_TEST

/* PUT bodies RabbitMQ 3.10.8 refuses, and its texts (the HTTP API's, before escaping). */
static const struct {
    bool op;
    const char *body, *text;
} bad_policies[] = {
    {false, "{\"pattern\":\"^q\",\"definition\":{\"message-ttl\":\"foo\"}}",
     "<<\"foo\">> is not a valid message TTL\n"},
    {false, "{\"pattern\":\"^q\",\"definition\":{\"foo\":1}}",
     "[{<<\"foo\">>,1}] are not recognised policy settings\n"},
    {false, "{\"pattern\":\"(\",\"definition\":{\"expires\":1}}",
     "pattern should be regular expression but is invalid: {\"missing )\",1}\n"},
    {false, "{\"pattern\":\")\",\"definition\":{\"expires\":1}}",
     "pattern should be regular expression but is invalid: {\"unmatched parentheses\",\n"
     "                                                      0}\n"},
    {false, "{\"pattern\":\"x\",\"definition\":{\"expires\":0},\"apply-to\":\"nope\"}",
     "0 is not a valid queue expiry\n"
     "apply-to 'nope' unrecognised; should be 'queues', 'exchanges' or 'all'\n"},
    {false, "{\"pattern\":\"x\",\"definition\":{}}", "no policy provided\n"},
    {false,
     "{\"pattern\":\"(\",\"definition\":{\"max-length\":1,\"foo\":2},\"apply-to\":\"x\","
     "\"priority\":\"5\"}",
     "[{<<\"foo\">>,2}] are not recognised policy settings\n"
     "apply-to 'x' unrecognised; should be 'queues', 'exchanges' or 'all'\n"
     "pattern should be regular expression but is invalid: {\"missing )\",1}\n"
     "priority should be a number, actually was <<\"5\">>\n"},
    {false, "{\"pattern\":5,\"definition\":{\"max-length\":3}}",
     "pattern should be a binary but was 5\n"},
    {false, "{\"pattern\":\"x\",\"definition\":{\"expires\":1.5,\"message-ttl\":-1}}",
     "1.5 is not a valid queue expiry\n"},
    {false, "{\"pattern\":\"x\",\"definition\":{\"expires\":1.0e20}}",
     "1.0e20 is not a valid queue expiry\n"},
    {false, "{\"pattern\":\"x\",\"definition\":{\"expires\":0.0001}}",
     "0.0001 is not a valid queue expiry\n"},
    {false, "{\"pattern\":\"x\",\"definition\":{\"expires\":1e-7}}",
     "1.0e-7 is not a valid queue expiry\n"},
    {false, "{\"pattern\":\"x\",\"definition\":{\"expires\":123456789.5}}",
     "123456789.5 is not a valid queue expiry\n"},
    {false, "{\"pattern\":\"x\",\"definition\":{\"expires\":[1,\"a\"]}}",
     "[1,<<\"a\">>] is not a valid queue expiry\n"},
    {false, "{\"pattern\":\"x\",\"definition\":{\"expires\":{\"a\":1}}}",
     "#{<<\"a\">> => 1} is not a valid queue expiry\n"},
    {false, "{\"pattern\":\"x\",\"definition\":{\"expires\":null}}",
     "null is not a valid queue expiry\n"},
    {false, "{\"pattern\":\"x\",\"definition\":{\"expires\":\"\\u00e9\"}}",
     "<<\"\xc3\x83\xc2\xa9\">> is not a valid queue expiry\n"},
    {false, "{\"pattern\":\"x\",\"definition\":{\"expires\":\"\\u0080\"}}",
     "<<194,128>> is not a valid queue expiry\n"},
    {false, "{\"pattern\":\"x\",\"definition\":{\"ha-mode\":\"exactly\"}}",
     "ha-mode=\"exactly\" takes an integer, none given\n"},
    {false, "{\"pattern\":\"x\",\"definition\":{\"ha-mode\":\"nodes\",\"ha-params\":[1]}}",
     "ha-mode=\"nodes\" takes a list of strings, [1] was not a string\n"},
    {false, "{\"pattern\":\"x\",\"definition\":{\"ha-params\":1}}",
     "ha-mode must be specified to specify ha-params, ha-sync-mode or ha-promote-on-shutdown\n"},
    {false, "{\"pattern\":\"x\",\"definition\":{\"queue-master-locator\":\"x\"}}",
     "<<\"x\">> invalid queue-master-locator value\n"},
    {false, "{\"pattern\":\"x\",\"definition\":{\"max-age\":\"1x\",\"expires\":-1}}",
     "-1 is not a valid queue expiry\n"},
    {false, "{\"pattern\":\"x\",\"definition\":{\"federation-upstream-set\":\"all\"}}",
     "[{<<\"federation-upstream-set\">>,<<\"all\">>}] are not recognised policy settings\n"},
    {true, "{\"pattern\":\"x\",\"definition\":{\"dead-letter-exchange\":\"x\"}}",
     "[{<<\"dead-letter-exchange\">>,<<\"x\">>}] are not recognised policy settings\n"},
    {true, "{\"pattern\":\"x\",\"definition\":{\"overflow\":\"drop-head\"}}",
     "[{<<\"overflow\">>,<<\"drop-head\">>}] are not recognised policy settings\n"},
};

START_TEST(test_bad_policy)
{
    ck_assert_int_eq(put(bad_policies[_i].op, "bad", bad_policies[_i].body), ADMIN_INVALID);
    char want[1024];
    snprintf(want, sizeof(want), "Validation failed\n\n%s", bad_policies[_i].text);
    ck_assert_str_eq(err, want);
    json_t *l = admin_policies_json(adm, bad_policies[_i].op, NULL);
    ck_assert_int_eq(json_array_size(l), 0);
    json_decref(l);
}
END_TEST

/* Operator policies travel as parameters of component operator_policy, read in RabbitMQ
 * 3.10's export form ([[key, value]] definitions) and written back as objects. */
START_TEST(test_definitions)
{
    ck_assert_msg(
        import("{\"parameters\":[{\"component\":\"operator_policy\",\"name\":\"op1\",\"value\":"
               "{\"apply-to\":\"queues\",\"definition\":[[\"max-length\",10],[\"message-ttl\","
               "500]],\"pattern\":\"^q\",\"priority\":2},\"vhost\":\"/\"}],"
               "\"policies\":[{\"apply-to\":\"all\",\"definition\":{\"max-length\":3},\"name\":"
               "\"p5\",\"pattern\":\"^q\",\"priority\":1.5,\"vhost\":\"/\"}],"
               "\"queues\":[{\"name\":\"q1\",\"vhost\":\"/\",\"arguments\":{}}]}") == ADMIN_OK,
        "%s", err);
    struct queue *q = vhost_queue_find(vh(), WIRE_STR_LIT("q1"));
    ck_assert_str_eq(q->settings.operator_policy, "op1");
    ck_assert_str_eq(q->settings.policy, "p5");
    ck_assert_int_eq(q->settings.max_length, 3);
    ck_assert_int_eq(q->settings.message_ttl, 500);
    json_t *out = admin_definitions_export(adm);
    char *params = json_dumps(json_object_get(out, "parameters"), JSON_COMPACT | JSON_SORT_KEYS);
    ck_assert_str_eq(params, "[{\"component\":\"operator_policy\",\"name\":\"op1\",\"value\":"
                             "{\"apply-to\":\"queues\",\"definition\":{\"max-length\":10,"
                             "\"message-ttl\":500},\"pattern\":\"^q\",\"priority\":2},\"vhost\":"
                             "\"/\"}]");
    free(params);
    json_decref(out);
    /* A parameter's value is checked whole: RabbitMQ's mandatory keys and unknown terms. */
    ck_assert_int_eq(import("{\"parameters\":[{\"component\":\"operator_policy\",\"name\":\"o\","
                            "\"value\":{\"pattern\":\"x\",\"definition\":{\"expires\":5},"
                            "\"colour\":\"red\"},\"vhost\":\"/\"}]}"),
                     ADMIN_INVALID);
    ck_assert_str_eq(err, "parameters[0]: Validation failed\n\n"
                          "Unrecognised terms [{<<\"colour\">>,<<\"red\">>}] in o\n"
                          "Key \"priority\" not found in o\n");
}
END_TEST

static Suite *
policy_suite(void)
{
    Suite *s = suite_create("policy");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, fixture_setup, fixture_teardown);
    tcase_add_loop_test(tc, test_merge, 0, sizeof(merges) / sizeof(merges[0]));
    tcase_add_test(tc, test_precedence);
    tcase_add_test(tc, test_live_change);
    tcase_add_test(tc, test_alternate_exchange);
    tcase_add_loop_test(tc, test_bad_policy, 0, sizeof(bad_policies) / sizeof(bad_policies[0]));
    tcase_add_test(tc, test_definitions);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(policy_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
