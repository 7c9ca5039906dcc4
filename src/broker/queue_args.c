/* Queue arguments at queue.declare: RabbitMQ 3.10's checks, in its order and with its reply
 * texts, the list of arguments accepted but not applied yet, and the arguments a redeclare
 * compares (see queue_args.h).
 *
 * RabbitMQ creates a queue in this order (rabbit_channel's queue.declare, then
 * rabbit_amqqueue:declare/7 and the type's declare): a server-named queue must be of a type
 * that allows it; x-dead-letter-exchange must be a longstr; x-queue-type must name a type;
 * each argument that type takes is checked, in declare_args/0's order; an argument that only
 * other types take is refused, in the table's order; a quorum queue must be durable (RabbitMQ:
 * and neither exclusive nor auto-delete, which Warren keeps); a classic queue that is not exclusive
 * is placed by its x-queue-master-locator. Its errors are Erlang terms printed with ~p
 * ({value_zero,0}, invalid_overflow, "expected integer, got longstr"): the texts below print the
 * same. */
#include "config.h"

#include "warren/queue_args.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* RabbitMQ's queue types. */
enum queue_args_type {
    QUEUE_ARGS_CLASSIC = 0,
    QUEUE_ARGS_QUORUM,
    QUEUE_ARGS_STREAM, /* never declared here: its arguments are known, so refused */
};

/* The arguments each type takes (its capabilities()' queue_arguments), in RabbitMQ 3.10's
 * order: the order in which a redeclare compares them. */
static const char *const queue_args_classic[] = {
    "x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key",
    "x-max-length", "x-max-length-bytes", "x-max-priority", "x-overflow", "x-queue-mode",
    "x-queue-version", "x-single-active-consumer", "x-queue-type", "x-queue-master-locator",
    /* beyond RabbitMQ's classic queues: */
    "x-delivery-limit", "x-consumer-timeout", NULL};
static const char *const queue_args_quorum[] = {
    "x-dead-letter-exchange", "x-dead-letter-routing-key", "x-dead-letter-strategy", "x-expires",
    "x-max-length", "x-max-length-bytes", "x-max-in-memory-length", "x-max-in-memory-bytes",
    "x-overflow", "x-single-active-consumer", "x-queue-type", "x-quorum-initial-group-size",
    "x-delivery-limit", "x-message-ttl", "x-queue-leader-locator",
    /* beyond RabbitMQ 3.10 (3.12 has it): */
    "x-consumer-timeout",
    /* beyond RabbitMQ: a replicated queue keeps a classic queue's priorities */
    "x-max-priority", NULL};
static const char *const queue_args_stream[] = {"x-max-length-bytes",
                                                "x-queue-type",
                                                "x-max-age",
                                                "x-stream-max-segment-size-bytes",
                                                "x-initial-cluster-size",
                                                "x-queue-leader-locator",
                                                NULL};
static const char *const *const queue_args_by_type[] = {
    [QUEUE_ARGS_CLASSIC] = queue_args_classic,
    [QUEUE_ARGS_QUORUM] = queue_args_quorum,
    [QUEUE_ARGS_STREAM] = queue_args_stream,
};

static struct wire_str
queue_args_str(const char *s)
{
    return (struct wire_str){(const uint8_t *)s, (uint32_t)strlen(s)};
}

static bool
queue_args_list_has(const char *const *list, struct wire_str key)
{
    for (; *list != NULL; list++)
        if (wire_str_eq(key, *list))
            return true;
    return false;
}

/* Checks one argument's value; args is the whole table (x-dead-letter-routing-key needs
 * x-dead-letter-exchange). Returns 0, or -1 with RabbitMQ's error term in term. */
typedef int (*queue_args_check_fn)(const struct wire_value *v, struct wire_table args, char *term,
                                   size_t cap);

struct queue_args_row {
    const char *key;
    queue_args_check_fn check; /* NULL: any value (or checked apart, see the table) */
};

/* ---- Erlang terms ---- */

/* Characters Erlang's ~p prints inside a string (io_lib:printable_latin1_list/1). */
static bool
queue_args_erl_printable(uint8_t c)
{
    return (c >= 32 && c <= 126) || c >= 160 || c == '\n' || c == '\r' || c == '\t' || c == '\v' ||
           c == '\b' || c == '\f' || c == 27;
}

/* The letter of the escape ~p prints for a printable control character: \n for '\n'... */
static char
queue_args_erl_escape(uint8_t c)
{
    switch (c) {
    case '\n':
        return 'n';
    case '\r':
        return 'r';
    case '\t':
        return 't';
    case '\v':
        return 'v';
    case '\b':
        return 'b';
    case '\f':
        return 'f';
    default:
        return 'e'; /* 27, escape */
    }
}

static void
queue_args_put(char *dst, size_t cap, size_t *n, const char *s)
{
    size_t len = strlen(s);
    if (*n + 1 >= cap)
        return;
    if (len > cap - 1 - *n)
        len = cap - 1 - *n;
    memcpy(dst + *n, s, len);
    *n += len;
    dst[*n] = '\0';
}

/* Writes the Erlang string prefix + s + suffix as ~p prints it: in double quotes with
 * \" \\ \n ... escapes when every character is printable, else as the list of the character
 * codes ("[117,110,...]"). prefix and suffix are printable ASCII without escapes. */
static void
queue_args_erl_string(char *dst, size_t cap, const char *prefix, struct wire_str s,
                      const char *suffix)
{
    bool printable = true;
    for (uint32_t i = 0; i < s.len && printable; i++)
        printable = queue_args_erl_printable(s.ptr[i]);
    const struct wire_str parts[3] = {queue_args_str(prefix), s, queue_args_str(suffix)};
    size_t n = 0;
    bool first = true;
    dst[0] = '\0';
    queue_args_put(dst, cap, &n, printable ? "\"" : "[");
    for (size_t p = 0; p < 3; p++) {
        for (uint32_t i = 0; i < parts[p].len && n + 1 < cap; i++) {
            uint8_t c = parts[p].ptr[i];
            char one[16];
            if (!printable)
                snprintf(one, sizeof(one), "%s%u", first ? "" : ",", c);
            else if (c == '"' || c == '\\')
                snprintf(one, sizeof(one), "\\%c", c);
            else if (c < 32)
                snprintf(one, sizeof(one), "\\%c", queue_args_erl_escape(c));
            else
                snprintf(one, sizeof(one), "%c", c);
            first = false;
            queue_args_put(dst, cap, &n, one);
        }
    }
    queue_args_put(dst, cap, &n, printable ? "\"" : "]");
}

static int
queue_args_unacceptable_type(const struct wire_value *v, char *term, size_t cap)
{
    snprintf(term, cap, "{unacceptable_type,%s}", wire_field_type_name(v->type));
    return -1;
}

/* ---- checks, as rabbit_amqqueue's check_*_arg functions ---- */

/* The integer types RabbitMQ takes for integer arguments: every width, signed or not, but
 * not timestamps. Returns 0 with the value in *n, or -1 with the term. */
static int
queue_args_int(const struct wire_value *v, int64_t *n, char *term, size_t cap)
{
    switch (v->type) {
    case WIRE_FIELD_I8:
    case WIRE_FIELD_U8:
    case WIRE_FIELD_I16:
    case WIRE_FIELD_U16:
    case WIRE_FIELD_I32:
    case WIRE_FIELD_U32:
    case WIRE_FIELD_I64:
        if (wire_value_to_i64(v, n))
            return 0;
        break;
    default:
        break;
    }
    /* check_int_arg's error is a string, which ~p quotes. */
    snprintf(term, cap, "\"expected integer, got %s\"", wire_field_type_name(v->type));
    return -1;
}

static int
queue_args_non_neg(const struct wire_value *v, int64_t *n, char *term, size_t cap)
{
    if (queue_args_int(v, n, term, cap) < 0)
        return -1;
    if (*n < 0) {
        snprintf(term, cap, "{value_negative,%" PRId64 "}", *n);
        return -1;
    }
    return 0;
}

static int
queue_args_check_non_neg(const struct wire_value *v, struct wire_table args, char *term, size_t cap)
{
    int64_t n;
    (void)args;
    return queue_args_non_neg(v, &n, term, cap);
}

/* rabbit_misc:check_expiry/1: a time in milliseconds, at most ten years. */
static int
queue_args_expiry(int64_t n, char *term, size_t cap)
{
    if (n < 0) {
        snprintf(term, cap, "{value_negative,%" PRId64 "}", n);
        return -1;
    }
    if (n > INT64_C(315360000000)) {
        snprintf(term, cap, "{value_too_large,%" PRId64 "}", n);
        return -1;
    }
    return 0;
}

static int
queue_args_check_expires(const struct wire_value *v, struct wire_table args, char *term, size_t cap)
{
    int64_t n;
    (void)args;
    if (queue_args_int(v, &n, term, cap) < 0)
        return -1;
    if (n == 0) {
        snprintf(term, cap, "{value_zero,0}");
        return -1;
    }
    return queue_args_expiry(n, term, cap);
}

static int
queue_args_check_message_ttl(const struct wire_value *v, struct wire_table args, char *term,
                             size_t cap)
{
    int64_t n;
    (void)args;
    if (queue_args_int(v, &n, term, cap) < 0)
        return -1;
    return queue_args_expiry(n, term, cap);
}

static int
queue_args_check_max_priority(const struct wire_value *v, struct wire_table args, char *term,
                              size_t cap)
{
    int64_t n;
    (void)args;
    if (queue_args_non_neg(v, &n, term, cap) < 0)
        return -1;
    if (n > 255) {
        snprintf(term, cap, "{max_value_exceeded,%" PRId64 "}", n);
        return -1;
    }
    return 0;
}

static int
queue_args_check_group_size(const struct wire_value *v, struct wire_table args, char *term,
                            size_t cap)
{
    int64_t n;
    (void)args;
    if (queue_args_non_neg(v, &n, term, cap) < 0)
        return -1;
    if (n == 0) {
        snprintf(term, cap, "{value_zero,0}");
        return -1;
    }
    return 0;
}

static int
queue_args_check_bool(const struct wire_value *v, struct wire_table args, char *term, size_t cap)
{
    (void)args;
    return v->type == WIRE_FIELD_BOOL ? 0 : queue_args_unacceptable_type(v, term, cap);
}

static int
queue_args_check_dlx_routing_key(const struct wire_value *v, struct wire_table args, char *term,
                                 size_t cap)
{
    struct wire_value dlx;
    if (v->type != WIRE_FIELD_LONGSTR)
        return queue_args_unacceptable_type(v, term, cap);
    if (!wire_table_get(args, "x-dead-letter-exchange", &dlx)) {
        snprintf(term, cap, "routing_key_but_no_dlx_defined");
        return -1;
    }
    return 0;
}

/* A longstr that is one of the NULL-terminated names: 0, or -1 with {unacceptable_type,T}
 * for another type and `otherwise` for another string. */
static int
queue_args_one_of(const struct wire_value *v, const char *const *names, const char *otherwise,
                  char *term, size_t cap)
{
    if (v->type != WIRE_FIELD_LONGSTR)
        return queue_args_unacceptable_type(v, term, cap);
    for (; *names != NULL; names++)
        if (wire_str_eq(v->v.str, *names))
            return 0;
    snprintf(term, cap, "%s", otherwise);
    return -1;
}

static int
queue_args_check_dlx_strategy(const struct wire_value *v, struct wire_table args, char *term,
                              size_t cap)
{
    static const char *const names[] = {"at-most-once", "at-least-once", NULL};
    (void)args;
    return queue_args_one_of(v, names, "invalid_dlx_strategy", term, cap);
}

static int
queue_args_check_overflow(const struct wire_value *v, struct wire_table args, char *term,
                          size_t cap)
{
    static const char *const names[] = {"drop-head", "reject-publish", "reject-publish-dlx", NULL};
    (void)args;
    return queue_args_one_of(v, names, "invalid_overflow", term, cap);
}

static int
queue_args_check_leader_locator(const struct wire_value *v, struct wire_table args, char *term,
                                size_t cap)
{
    static const char *const names[] = {"client-local", "balanced", "random", "least-leaders",
                                        NULL};
    (void)args;
    return queue_args_one_of(v, names, "invalid_queue_locator_arg", term, cap);
}

static int
queue_args_check_queue_mode(const struct wire_value *v, struct wire_table args, char *term,
                            size_t cap)
{
    (void)args;
    if (v->type != WIRE_FIELD_LONGSTR)
        return queue_args_unacceptable_type(v, term, cap);
    if (wire_str_eq(v->v.str, "default") || wire_str_eq(v->v.str, "lazy"))
        return 0;
    queue_args_erl_string(term, cap, "unsupported queue mode '", v->v.str, "'");
    return -1;
}

static int
queue_args_check_queue_version(const struct wire_value *v, struct wire_table args, char *term,
                               size_t cap)
{
    int64_t n;
    (void)args;
    if (queue_args_non_neg(v, &n, term, cap) < 0)
        return -1;
    if (n == 1 || n == 2)
        return 0;
    snprintf(term, cap, "\"unsupported queue version '%" PRId64 "'\"", n);
    return -1;
}

/* x-queue-type: sets *type, or returns -1 with the term. "stream" is refused as RabbitMQ
 * refuses a type it does not know (see queue_args.h). */
static int
queue_args_queue_type(const struct wire_value *v, enum queue_args_type *type, char *term,
                      size_t cap)
{
    if (v->type != WIRE_FIELD_LONGSTR)
        return queue_args_unacceptable_type(v, term, cap);
    if (wire_str_eq(v->v.str, "classic")) {
        *type = QUEUE_ARGS_CLASSIC;
        return 0;
    }
    if (wire_str_eq(v->v.str, "quorum")) {
        *type = QUEUE_ARGS_QUORUM;
        return 0;
    }
    queue_args_erl_string(term, cap, "unsupported queue type '", v->v.str, "'");
    return -1;
}

/* The checks of rabbit_amqqueue:declare_args/0, in its order (the order they run in), each
 * run only if the queue's type takes the argument. Some place or store a queue, which a
 * single-node broker whose queues page out past a memory window has nothing to do for
 * (x-queue-mode lazy, x-queue-version, the locators, the in-memory limits, the initial group
 * size); the others are applied (queue_settings.h). Not here: x-queue-type, checked first as it
 * decides the rest; the stream arguments, as a stream is refused; x-queue-master-locator, checked
 * apart (see queue_args_check). */
static const struct queue_args_row queue_args_rows[] = {
    {"x-expires", queue_args_check_expires},
    {"x-message-ttl", queue_args_check_message_ttl},
    /* Its type was checked first, and any longstr names an exchange (not necessarily an
     * existing one). */
    {"x-dead-letter-exchange", NULL},
    {"x-dead-letter-routing-key", queue_args_check_dlx_routing_key},
    {"x-dead-letter-strategy", queue_args_check_dlx_strategy},
    {"x-max-length", queue_args_check_non_neg},
    {"x-max-length-bytes", queue_args_check_non_neg},
    {"x-max-in-memory-length", queue_args_check_non_neg},
    {"x-max-in-memory-bytes", queue_args_check_non_neg},
    {"x-max-priority", queue_args_check_max_priority},
    {"x-overflow", queue_args_check_overflow},
    {"x-queue-mode", queue_args_check_queue_mode},
    {"x-queue-version", queue_args_check_queue_version},
    {"x-single-active-consumer", queue_args_check_bool},
    {"x-quorum-initial-group-size", queue_args_check_group_size},
    {"x-queue-leader-locator", queue_args_check_leader_locator},
    /* RabbitMQ takes any value; one that is not a non-negative integer means no limit. */
    {"x-delivery-limit", NULL},
    {"x-consumer-timeout", queue_args_check_non_neg},
};

#define QUEUE_ARGS_N_ROWS (sizeof(queue_args_rows) / sizeof(queue_args_rows[0]))

/* True if some queue type takes the argument key. */
static bool
queue_args_known(struct wire_str key)
{
    for (size_t t = 0; t < sizeof(queue_args_by_type) / sizeof(queue_args_by_type[0]); t++)
        if (queue_args_list_has(queue_args_by_type[t], key))
            return true;
    return false;
}

/* The type the arguments of an existing queue give it; queues made before the arguments
 * were checked may name any type: those are classic queues too. */
static enum queue_args_type
queue_args_type_of(struct wire_table args)
{
    struct wire_value v;
    if (wire_table_get(args, "x-queue-type", &v) && v.type == WIRE_FIELD_LONGSTR &&
        wire_str_eq(v.v.str, "quorum"))
        return QUEUE_ARGS_QUORUM;
    return QUEUE_ARGS_CLASSIC;
}

static const char *
queue_args_type_module(enum queue_args_type type)
{
    return type == QUEUE_ARGS_QUORUM ? "rabbit_quorum_queue" : "rabbit_classic_queue";
}

static int __attribute__((format(printf, 3, 4)))
queue_args_refuse(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return -1;
}

static int
queue_args_invalid(char *why, size_t cap, const char *key, const struct queue_args_decl *d,
                   const char *term)
{
    return queue_args_refuse(why, cap, "invalid arg '%s' for queue '%.*s' in vhost '%s': %s", key,
                             WIRE_STR_ARG(d->name), d->vhost, term);
}

/* The locators a classic queue may name (RabbitMQ's queue_master_locator modules); it looks
 * the name up whatever the value's type. */
static bool
queue_args_master_locator_known(const struct wire_value *v)
{
    if (v->type != WIRE_FIELD_LONGSTR && v->type != WIRE_FIELD_BYTES)
        return false;
    return wire_str_eq(v->v.str, "min-masters") || wire_str_eq(v->v.str, "client-local") ||
           wire_str_eq(v->v.str, "random");
}

int
queue_args_check(struct wire_table args, const struct queue_args_decl *d, char *why, size_t cap)
{
    char term[200];
    struct wire_value v;
    bool has_type = wire_table_get(args, "x-queue-type", &v);

    /* RabbitMQ reads the type of a server-named queue from any string value. (An unknown
     * one crashes its channel there, with 541 INTERNAL_ERROR: here it is refused below, as
     * for a named queue.) */
    if (d->server_named && has_type &&
        (v.type == WIRE_FIELD_LONGSTR || v.type == WIRE_FIELD_BYTES)) {
        if (wire_str_eq(v.v.str, "quorum") || wire_str_eq(v.v.str, "stream"))
            return queue_args_refuse(why, cap,
                                     "Cannot declare a server-named queue for type "
                                     "rabbit_%.*s_queue",
                                     WIRE_STR_ARG(v.v.str));
    }

    struct wire_value dlx;
    if (wire_table_get(args, "x-dead-letter-exchange", &dlx) && dlx.type != WIRE_FIELD_LONGSTR)
        return queue_args_refuse(why, cap,
                                 "invalid type '%s' for arg 'x-dead-letter-exchange' in "
                                 "queue '%.*s' in vhost '%s'",
                                 wire_field_type_name(dlx.type), WIRE_STR_ARG(d->name), d->vhost);

    enum queue_args_type type = QUEUE_ARGS_CLASSIC;
    if (has_type && queue_args_queue_type(&v, &type, term, sizeof(term)) < 0)
        return queue_args_invalid(why, cap, "x-queue-type", d, term);

    for (size_t i = 0; i < QUEUE_ARGS_N_ROWS; i++) {
        const struct queue_args_row *row = &queue_args_rows[i];
        if (row->check != NULL && wire_table_get(args, row->key, &v) &&
            queue_args_list_has(queue_args_by_type[type], queue_args_str(row->key)) &&
            row->check(&v, args, term, sizeof(term)) < 0)
            return queue_args_invalid(why, cap, row->key, d, term);
    }

    struct wire_table_iter it;
    struct wire_str key;
    wire_table_iter_init(&it, args);
    while (wire_table_next(&it, &key, &v)) {
        if (queue_args_known(key) && !queue_args_list_has(queue_args_by_type[type], key))
            return queue_args_refuse(why, cap,
                                     "invalid arg '%.*s' for queue '%.*s' in vhost '%s' of "
                                     "queue type %s",
                                     WIRE_STR_ARG(key), WIRE_STR_ARG(d->name), d->vhost,
                                     queue_args_type_module(type));
    }

    if (type == QUEUE_ARGS_QUORUM) {
        /* rabbit_queue_type_util's check, but for auto-delete and exclusive, which RabbitMQ
         * refuses first: Warren keeps them, as a classic queue's. */
        if (!d->durable)
            return queue_args_refuse(why, cap,
                                     "invalid property 'non-durable' for queue '%.*s' in vhost "
                                     "'%s'",
                                     WIRE_STR_ARG(d->name), d->vhost);
    } else if (!d->exclusive && wire_table_get(args, "x-queue-master-locator", &v) &&
               !queue_args_master_locator_known(&v)) {
        /* RabbitMQ 3.10 crashes on an unknown locator (541 INTERNAL_ERROR, closing the
         * connection) when it places the queue, which it does not do for an exclusive one:
         * refused here as an invalid argument instead. */
        return queue_args_invalid(why, cap, "x-queue-master-locator", d,
                                  "invalid_queue_master_locator");
    }
    return 0;
}

int
queue_args_unapplied(struct wire_table args, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    if (queue_args_type_of(args) != QUEUE_ARGS_QUORUM)
        return 0;
    queue_args_put(buf, cap, &n, "x-queue-type 'quorum' (a classic queue here)");
    return 1;
}

const char *const *
queue_args_equivalent_keys(struct wire_table args)
{
    return queue_args_by_type[queue_args_type_of(args)];
}

bool
queue_args_implied(const char *key, const struct wire_value *v)
{
    return strcmp(key, "x-queue-type") == 0 && v->type == WIRE_FIELD_LONGSTR &&
           wire_str_eq(v->v.str, "classic");
}

int
queue_args_expiration(struct wire_str s, int64_t *ms, char *why, size_t cap)
{
    /* Erlang's string:to_integer/1: an optional sign, then at least one digit; what follows
     * the digits is a leftover. */
    uint32_t i = 0;
    bool negative = false;
    if (i < s.len && (s.ptr[i] == '+' || s.ptr[i] == '-'))
        negative = s.ptr[i++] == '-';
    uint32_t digits = i;
    while (i < s.len && s.ptr[i] >= '0' && s.ptr[i] <= '9')
        i++;
    char term[300];
    if (i == digits) {
        snprintf(term, sizeof(term), "no_integer");
    } else if (i < s.len) {
        char rest[256];
        queue_args_erl_string(rest, sizeof(rest), "", (struct wire_str){s.ptr + i, s.len - i}, "");
        snprintf(term, sizeof(term), "{leftover_string,%s}", rest);
    } else {
        /* The value as Erlang prints it: no sign but '-', no leading zeros. */
        while (digits + 1 < i && s.ptr[digits] == '0')
            digits++;
        bool zero = i - digits == 1 && s.ptr[digits] == '0';
        int64_t n = 0;
        bool big = i - digits > 12; /* past ten years in ms whatever the digits */
        for (uint32_t k = digits; k < i && !big; k++)
            n = n * 10 + (s.ptr[k] - '0');
        if (negative && !zero) {
            snprintf(term, sizeof(term), "{value_negative,-%.*s}", (int)(i - digits),
                     (const char *)s.ptr + digits);
        } else if (big || n > INT64_C(315360000000)) {
            snprintf(term, sizeof(term), "{value_too_large,%.*s}", (int)(i - digits),
                     (const char *)s.ptr + digits);
        } else {
            *ms = n;
            return 0;
        }
    }
    return queue_args_refuse(why, cap, "invalid expiration '%.*s': %s", WIRE_STR_ARG(s), term);
}
