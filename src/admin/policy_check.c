/* A policy's or operator policy's value checked as RabbitMQ 3.10 checks it
 * (rabbit_policy.erl, rabbit_policies.erl, rabbit_parameter_validation.erl,
 * rabbit_mirror_queue_misc.erl, rabbit_queue_location_validator.erl), with its error texts,
 * and turned into what the broker acts on (warren/policy.h's policy_def). Beyond 3.10,
 * consumer-timeout is a policy key (as in RabbitMQ 3.12). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_int.h"

/* What one key of a definition may hold, and the text when it does not ("~p is not a valid
 * message TTL"). */
enum admin_pol_check {
    POL_STRING,     /* any string */
    POL_INT_NONNEG, /* an integer >= 0 */
    POL_INT_POS,    /* an integer >= 1 */
    POL_ENUM,       /* one of the strings in values */
    POL_INT_ENUM,   /* 1 or 2 */
    POL_MAX_AGE,    /* digits and one of Y M D h m s */
    POL_SEGMENT,    /* an integer 0..3000000000 */
    POL_MIRROR,     /* ha-*: checked together (admin_pol_mirror) */
    POL_LOCATOR,    /* queue-master-locator */
};

/* The validator modules of RabbitMQ, in the order their errors are reported. */
enum admin_pol_module { MOD_POLICIES = 0, MOD_MIRROR, MOD_LOCATION, MOD_COUNT };

struct admin_pol_key {
    const char *key;
    enum admin_pol_module module;
    enum admin_pol_check check;
    const char *values; /* POL_ENUM: "a|b|c" */
    const char *what;   /* completes "~p is not a valid " */
    bool op;            /* also an operator policy key */
    unsigned not_for;   /* POLICY_NOT_*: queue types that refuse a policy holding it */
};

#define NQ POLICY_NOT_QUORUM
#define NC POLICY_NOT_CLASSIC
static const struct admin_pol_key admin_pol_keys[] = {
    {"alternate-exchange", MOD_POLICIES, POL_STRING, NULL, "alternate exchange name", 0, 0},
    {"consumer-timeout", MOD_POLICIES, POL_INT_NONNEG, NULL, "consumer timeout", 0, 0},
    {"dead-letter-exchange", MOD_POLICIES, POL_STRING, NULL, "dead letter exchange name", 0, 0},
    {"dead-letter-routing-key", MOD_POLICIES, POL_STRING, NULL, "dead letter routing key", 0, 0},
    {"dead-letter-strategy", MOD_POLICIES, POL_ENUM, "at-most-once|at-least-once",
     "dead letter strategy", 0, 0},
    {"delivery-limit", MOD_POLICIES, POL_INT_NONNEG, NULL, "delivery limit", 1, 0},
    {"expires", MOD_POLICIES, POL_INT_POS, NULL, "queue expiry", 1, 0},
    {"ha-mode", MOD_MIRROR, POL_MIRROR, NULL, NULL, 0, NQ},
    {"ha-params", MOD_MIRROR, POL_MIRROR, NULL, NULL, 0, NQ},
    {"ha-promote-on-failure", MOD_MIRROR, POL_MIRROR, NULL, NULL, 0, NQ},
    {"ha-promote-on-shutdown", MOD_MIRROR, POL_MIRROR, NULL, NULL, 0, NQ},
    {"ha-sync-batch-size", MOD_MIRROR, POL_MIRROR, NULL, NULL, 0, 0},
    {"ha-sync-mode", MOD_MIRROR, POL_MIRROR, NULL, NULL, 0, NQ},
    {"initial-cluster-size", MOD_POLICIES, POL_INT_NONNEG, NULL, "cluster size", 0, NC | NQ},
    {"max-age", MOD_POLICIES, POL_MAX_AGE, NULL, "max age", 0, NC | NQ},
    {"max-in-memory-bytes", MOD_POLICIES, POL_INT_NONNEG, NULL, "maximum memory in bytes", 1, 0},
    {"max-in-memory-length", MOD_POLICIES, POL_INT_NONNEG, NULL, "maximum memory in bytes", 1, 0},
    {"max-length", MOD_POLICIES, POL_INT_NONNEG, NULL, "maximum length", 1, 0},
    {"max-length-bytes", MOD_POLICIES, POL_INT_NONNEG, NULL, "maximum length in bytes", 1, 0},
    {"message-ttl", MOD_POLICIES, POL_INT_NONNEG, NULL, "message TTL", 1, 0},
    {"overflow", MOD_POLICIES, POL_ENUM, "drop-head|reject-publish|reject-publish-dlx",
     "overflow value", 0, 0},
    {"queue-leader-locator", MOD_POLICIES, POL_ENUM, "client-local|balanced|random|least-leaders",
     "queue leader locator value", 0, NC},
    {"queue-master-locator", MOD_LOCATION, POL_LOCATOR, "min-masters|client-local|random", NULL, 0,
     NQ},
    {"queue-mode", MOD_POLICIES, POL_ENUM, "default|lazy", "queue-mode value", 0, NQ},
    {"queue-version", MOD_POLICIES, POL_INT_ENUM, NULL, "queue-version value", 0, 0},
    {"stream-max-segment-size-bytes", MOD_POLICIES, POL_SEGMENT, NULL, "segment size", 0, NC | NQ},
};
#undef NQ
#undef NC
#define ADMIN_POL_NKEYS (sizeof(admin_pol_keys) / sizeof(admin_pol_keys[0]))

/* key's row, or NULL for a key no validator knows (for an operator policy, op: one that is
 * not an operator policy key). */
static const struct admin_pol_key *
admin_pol_key(const char *key, bool op)
{
    for (size_t i = 0; i < ADMIN_POL_NKEYS; i++)
        if (strcmp(admin_pol_keys[i].key, key) == 0)
            return !op || admin_pol_keys[i].op ? &admin_pol_keys[i] : NULL;
    return NULL;
}

/* Whether s is one of the "|"-separated values. */
static bool
admin_pol_one_of(const char *s, const char *values)
{
    size_t n = strlen(s);
    for (const char *v = values; v != NULL; v = strchr(v, '|') ? strchr(v, '|') + 1 : NULL)
        if (strncmp(v, s, n) == 0 && (v[n] == '|' || v[n] == '\0'))
            return true;
    return false;
}

/* Whether v is what k's check takes; true for the keys checked elsewhere (POL_MIRROR,
 * POL_LOCATOR). */
static bool
admin_pol_value_ok(const struct admin_pol_key *k, json_t *v)
{
    json_int_t n = json_is_integer(v) ? json_integer_value(v) : -1;
    const char *s = json_string_value(v);
    switch (k->check) {
    case POL_STRING:
        return s != NULL;
    case POL_INT_NONNEG:
        return n >= 0;
    case POL_INT_POS:
        return n >= 1;
    case POL_ENUM:
        return s != NULL && admin_pol_one_of(s, k->values);
    case POL_INT_ENUM:
        return n == 1 || n == 2;
    case POL_SEGMENT:
        return n >= 0 && n <= 3000000000LL;
    case POL_MAX_AGE: {
        size_t len = s != NULL ? strlen(s) : 0, d = 0;
        while (d < len && s[d] >= '0' && s[d] <= '9')
            d++;
        return d > 0 && d + 1 == len && strchr("YMDhms", s[d]) != NULL;
    }
    case POL_MIRROR:
    case POL_LOCATOR:
        break;
    }
    return true;
}

/* Writes RabbitMQ's "<what>, <v> given" for a value of the wrong kind: v as Erlang prints
 * it, or none when absent (as RabbitMQ prints a missing ha-params). Returns true, for the
 * caller to return: an error was written. */
static bool
admin_pol_given(struct admin_buf *b, const char *what, json_t *v)
{
    admin_buf_str(b, what);
    admin_buf_str(b, ", ");
    if (v == NULL)
        admin_buf_str(b, "none");
    else
        admin_erl_term(b, v);
    admin_buf_str(b, " given");
    return true;
}

/* Writes one element of a proplist as Erlang prints it: {<<"key">>,v}. */
static void
admin_pol_pair(struct admin_buf *b, const char *key, json_t *v)
{
    admin_buf_str(b, "{");
    admin_erl_binary(b, key, strlen(key));
    admin_buf_str(b, ",");
    admin_erl_term(b, v);
    admin_buf_str(b, "}");
}

/* rabbit_mirror_queue_misc:validate_policy: the ha-* keys together. Returns an error into b
 * (and true), or false. */
static bool
admin_pol_mirror(json_t *def, struct admin_buf *b)
{
    json_t *mode = json_object_get(def, "ha-mode"), *params = json_object_get(def, "ha-params");
    json_t *sync = json_object_get(def, "ha-sync-mode");
    json_t *batch = json_object_get(def, "ha-sync-batch-size");
    static const char *const promote_keys[2] = {"ha-promote-on-shutdown", "ha-promote-on-failure"};
    json_t *promote[2] = {json_object_get(def, promote_keys[0]),
                          json_object_get(def, promote_keys[1])};
    if (mode == NULL && params == NULL && sync == NULL && batch == NULL && promote[0] == NULL &&
        promote[1] == NULL)
        return false;
    if (mode == NULL) {
        admin_buf_str(b, "ha-mode must be specified to specify ha-params, ha-sync-mode or "
                         "ha-promote-on-shutdown");
        return true;
    }
    const char *m = json_string_value(mode);
    if (m == NULL || !admin_pol_one_of(m, "all|exactly|nodes")) {
        admin_erl_term(b, mode);
        admin_buf_str(b, " is not a valid ha-mode value");
        return true;
    }
    if (strcmp(m, "all") == 0 && params != NULL) {
        admin_buf_str(b, "ha-mode=\"all\" does not take parameters");
        return true;
    }
    if (strcmp(m, "exactly") == 0 && !(json_is_integer(params) && json_integer_value(params) > 0))
        return admin_pol_given(b, "ha-mode=\"exactly\" takes an integer", params);
    if (strcmp(m, "nodes") == 0) {
        if (json_is_array(params) && json_array_size(params) == 0) {
            admin_buf_str(b, "ha-mode=\"nodes\" list must be non-empty");
            return true;
        }
        if (!json_is_array(params))
            return admin_pol_given(b, "ha-mode=\"nodes\" takes a list", params);
        json_t *bad = json_array(), *x;
        size_t i;
        json_array_foreach(params, i, x) if (!json_is_string(x)) json_array_append(bad, x);
        bool any = json_array_size(bad) > 0;
        if (any) {
            admin_buf_str(b, "ha-mode=\"nodes\" takes a list of strings, ");
            admin_erl_term(b, bad);
            admin_buf_str(b, " was not a string");
        }
        json_decref(bad);
        if (any)
            return true;
    }
    const char *s;
    if (sync != NULL &&
        ((s = json_string_value(sync)) == NULL || !admin_pol_one_of(s, "automatic|manual"))) {
        admin_buf_str(b, "ha-sync-mode must be \"manual\" or \"automatic\", got ");
        admin_erl_term(b, sync);
        return true;
    }
    if (batch != NULL && !(json_is_integer(batch) && json_integer_value(batch) > 0))
        return admin_pol_given(b, "ha-sync-batch-size takes an integer greater than 0", batch);
    for (int i = 0; i < 2; i++)
        if (promote[i] != NULL && ((s = json_string_value(promote[i])) == NULL ||
                                   !admin_pol_one_of(s, "always|when-synced"))) {
            admin_buf_printf(b, "%s must be \"always\" or \"when-synced\", got ", promote_keys[i]);
            admin_erl_term(b, promote[i]);
            return true;
        }
    return false;
}

/* rabbit_policy:validation: the definition's keys, each checked by its module; then the
 * keys no module knows. Writes the one error RabbitMQ reports into b and returns true, or
 * returns false with d filled. */
static bool
admin_pol_definition(json_t *def, bool op, const char *name, struct admin_buf *b,
                     struct policy_def *d)
{
    if (!json_is_object(def)) {
        admin_buf_printf(b, "parse error while reading policy %s: ", name);
        admin_erl_term(b, def);
        admin_buf_printf(b, ". Validator: %s.",
                         op ? "operator_policy_validator" : "policy_validator");
        return true;
    }
    if (json_object_size(def) == 0) {
        admin_buf_str(b, "no policy provided");
        return true;
    }
    size_t n;
    const char **keys = admin_sorted_keys(def, &n);
    if (keys == NULL) {
        admin_buf_str(b, "out of memory");
        return true;
    }
    bool failed = false;
    for (int m = 0; m < MOD_COUNT && !failed; m++) {
        if (m == MOD_MIRROR) {
            failed = !op && admin_pol_mirror(def, b);
            continue;
        }
        for (size_t i = 0; i < n && !failed; i++) {
            const struct admin_pol_key *k = admin_pol_key(keys[i], op);
            json_t *v = json_object_get(def, keys[i]);
            if (k == NULL || k->module != (enum admin_pol_module)m)
                continue;
            if (k->check == POL_LOCATOR) {
                if (json_is_string(v) && admin_pol_one_of(json_string_value(v), k->values))
                    continue;
                admin_erl_term(b, v);
                admin_buf_str(b, " invalid queue-master-locator value");
                failed = true;
            } else if (!admin_pol_value_ok(k, v)) {
                admin_erl_term(b, v);
                admin_buf_printf(b, " is not a valid %s", k->what);
                failed = true;
            }
        }
    }
    if (!failed) {
        /* The keys no validator took, in RabbitMQ's order: [{<<"k">>,v}] */
        size_t unknown = 0;
        for (size_t i = 0; i < n; i++) {
            if (admin_pol_key(keys[i], op) != NULL)
                continue;
            admin_buf_str(b, unknown++ ? "," : "[");
            admin_pol_pair(b, keys[i], json_object_get(def, keys[i]));
        }
        if (unknown > 0) {
            admin_buf_str(b, "] are not recognised policy settings");
            failed = true;
        }
    }
    free(keys);
    if (failed)
        return true;
    /* What the broker acts on; the rest is kept in the JSON only. */
    policy_def_init(d);
    const char *key;
    json_t *v;
    json_object_foreach(def, key, v)
    {
        const struct admin_pol_key *k = admin_pol_key(key, op);
        d->not_for |= k->not_for;
        const char *s = json_string_value(v);
        int64_t num = json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
        char **dst = strcmp(key, "dead-letter-exchange") == 0      ? &d->dlx
                     : strcmp(key, "dead-letter-routing-key") == 0 ? &d->dlx_routing_key
                     : strcmp(key, "alternate-exchange") == 0      ? &d->alternate_exchange
                                                                   : NULL;
        if (dst != NULL && (*dst = strdup(s)) == NULL) {
            policy_def_free(d);
            admin_buf_str(b, "out of memory");
            return true;
        }
        if (strcmp(key, "message-ttl") == 0)
            d->message_ttl = num;
        else if (strcmp(key, "expires") == 0)
            d->expires = num;
        else if (strcmp(key, "max-length") == 0)
            d->max_length = num;
        else if (strcmp(key, "max-length-bytes") == 0)
            d->max_length_bytes = num;
        else if (strcmp(key, "delivery-limit") == 0)
            d->delivery_limit = num;
        else if (strcmp(key, "consumer-timeout") == 0)
            d->consumer_timeout = num;
        else if (strcmp(key, "overflow") == 0)
            d->overflow = strcmp(s, "reject-publish") == 0       ? QUEUE_OVERFLOW_REJECT_PUBLISH
                          : strcmp(s, "reject-publish-dlx") == 0 ? QUEUE_OVERFLOW_REJECT_PUBLISH_DLX
                                                                 : QUEUE_OVERFLOW_DROP_HEAD;
        else if (strcmp(key, "dead-letter-strategy") == 0)
            d->dlx_strategy =
                strcmp(s, "at-least-once") == 0 ? QUEUE_DLX_AT_LEAST_ONCE : QUEUE_DLX_AT_MOST_ONCE;
    }
    return false;
}

/* PCRE2 says some things in other words than the PCRE that Erlang's re module is built on;
 * RabbitMQ's texts carry PCRE's. */
static const char *
admin_pcre1_text(const char *pcre2_text)
{
    static const char *const map[][2] = {
        {"missing closing parenthesis", "missing )"},
        {"quantifier does not follow a repeatable item", "nothing to repeat"},
        {"unmatched closing parenthesis", "unmatched parentheses"},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(map[i][0], pcre2_text) == 0)
            return map[i][1];
    return pcre2_text;
}

/* Ends one error of the list: RabbitMQ formats each with "~n". */
static void
admin_pol_error_end(struct admin_buf *b)
{
    admin_buf_str(b, "\n");
}

/* The error for a mandatory key missing from the value of the policy named name
 * (rabbit_parameter_validation:proplist). */
static void
admin_pol_key_missing(struct admin_buf *b, const char *key, const char *name)
{
    admin_buf_printf(b, "Key \"%s\" not found in %s", key, name);
    admin_pol_error_end(b);
}

bool
admin_policy_check(json_t *val, bool op, bool extra, const char *name, struct admin_buf *b,
                   pcre2_code **re, struct policy_def *d, enum policy_apply_to *apply_to,
                   double *priority)
{
    static const char *const known[] = {"priority", "pattern", "apply-to", "definition"};
    admin_buf_str(b, "Validation failed\n\n");
    size_t start = b->len;
    *re = NULL;
    policy_def_init(d);
    if (extra) {
        /* rabbit_parameter_validation:proplist: "Unrecognised terms ~p in ~s" */
        json_t *rest = json_object();
        const char *key;
        json_t *v;
        json_object_foreach(val, key, v)
        {
            size_t i = 0, n_known = sizeof(known) / sizeof(known[0]);
            while (i < n_known && strcmp(key, known[i]) != 0)
                i++;
            if (i == n_known)
                json_object_set(rest, key, v);
        }
        if (json_object_size(rest) > 0) {
            size_t n;
            const char **keys = admin_sorted_keys(rest, &n);
            admin_buf_str(b, "Unrecognised terms [");
            for (size_t i = 0; i < n; i++) {
                if (i > 0)
                    admin_buf_str(b, ",");
                admin_pol_pair(b, keys[i], json_object_get(rest, keys[i]));
            }
            admin_buf_printf(b, "] in %s", name);
            admin_pol_error_end(b);
            free(keys);
        }
        json_decref(rest);
    }
    json_t *def = json_object_get(val, "definition");
    json_t *apply = json_object_get(val, "apply-to");
    json_t *pat = json_object_get(val, "pattern");
    json_t *prio = json_object_get(val, "priority");
    if (def == NULL)
        admin_pol_key_missing(b, "definition", name);
    else if (admin_pol_definition(def, op, name, b, d))
        admin_pol_error_end(b);
    *apply_to = POLICY_APPLY_ALL;
    if (apply != NULL) {
        const char *s = json_string_value(apply);
        if (s != NULL && strcmp(s, "queues") == 0)
            *apply_to = POLICY_APPLY_QUEUES;
        else if (s != NULL && strcmp(s, "exchanges") == 0)
            *apply_to = POLICY_APPLY_EXCHANGES;
        else if (s == NULL || strcmp(s, "all") != 0) {
            admin_buf_str(b, "apply-to '");
            if (s != NULL)
                admin_buf_str(b, s);
            else
                admin_erl_term(b, apply);
            admin_buf_str(b, "' unrecognised; should be 'queues', 'exchanges' or 'all'");
            admin_pol_error_end(b);
        }
    }
    if (pat == NULL && extra) {
        admin_pol_key_missing(b, "pattern", name);
    } else if (!json_is_string(pat) || strlen(json_string_value(pat)) != json_string_length(pat)) {
        admin_buf_str(b, "pattern should be a binary but was ");
        admin_erl_term(b, pat);
        admin_pol_error_end(b);
    } else {
        char msg[128];
        size_t off;
        if ((*re = regex_compile(json_string_value(pat), msg, sizeof(msg), &off)) == NULL) {
            /* {"text",Offset}, broken as ~p breaks a term past column 80 */
            static const char prefix[] = "pattern should be regular expression but is invalid: ";
            char term[256];
            const char *t = admin_pcre1_text(msg);
            int n = snprintf(term, sizeof(term), "{\"%s\",%zu}", t, off);
            admin_buf_str(b, prefix);
            if (n > 0 && sizeof(prefix) - 1 + (size_t)n >= 80)
                admin_buf_printf(b, "{\"%s\",\n%*s%zu}", t, (int)sizeof(prefix), "", off);
            else
                admin_buf_str(b, term);
            admin_pol_error_end(b);
        }
    }
    *priority = 0;
    if (prio == NULL && extra) {
        admin_pol_key_missing(b, "priority", name);
    } else if (prio != NULL && !json_is_number(prio)) {
        admin_buf_str(b, "priority should be a number, actually was ");
        admin_erl_term(b, prio);
        admin_pol_error_end(b);
    } else if (prio != NULL) {
        *priority = json_number_value(prio);
    }
    if (b->len == start)
        return true;
    pcre2_code_free(*re);
    *re = NULL;
    policy_def_free(d);
    return false;
}
