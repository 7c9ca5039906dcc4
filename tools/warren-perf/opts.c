/* warren-perf's command line. One table (opt_defs) drives getopt_long, the defaults, the
 * range checks and --help; man/warren-perf.1 follows the same order. --uri fills host, port,
 * user, password and vhost in one go; options are applied left to right, so a later --host
 * overrides the URI's. After parsing, the combinations that cannot work are refused with a
 * message that says why (exit status 2). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "perf.h"

enum opt_type {
    OPT_U16 = 0,
    OPT_U32,
    OPT_U64,
    OPT_DOUBLE,
    OPT_STR, /* into a char array of size `size` */
    OPT_FLAG,
    OPT_URI,
    OPT_QUEUE_ARG, /* appended to queue_args */
    OPT_HELP,
    OPT_VERSION,
};

struct opt_def {
    const char *name;
    int key;         /* short option letter, or 0 */
    const char *arg; /* "N" for --help, NULL for flags */
    enum opt_type type;
    size_t off, size; /* field in struct perf_opts */
    double min, max;
    const char *def; /* default, applied before parsing; NULL = zero */
    const char *help;
};

#define F(field) offsetof(struct perf_opts, field), sizeof(((struct perf_opts *)0)->field)
#define NOF 0, 0

static const struct opt_def opt_defs[] = {
    {"uri", 'u', "URI", OPT_URI, NOF, 0, 0, NULL,
     "amqp://user:pass@host:port/vhost (vhost percent-encoded: %2F is /)"},
    {"host", 'H', "HOST", OPT_STR, F(host), 0, 0, "127.0.0.1", "broker host"},
    {"port", 'p', "PORT", OPT_U16, F(port), 1, 65535, "5672", "broker port"},
    {"user", 0, "USER", OPT_STR, F(user), 0, 0, "guest", "user name (PLAIN login)"},
    {"password", 0, "PASS", OPT_STR, F(password), 0, 0, "guest", "password"},
    {"vhost", 0, "VHOST", OPT_STR, F(vhost), 0, 0, "/", "virtual host"},
    {"producers", 'x', "N", OPT_U32, F(producers), 0, 10000, "1", "producer threads"},
    {"consumers", 'y', "N", OPT_U32, F(consumers), 0, 10000, "1", "consumer threads"},
    {"queues", 'Q', "N", OPT_U32, F(queues), 1, 10000, "1",
     "queues; producers and consumers are spread over them round-robin"},
    {"prefix", 0, "NAME", OPT_STR, F(prefix), 0, 0, NULL,
     "queue i is NAME-i (default warren-perf-PID)"},
    {"size", 's', "BYTES", OPT_U32, F(size), PERF_MIN_SIZE, 512 * 1024 * 1024, "16",
     "message body size"},
    {"prefetch", 'q', "N", OPT_U32, F(prefetch), 0, 65535, "0",
     "consumer prefetch count (basic.qos); 0 = unlimited"},
    {"auto-ack", 'a', NULL, OPT_FLAG, F(auto_ack), 0, 0, NULL, "consume with no-ack"},
    {"multiple-ack", 'A', "N", OPT_U32, F(multiple_ack), 1, 65535, "1",
     "manual acks: one basic.ack (multiple) per N messages; 1 = ack each"},
    {"confirm", 'c', "N", OPT_U32, F(confirm), 0, 1000000, "0",
     "publisher confirms with at most N unconfirmed per producer; 0 = off"},
    {"priorities", 0, "N", OPT_U32, F(priorities), 0, 256, "0",
     "each message gets a random priority below N; consumers count rises in priority"},
    {"expire-at", 0, "UNIXTIME", OPT_DOUBLE, F(expire_at), 0, 1e11, NULL,
     "every message expires at this Unix time (expiration: the milliseconds left)"},
    {"persistent", 'f', NULL, OPT_FLAG, F(persistent), 0, 0, NULL,
     "persistent messages (delivery-mode 2), durable queues and exchange"},
    {"exchange", 'e', "NAME", OPT_STR, F(exchange), 0, 0, NULL,
     "exchange to publish to (declared; default: the default exchange)"},
    {"exchange-type", 't', "TYPE", OPT_STR, F(exchange_type), 0, 0, NULL,
     "direct, fanout or topic (declares PREFIX-TYPE if --exchange is not given)"},
    {"routing-key", 'k', "KEY", OPT_STR, F(routing_key), 0, 0, NULL,
     "routing key of every message (default: the producer's queue name)"},
    {"binding-key", 'K', "KEY", OPT_STR, F(binding_key), 0, 0, NULL,
     "binding key of every queue (default: the routing key, or the queue name)"},
    {"queue-arg", 0, "KEY=VALUE", OPT_QUEUE_ARG, NOF, 0, 0, NULL,
     "a queue.declare argument, repeatable (x-message-ttl=0): an integer if VALUE is one, "
     "else a string"},
    {"dead-letter", 0, NULL, OPT_FLAG, F(dead_letter), 0, 0, NULL,
     "queue i dead-letters to queue PREFIX-dead-i (through exchange PREFIX-dlx), which the "
     "consumers read instead"},
    {"rate", 'r', "MSGS", OPT_DOUBLE, F(rate), 0, 1e9, NULL,
     "publish at most MSGS messages/s per producer; 0 = unlimited"},
    {"duration", 'z', "SECONDS", OPT_DOUBLE, F(duration), 0, 1e7, NULL,
     "run this long (default 10 unless --count or --backlog)"},
    {"count", 'C', "N", OPT_U64, F(count), 0, 1e15, NULL,
     "publish N messages in all, and stop when they are consumed"},
    {"backlog", 'B', "N", OPT_U64, F(backlog), 0, 1e15, NULL,
     "publish N messages with no consumer running, then consume them: rates per phase"},
    {"keep-queues", 0, NULL, OPT_FLAG, F(keep_queues), 0, 0, NULL,
     "do not delete the queues and exchange at the end"},
    {"tls", 0, NULL, OPT_FLAG, F(tls), 0, 0, NULL,
     "connect over TLS (amqps; the server's certificate is not checked)"},
    {"churn", 0, NULL, OPT_FLAG, F(churn), 0, 0, NULL,
     "producers open (TCP, TLS, login, channel) and close connections in a loop: \"sent\" "
     "counts connections"},
    {"help", 'h', NULL, OPT_HELP, NOF, 0, 0, NULL, "this help"},
    {"version", 'V', NULL, OPT_VERSION, NOF, 0, 0, NULL, "print the version"},
};
#define N_OPTS (sizeof opt_defs / sizeof opt_defs[0])

static void __attribute__((noreturn, format(printf, 1, 2))) usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("warren-perf: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n(warren-perf --help lists the options)\n", stderr);
    exit(2);
}

static void
usage(void)
{
    printf("Usage: warren-perf [OPTION]...\n"
           "Load generator for AMQP 0-9-1 brokers: producer and consumer threads, each on its\n"
           "own connection. Prints a progress line per second to stderr and one JSON line of\n"
           "results to stdout.\n\n");
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt_def *d = &opt_defs[i];
        char left[64];
        char key[8] = "    ";
        if (d->key)
            snprintf(key, sizeof key, "-%c, ", d->key);
        snprintf(left, sizeof left, "%s--%s%s%s", key, d->name, d->arg ? " " : "",
                 d->arg ? d->arg : "");
        printf("  %-28s %s", left, d->help);
        if (d->def != NULL && d->type != OPT_STR)
            printf(" (default %s)", d->def);
        else if (d->def != NULL)
            printf(" (default '%s')", d->def);
        putchar('\n');
    }
    printf("\nExample: warren-perf -x 1 -y 1 -q 100 -A 10 -c 100 -z 10 "
           "--uri amqp://guest:guest@localhost:5672/%%2F\n");
}

static void
set_str(char *dst, size_t cap, const char *val, const char *what)
{
    size_t n = strlen(val);
    if (n >= cap)
        usage_error("%s is too long (%zu bytes, at most %zu)", what, n, cap - 1);
    memcpy(dst, val, n + 1);
}

/* Percent-decodes s[0, n) into dst. */
static void
set_decoded(char *dst, size_t cap, const char *s, size_t n, const char *what)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
                !isxdigit((unsigned char)s[i + 2]))
                usage_error("--uri: bad %%-escape in the %s", what);
            char hex[3] = {s[i + 1], s[i + 2], 0};
            ch = (char)strtol(hex, NULL, 16);
            i += 2;
        }
        if (o + 1 >= cap)
            usage_error("--uri: the %s is too long", what);
        dst[o++] = ch;
    }
    dst[o] = 0;
}

/* amqp://[user[:password]@]host[:port][/vhost] */
static void
parse_uri(struct perf_opts *o, const char *uri)
{
    const char *p, *end, *at, *hs, *he, *colon;
    bool tls = strncmp(uri, "amqps://", 8) == 0;
    if (!tls && strncmp(uri, "amqp://", 7) != 0)
        usage_error("--uri must start with amqp:// or amqps:// (got '%s')", uri);
    if (tls) { /* TLS, with 5671 as the default port */
        o->tls = true;
        if (o->port == 5672)
            o->port = 5671;
    }
    p = uri + (tls ? 8 : 7);
    end = p + strcspn(p, "/?#");
    at = memchr(p, '@', (size_t)(end - p));
    if (at != NULL) {
        colon = memchr(p, ':', (size_t)(at - p));
        if (colon != NULL) {
            set_decoded(o->user, sizeof o->user, p, (size_t)(colon - p), "user");
            set_decoded(o->password, sizeof o->password, colon + 1, (size_t)(at - colon - 1),
                        "password");
        } else {
            set_decoded(o->user, sizeof o->user, p, (size_t)(at - p), "user");
        }
        p = at + 1;
    }
    if (*p == '[') { /* [::1]:5672 */
        hs = p + 1;
        he = memchr(hs, ']', (size_t)(end - hs));
        if (he == NULL)
            usage_error("--uri: unterminated [ in the host");
        colon = he + 1 < end && he[1] == ':' ? he + 1 : NULL;
    } else {
        hs = p;
        colon = memchr(p, ':', (size_t)(end - p));
        he = colon != NULL ? colon : end;
    }
    if (he > hs)
        set_decoded(o->host, sizeof o->host, hs, (size_t)(he - hs), "host");
    if (colon != NULL) {
        char *e;
        errno = 0;
        long port = strtol(colon + 1, &e, 10);
        if (e != end || errno != 0 || port < 1 || port > 65535)
            usage_error("--uri: bad port '%.*s'", (int)(end - colon - 1), colon + 1);
        o->port = (uint16_t)port;
    }
    if (*end == '/' && end[1] != 0 && end[1] != '?' && end[1] != '#')
        set_decoded(o->vhost, sizeof o->vhost, end + 1, strcspn(end + 1, "?#"), "vhost");
}

static void
set_number(struct perf_opts *o, const struct opt_def *d, const char *val)
{
    char *e;
    errno = 0;
    double v = strtod(val, &e);
    if (e == val || *e != 0 || errno != 0 || v != v)
        usage_error("--%s: '%s' is not a number", d->name, val);
    if (v < d->min || v > d->max)
        usage_error("--%s: %s is out of range (%.15g..%.15g)", d->name, val, d->min, d->max);
    if (d->type != OPT_DOUBLE && v != (double)(uint64_t)v)
        usage_error("--%s: '%s' is not a whole number", d->name, val);
    char *field = (char *)o + d->off;
    switch (d->type) {
    case OPT_U16:
        *(uint16_t *)(void *)field = (uint16_t)v;
        break;
    case OPT_U32:
        *(uint32_t *)(void *)field = (uint32_t)v;
        break;
    case OPT_U64:
        *(uint64_t *)(void *)field = (uint64_t)v;
        break;
    default:
        *(double *)(void *)field = v;
        break;
    }
}

/* --queue-arg KEY=VALUE */
static void
add_queue_arg(struct perf_opts *o, const char *val)
{
    const char *eq = strchr(val, '=');
    if (eq == NULL || eq == val)
        usage_error("--queue-arg: expected KEY=VALUE (got '%s')", val);
    if (o->n_queue_args == PERF_QUEUE_ARGS_MAX)
        usage_error("--queue-arg: at most %d", PERF_QUEUE_ARGS_MAX);
    struct perf_queue_arg *a = &o->queue_args[o->n_queue_args++];
    if ((size_t)(eq - val) >= sizeof a->key)
        usage_error("--queue-arg: the key is too long");
    memcpy(a->key, val, (size_t)(eq - val));
    a->key[eq - val] = 0;
    set_str(a->str, sizeof a->str, eq + 1, "--queue-arg's value");
    char *e;
    errno = 0;
    long long n = strtoll(a->str, &e, 10);
    a->is_int = a->str[0] != 0 && *e == 0 && errno == 0;
    a->num = n;
}

static void
apply(struct perf_opts *o, const struct opt_def *d, const char *val)
{
    char *field = (char *)o + d->off;
    switch (d->type) {
    case OPT_STR: {
        char what[40];
        snprintf(what, sizeof what, "--%s", d->name);
        set_str(field, d->size, val, what);
        break;
    }
    case OPT_FLAG:
        *(bool *)(void *)field = true;
        break;
    case OPT_URI:
        parse_uri(o, val);
        break;
    case OPT_QUEUE_ARG:
        add_queue_arg(o, val);
        break;
    case OPT_HELP:
        usage();
        exit(0);
    case OPT_VERSION:
        printf("warren-perf %s\n", PACKAGE_VERSION);
        exit(0);
    default:
        set_number(o, d, val);
        break;
    }
}

/* The combinations that cannot work. */
static void
check(struct perf_opts *o)
{
    int modes = (o->duration > 0) + (o->count > 0) + (o->backlog > 0);
    if (modes > 1)
        usage_error("--duration, --count and --backlog exclude each other");
    if (modes == 0)
        o->duration = 10;
    if (o->producers + o->consumers == 0)
        usage_error("nothing to do: no producers and no consumers");
    if (o->churn && (o->consumers > 0 || o->producers == 0 || o->duration == 0))
        usage_error("--churn needs producers, no consumers (-y 0) and --duration");
    if (o->backlog > 0 && (o->producers == 0 || o->consumers == 0))
        usage_error("--backlog needs producers and consumers");
    if (o->auto_ack && o->multiple_ack > 1)
        usage_error("--multiple-ack is for manual acks, not --auto-ack");
    if (!o->auto_ack && o->prefetch > 0 && o->multiple_ack > o->prefetch)
        usage_error("--multiple-ack %u exceeds --prefetch %u: the consumer would stall waiting "
                    "for messages the broker will not send before an ack",
                    o->multiple_ack, o->prefetch);
    if (o->exchange_type[0] != 0 && strcmp(o->exchange_type, "direct") != 0 &&
        strcmp(o->exchange_type, "fanout") != 0 && strcmp(o->exchange_type, "topic") != 0)
        usage_error("--exchange-type must be direct, fanout or topic (got '%s')", o->exchange_type);
    if (o->exchange[0] != 0 && o->exchange_type[0] == 0)
        strcpy(o->exchange_type, "direct");
    if ((o->routing_key[0] != 0 || o->binding_key[0] != 0) && o->exchange_type[0] == 0)
        usage_error("--routing-key and --binding-key need --exchange or --exchange-type (the "
                    "default exchange routes by queue name)");
    for (unsigned i = 0; o->dead_letter && i < o->n_queue_args; i++)
        if (strncmp(o->queue_args[i].key, "x-dead-letter-", 14) == 0)
            usage_error("--dead-letter sets %s itself", o->queue_args[i].key);
    if (o->prefix[0] == 0)
        snprintf(o->prefix, sizeof o->prefix, "warren-perf-%ld", (long)getpid());
    if (o->exchange_type[0] != 0 && o->exchange[0] == 0)
        snprintf(o->exchange, sizeof o->exchange, "%s-%s", o->prefix, o->exchange_type);
    if (strlen(o->prefix) + 17 > 255) /* "-dead-" and a number */
        usage_error("--prefix is too long for a queue name");
}

void
perf_opts_parse(struct perf_opts *o, int argc, char **argv)
{
    struct option longopts[N_OPTS + 1];
    char shortopts[3 * N_OPTS + 2], *sp = shortopts;

    memset(o, 0, sizeof *o);
    *sp++ = ':';
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt_def *d = &opt_defs[i];
        longopts[i] = (struct option){d->name, d->arg ? required_argument : no_argument, NULL,
                                      d->key ? d->key : 256 + (int)i};
        if (d->key) {
            *sp++ = (char)d->key;
            if (d->arg)
                *sp++ = ':';
        }
        if (d->def != NULL)
            apply(o, d, d->def);
    }
    longopts[N_OPTS] = (struct option){0};
    *sp = 0;

    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        if (ch == '?')
            usage_error("unknown option '%s'", argv[optind - 1]);
        if (ch == ':')
            usage_error("option '%s' needs a value", argv[optind - 1]);
        for (size_t i = 0; i < N_OPTS; i++) {
            if (opt_defs[i].key ? opt_defs[i].key == ch : 256 + (int)i == ch) {
                apply(o, &opt_defs[i], optarg);
                break;
            }
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);
    check(o);
}

/* A JSON string literal. */
static void
json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(out, "\\u%04x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

void
perf_opts_json(const struct perf_opts *o, FILE *out)
{
    fputs("\"host\":", out);
    json_str(out, o->host);
    fprintf(out, ",\"port\":%u,\"vhost\":", o->port);
    json_str(out, o->vhost);
    fprintf(out,
            ",\"tls\":%s,\"churn\":%s,\"producers\":%u,\"consumers\":%u,\"queues\":%u,"
            "\"size\":%u,\"prefetch\":%u,\"auto_ack\":%s,\"multiple_ack\":%u,\"confirm\":%u,"
            "\"persistent\":%s,\"exchange\":",
            o->tls ? "true" : "false", o->churn ? "true" : "false", o->producers, o->consumers,
            o->queues, o->size, o->prefetch, o->auto_ack ? "true" : "false", o->multiple_ack,
            o->confirm, o->persistent ? "true" : "false");
    json_str(out, o->exchange);
    fputs(",\"exchange_type\":", out);
    json_str(out, o->exchange_type[0] ? o->exchange_type : "direct");
    fputs(",\"routing_key\":", out);
    json_str(out, o->routing_key);
    fprintf(out, ",\"rate\":%.15g,\"duration\":%.15g,\"count\":%llu,\"backlog\":%llu", o->rate,
            o->duration, (unsigned long long)o->count, (unsigned long long)o->backlog);
    fputs(",\"queue_args\":{", out);
    for (unsigned i = 0; i < o->n_queue_args; i++) {
        const struct perf_queue_arg *a = &o->queue_args[i];
        fputs(i ? "," : "", out);
        json_str(out, a->key);
        fputc(':', out);
        if (a->is_int)
            fprintf(out, "%lld", (long long)a->num);
        else
            json_str(out, a->str);
    }
    fprintf(out, "},\"dead_letter\":%s,\"priorities\":%u,\"expire_at\":%.3f",
            o->dead_letter ? "true" : "false", o->priorities, o->expire_at);
}
