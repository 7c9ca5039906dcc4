/* Unit tests for src/broker/exchange.c, route_topic.c and route_headers.c: each exchange
 * type's matching rules as RabbitMQ applies them (topic: its tutorial's examples and the edge
 * cases of empty words, "#" and "*"; a randomised cross-check of the trie against a direct
 * recursive matcher; headers: all/any/with-x, void, value equality across types, duplicate
 * keys, patterns of 8,000 entries against 8,000 headers, whose match time it prints), idempotent
 * bind and unbind, exchange-to-exchange chains and cycles, alternate exchanges (present,
 * missing, routing nowhere, chains and cycles), routing with several keys, each queue once in
 * a result, unbind_all with auto-delete reporting, and exch_free's cleanup of both directions
 * (run under valgrind for leaks: CK_FORK=no valgrind --leak-check=full --error-exitcode=1). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>

#include "warren/exchange.h"
#include "warren/hmap.h"
#include "warren/queue.h"
#include "warren/vhost.h"
#include "warren/wire.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static struct wire_str
str_of(const char *s)
{
    return (struct wire_str){(const uint8_t *)s, (uint32_t)strlen(s)};
}

/* ---- field tables from a compact spec ----
 * Entries separated by ';': key:type:value, with type one of the tag letters. Values: S and
 * x text; b B s u I i l T integers; f d numbers; D "scale,value"; t 0 or 1; V none (key:V);
 * F and A nested in parentheses: a:F(b:I:1;c:S:x), a:A(I:1;S:x) (array items have no key). */

static const char *spec_entries(struct wire_writer *w, const char *s, bool array);

static const char *
spec_value(struct wire_writer *w, char type, const char *s)
{
    char buf[4096];
    size_t n = strcspn(s, ";)");
    size_t mark;
    long long ll;
    double d;
    float f;
    uint32_t u32;
    uint64_t u64;
    unsigned scale;
    int val;

    ck_assert_uint_lt(n, sizeof buf);
    memcpy(buf, s, n);
    buf[n] = '\0';
    wire_put_u8(w, (uint8_t)type);
    switch (type) {
    case 'S':
    case 'x':
        wire_put_longstr(w, str_of(buf));
        return s + n;
    case 't':
    case 'b':
    case 'B':
        wire_put_u8(w, (uint8_t)strtoll(buf, NULL, 10));
        return s + n;
    case 's':
    case 'u':
        wire_put_u16(w, (uint16_t)strtoll(buf, NULL, 10));
        return s + n;
    case 'I':
    case 'i':
        wire_put_u32(w, (uint32_t)strtoll(buf, NULL, 10));
        return s + n;
    case 'l':
    case 'T':
        ll = strtoll(buf, NULL, 10);
        wire_put_u64(w, (uint64_t)ll);
        return s + n;
    case 'f':
        f = strtof(buf, NULL);
        memcpy(&u32, &f, 4);
        wire_put_u32(w, u32);
        return s + n;
    case 'd':
        d = strtod(buf, NULL);
        memcpy(&u64, &d, 8);
        wire_put_u64(w, u64);
        return s + n;
    case 'D':
        ck_assert_int_eq(sscanf(buf, "%u,%d", &scale, &val), 2);
        wire_put_u8(w, (uint8_t)scale);
        wire_put_u32(w, (uint32_t)val);
        return s + n;
    case 'V':
        return s;
    case 'F':
    case 'A':
        ck_assert_int_eq(*s, '(');
        mark = wire_writer_len(w);
        wire_put_u32(w, 0);
        s = spec_entries(w, s + 1, type == 'A');
        ck_assert_int_eq(*s, ')');
        u32 = (uint32_t)(wire_writer_len(w) - mark - 4);
        w->start[mark] = (uint8_t)(u32 >> 24);
        w->start[mark + 1] = (uint8_t)(u32 >> 16);
        w->start[mark + 2] = (uint8_t)(u32 >> 8);
        w->start[mark + 3] = (uint8_t)u32;
        return s + 1;
    }
    ck_abort_msg("bad type '%c' in table spec", type);
    return s;
}

static const char *
spec_entries(struct wire_writer *w, const char *s, bool array)
{
    while (*s != '\0' && *s != ')') {
        if (!array) {
            size_t n = strcspn(s, ":");
            ck_assert_int_eq(s[n], ':');
            wire_put_shortstr(w, (struct wire_str){(const uint8_t *)s, (uint32_t)n});
            s += n + 1;
        }
        char type = *s++;
        if (*s == ':')
            s++;
        s = spec_value(w, type, s);
        if (*s == ';')
            s++;
    }
    return s;
}

/* Up to 8 tables live at once, in rotation. */
static struct wire_table
T(const char *spec) {
    static uint8_t bufs[8][4096];
    static int next;
    uint8_t *buf = bufs[next++ % 8];
    struct wire_writer w;
    struct wire_error err;

    wire_writer_init(&w, buf, sizeof bufs[0]);
    spec_entries(&w, spec, false);
    ck_assert(!w.overflow);
    ck_assert_int_eq(wire_table_validate(buf, (uint32_t)wire_writer_len(&w), 0, &err), 0);
    return (struct wire_table){buf, (uint32_t)wire_writer_len(&w)};
}

/* ---- a vhost of exchanges and queues, built by hand ---- */

static struct vhost vh;
static struct queue *queues[256];
static unsigned n_queues;
static struct route_result result;

static void
world_setup(void)
{
    memset(&vh, 0, sizeof vh);
    vh.name = (char *)"/";
    hmap_init(&vh.exchanges);
    hmap_init(&vh.queues);
    n_queues = 0;
}

static void
world_teardown(void)
{
    struct hmap_iter it;
    struct hmap_entry *he;

    hmap_iter_init(&it, &vh.exchanges);
    while ((he = hmap_iter_next(&it)) != NULL) {
        hmap_remove(&vh.exchanges, he);
        exch_free(hmap_container_of(he, struct exch, by_name));
    }
    for (unsigned i = 0; i < n_queues; i++)
        if (queues[i] != NULL)
            queue_free(queues[i], NULL, NULL);
    hmap_clear(&vh.exchanges);
    hmap_clear(&vh.queues);
    route_result_free(&result);
}

static struct exch *
X_args(const char *name, enum exch_type type, const char *args)
{
    struct exch *e = exch_new(&vh, str_of(name), type, false, false, false, T(args));

    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(hmap_insert(&vh.exchanges, &e->by_name, e->name, e->name_len), 0);
    return e;
}

static struct exch *
X(const char *name, enum exch_type type)
{
    return X_args(name, type, "");
}

/* Frees e now (unlinking it from the vhost), as exchange.delete does. */
static void
X_delete(struct exch *e)
{
    hmap_remove(&vh.exchanges, &e->by_name);
    exch_free(e);
}

static struct queue *
Q(const char *name)
{
    struct queue *q = queue_new(&vh, str_of(name), false, false, NULL, T(""));

    ck_assert_ptr_nonnull(q);
    ck_assert_uint_lt(n_queues, N_ELEMS(queues));
    queues[n_queues++] = q;
    return q;
}

static void
Q_delete(struct queue *q, struct exch ***emptied, uint32_t *n_emptied)
{
    for (unsigned i = 0; i < n_queues; i++)
        if (queues[i] == q)
            queues[i] = NULL;
    queue_free(q, emptied, n_emptied);
}

static int
bind_q(struct exch *e, struct queue *q, const char *key, const char *args)
{
    return exch_bind(e, bind_dest_queue(q), str_of(key), T(args));
}

static int
bind_x(struct exch *src, struct exch *dst, const char *key)
{
    return exch_bind(src, bind_dest_exch(dst), str_of(key), T(""));
}

static int
cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The queues in result: their names, sorted, comma-separated; fails the test if a queue
 * appears twice. */
static const char *
result_names(void)
{
    static char out[4096];
    const char *names[256];
    size_t len = 0;

    ck_assert_uint_le(result.n, N_ELEMS(names));
    for (uint32_t i = 0; i < result.n; i++)
        names[i] = result.queues[i]->name;
    qsort(names, result.n, sizeof names[0], cmp_name);
    out[0] = '\0';
    for (uint32_t i = 0; i < result.n; i++) {
        ck_assert_msg(i == 0 || strcmp(names[i - 1], names[i]) != 0, "queue %s twice", names[i]);
        len += (size_t)snprintf(out + len, sizeof out - len, "%s%s", i ? "," : "", names[i]);
    }
    return out;
}

/* Routes and returns the matched queues (result_names). */
static const char *
route(struct exch *e, const char *key, const char *headers)
{
    ck_assert_int_eq(exch_route(e, str_of(key), T(headers), &result), 0);
    return result_names();
}

/* Routes with several routing keys, given space-separated (at most 8), no headers. */
static const char *
route_keys(struct exch *e, const char *keys)
{
    static char buf[256];
    struct wire_str k[8];
    uint32_t n = 0;

    ck_assert_uint_lt(strlen(keys), sizeof buf);
    strcpy(buf, keys);
    for (char *save = NULL, *w = strtok_r(buf, " ", &save); w != NULL;
         w = strtok_r(NULL, " ", &save)) {
        ck_assert_uint_lt(n, N_ELEMS(k));
        k[n++] = str_of(w);
    }
    ck_assert_int_eq(exch_route_keys(e, k, n, T(""), &result), 0);
    return result_names();
}

/* ---- exchange types ---- */

START_TEST(test_type_names)
{
    static const struct {
        const char *name;
        int rc;
        enum exch_type type;
    } cases[] = {
        {"direct", 0, EXCH_DIRECT},
        {"fanout", 0, EXCH_FANOUT},
        {"topic", 0, EXCH_TOPIC},
        {"headers", 0, EXCH_HEADERS},
        {"Direct", -1, 0},
        {"x-delayed", -1, 0},
        {"", -1, 0},
        {"topics", -1, 0},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        enum exch_type t = EXCH_DIRECT;
        ck_assert_int_eq(exch_type_parse(str_of(cases[i].name), &t), cases[i].rc);
        if (cases[i].rc == 0) {
            ck_assert_int_eq(t, cases[i].type);
            ck_assert_str_eq(exch_type_name(t), cases[i].name);
        }
    }
}
END_TEST

START_TEST(test_new_args)
{
    struct exch *e = X_args("e", EXCH_TOPIC, "alternate-exchange:S:ae;x-other:I:5");

    ck_assert_str_eq(e->name, "e");
    ck_assert_uint_eq(e->name_len, 1);
    ck_assert_int_eq(e->type, EXCH_TOPIC);
    ck_assert_str_eq(e->alternate, "ae");
    ck_assert_uint_eq(e->alternate_len, 2);
    ck_assert_uint_gt(e->args_len, 0);
    ck_assert_ptr_null(X_args("f", EXCH_DIRECT, "alternate-exchange:I:5")->alternate);
    ck_assert_ptr_null(X("g", EXCH_DIRECT)->alternate);
    ck_assert_ptr_null(X("g2", EXCH_DIRECT)->args);
}
END_TEST

/* Topic patterns, one binding each: RabbitMQ's tutorial 5 ("quick.orange.rabbit") and the
 * edge cases of its trie_match: "" has no words, "a." two, "*" takes exactly one (possibly
 * empty) word, "#" zero or more. */
static const struct {
    const char *pattern, *key;
    bool match;
} topic_cases[] = {
    {"*.orange.*", "quick.orange.rabbit", true},
    {"*.orange.*", "lazy.orange.elephant", true},
    {"*.orange.*", "quick.orange.fox", true},
    {"*.orange.*", "lazy.brown.fox", false},
    {"*.orange.*", "quick.brown.fox", false},
    {"*.orange.*", "orange", false},
    {"*.orange.*", "quick.orange.male.rabbit", false},
    {"*.orange.*", "lazy.orange.male.rabbit", false},
    {"*.*.rabbit", "quick.orange.rabbit", true},
    {"*.*.rabbit", "lazy.pink.rabbit", true},
    {"*.*.rabbit", "quick.orange.male.rabbit", false},
    {"*.*.rabbit", "lazy.orange.elephant", false},
    {"lazy.#", "lazy.orange.elephant", true},
    {"lazy.#", "lazy.brown.fox", true},
    {"lazy.#", "lazy.pink.rabbit", true},
    {"lazy.#", "lazy.orange.male.rabbit", true},
    {"lazy.#", "lazy", true},
    {"lazy.#", "quick.brown.fox", false},
    {"lazy.#", "lazyx", false},
    {"#", "", true},
    {"#", "a", true},
    {"#", "a.b.c", true},
    {"#", ".", true},
    {"", "", true},
    {"", "a", false},
    {"", ".", false},
    {"a", "a", true},
    {"a", "A", false},
    {"a", "a.", false},
    {"a", ".a", false},
    {"*", "", false},
    {"*", "a", true},
    {"*", "a.b", false},
    {"*", ".", false},
    {"*.*", ".", true},
    {"*.*", "a.", true},
    {"*.*", "a", false},
    {".", ".", true},
    {".", "", false},
    {"a.#", "a", true},
    {"a.#", "a.b", true},
    {"a.#", "a.b.c", true},
    {"a.#", "a.", true},
    {"a.#", "b", false},
    {"a.#", "", false},
    {"#.a", "a", true},
    {"#.a", "b.a", true},
    {"#.a", "b.c.a", true},
    {"#.a", "a.b", false},
    {"#.#", "", true},
    {"#.#", "a.b", true},
    {"a.#.b", "a.b", true},
    {"a.#.b", "a.x.b", true},
    {"a.#.b", "a.x.y.b", true},
    {"a.#.b", "a.b.b", true},
    {"a.#.b", "a", false},
    {"a.#.b", "b.a.b", false},
    {"a.#.b", "a.b.c", false},
    {"a.#.#.b", "a.b", true},
    {"a.#.#.b", "a.x.y.z.b", true},
    {"#.b.#", "b", true},
    {"#.b.#", "a.b.c", true},
    {"#.b.#", "a.c", false},
    {"a..b", "a..b", true},
    {"a..b", "a.b", false},
    {"a..b", "a.x.b", false},
    {"a.*.b", "a..b", true},
    {"a.*.b", "a.b", false},
    {"*.#", "", false},
    {"*.#", "a", true},
    {"*.#", "a.b", true},
    {"#.*", "", false},
    {"#.*", "a", true},
    {"#.*", "a.b.c", true},
    {"a.*.#", "a", false},
    {"a.*.#", "a.b", true},
    {"a.*.#", "a.b.c", true},
    {"#.a.#", "a", true},
    {"#.a.#", "b", false},
    {"a.b", "a.b", true},
    {"a.b", "a.b.", false},
    /* Wildcards in a routing key are plain words there. */
    {"a.*", "a.*", true},
    {"a.#", "a.#", true},
    {"a.b", "a.*", false},
    {"a.b", "a.#", false},
    {"a.b", "#", false},
    {"*a", "xa", false},
    {"a#", "a", false},
    {"a#", "a#", true},
    /* Many "#" over a long key: matched in bounded time (the memo). */
    {"#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.z",
     "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a", false},
    {"#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.a",
     "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a", true},
};

START_TEST(test_topic_match)
{
    struct exch *e = X("t", EXCH_TOPIC);
    struct queue *q = Q("q");

    ck_assert_int_eq(bind_q(e, q, topic_cases[_i].pattern, ""), 0);
    ck_assert_msg(strcmp(route(e, topic_cases[_i].key, ""), topic_cases[_i].match ? "q" : "") == 0,
                  "pattern '%s' key '%s': expected %s", topic_cases[_i].pattern,
                  topic_cases[_i].key, topic_cases[_i].match ? "a match" : "none");
    /* Unbinding empties the trie; binding again works. */
    ck_assert_int_eq(exch_unbind(e, bind_dest_queue(q), str_of(topic_cases[_i].pattern), T("")), 0);
    ck_assert_str_eq(route(e, topic_cases[_i].key, ""), "");
    ck_assert_int_eq(bind_q(e, q, topic_cases[_i].pattern, ""), 0);
}
END_TEST

/* The whole tutorial: Q1 *.orange.*, Q2 *.*.rabbit and lazy.#. */
START_TEST(test_topic_tutorial)
{
    static const struct {
        const char *key, *queues;
    } cases[] = {
        {"quick.orange.rabbit", "Q1,Q2"},
        {"lazy.orange.elephant", "Q1,Q2"},
        {"quick.orange.fox", "Q1"},
        {"lazy.brown.fox", "Q2"},
        {"lazy.pink.rabbit", "Q2"},
        {"quick.brown.fox", ""},
        {"orange", ""},
        {"quick.orange.male.rabbit", ""},
        {"lazy.orange.male.rabbit", "Q2"},
        {"lazy", "Q2"},
    };
    struct exch *e = X("topic_logs", EXCH_TOPIC);
    struct queue *q1 = Q("Q1"), *q2 = Q("Q2");

    ck_assert_int_eq(bind_q(e, q1, "*.orange.*", ""), 0);
    ck_assert_int_eq(bind_q(e, q2, "*.*.rabbit", ""), 0);
    ck_assert_int_eq(bind_q(e, q2, "lazy.#", ""), 0);
    for (size_t i = 0; i < N_ELEMS(cases); i++)
        ck_assert_msg(strcmp(route(e, cases[i].key, ""), cases[i].queues) == 0, "%s: got %s",
                      cases[i].key, route(e, cases[i].key, ""));
}
END_TEST

/* A recursive matcher written from the rules, to cross-check the trie. */
static int
split_words(const char *s, const char *w[], size_t wl[])
{
    int n = 0;

    if (*s == '\0')
        return 0;
    for (;;) {
        const char *dot = strchr(s, '.');
        w[n] = s;
        wl[n] = dot != NULL ? (size_t)(dot - s) : strlen(s);
        n++;
        if (dot == NULL)
            return n;
        s = dot + 1;
    }
}

static bool
naive_match(const char **pw, const size_t *pl, int np, const char **kw, const size_t *kl, int nk)
{
    if (np == 0)
        return nk == 0;
    if (pl[0] == 1 && pw[0][0] == '#')
        return naive_match(pw + 1, pl + 1, np - 1, kw, kl, nk) ||
               (nk > 0 && naive_match(pw, pl, np, kw + 1, kl + 1, nk - 1));
    if (nk == 0)
        return false;
    if ((pl[0] == 1 && pw[0][0] == '*') || (pl[0] == kl[0] && memcmp(pw[0], kw[0], pl[0]) == 0))
        return naive_match(pw + 1, pl + 1, np - 1, kw + 1, kl + 1, nk - 1);
    return false;
}

static void
random_key(char *buf, size_t cap, const char *const *alphabet, size_t n_alpha, unsigned *seed)
{
    int words = rand_r(seed) % 5;
    size_t len = 0;

    buf[0] = '\0';
    for (int i = 0; i < words; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? "." : "",
                                alphabet[rand_r(seed) % n_alpha]);
}

START_TEST(test_topic_random)
{
    static const char *const pattern_words[] = {"a", "b", "", "*", "#", "#"};
    static const char *const key_words[] = {"a", "b", "", "*", "#"};
    enum { N_PATTERNS = 200, N_KEYS = 2000 };
    static char patterns[N_PATTERNS][64];
    /* Each pattern split once; queue q%03d is bound with pattern %03d. */
    static const char *pw[N_PATTERNS][16];
    static size_t pl[N_PATTERNS][16];
    int np[N_PATTERNS];
    struct exch *e = X("t", EXCH_TOPIC);
    unsigned seed = 12345 + (unsigned)_i;
    char key[64], qname[16];
    const char *kw[16];
    size_t kl[16];

    for (int i = 0; i < N_PATTERNS; i++) {
        random_key(patterns[i], sizeof patterns[i], pattern_words, N_ELEMS(pattern_words), &seed);
        snprintf(qname, sizeof qname, "q%03d", i);
        ck_assert_int_eq(bind_q(e, Q(qname), patterns[i], ""), 0);
        np[i] = split_words(patterns[i], pw[i], pl[i]);
    }
    for (int k = 0; k < N_KEYS; k++) {
        random_key(key, sizeof key, key_words, N_ELEMS(key_words), &seed);
        int nk = split_words(key, kw, kl);
        ck_assert_int_eq(exch_route(e, str_of(key), T(""), &result), 0);
        bool found[N_PATTERNS] = {false};
        for (uint32_t j = 0; j < result.n; j++)
            found[atoi(result.queues[j]->name + 1)] = true;
        /* ck_assert_* writes a checkpoint per call (a syscall): asserting 400,000 times
         * took minutes under valgrind. */
        for (int i = 0; i < N_PATTERNS; i++) {
            if (found[i] != naive_match(pw[i], pl[i], np[i], kw, kl, nk))
                ck_abort_msg("pattern '%s' key '%s': trie %d", patterns[i], key, found[i]);
        }
    }
}
END_TEST

/* Keys and patterns built to make a matcher backtrack: 128 "#" words against 128 "#" words,
 * alternating "#" and "a" against 128 "a" words, many "#" prefixes sharing the trie. Each
 * route must finish at once (Check's timeout catches a blow-up). */
static void
repeat_words(char *buf, size_t cap, const char *w1, const char *w2, int n)
{
    size_t len = 0;

    buf[0] = '\0';
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? "." : "", i % 2 ? w2 : w1);
}

START_TEST(test_topic_hostile)
{
    struct exch *t = X("t", EXCH_TOPIC);
    struct queue *q1 = Q("q1"), *q2 = Q("q2"), *q3 = Q("q3"), *q4 = Q("q4");
    char hashes[256], alt[256], as[256], bs[256], p[64];

    repeat_words(hashes, sizeof hashes, "#", "#", 128);
    repeat_words(alt, sizeof alt, "#", "a", 128);
    repeat_words(as, sizeof as, "a", "a", 128);
    repeat_words(bs, sizeof bs, "b", "b", 128);
    ck_assert_uint_eq(strlen(hashes), 255);
    ck_assert_int_eq(bind_q(t, q1, hashes, ""), 0);
    ck_assert_int_eq(bind_q(t, q2, alt, ""), 0);
    ck_assert_int_eq(bind_q(t, q3, "#.b", ""), 0);
    for (int i = 0; i < 100; i++) {
        snprintf(p, sizeof p, "#.#.#.#.#.#.#.#.x%d", i);
        ck_assert_int_eq(bind_q(t, q4, p, ""), 0);
    }
    for (int i = 0; i < 10; i++) {
        ck_assert_str_eq(route(t, hashes, ""), "q1");
        ck_assert_str_eq(route(t, as, ""), "q1,q2");
        ck_assert_str_eq(route(t, bs, ""), "q1,q3");
        ck_assert_str_eq(route(t, alt, ""), "q1,q2");
    }
}
END_TEST

START_TEST(test_direct_fanout)
{
    struct exch *d = X("d", EXCH_DIRECT), *f = X("f", EXCH_FANOUT);
    struct queue *q1 = Q("q1"), *q2 = Q("q2"), *q3 = Q("q3");

    ck_assert_int_eq(bind_q(d, q1, "a", ""), 0);
    ck_assert_int_eq(bind_q(d, q2, "a", ""), 0);
    ck_assert_int_eq(bind_q(d, q3, "b", ""), 0);
    ck_assert_int_eq(bind_q(d, q3, "", ""), 0);
    ck_assert_int_eq(bind_q(d, q1, "a", "x-whatever:I:1"), 0); /* same queue, other args */
    ck_assert_str_eq(route(d, "a", ""), "q1,q2");
    ck_assert_str_eq(route(d, "b", ""), "q3");
    ck_assert_str_eq(route(d, "", ""), "q3");
    ck_assert_str_eq(route(d, "c", ""), "");
    ck_assert_str_eq(route(d, "A", ""), "");
    ck_assert_str_eq(route(d, "a.b", ""), "");
    ck_assert_str_eq(route(d, "*", ""), "");

    ck_assert_str_eq(route(f, "a", ""), "");
    ck_assert_int_eq(bind_q(f, q1, "", ""), 0);
    ck_assert_int_eq(bind_q(f, q2, "ignored", ""), 0);
    ck_assert_str_eq(route(f, "a", ""), "q1,q2");
    ck_assert_str_eq(route(f, "", "a:S:1"), "q1,q2");

    /* Removing one of a key's bindings keeps the others. */
    ck_assert_int_eq(exch_unbind(d, bind_dest_queue(q1), str_of("a"), T("")), 0);
    ck_assert_str_eq(route(d, "a", ""), "q1,q2"); /* the x-whatever one */
    ck_assert_int_eq(exch_unbind(d, bind_dest_queue(q1), str_of("a"), T("x-whatever:I:1")), 0);
    ck_assert_str_eq(route(d, "a", ""), "q2");
    ck_assert_int_eq(exch_unbind(d, bind_dest_queue(q2), str_of("a"), T("")), 0);
    ck_assert_str_eq(route(d, "a", ""), "");
    ck_assert_str_eq(route(d, "b", ""), "q3");
}
END_TEST

/* Headers bindings: args, message headers, match. RabbitMQ 3.10's headers_match. */
static const struct {
    const char *what, *args, *headers;
    bool match;
} header_cases[] = {
    {"all: one key", "a:S:1", "a:S:1", true},
    {"all by default: a key missing", "a:S:1;b:S:2", "a:S:1", false},
    {"all: both", "x-match:S:all;a:S:1;b:S:2", "b:S:2;a:S:1", true},
    {"all: extra headers are fine", "a:S:1", "z:S:9;a:S:1;c:I:3", true},
    {"all: wrong value", "a:S:1", "a:S:2", false},
    {"all: no headers", "a:S:1", "", false},
    {"any: one of two", "x-match:S:any;a:S:1;b:S:2", "b:S:2", true},
    {"any: none", "x-match:S:any;a:S:1;b:S:2", "c:S:3", false},
    {"any: wrong value", "x-match:S:any;a:S:1", "a:S:2", false},
    {"all: empty pattern matches all", "x-match:S:all", "", true},
    {"no arguments: all, empty pattern", "", "a:S:1", true},
    {"any: empty pattern matches none", "x-match:S:any", "a:S:1", false},
    {"keys are case-sensitive", "A:S:1", "a:S:1", false},
    {"x- pattern keys ignored", "x-foo:S:bar;a:S:1", "a:S:1", true},
    {"x- only, all", "x-foo:S:bar", "", true},
    {"x- only, any", "x-match:S:any;x-foo:S:bar", "x-foo:S:bar", false},
    {"all-with-x: x- key present", "x-match:S:all-with-x;x-foo:S:bar", "x-foo:S:bar", true},
    {"all-with-x: x- key missing", "x-match:S:all-with-x;x-foo:S:bar", "", false},
    {"all-with-x: x-match itself ignored", "x-match:S:all-with-x", "", true},
    {"any-with-x: x- key", "x-match:S:any-with-x;x-foo:S:bar;a:S:1", "x-foo:S:bar", true},
    {"any-with-x: none", "x-match:S:any-with-x;x-foo:S:bar", "x-foo:S:baz", false},
    {"void: present as string", "a:V", "a:S:anything", true},
    {"void: present as int", "a:V", "a:I:5", true},
    {"void: present as void", "a:V", "a:V", true},
    {"void: absent", "a:V", "b:S:1", false},
    {"void header vs string pattern", "a:S:x", "a:V", false},
    {"ints across types: I l", "a:I:5", "a:l:5", true},
    {"ints across types: I b", "a:I:5", "a:b:5", true},
    {"ints across types: I T", "a:I:5", "a:T:5", true},
    {"ints across types: I u", "a:I:5", "a:u:5", true},
    {"ints across types: B s", "a:B:200", "a:s:200", true},
    {"ints: -1 vs 4294967295", "a:I:-1", "a:i:4294967295", false},
    {"ints: -1 vs -1 long", "a:I:-1", "a:l:-1", true},
    {"int vs string", "a:I:5", "a:S:5", false},
    {"int vs float equal", "a:I:1", "a:d:1.0", true},
    {"int vs float not equal", "a:I:1", "a:d:1.5", false},
    {"float vs double", "a:f:0.5", "a:d:0.5", true},
    {"float vs double rounding", "a:f:0.1", "a:d:0.1", false},
    {"longstr vs byte array", "a:S:ab", "a:x:ab", true},
    {"bool", "a:t:1", "a:t:1", true},
    {"bool false vs true", "a:t:0", "a:t:1", false},
    {"bool vs int", "a:t:1", "a:I:1", false},
    {"decimal", "a:D:2,150", "a:D:2,150", true},
    {"decimal other scale", "a:D:2,150", "a:D:1,15", false},
    {"decimal vs int", "a:D:0,150", "a:I:150", false},
    {"table", "a:F(b:I:1;c:S:x)", "a:F(b:I:1;c:S:x)", true},
    {"table: nested types count", "a:F(b:I:1)", "a:F(b:l:1)", false},
    {"table: other key", "a:F(b:I:1)", "a:F(c:I:1)", false},
    {"table: longer", "a:F(b:I:1)", "a:F(b:I:1;c:I:2)", false},
    {"empty table vs empty array", "a:F()", "a:A()", true},
    {"array", "a:A(I:1;S:x)", "a:A(I:1;S:x)", true},
    {"array: shorter", "a:A(I:1;S:x)", "a:A(I:1)", false},
    {"table vs string", "a:F()", "a:S:", false},
    {"duplicate header: first counts", "a:S:1", "a:S:2;a:S:1", false},
    {"duplicate pattern keys meet duplicates", "a:S:1;a:S:2", "a:S:1;a:S:2", true},
    {"duplicate pattern key without its pair", "a:S:1;a:S:2", "a:S:1", false},
    {"duplicate pattern key, any", "x-match:S:any;a:S:1;a:S:2", "a:S:1", true},
    {"duplicates: k-th meets k-th, not in value order", "a:S:2;a:S:1", "a:S:1;a:S:2", false},
    {"duplicates among other keys", "a:S:1;b:S:x;a:S:2", "b:S:x;a:S:1;c:I:0;a:S:2", true},
    {"duplicate header: only the first meets a single entry, any", "x-match:S:any;a:S:2",
     "a:S:1;a:S:2", false},
    {"duplicate headers beyond the pattern's are fine", "a:S:1;a:S:2", "a:S:1;a:S:2;a:S:3", true},
    {"duplicate void entries need as many headers", "a:V;a:V", "a:S:1", false},
    {"duplicate void entries met", "a:V;a:V", "a:I:2;a:S:1", true},
    {"any: a key missing, a duplicate key met once", "x-match:S:any;b:S:1;a:S:2;a:S:3", "a:S:2",
     true},
    {"duplicate x- keys, all-with-x", "x-match:S:all-with-x;x-a:S:1;x-a:S:2", "x-a:S:1;x-a:S:2",
     true},
    {"duplicate x- keys left out, all", "x-a:S:1;x-a:S:2;a:S:1", "a:S:1", true},
    {"two x-match entries: the first counts, neither matches", "x-match:S:any;x-match:S:all;a:S:1",
     "b:S:1", false},
    {"a key that prefixes another", "ab:S:1;a:S:1", "a:S:1;ab:S:1", true},
    {"a key that prefixes another, other order", "a:S:1", "ab:S:1", false},
    {"empty key", ":S:1", ":S:1", true},
    {"keys above 0x7f", "\xc3\xa9:S:1;e:S:2", "e:S:2;\xc3\xa9:S:1", true},
    {"unvalidated x-match is all", "x-match:S:foo;a:S:1", "a:S:1", true},
    {"unvalidated x-match type is all", "x-match:I:1;a:S:1", "", false},
};

START_TEST(test_headers_match)
{
    struct exch *e = X("h", EXCH_HEADERS);
    struct queue *q = Q("q");

    ck_assert_int_eq(bind_q(e, q, "ignored-key", header_cases[_i].args), 0);
    ck_assert_msg(strcmp(route(e, "any-key", header_cases[_i].headers),
                         header_cases[_i].match ? "q" : "") == 0,
                  "%s: expected %s", header_cases[_i].what,
                  header_cases[_i].match ? "a match" : "none");
}
END_TEST

START_TEST(test_headers_several)
{
    struct exch *e = X("h", EXCH_HEADERS);
    struct queue *q1 = Q("q1"), *q2 = Q("q2"), *q3 = Q("q3");

    ck_assert_int_eq(bind_q(e, q1, "", "x-match:S:all;format:S:pdf;type:S:report"), 0);
    ck_assert_int_eq(bind_q(e, q2, "", "x-match:S:any;format:S:pdf;type:S:log"), 0);
    ck_assert_int_eq(bind_q(e, q3, "", "x-match:S:all;format:S:zip;type:S:log"), 0);
    ck_assert_str_eq(route(e, "", "format:S:pdf;type:S:report"), "q1,q2");
    ck_assert_str_eq(route(e, "", "format:S:pdf;type:S:log"), "q2");
    ck_assert_str_eq(route(e, "", "format:S:zip;type:S:log"), "q2,q3");
    ck_assert_str_eq(route(e, "", "format:S:zip;type:S:report"), "");
    ck_assert_str_eq(route(e, "", ""), "");
}
END_TEST

/* Large headers bindings: a pattern of BIG_N entries against BIG_N headers in another order.
 * Entry i of either table is named "k<i / dup>" (each key comes dup times) and has the value
 * i. The headers list the keys in reverse, each key's duplicates in the pattern's order (the
 * k-th entry of a key meets the k-th header of that key). wrong: the header that has another
 * value, or ALL: every header but `right`; drop: a header left out. */
#define BIG_N 8000
#define NONE (-1)
#define ALL (-2)
static const struct {
    const char *what;
    bool any;
    int dup, wrong, right, drop;
    bool match;
} big_cases[] = {
    {"all, distinct keys", false, 1, NONE, NONE, NONE, true},
    {"all, the last entry's value differs", false, 1, BIG_N - 1, NONE, NONE, false},
    {"all, the first entry's value differs", false, 1, 0, NONE, NONE, false},
    {"all, one header missing", false, 1, NONE, NONE, 4321, false},
    {"any, one value equal", true, 1, ALL, 4321, NONE, true},
    {"any, no value equal", true, 1, ALL, NONE, NONE, false},
    {"any, the one equal header missing", true, 1, ALL, 4321, 4321, false},
    {"all, 1000 keys 8 times each", false, 8, NONE, NONE, NONE, true},
    {"all, 8 times each, one duplicate's value differs", false, 8, 4323, NONE, NONE, false},
    {"all, 8 times each, one duplicate missing", false, 8, NONE, NONE, 4323, false},
    {"any, 8 times each, one duplicate's value equal", true, 8, ALL, 4323, NONE, true},
    {"all, one key 8000 times", false, BIG_N, NONE, NONE, NONE, true},
    {"all, one key 8000 times, the last differs", false, BIG_N, BIG_N - 1, NONE, NONE, false},
    {"any, one key 8000 times, only the last equal", true, BIG_N, ALL, BIG_N - 1, NONE, true},
};

/* Appends entry i of a big table (key "k<i / dup>") with value v. */
static void
big_put(struct wire_writer *w, int i, int dup, int64_t v)
{
    char key[16];

    snprintf(key, sizeof key, "k%d", i / dup);
    wire_table_put_i64(w, key, v);
}

/* The pattern of n entries for big_cases[c] (x-match any first if c.any), into buf. */
static struct wire_table
big_pattern(uint8_t *buf, size_t cap, int c, int n)
{
    struct wire_writer w;

    wire_writer_init(&w, buf, cap);
    if (big_cases[c].any)
        wire_table_put_longstr(&w, "x-match", str_of("any"));
    for (int i = 0; i < n; i++)
        big_put(&w, i, big_cases[c].dup, i);
    ck_assert(!w.overflow);
    return (struct wire_table){buf, (uint32_t)wire_writer_len(&w)};
}

/* The headers of n entries for big_cases[c], into buf. */
static struct wire_table
big_headers(uint8_t *buf, size_t cap, int c, int n)
{
    int dup = big_cases[c].dup, wrong = big_cases[c].wrong, right = big_cases[c].right;
    struct wire_writer w;

    wire_writer_init(&w, buf, cap);
    for (int g = n / dup - 1; g >= 0; g--) {
        for (int i = g * dup; i < (g + 1) * dup; i++) {
            if (i == big_cases[c].drop)
                continue;
            big_put(&w, i, dup, i == wrong || (wrong == ALL && i != right) ? -1 : i);
        }
    }
    ck_assert(!w.overflow);
    return (struct wire_table){buf, (uint32_t)wire_writer_len(&w)};
}

static uint8_t big_pattern_buf[BIG_N * 16 + 64], big_headers_buf[BIG_N * 16];

START_TEST(test_headers_big)
{
    struct exch *e = X("h", EXCH_HEADERS);
    struct queue *q = Q("q");
    struct wire_table pattern, headers;

    pattern = big_pattern(big_pattern_buf, sizeof big_pattern_buf, _i, BIG_N);
    headers = big_headers(big_headers_buf, sizeof big_headers_buf, _i, BIG_N);
    ck_assert_int_eq(exch_bind(e, bind_dest_queue(q), str_of(""), pattern), 0);
    ck_assert_int_eq(exch_route(e, str_of(""), headers, &result), 0);
    ck_assert_msg(result.n == (big_cases[_i].match ? 1u : 0u), "%s: expected %s",
                  big_cases[_i].what, big_cases[_i].match ? "a match" : "none");
}
END_TEST

static double
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Prints the time one publish takes to match a binding of n keys against n headers (a
 * figure for the record, not an assertion) and checks that it matched. */
START_TEST(test_headers_big_timing)
{
    static const int sizes[] = {1000, 4000, BIG_N};
    struct queue *q = Q("q");

    for (size_t s = 0; s < N_ELEMS(sizes); s++) {
        char name[16];
        struct exch *e;
        struct wire_table pattern, headers;
        double t0;
        const int rounds = 3;

        snprintf(name, sizeof name, "h%d", sizes[s]);
        e = X(name, EXCH_HEADERS);
        pattern = big_pattern(big_pattern_buf, sizeof big_pattern_buf, 0, sizes[s]);
        headers = big_headers(big_headers_buf, sizeof big_headers_buf, 0, sizes[s]);
        ck_assert_int_eq(exch_bind(e, bind_dest_queue(q), str_of(""), pattern), 0);
        t0 = now_ms();
        for (int r = 0; r < rounds; r++) {
            ck_assert_int_eq(exch_route(e, str_of(""), headers, &result), 0);
            ck_assert_uint_eq(result.n, 1);
        }
        printf("headers match, %d keys against %d headers: %.3f ms per publish\n", sizes[s],
               sizes[s], (now_ms() - t0) / rounds);
    }
}
END_TEST

/* Many small bindings against many headers: 2,000 bindings of one key each (every fourth
 * header's), those to q1 with the header's value, those to q2 with another. Prints the time
 * a publish takes. */
START_TEST(test_headers_many_bindings)
{
    struct exch *e = X("h", EXCH_HEADERS);
    struct queue *q1 = Q("q1"), *q2 = Q("q2");
    struct wire_table headers = big_headers(big_headers_buf, sizeof big_headers_buf, 0, BIG_N);
    const int n = 2000, rounds = 3;
    double t0;

    for (int i = 0; i < n; i++) {
        uint8_t buf[32];
        struct wire_writer w;

        wire_writer_init(&w, buf, sizeof buf);
        big_put(&w, i * 4, 1, i % 2 == 0 ? i * 4 : -1);
        ck_assert(!w.overflow);
        ck_assert_int_eq(exch_bind(e, bind_dest_queue(i % 2 == 0 ? q1 : q2), str_of(""),
                                   (struct wire_table){buf, (uint32_t)wire_writer_len(&w)}),
                         0);
    }
    t0 = now_ms();
    for (int r = 0; r < rounds; r++) {
        ck_assert_int_eq(exch_route(e, str_of(""), headers, &result), 0);
        ck_assert_uint_eq(result.n, 1);
        ck_assert_ptr_eq(result.queues[0], q1);
    }
    printf("headers match, %d bindings of 1 key against %d headers: %.3f ms per publish\n", n,
           BIG_N, (now_ms() - t0) / rounds);
}
END_TEST

static const struct {
    enum exch_type type;
    const char *args;
    int rc;
    const char *why;
} bind_arg_cases[] = {
    {EXCH_HEADERS, "", 0, ""},
    {EXCH_HEADERS, "x-match:S:all", 0, ""},
    {EXCH_HEADERS, "x-match:S:any", 0, ""},
    {EXCH_HEADERS, "x-match:S:all-with-x", 0, ""},
    {EXCH_HEADERS, "x-match:S:any-with-x", 0, ""},
    {EXCH_HEADERS, "a:S:1;x-foo:I:2", 0, ""},
    {EXCH_HEADERS, "x-match:S:foo", -1,
     "Invalid x-match field value <<\"foo\">>; expected all, any, all-with-x, or any-with-x"},
    {EXCH_HEADERS, "x-match:S:ALL", -1,
     "Invalid x-match field value <<\"ALL\">>; expected all, any, all-with-x, or any-with-x"},
    {EXCH_HEADERS, "x-match:S:", -1,
     "Invalid x-match field value <<>>; expected all, any, all-with-x, or any-with-x"},
    {EXCH_HEADERS, "x-match:S:a\"b", -1,
     "Invalid x-match field value <<\"a\\\"b\">>; expected all, any, all-with-x, or any-with-x"},
    {EXCH_HEADERS, "x-match:I:1", -1,
     "Invalid x-match field type signedint (value 1); expected longstr"},
    {EXCH_HEADERS, "x-match:t:1", -1,
     "Invalid x-match field type bool (value true); expected longstr"},
    {EXCH_HEADERS, "x-match:d:1.5", -1,
     "Invalid x-match field type double (value 1.5); expected longstr"},
    {EXCH_HEADERS, "x-match:x:any", -1,
     "Invalid x-match field type binary (value <<\"any\">>); expected longstr"},
    {EXCH_HEADERS, "x-match:V", -1,
     "Invalid x-match field type void (value undefined); expected longstr"},
    {EXCH_HEADERS, "x-match:F(a:l:1)", -1,
     "Invalid x-match field type table (value [{<<\"a\">>,long,1}]); expected longstr"},
    {EXCH_DIRECT, "x-match:S:foo", 0, ""},
    {EXCH_TOPIC, "x-match:I:1", 0, ""},
    {EXCH_FANOUT, "x-match:S:foo", 0, ""},
};

START_TEST(test_check_bind_args)
{
    struct exch *e = X("e", bind_arg_cases[_i].type);
    char why[256] = "";

    ck_assert_int_eq(exch_check_bind_args(e, T(bind_arg_cases[_i].args), why, sizeof why),
                     bind_arg_cases[_i].rc);
    ck_assert_str_eq(why, bind_arg_cases[_i].why);
    /* A short buffer truncates, NUL-terminated. */
    char tiny[8];
    if (bind_arg_cases[_i].rc < 0) {
        ck_assert_int_eq(exch_check_bind_args(e, T(bind_arg_cases[_i].args), tiny, sizeof tiny),
                         -1);
        ck_assert_uint_lt(strlen(tiny), sizeof tiny);
    }
}
END_TEST

/* ---- bindings ---- */

START_TEST(test_bind_idempotent)
{
    static const enum exch_type types[] = {EXCH_DIRECT, EXCH_FANOUT, EXCH_TOPIC, EXCH_HEADERS};
    struct exch *e = X("e", types[_i]), *e2 = X("e2", EXCH_FANOUT);
    struct queue *q = Q("q"), *q2 = Q("q2");
    char big[3000];

    ck_assert_int_eq(bind_q(e, q, "k", ""), 0);
    ck_assert_int_eq(bind_q(e, q, "k", ""), 1);
    ck_assert_uint_eq(e->n_bindings_out, 1);
    ck_assert_int_eq(bind_q(e, q, "k2", ""), 0);
    ck_assert_int_eq(bind_q(e, q, "k", "a:S:1"), 0);
    ck_assert_int_eq(bind_q(e, q, "k", "a:S:1"), 1);
    ck_assert_int_eq(bind_q(e, q, "k", "a:I:1"), 0); /* args compared as bytes */
    ck_assert_int_eq(bind_q(e, q2, "k", ""), 0);
    ck_assert_int_eq(bind_x(e, e2, "k"), 0);
    ck_assert_int_eq(bind_x(e, e2, "k"), 1);
    ck_assert_uint_eq(e->n_bindings_out, 6);
    ck_assert_ptr_nonnull(q->bindings_in.head);
    ck_assert_ptr_nonnull(e2->bindings_in.head);

    /* Arguments too large for the lookup buffer take the other path. */
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char spec[3100];
    snprintf(spec, sizeof spec, "a:S:%s", big);
    ck_assert_int_eq(bind_q(e, q, "k", spec), 0);
    ck_assert_int_eq(bind_q(e, q, "k", spec), 1);
    ck_assert_int_eq(exch_unbind(e, bind_dest_queue(q), str_of("k"), T(spec)), 0);
    ck_assert_int_eq(exch_unbind(e, bind_dest_queue(q), str_of("k"), T(spec)), 1);

    ck_assert_int_eq(exch_unbind(e, bind_dest_queue(q), str_of("k"), T("")), 0);
    ck_assert_int_eq(exch_unbind(e, bind_dest_queue(q), str_of("k"), T("")), 1);
    ck_assert_int_eq(exch_unbind(e, bind_dest_queue(q), str_of("nope"), T("")), 1);
    ck_assert_int_eq(exch_unbind(e, bind_dest_exch(e2), str_of("k"), T("")), 0);
    ck_assert_ptr_null(e2->bindings_in.head);
    ck_assert_uint_eq(e->n_bindings_out, 4);
    ck_assert_int_eq(exch_unbind(e, bind_dest_queue(q), str_of("k2"), T("")), 0);
    ck_assert_int_eq(exch_unbind(e, bind_dest_queue(q), str_of("k"), T("a:S:1")), 0);
    ck_assert_int_eq(exch_unbind(e, bind_dest_queue(q), str_of("k"), T("a:I:1")), 0);
    ck_assert_ptr_null(q->bindings_in.head);
    ck_assert_int_eq(exch_unbind(e, bind_dest_queue(q2), str_of("k"), T("")), 0);
    ck_assert_uint_eq(e->n_bindings_out, 0);
    ck_assert_str_eq(route(e, "k", "a:S:1"), "");
    /* And binding again after all that. */
    ck_assert_int_eq(bind_q(e, q, "k", ""), 0);
    ck_assert_str_eq(route(e, "k", ""), "q");
}
END_TEST

/* ---- exchange to exchange ---- */

START_TEST(test_e2e)
{
    struct exch *d = X("d", EXCH_DIRECT), *f = X("f", EXCH_FANOUT), *t = X("t", EXCH_TOPIC);
    struct exch *h = X("h", EXCH_HEADERS),
                *i = exch_new(&vh, str_of("i"), EXCH_FANOUT, false, false, true, T(""));
    struct queue *q1 = Q("q1"), *q2 = Q("q2"), *q3 = Q("q3"), *q4 = Q("q4");

    ck_assert_int_eq(hmap_insert(&vh.exchanges, &i->by_name, i->name, i->name_len), 0);
    /* d --k--> f --> q1;  d --k--> t --a.*--> q2;  f --> h (a=1) --> q3;  d --j--> i --> q4 */
    ck_assert_int_eq(bind_x(d, f, "k"), 0);
    ck_assert_int_eq(bind_q(f, q1, "", ""), 0);
    ck_assert_int_eq(bind_x(d, t, "k"), 0);
    ck_assert_int_eq(bind_x(d, t, "a.b"), 0);
    ck_assert_int_eq(bind_q(t, q2, "a.*", ""), 0);
    ck_assert_int_eq(bind_x(f, h, ""), 0);
    ck_assert_int_eq(bind_q(h, q3, "", "a:I:1"), 0);
    ck_assert_int_eq(bind_x(d, i, "j"), 0);
    ck_assert_int_eq(bind_q(i, q4, "", ""), 0);

    ck_assert_str_eq(route(d, "k", ""), "q1");         /* t sees "k": no match */
    ck_assert_str_eq(route(d, "k", "a:I:1"), "q1,q3"); /* headers go along */
    ck_assert_str_eq(route(d, "a.b", ""), "q2");       /* the same key reaches t */
    ck_assert_str_eq(route(d, "j", ""), "q4");         /* internal exchanges are destinations */
    ck_assert_str_eq(route(d, "x", ""), "");
    ck_assert_str_eq(route(f, "", "a:I:1"), "q1,q3");
}
END_TEST

START_TEST(test_e2e_cycles)
{
    struct exch *a = X("a", EXCH_FANOUT), *b = X("b", EXCH_FANOUT), *c = X("c", EXCH_TOPIC);
    struct queue *q = Q("q"), *q2 = Q("q2");

    /* a -> b -> c -> a, each with q; a -> a. */
    ck_assert_int_eq(bind_x(a, b, ""), 0);
    ck_assert_int_eq(bind_x(b, c, ""), 0);
    ck_assert_int_eq(bind_x(c, a, "#"), 0);
    ck_assert_int_eq(bind_x(a, a, ""), 0);
    ck_assert_int_eq(bind_q(a, q, "", ""), 0);
    ck_assert_int_eq(bind_q(b, q, "", ""), 0);
    ck_assert_int_eq(bind_q(c, q, "x", ""), 0);
    ck_assert_int_eq(bind_q(c, q2, "#", ""), 0);
    ck_assert_str_eq(route(a, "x", ""), "q,q2");
    ck_assert_str_eq(route(b, "y", ""), "q,q2");
    ck_assert_str_eq(route(c, "x", ""), "q,q2");
    ck_assert_str_eq(route(c, "y", ""), "q,q2");
}
END_TEST

/* One queue reached by many paths is in the result once; large results too. */
START_TEST(test_dedup)
{
    struct exch *a = X("a", EXCH_FANOUT), *b = X("b", EXCH_FANOUT), *c = X("c", EXCH_FANOUT);
    struct exch *t = X("t", EXCH_TOPIC);
    struct queue *q = Q("q");
    char name[16];

    ck_assert_int_eq(bind_x(a, b, ""), 0);
    ck_assert_int_eq(bind_x(a, c, ""), 0);
    ck_assert_int_eq(bind_q(a, q, "", ""), 0);
    ck_assert_int_eq(bind_q(b, q, "", ""), 0);
    ck_assert_int_eq(bind_q(c, q, "", ""), 0);
    ck_assert_str_eq(route(a, "", ""), "q");

    /* A topic binding set where one queue matches through several patterns. */
    ck_assert_int_eq(bind_q(t, q, "#", ""), 0);
    ck_assert_int_eq(bind_q(t, q, "a.#", ""), 0);
    ck_assert_int_eq(bind_q(t, q, "*.b", ""), 0);
    ck_assert_int_eq(bind_q(t, q, "a.b", ""), 0);
    ck_assert_str_eq(route(t, "a.b", ""), "q");

    /* 100 queues, each bound from b and c: the long-result path. */
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "m%03d", i);
        struct queue *m = Q(name);
        ck_assert_int_eq(bind_q(b, m, "", ""), 0);
        ck_assert_int_eq(bind_q(c, m, "", ""), 0);
    }
    ck_assert_int_eq(exch_route(a, str_of(""), T(""), &result), 0);
    ck_assert_uint_eq(result.n, 101);
    route(a, "", ""); /* checks for duplicates */

    /* route_result_add appends once. */
    struct route_result r = {0};
    ck_assert_int_eq(route_result_add(&r, q), 0);
    ck_assert_int_eq(route_result_add(&r, q), 0);
    ck_assert_uint_eq(r.n, 1);
    route_result_free(&r);
    ck_assert_ptr_null(r.queues);
}
END_TEST

/* ---- alternate exchanges ---- */

START_TEST(test_alternate)
{
    struct exch *e = X_args("e", EXCH_DIRECT, "alternate-exchange:S:ae");
    struct exch *ae = X("ae", EXCH_FANOUT);
    struct queue *q = Q("q"), *qa = Q("qa");

    ck_assert_int_eq(bind_q(e, q, "k", ""), 0);
    ck_assert_int_eq(bind_q(ae, qa, "", ""), 0);
    ck_assert_str_eq(route(e, "k", ""), "q");  /* routed: no AE */
    ck_assert_str_eq(route(e, "x", ""), "qa"); /* unroutable: the AE */
    /* Looked up at route time: deleting the AE leaves nothing; a new one is found. */
    X_delete(ae);
    ck_assert_str_eq(route(e, "x", ""), "");
    ae = X("ae", EXCH_TOPIC);
    ck_assert_int_eq(bind_q(ae, qa, "#", ""), 0);
    ck_assert_str_eq(route(e, "x", ""), "qa");
}
END_TEST

START_TEST(test_alternate_missing_or_empty)
{
    struct exch *e = X_args("e", EXCH_FANOUT, "alternate-exchange:S:nowhere");
    struct exch *e2 = X_args("e2", EXCH_FANOUT, "alternate-exchange:S:empty");
    struct exch *e3 = X_args("e3", EXCH_FANOUT, "alternate-exchange:I:1");

    X("empty", EXCH_DIRECT);
    ck_assert_str_eq(route(e, "x", ""), "");
    ck_assert_str_eq(route(e2, "x", ""), "");
    ck_assert_str_eq(route(e3, "x", ""), "");
}
END_TEST

/* Several routing keys (a dead-lettered message's, CC keys): each exchange matches every key,
 * and the AE only when none matched; a topic "#" is tried afresh for each key. */
START_TEST(test_route_keys)
{
    struct exch *e = X_args("e", EXCH_DIRECT, "alternate-exchange:S:ae");
    struct exch *ae = X("ae", EXCH_FANOUT);
    struct exch *t = X("t", EXCH_TOPIC);
    struct exch *f = X("f", EXCH_FANOUT);
    struct queue *q1 = Q("q1"), *q2 = Q("q2"), *qa = Q("qa");

    ck_assert_int_eq(bind_q(e, q1, "a", ""), 0);
    ck_assert_int_eq(bind_q(e, q2, "b", ""), 0);
    ck_assert_int_eq(bind_q(ae, qa, "", ""), 0);
    ck_assert_str_eq(route_keys(e, "a b a"), "q1,q2");
    ck_assert_str_eq(route_keys(e, "x a"), "q1"); /* one key matched: no AE */
    ck_assert_str_eq(route_keys(e, "x y"), "qa");
    ck_assert_int_eq(bind_q(t, q1, "#.z", ""), 0);
    ck_assert_int_eq(bind_q(t, q2, "a.#", ""), 0);
    ck_assert_str_eq(route_keys(t, "a.b b.z"), "q1,q2");
    ck_assert_str_eq(route_keys(t, "b.z"), "q1");
    ck_assert_int_eq(bind_q(f, q1, "", ""), 0);
    ck_assert_str_eq(route_keys(f, "a b"), "q1");
}
END_TEST

/* AE chains: e -> a1 (nothing) -> a2 -> q. Cycles: c1 <-> c2, c3 -> c3. */
START_TEST(test_alternate_chains_cycles)
{
    struct exch *e = X_args("e", EXCH_DIRECT, "alternate-exchange:S:a1");
    struct exch *a2 = X("a2", EXCH_FANOUT);
    struct exch *c1 = X_args("c1", EXCH_DIRECT, "alternate-exchange:S:c2");
    struct exch *c3 = X_args("c3", EXCH_DIRECT, "alternate-exchange:S:c3");
    struct queue *q = Q("q"), *qc = Q("qc");

    X_args("a1", EXCH_TOPIC, "alternate-exchange:S:a2");
    X_args("c2", EXCH_DIRECT, "alternate-exchange:S:c1");
    ck_assert_int_eq(bind_q(a2, q, "", ""), 0);
    ck_assert_str_eq(route(e, "x", ""), "q");
    ck_assert_str_eq(route(c1, "x", ""), "");
    ck_assert_str_eq(route(c3, "x", ""), "");
    ck_assert_int_eq(bind_q(c1, qc, "k", ""), 0);
    ck_assert_str_eq(route(c1, "k", ""), "qc");
    ck_assert_str_eq(route(c1, "x", ""), "");
    struct exch *c2 = vhost_exch_find(&vh, str_of("c2"));
    ck_assert_ptr_nonnull(c2);
    ck_assert_str_eq(route(c2, "k", ""), "qc"); /* c2 -> AE c1 -> qc */
}
END_TEST

/* The AE is for an exchange whose own bindings matched nothing: a match on an exchange
 * binding counts even if that exchange routes nowhere (RabbitMQ's process_alternate looks at
 * the exchange's own destinations). That exchange's own AE still applies. */
START_TEST(test_alternate_e2e)
{
    struct exch *e = X_args("e", EXCH_FANOUT, "alternate-exchange:S:ae");
    struct exch *ae = X("ae", EXCH_FANOUT), *mid = X("mid", EXCH_DIRECT);
    struct exch *h = X_args("h", EXCH_HEADERS, "alternate-exchange:S:ae");
    struct queue *qa = Q("qa"), *q2 = Q("q2"), *qh = Q("qh");

    ck_assert_int_eq(bind_q(ae, qa, "", ""), 0);
    ck_assert_str_eq(route(e, "k", ""), "qa"); /* no bindings at all */
    ck_assert_int_eq(bind_x(e, mid, ""), 0);
    ck_assert_str_eq(route(e, "k", ""), ""); /* matched mid, which routes nowhere */
    X_delete(mid);
    mid = X_args("mid", EXCH_DIRECT, "alternate-exchange:S:ae2");
    struct exch *ae2 = X("ae2", EXCH_FANOUT);
    ck_assert_int_eq(bind_x(e, mid, ""), 0);
    ck_assert_int_eq(bind_q(ae2, q2, "", ""), 0);
    ck_assert_str_eq(route(e, "k", ""), "q2"); /* mid's AE */
    /* An AE already visited in this pass is not routed again. */
    ck_assert_int_eq(bind_x(ae, e, ""), 0);
    ck_assert_str_eq(route(ae, "k", ""), "q2,qa");

    /* Headers exchanges: no matching binding means the AE. */
    ck_assert_int_eq(bind_q(h, qh, "", "a:I:1"), 0);
    ck_assert_str_eq(route(h, "", "a:I:1"), "qh");
    ck_assert_str_eq(route(h, "", "a:I:2"), "q2,qa"); /* ae -> e -> mid -> ae2 */
}
END_TEST

/* ---- deleting queues and exchanges ---- */

START_TEST(test_unbind_all_auto_delete)
{
    struct exch *ad = exch_new(&vh, str_of("ad"), EXCH_DIRECT, false, true, false, T(""));
    struct exch *keep = X("keep", EXCH_FANOUT);
    struct exch *ad2 = exch_new(&vh, str_of("ad2"), EXCH_FANOUT, false, true, false, T(""));
    struct exch *self = exch_new(&vh, str_of("self"), EXCH_FANOUT, false, true, false, T(""));
    struct queue *q1 = Q("q1"), *q2 = Q("q2");
    struct exch **emptied = NULL;
    uint32_t n = 0;

    ck_assert_int_eq(hmap_insert(&vh.exchanges, &ad->by_name, ad->name, ad->name_len), 0);
    ck_assert_int_eq(hmap_insert(&vh.exchanges, &ad2->by_name, ad2->name, ad2->name_len), 0);
    ck_assert_int_eq(hmap_insert(&vh.exchanges, &self->by_name, self->name, self->name_len), 0);
    ck_assert_int_eq(bind_q(ad, q1, "a", ""), 0);
    ck_assert_int_eq(bind_q(ad, q1, "b", ""), 0);
    ck_assert_int_eq(bind_q(ad, q2, "a", ""), 0);
    ck_assert_int_eq(bind_q(keep, q1, "", ""), 0);

    Q_delete(q1, &emptied, &n); /* ad keeps its binding to q2; keep is not auto-delete */
    ck_assert_uint_eq(n, 0);
    ck_assert_uint_eq(ad->n_bindings_out, 1);
    ck_assert_uint_eq(keep->n_bindings_out, 0);
    ck_assert_str_eq(route(ad, "a", ""), "q2");
    Q_delete(q2, &emptied, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_ptr_eq(emptied[0], ad);

    /* An exchange destination: ad2 -> keep. */
    ck_assert_int_eq(bind_x(ad2, keep, ""), 0);
    ck_assert_int_eq(exch_unbind_all(&keep->bindings_in, &emptied, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_ptr_eq(emptied[1], ad2);
    ck_assert_ptr_null(keep->bindings_in.head);

    /* A binding to itself: the exchange being deleted is not reported. */
    ck_assert_int_eq(bind_x(self, self, ""), 0);
    ck_assert_int_eq(exch_unbind_all(&self->bindings_in, &emptied, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(self->n_bindings_out, 0);
    free(emptied);
}
END_TEST

START_TEST(test_free_cleans_both_ways)
{
    struct exch *e = X("e", _i == 0 ? EXCH_TOPIC : EXCH_DIRECT);
    struct exch *up = X("up", EXCH_FANOUT), *down = X("down", EXCH_HEADERS);
    struct queue *q = Q("q"), *q2 = Q("q2");

    ck_assert_int_eq(bind_q(e, q, "a.b", ""), 0);
    ck_assert_int_eq(bind_q(e, q, "a.#", ""), 0);
    ck_assert_int_eq(bind_x(e, down, "x"), 0);
    ck_assert_int_eq(bind_x(e, e, "self"), 0);
    ck_assert_int_eq(bind_x(up, e, ""), 0);
    ck_assert_int_eq(bind_q(up, q2, "", ""), 0);
    ck_assert_int_eq(bind_q(down, q2, "", ""), 0);

    X_delete(e);
    ck_assert_ptr_null(q->bindings_in.head);
    ck_assert_ptr_null(down->bindings_in.head);
    ck_assert_uint_eq(up->n_bindings_out, 1);
    ck_assert_ptr_nonnull(q2->bindings_in.head);
    ck_assert_str_eq(route(up, "a.b", ""), "q2");
}
END_TEST

static Suite *
exchange_suite(void)
{
    Suite *s = suite_create("exchange");
    TCase *tc = tcase_create("types");

    tcase_add_checked_fixture(tc, world_setup, world_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_type_names);
    tcase_add_test(tc, test_new_args);
    tcase_add_loop_test(tc, test_topic_match, 0, N_ELEMS(topic_cases));
    tcase_add_test(tc, test_topic_tutorial);
    tcase_add_loop_test(tc, test_topic_random, 0, 3);
    tcase_add_test(tc, test_topic_hostile);
    tcase_add_test(tc, test_direct_fanout);
    tcase_add_loop_test(tc, test_headers_match, 0, N_ELEMS(header_cases));
    tcase_add_test(tc, test_headers_several);
    tcase_add_loop_test(tc, test_headers_big, 0, N_ELEMS(big_cases));
    tcase_add_test(tc, test_headers_big_timing);
    tcase_add_test(tc, test_headers_many_bindings);
    tcase_add_loop_test(tc, test_check_bind_args, 0, N_ELEMS(bind_arg_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("bindings");
    tcase_add_checked_fixture(tc, world_setup, world_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_bind_idempotent, 0, 4);
    tcase_add_test(tc, test_e2e);
    tcase_add_test(tc, test_e2e_cycles);
    tcase_add_test(tc, test_dedup);
    tcase_add_test(tc, test_alternate);
    tcase_add_test(tc, test_route_keys);
    tcase_add_test(tc, test_alternate_missing_or_empty);
    tcase_add_test(tc, test_alternate_chains_cycles);
    tcase_add_test(tc, test_alternate_e2e);
    tcase_add_test(tc, test_unbind_all_auto_delete);
    tcase_add_loop_test(tc, test_free_cleans_both_ways, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(exchange_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
