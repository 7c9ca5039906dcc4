/* Policies and operator policies as records (warren/admin.h): validated as RabbitMQ 3.10
 * validates them (rabbit_policy.erl, rabbit_policies.erl, rabbit_parameter_validation.erl,
 * rabbit_mirror_queue_misc.erl), with its error texts, then handed to the broker
 * (warren/policy.h), which applies them, and kept as JSON for listings and exports.
 *
 * A policy's record is the definitions' entry {vhost, name, pattern, apply-to, priority,
 * definition}. An operator policy is, as in RabbitMQ, a runtime parameter of component
 * "operator_policy" whose value is {pattern, apply-to, priority, definition}: the
 * definitions carry them under "parameters". RabbitMQ 3.10 exports an operator policy's
 * definition as a list of [key, value] pairs, which it cannot import back; both forms are
 * read here, and the object form, which every version imports, is written.
 *
 * RabbitMQ's texts print values with Erlang's ~p: a string is <<"text">>, a list [1,2], an
 * object #{<<"k">> => 1}; admin_erl_term writes JSON values so. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_int.h"
#include "warren/log.h"
#include "warren/policy.h"
#include "warren/queue.h"
#include "warren/store.h"
#include "warren/vhost.h"

/* ---- Erlang's ~p ---- */

struct admin_buf {
    char *p;
    size_t cap, len; /* len may pass cap: the text is then cut, still NUL-terminated */
};

static void
admin_buf_add(struct admin_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++, b->len++)
        if (b->len + 1 < b->cap)
            b->p[b->len] = s[i];
    if (b->cap > 0)
        b->p[b->len < b->cap ? b->len : b->cap - 1] = '\0';
}

static void
admin_buf_str(struct admin_buf *b, const char *s)
{
    admin_buf_add(b, s, strlen(s));
}

static void admin_buf_printf(struct admin_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void
admin_buf_printf(struct admin_buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    admin_buf_add(b, tmp, n < 0 ? 0 : (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* A float as Erlang prints it: the shortest digits that read back the same, placed as
 * io_lib_format:fwrite_g places them (1.5, 1.0e20, 0.0001, 1.0e-7). */
static void
admin_erl_float(struct admin_buf *b, double d)
{
    char tmp[40], digits[24];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    if (d < 0) {
        admin_buf_str(b, "-");
        memmove(tmp, tmp + 1, strlen(tmp));
    }
    /* tmp is d.ddde[+-]xx: the digits, and the place of the point after the first */
    size_t n = 0;
    const char *e = strchr(tmp, 'e');
    for (const char *s = tmp; s < e; s++)
        if (*s != '.')
            digits[n++] = *s;
    while (n > 1 && digits[n - 1] == '0')
        n--;
    digits[n] = '\0';
    int place = atoi(e + 1) + 1; /* digits before the point */
    char exp[16];
    snprintf(exp, sizeof(exp), "%d", place - 1);
    int exp_cost = (int)strlen(exp) + 1 + (n == 1 ? 2 : 1);
    if (place > 0 && place < (int)n) {
        admin_buf_add(b, digits, (size_t)place);
        admin_buf_str(b, ".");
        admin_buf_str(b, digits + place);
    } else if (place == 0) {
        admin_buf_printf(b, "0.%s", digits);
    } else if (place < 0 && 2 - place <= exp_cost) {
        admin_buf_printf(b, "0.%0*d%s", -place, 0, digits);
    } else if (place >= (int)n && place - (int)n + 2 <= exp_cost) {
        admin_buf_printf(b, "%s%0*d.0", digits, place - (int)n, 0);
    } else {
        admin_buf_printf(b, "%c.%se%s", digits[0], n == 1 ? "0" : digits + 1, exp);
    }
}

/* A string as Erlang prints a binary with ~p: <<"text">> when every byte is printable in
 * Latin-1 (bytes 160-255 then print as the Latin-1 characters they are), else <<1,2,3>>. */
static void
admin_erl_binary(struct admin_buf *b, const char *s, size_t len)
{
    static const char esc_from[] = "\n\r\t\v\b\f\x1b\"\\";
    static const char esc_to[] = "nrtvbfe\"\\";
    bool printable = true;
    for (size_t i = 0; i < len && printable; i++) {
        unsigned char c = (unsigned char)s[i];
        printable = (c >= 32 && c < 127) || c >= 160 || (c != 0 && strchr(esc_from, c) != NULL);
    }
    admin_buf_str(b, "<<");
    if (!printable) {
        for (size_t i = 0; i < len; i++)
            admin_buf_printf(b, "%s%u", i ? "," : "", (unsigned char)s[i]);
        admin_buf_str(b, ">>");
        return;
    }
    admin_buf_str(b, "\"");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *x = c != 0 ? strchr(esc_from, c) : NULL;
        if (x != NULL) {
            char e[2] = {'\\', esc_to[x - esc_from]};
            admin_buf_add(b, e, 2);
        } else if (c >= 160) {
            char u[2] = {(char)(0xc0 | (c >> 6)), (char)(0x80 | (c & 0x3f))};
            admin_buf_add(b, u, 2);
        } else {
            admin_buf_add(b, (const char *)&c, 1);
        }
    }
    admin_buf_str(b, "\">>");
}

/* Object keys in Erlang's map order (binaries: bytewise). */
static int
admin_key_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of o, sorted, in a new array of n (the caller frees it); NULL when n is 0 or on
 * ENOMEM (*n is then 0 too). */
static const char **
admin_sorted_keys(json_t *o, size_t *n)
{
    const char *key;
    json_t *v;
    const char **keys =
        json_object_size(o) > 0 ? malloc(json_object_size(o) * sizeof(*keys)) : NULL;
    *n = 0;
    if (keys == NULL)
        return NULL;
    json_object_foreach(o, key, v) keys[(*n)++] = key;
    qsort(keys, *n, sizeof(*keys), admin_key_cmp);
    return keys;
}

/* Writes v (NULL: undefined) as Erlang's ~p prints the term RabbitMQ decodes from it. */
static void
admin_erl_term(struct admin_buf *b, json_t *v)
{
    size_t i, n;
    json_t *x;
    switch (v == NULL ? JSON_NULL : json_typeof(v)) {
    case JSON_OBJECT: {
        const char **keys = admin_sorted_keys(v, &n);
        admin_buf_str(b, "#{");
        for (i = 0; i < n; i++) {
            admin_buf_str(b, i ? "," : "");
            admin_erl_binary(b, keys[i], strlen(keys[i]));
            admin_buf_str(b, " => ");
            admin_erl_term(b, json_object_get(v, keys[i]));
        }
        admin_buf_str(b, "}");
        free(keys);
        break;
    }
    case JSON_ARRAY:
        admin_buf_str(b, "[");
        json_array_foreach(v, i, x)
        {
            admin_buf_str(b, i ? "," : "");
            admin_erl_term(b, x);
        }
        admin_buf_str(b, "]");
        break;
    case JSON_STRING:
        admin_erl_binary(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        admin_buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        admin_erl_float(b, json_real_value(v));
        break;
    case JSON_TRUE:
        admin_buf_str(b, "true");
        break;
    case JSON_FALSE:
        admin_buf_str(b, "false");
        break;
    case JSON_NULL:
        admin_buf_str(b, v == NULL ? "undefined" : "null");
        break;
    }
}

/* ---- validation ---- */

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

/* rabbit_mirror_queue_misc:validate_policy: the ha-* keys together. Returns an error into b
 * (and true), or false. */
static bool
admin_pol_mirror(json_t *def, struct admin_buf *b)
{
    json_t *mode = json_object_get(def, "ha-mode"), *params = json_object_get(def, "ha-params");
    json_t *sync = json_object_get(def, "ha-sync-mode");
    json_t *batch = json_object_get(def, "ha-sync-batch-size");
    json_t *pos = json_object_get(def, "ha-promote-on-shutdown");
    json_t *pof = json_object_get(def, "ha-promote-on-failure");
    if (mode == NULL && params == NULL && sync == NULL && batch == NULL && pos == NULL &&
        pof == NULL)
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
    if (strcmp(m, "exactly") == 0 && !(json_is_integer(params) && json_integer_value(params) > 0)) {
        admin_buf_str(b, "ha-mode=\"exactly\" takes an integer, ");
        if (params == NULL)
            admin_buf_str(b, "none");
        else
            admin_erl_term(b, params);
        admin_buf_str(b, " given");
        return true;
    }
    if (strcmp(m, "nodes") == 0) {
        if (json_is_array(params) && json_array_size(params) == 0) {
            admin_buf_str(b, "ha-mode=\"nodes\" list must be non-empty");
            return true;
        }
        if (!json_is_array(params)) {
            admin_buf_str(b, "ha-mode=\"nodes\" takes a list, ");
            if (params == NULL)
                admin_buf_str(b, "none");
            else
                admin_erl_term(b, params);
            admin_buf_str(b, " given");
            return true;
        }
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
    if (batch != NULL && !(json_is_integer(batch) && json_integer_value(batch) > 0)) {
        admin_buf_str(b, "ha-sync-batch-size takes an integer greater than 0, ");
        admin_erl_term(b, batch);
        admin_buf_str(b, " given");
        return true;
    }
    json_t *promote[2] = {pos, pof};
    static const char *const pname[2] = {"ha-promote-on-shutdown", "ha-promote-on-failure"};
    for (int i = 0; i < 2; i++)
        if (promote[i] != NULL && ((s = json_string_value(promote[i])) == NULL ||
                                   !admin_pol_one_of(s, "always|when-synced"))) {
            admin_buf_printf(b, "%s must be \"always\" or \"when-synced\", got ", pname[i]);
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
            admin_buf_str(b, "{");
            admin_erl_binary(b, keys[i], strlen(keys[i]));
            admin_buf_str(b, ",");
            admin_erl_term(b, json_object_get(def, keys[i]));
            admin_buf_str(b, "}");
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

/* A policy's value, checked as rabbit_parameter_validation:proplist checks it against
 * rabbit_policy's constraints (priority, pattern, apply-to, definition, the first
 * mandatory), its errors listed in RabbitMQ's order: terms it does not know (only when
 * extra is set: a runtime parameter's value), then definition, apply-to, pattern, priority.
 * On success *re, *d, *apply_to and *priority are filled (the caller owns re and d). */
static bool
admin_pol_validate(json_t *val, bool op, bool extra, const char *name, struct admin_buf *b,
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
            size_t i = 0;
            while (i < 4 && strcmp(key, known[i]) != 0)
                i++;
            if (i == 4)
                json_object_set(rest, key, v);
        }
        if (json_object_size(rest) > 0) {
            size_t n;
            const char **keys = admin_sorted_keys(rest, &n);
            admin_buf_str(b, "Unrecognised terms [");
            for (size_t i = 0; i < n; i++) {
                admin_buf_str(b, i ? ",{" : "{");
                admin_erl_binary(b, keys[i], strlen(keys[i]));
                admin_buf_str(b, ",");
                admin_erl_term(b, json_object_get(rest, keys[i]));
                admin_buf_str(b, "}");
            }
            admin_buf_printf(b, "] in %s", name);
            admin_pol_error_end(b);
            free(keys);
        }
        json_decref(rest);
    }
    json_t *def = json_object_get(val, "definition");
    json_t *jat = json_object_get(val, "apply-to");
    json_t *pat = json_object_get(val, "pattern");
    json_t *prio = json_object_get(val, "priority");
    if (def == NULL) {
        admin_buf_printf(b, "Key \"definition\" not found in %s", name);
        admin_pol_error_end(b);
    } else if (admin_pol_definition(def, op, name, b, d)) {
        admin_pol_error_end(b);
    }
    *apply_to = POLICY_APPLY_ALL;
    if (jat != NULL) {
        const char *s = json_string_value(jat);
        if (s != NULL && strcmp(s, "queues") == 0)
            *apply_to = POLICY_APPLY_QUEUES;
        else if (s != NULL && strcmp(s, "exchanges") == 0)
            *apply_to = POLICY_APPLY_EXCHANGES;
        else if (s == NULL || strcmp(s, "all") != 0) {
            admin_buf_str(b, "apply-to '");
            if (s != NULL)
                admin_buf_str(b, s);
            else
                admin_erl_term(b, jat);
            admin_buf_str(b, "' unrecognised; should be 'queues', 'exchanges' or 'all'");
            admin_pol_error_end(b);
        }
    }
    if (pat == NULL && extra) {
        admin_buf_printf(b, "Key \"pattern\" not found in %s", name);
        admin_pol_error_end(b);
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
        admin_buf_printf(b, "Key \"priority\" not found in %s", name);
        admin_pol_error_end(b);
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

/* ---- records ---- */

/* The in-memory key of a policy (kind 0: vhost, name) or operator policy (parameters:
 * vhost, "operator_policy", name), as admin.c keys stored records. */
static void
admin_pol_key_of(char *key, size_t cap, bool op, const char *vhost, const char *name)
{
    const char *names[3] = {vhost, "operator_policy", name};
    if (op)
        admin_stored_key(key, cap, names, 3);
    else {
        names[1] = name;
        admin_stored_key(key, cap, names, 2);
    }
}

/* A definition as RabbitMQ keeps it, a map: an object with its keys in Erlang's order
 * (bytewise), so that listings and effective definitions print as RabbitMQ's do. RabbitMQ
 * 3.10's export of operator policies writes [[key, value]...]: read as the same object. A
 * new reference; def itself when it is neither form (for validation to name it). */
static json_t *
admin_pol_def_object(json_t *def)
{
    json_t *o = json_object(), *pair;
    size_t i, n = 0;
    if (o == NULL || !(json_is_object(def) || (json_is_array(def) && json_array_size(def) > 0)))
        goto as_is;
    json_array_foreach(def, i, pair)
    {
        json_t *k = json_array_get(pair, 0);
        if (json_array_size(pair) != 2 || !json_is_string(k))
            goto as_is;
        json_object_set(o, json_string_value(k), json_array_get(pair, 1));
    }
    json_t *src = json_is_object(def) ? def : o;
    const char **keys = admin_sorted_keys(src, &n);
    json_t *sorted = json_object();
    if (sorted == NULL || (n > 0 && keys == NULL)) {
        free(keys);
        json_decref(sorted);
        goto as_is;
    }
    for (i = 0; i < n; i++)
        json_object_set(sorted, keys[i], json_object_get(src, keys[i]));
    free(keys);
    json_decref(o);
    return sorted;
as_is:
    json_decref(o);
    return json_incref(def);
}

enum admin_result
admin_policy_apply(struct admin *a, bool op, json_t *e, bool store, char *err, size_t errlen)
{
    const char *what = op ? "operator policy" : "policy";
    const char *vhost = admin_get_name(e, "vhost", what, err, errlen);
    const char *name = vhost != NULL ? admin_get_name(e, "name", what, err, errlen) : NULL;
    if (name == NULL)
        return ADMIN_INVALID;
    struct vhost *v = admin_vhost_get(a, vhost);
    if (v == NULL)
        return admin_fail(err, errlen, ADMIN_NOT_FOUND, "%s: no vhost '%s'", what, vhost);
    json_t *val = op ? json_object_get(e, "value") : e;
    if (!json_is_object(val))
        return admin_fail(err, errlen, ADMIN_INVALID, "Validation failed\n\n%s not a list\n", name);
    json_t *def = admin_pol_def_object(json_object_get(val, "definition"));
    json_t *copy = json_deep_copy(val);
    if (copy == NULL || (def != NULL && json_object_set(copy, "definition", def) < 0)) {
        json_decref(def);
        json_decref(copy);
        return admin_fail(err, errlen, ADMIN_NOMEM, "out of memory");
    }
    json_decref(def);
    struct admin_buf b = {err, errlen, 0};
    pcre2_code *re;
    struct policy_def d;
    enum policy_apply_to apply_to;
    double priority;
    if (!admin_pol_validate(copy, op, op, name, &b, &re, &d, &apply_to, &priority)) {
        json_decref(copy);
        return ADMIN_INVALID;
    }
    static const char *const apply_names[] = {"all", "queues", "exchanges"};
    json_t *prio = json_object_get(copy, "priority");
    json_t *value =
        json_pack("{s:O, s:O, s:s, s:o}", "pattern", json_object_get(copy, "pattern"), "definition",
                  json_object_get(copy, "definition"), "apply-to", apply_names[apply_to],
                  "priority", prio != NULL ? json_incref(prio) : json_integer(0));
    json_decref(copy);
    json_t *rec = value == NULL ? NULL
                  : op          ? json_pack("{s:s, s:s, s:s, s:o}", "vhost", vhost, "component",
                                            "operator_policy", "name", name, "value", value)
                                : json_incref(value);
    if (rec != NULL && !op &&
        (json_object_set_new(rec, "vhost", json_string(vhost)) < 0 ||
         json_object_set_new(rec, "name", json_string(name)) < 0)) {
        json_decref(rec);
        rec = NULL;
    }
    if (!op)
        json_decref(value);
    char key[3 * (STORE_NAME_MAX + 1)];
    admin_pol_key_of(key, sizeof(key), op, vhost, name);
    json_t *stored = a->stored[op ? 1 : 0];
    json_t *old = json_incref(json_object_get(stored, key));
    if (rec == NULL || json_object_set(stored, key, rec) < 0) {
        pcre2_code_free(re);
        policy_def_free(&d);
        json_decref(rec);
        json_decref(old);
        return admin_fail(err, errlen, ADMIN_NOMEM, "out of memory");
    }
    if (policy_set(v, op ? POLICY_OPERATOR : POLICY_USER, name, re, apply_to, priority, &d) < 0) {
        /* The broker kept what it had: so does the listing (replacing a key's value or
         * deleting it allocates nothing). */
        if (old != NULL)
            json_object_set(stored, key, old);
        else
            json_object_del(stored, key);
        json_decref(old);
        json_decref(rec);
        return admin_fail(err, errlen, ADMIN_NOMEM, "out of memory");
    }
    json_decref(old);
    enum admin_result r = ADMIN_OK;
    if (store) {
        const char *names[3] = {vhost, op ? "operator_policy" : name, name};
        r = admin_write(a, op ? STORE_TAG_PARAMETER : STORE_TAG_POLICY, names, op ? 3 : 2, rec, err,
                        errlen);
        log_msg(LOG_INFO, "set %s '%s' in vhost '%s'", what, name, vhost);
    }
    json_decref(rec);
    return r;
}

enum admin_result
admin_policy_put(struct admin *a, bool op, const char *vhost, const char *name, json_t *body,
                 admin_done_fn done, void *arg, char *err, size_t errlen)
{
    if (admin_vhost_get(a, vhost) == NULL)
        return admin_fail(err, errlen, ADMIN_NOT_FOUND, "no vhost '%s'", vhost);
    /* rabbit_policy:set's defaults: priority 0, apply-to all */
    json_t *prio = json_object_get(body, "priority"), *at = json_object_get(body, "apply-to");
    json_t *val = json_pack("{s:O?, s:O?, s:o, s:o}", "pattern", json_object_get(body, "pattern"),
                            "definition", json_object_get(body, "definition"), "priority",
                            prio != NULL ? json_incref(prio) : json_integer(0), "apply-to",
                            at != NULL ? json_incref(at) : json_string("all"));
    json_t *e = val == NULL ? NULL
                : op ? json_pack("{s:s, s:s, s:o}", "vhost", vhost, "name", name, "value", val)
                     : val;
    if (e != NULL && !op &&
        (json_object_set_new(e, "vhost", json_string(vhost)) < 0 ||
         json_object_set_new(e, "name", json_string(name)) < 0)) {
        json_decref(e);
        e = NULL;
    }
    if (e == NULL)
        return admin_fail(err, errlen, ADMIN_NOMEM, "out of memory, or a name that is not UTF-8");
    enum admin_result r = admin_policy_apply(a, op, e, true, err, errlen);
    json_decref(e);
    return r == ADMIN_OK ? admin_done(a, done, arg, err, errlen) : r;
}

enum admin_result
admin_policy_delete(struct admin *a, bool op, const char *vhost, const char *name,
                    admin_done_fn done, void *arg, char *err, size_t errlen)
{
    struct vhost *v = admin_vhost_get(a, vhost);
    if (v == NULL)
        return admin_fail(err, errlen, ADMIN_NOT_FOUND, "no vhost '%s'", vhost);
    if (!policy_clear(v, op ? POLICY_OPERATOR : POLICY_USER, name))
        return admin_fail(err, errlen, ADMIN_NOT_FOUND, "no %s '%s' in vhost '%s'",
                          op ? "operator policy" : "policy", name, vhost);
    char key[3 * (STORE_NAME_MAX + 1)];
    admin_pol_key_of(key, sizeof(key), op, vhost, name);
    json_object_del(a->stored[op ? 1 : 0], key);
    const char *names[3] = {vhost, op ? "operator_policy" : name, name};
    admin_erase(a, op ? STORE_TAG_PARAMETER : STORE_TAG_POLICY, names, op ? 3 : 2);
    log_msg(LOG_INFO, "cleared %s '%s' in vhost '%s'", op ? "operator policy" : "policy", name,
            vhost);
    return admin_done(a, done, arg, err, errlen);
}

/* A policy as the HTTP API shows it: {vhost, name, pattern, apply-to, definition, priority}
 * from its record. A new reference; NULL on ENOMEM. */
static json_t *
admin_pol_entry(bool op, json_t *rec)
{
    json_t *val = op ? json_object_get(rec, "value") : rec;
    return json_pack("{s:O, s:O, s:O, s:O, s:O, s:O}", "vhost", json_object_get(rec, "vhost"),
                     "name", json_object_get(rec, "name"), "pattern",
                     json_object_get(val, "pattern"), "apply-to", json_object_get(val, "apply-to"),
                     "definition", json_object_get(val, "definition"), "priority",
                     json_object_get(val, "priority"));
}

/* RabbitMQ lists policies by priority, lowest first (rabbit_policy:sort_by_priority); equal
 * priorities by name here (see warren/policy.h). */
static int
admin_pol_cmp(const void *pa, const void *pb)
{
    json_t *a = *(json_t *const *)pa, *b = *(json_t *const *)pb;
    double x = json_number_value(json_object_get(a, "priority"));
    double y = json_number_value(json_object_get(b, "priority"));
    if (x != y)
        return x < y ? -1 : 1;
    int c = strcmp(json_string_value(json_object_get(a, "vhost")),
                   json_string_value(json_object_get(b, "vhost")));
    return c != 0 ? c
                  : strcmp(json_string_value(json_object_get(a, "name")),
                           json_string_value(json_object_get(b, "name")));
}

json_t *
admin_policies_json(struct admin *a, bool op, const char *vhost)
{
    const char *key;
    json_t *rec;
    size_t n = 0, cap = json_object_size(a->stored[op ? 1 : 0]);
    json_t **rows = calloc(cap > 0 ? cap : 1, sizeof(*rows));
    json_t *arr = rows != NULL ? json_array() : NULL;
    bool ok = arr != NULL;
    json_object_foreach(a->stored[op ? 1 : 0], key, rec)
    {
        const char *vh = json_string_value(json_object_get(rec, "vhost"));
        if (!ok || (vhost != NULL && strcmp(vh, vhost) != 0) ||
            (op &&
             strcmp(json_string_value(json_object_get(rec, "component")), "operator_policy") != 0))
            continue;
        if ((rows[n] = admin_pol_entry(op, rec)) == NULL)
            ok = false;
        else
            n++;
    }
    qsort(rows, n, sizeof(*rows), admin_pol_cmp);
    for (size_t i = 0; i < n; i++)
        if (ok && json_array_append_new(arr, rows[i]) < 0)
            ok = false;
        else if (!ok)
            json_decref(rows[i]);
    free(rows);
    if (!ok) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

json_t *
admin_policy_json(struct admin *a, bool op, const char *vhost, const char *name)
{
    char key[3 * (STORE_NAME_MAX + 1)];
    admin_pol_key_of(key, sizeof(key), op, vhost, name);
    json_t *rec = json_object_get(a->stored[op ? 1 : 0], key);
    return rec != NULL ? admin_pol_entry(op, rec) : json_null();
}

json_t *
admin_queue_policy_json(struct admin *a, const struct queue *q)
{
    const char *vhost = q->vhost->name;
    json_t *defs[2] = {NULL, NULL};
    const char *names[2] = {q->settings.policy, q->settings.operator_policy};
    for (int k = 0; k < 2; k++) {
        char key[3 * (STORE_NAME_MAX + 1)];
        if (names[k] == NULL)
            continue;
        admin_pol_key_of(key, sizeof(key), k == 1, vhost, names[k]);
        json_t *rec = json_object_get(a->stored[k], key);
        defs[k] = json_object_get(k == 1 ? json_object_get(rec, "value") : rec, "definition");
    }
    /* rabbit_policy:merge_operator_definitions: the keys of both; where both have one, the
     * lower for the numeric limits (the only keys operator policies hold), else the policy's
     * for what both may hold. */
    json_t *out = defs[0] != NULL ? json_deep_copy(defs[0]) : json_object();
    const char *key;
    json_t *ov;
    json_object_foreach(defs[1], key, ov)
    {
        json_t *pv = json_object_get(out, key);
        if (out != NULL && (pv == NULL || (json_is_number(pv) && json_is_number(ov) &&
                                           json_number_value(ov) < json_number_value(pv))))
            json_object_set(out, key, ov);
    }
    return out;
}
