/* Unit tests for the durable layer (src/durable/), driven the way the broker drives it: a
 * vhost registry changed through the vhost, exchange and queue calls with a real store in a
 * temporary directory, barriers waited for by running the event loop, then a restart
 * (everything freed, the store closed) into a new registry restored with durable_recover.
 * Covered: which exchanges, queues and bindings come back (durable ones, not transient or
 * exclusive ones, not the predeclared amq.* twice) with their flags and arguments; persistent
 * messages on stored queues come back in order, byte for byte, transient ones and those on
 * other queues do not; acks remove an entry for good, requeues keep it, delivered and
 * unsettled entries come back redelivered; a message routed to two queues is one shared
 * record, one msg again after a restart, deleted with its last entry; purge and queue.delete
 * remove the entries; lazy paging keeps a queue's memory bounded and hands every message out
 * once, in order, across a restart too; paged entries of a batch that fails (a full disk) are
 * not counted, and paged entries missing from the store are not looked for forever; purging or
 * deleting paged queues whose entries refer to shared records empties them at once and removes
 * the records in the background, a restart at any point leaving the store right; a priority
 * queue pages each priority, hands its backlog out by priority across restarts (one delivery
 * watermark per priority), and purging or deleting it leaves the store right; a corrupt
 * record stops recovery with a message.
 *
 * The full-disk case fills a 4 MiB tmpfs: it needs root (CAP_SYS_ADMIN), as check_store's. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <event2/event.h>

#include "durable_int.h" /* the queues' bookkeeping (struct durable_queue) */
#include "fullfs.h"
#include "image_value.h"
#include "warren/bytes.h"
#include "warren/durable.h"
#include "warren/exchange.h"
#include "warren/log.h"
#include "warren/msg.h"
#include "warren/queue.h"
#include "warren/store.h"
#include "warren/vhost.h"
#include "warren/wire.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static char data_dir[64];
static char store_dir[128]; /* the broker's data directory: data_dir, or one on mnt_dir */
static char mnt_dir[96];    /* a tmpfs mounted by the test, or "" */
static const struct store_options *store_opts; /* NULL: the defaults */
static struct event_base *base;
static struct store *st;
static struct durable *d;
static struct vhost_registry reg;
static struct vhost *vh; /* "/" */
static uint64_t win;     /* the window given to every durable layer; 0: the default */

/* The store id of q (0: not stored), as the durable layer keeps it. */
static uint64_t
qid(const struct queue *q)
{
    return q->durable_state != NULL ? q->durable_state->store_id : 0;
}

static struct wire_str
S(const char *s) {
    return (struct wire_str){(const uint8_t *)s, (uint32_t)strlen(s)};
}

static const struct wire_table no_args = {NULL, 0};

/* ---- the broker: open, close, restart, barriers ---- */

/* Opens the store and a durable layer, and restores into a new registry that has "/" (as
 * main.c does). */
/* broker_open: a cluster's node (durable_set_clustered) */
static bool clustered;

static void
broker_open(void)
{
    char err[512] = "";
    st = store_open(store_dir, store_opts, base, err, sizeof(err));
    ck_assert_msg(st != NULL, "store_open: %s", err);
    d = durable_new(st, base);
    ck_assert_ptr_nonnull(d);
    if (clustered)
        durable_set_clustered(d);
    if (win != 0)
        durable_set_window(d, win);
    vhost_registry_init(&reg);
    vh = vhost_add(&reg, "/");
    ck_assert_ptr_nonnull(vh);
    ck_assert_msg(durable_recover(d, &reg, err, sizeof(err)) == 0, "durable_recover: %s", err);
    ck_assert_ptr_eq(reg.durable, d);
    ck_assert_ptr_eq(vh->durable, d);
}

/* Shuts down as main.c does: detached from the registry, the last batch handed over, the store
 * closed (completing it), then the broker's state freed. Entries the test still holds are
 * detached (their queue is NULL): the test frees them with queue_cmd_settle. */
static void
broker_close(void)
{
    char err[512] = "";
    durable_detach(d, &reg);
    durable_submit_pending(d);
    ck_assert_msg(store_close(st, err, sizeof(err)) == 0, "store_close: %s", err);
    durable_free(d);
    vhost_registry_clear(&reg);
    st = NULL;
    d = NULL;
    vh = NULL;
}

static void
restart(void)
{
    broker_close();
    broker_open();
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
}

/* Runs the loop until *flag, for at most 10 s. */
static void
run_until(const bool *flag)
{
    struct timeval tenth = {0, 100000};
    struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    ck_assert_ptr_nonnull(tick);
    event_add(tick, &tenth);
    time_t start = time(NULL);
    while (!*flag) {
        ck_assert_int_ge(event_base_loop(base, EVLOOP_ONCE), 0);
        ck_assert_msg(time(NULL) - start < 10, "barrier not passed after 10 s");
    }
    event_free(tick);
}

struct barrier_wait {
    bool done;
    char err[256];
};

static void
on_barrier(void *arg, const char *err)
{
    struct barrier_wait *w = arg;
    w->done = true;
    if (err != NULL)
        snprintf(w->err, sizeof(w->err), "%s", err);
}

/* Waits for everything changed so far to be written and synced. Returns "" if it was, else
 * the store's error (valid until the next call). */
static const char *
barrier_result(void)
{
    static struct barrier_wait w;
    w = (struct barrier_wait){false, ""};
    ck_assert_int_eq(durable_barrier(d, true, on_barrier, &w), 0);
    run_until(&w.done);
    return w.err;
}

/* Everything changed so far is written and synced. */
static void
barrier(void)
{
    const char *err = barrier_result();
    ck_assert_msg(err[0] == '\0', "barrier failed: %s", err);
}

/* ---- the store's keys ---- */

static int
count_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    (*(int *)arg)++;
    return 0;
}

static int
count_keys(const void *prefix, size_t plen)
{
    char err[256] = "";
    int n = 0;
    ck_assert_msg(store_iter_prefix(st, prefix, plen, count_one, &n, err, sizeof(err)) == 0, "%s",
                  err);
    return n;
}

static int
count_tag(uint8_t tag)
{
    return count_keys(&tag, 1);
}

/* A queue's 'I' keys. */
static int
count_entries(uint64_t queue_id)
{
    uint8_t prefix[9];
    return count_keys(prefix, store_key_qentry_prefix(prefix, queue_id));
}

/* Writes one key as another program (or a bug) would have, and waits for it. */
static void
put_raw(const void *key, size_t klen, const void *val, size_t vlen)
{
    struct store_batch *b = store_batch_new();
    struct barrier_wait w = {false, ""};
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(store_batch_put(b, key, klen, val, vlen), 0);
    ck_assert_int_eq(store_submit(st, b, true, on_barrier, &w), 0);
    run_until(&w.done);
    ck_assert_msg(w.err[0] == '\0', "%s", w.err);
}

/* ---- messages ---- */

/* The raw properties of message i: content-type, headers {n: i, who: ...}, delivery-mode,
 * priority; and where the headers table lies in them. */
struct props {
    uint8_t buf[128];
    uint32_t len, hoff, hlen;
};

static void
props_of(struct props *p, int i, uint8_t mode)
{
    uint8_t tbuf[64];
    struct wire_writer tw, w;
    wire_writer_init(&tw, tbuf, sizeof(tbuf));
    wire_table_put_i64(&tw, "n", i);
    wire_table_put_longstr(&tw, "who", S("check_durable"));
    ck_assert(!tw.overflow);
    wire_writer_init(&w, p->buf, sizeof(p->buf));
    wire_put_u16(&w, 0x8000 | 0x2000 | 0x1000 | 0x0800);
    wire_put_shortstr(&w, S("application/octet-stream"));
    p->hoff = (uint32_t)wire_writer_len(&w) + 4;
    p->hlen = (uint32_t)wire_writer_len(&tw);
    wire_put_table(&w, (struct wire_table){tbuf, p->hlen});
    wire_put_u8(&w, mode);
    wire_put_u8(&w, (uint8_t)(i % 10));
    ck_assert(!w.overflow);
    p->len = (uint32_t)wire_writer_len(&w);
}

static uint8_t
body_byte(int i, uint64_t j)
{
    return (uint8_t)(i * 131 + j * 7 + (j >> 8));
}

/* Message i: its body starts with i (big-endian u32), so that a test tells them apart. */
static struct msg *
make_msg(int i, uint8_t mode, uint64_t body_len, const char *exchange, const char *rk)
{
    struct props p;
    props_of(&p, i, mode);
    ck_assert_uint_ge(body_len, 4);
    struct msg *m = msg_new(p.buf, p.len, mode, (uint8_t)(i % 10), S(exchange), S(rk), body_len);
    ck_assert_ptr_nonnull(m);
    msg_set_headers(m, p.buf, (struct wire_table){p.buf + p.hoff, p.hlen});
    bytes_put32(m->body, (uint32_t)i);
    for (uint64_t j = 4; j < body_len; j++)
        m->body[j] = body_byte(i, j);
    return m;
}

static int
msg_index(const struct msg *m)
{
    ck_assert_uint_ge(m->body_len, 4);
    return (int)bytes_get32(m->body);
}

/* Asserts m is exactly make_msg(i, mode, body_len, exchange, rk). */
static void
check_msg(const struct msg *m, int i, uint8_t mode, uint64_t body_len, const char *exchange,
          const char *rk)
{
    struct props p;
    props_of(&p, i, mode);
    ck_assert_int_eq(msg_index(m), i);
    ck_assert_uint_eq(m->props_len, p.len);
    ck_assert_mem_eq(m->props, p.buf, p.len);
    ck_assert_uint_eq(m->headers_off, p.hoff);
    ck_assert_uint_eq(m->headers_len, p.hlen);
    struct wire_value v;
    ck_assert(wire_table_get(msg_headers(m), "n", &v));
    ck_assert_uint_eq(m->delivery_mode, mode);
    ck_assert_uint_eq(m->priority, (unsigned)(i % 10));
    ck_assert_uint_eq(m->exchange_len, strlen(exchange));
    ck_assert_mem_eq(m->exchange, exchange, m->exchange_len);
    ck_assert_uint_eq(m->routing_key_len, strlen(rk));
    ck_assert_mem_eq(m->routing_key, rk, m->routing_key_len);
    ck_assert_uint_eq(m->body_len, body_len);
    uint64_t bad = 0;
    for (uint64_t j = 4; j < body_len && bad == 0; j++)
        if (m->body[j] != body_byte(i, j))
            bad = j;
    ck_assert_msg(bad == 0, "message %d: body differs at byte %llu", i, (unsigned long long)bad);
}

/* The standard message i: varied sizes (one of 100 kB), published to "ex.in" with "rk.<i>". */
static uint64_t
std_len(int i)
{
    return i == 7 ? 100000 : 4 + (uint64_t)(i * 37) % 300;
}

static struct msg *
std_msg(int i, uint8_t mode)
{
    char rk[16];
    snprintf(rk, sizeof(rk), "rk.%d", i);
    return make_msg(i, mode, std_len(i), "ex.in", rk);
}

static void
check_std(const struct msg *m, int i, uint8_t mode)
{
    char rk[16];
    snprintf(rk, sizeof(rk), "rk.%d", i);
    check_msg(m, i, mode, std_len(i), "ex.in", rk);
}

static void
enqueue(struct queue *q, struct msg *m)
{
    ck_assert_int_eq(queue_cmd_enqueue(q, m), 0);
}

static void
enqueue_std(struct queue *q, int i, uint8_t mode)
{
    struct msg *m = std_msg(i, mode);
    enqueue(q, m);
    msg_unref(&m);
}

/* Asserts q's in-memory ready entries are the persistent standard messages want[0..n), with
 * those redelivered flags (NULL: none redelivered), and nothing is paged. */
static void
check_ready(struct queue *q, const int *want, const bool *redelivered, int n)
{
    ck_assert_uint_eq(q->n_ready, (uint64_t)n);
    ck_assert_uint_eq(durable_queue_paged(q), 0);
    int k = 0;
    struct qentry *e;
    TAILQ_FOREACH(e, &q->lanes[0].ready, link) {
        ck_assert_int_lt(k, n);
        check_std(e->msg, want[k], 2);
        ck_assert_msg(e->redelivered == (redelivered != NULL && redelivered[k]),
                      "message %d: redelivered %d", want[k], e->redelivered);
        ck_assert(e->stored);
        ck_assert_ptr_eq(e->queue, q);
        k++;
    }
    ck_assert_int_eq(k, n);
}

/* Delivers q's next entry, waiting for the store when it is paged out and not readable yet.
 * NULL when q is empty. */
static struct qentry *
deliver(struct queue *q)
{
    for (int tries = 0; tries < 5; tries++) {
        struct qentry *e = queue_cmd_deliver(q);
        if (e != NULL || q->n_ready == 0)
            return e;
        barrier();
    }
    ck_abort_msg("queue '%s': %llu ready, none deliverable after 5 barriers", q->name,
                 (unsigned long long)q->n_ready);
    return NULL;
}

/* ---- entities ---- */

static struct exch *
add_exch(struct vhost *v, const char *name, enum exch_type type, bool durable, bool auto_delete,
         bool internal, struct wire_table args)
{
    struct exch *e = exch_new(v, S(name), type, durable, auto_delete, internal, args);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(vhost_exch_add(v, e), 0);
    return e;
}

static struct queue *
add_queue(struct vhost *v, const char *name, bool durable, bool auto_delete,
          struct queue_owner *owner, struct wire_table args)
{
    struct queue *q = queue_new(v, S(name), durable, auto_delete, owner, args);
    ck_assert_ptr_nonnull(q);
    ck_assert_int_eq(vhost_queue_add(v, q), 0);
    return q;
}

static struct exch *
exch(const char *name)
{
    return vhost_exch_find(vh, S(name));
}

static struct queue *
queue(const char *name)
{
    return vhost_queue_find(vh, S(name));
}

static void
add_bind(struct exch *src, struct bind_dest dst, const char *rk, struct wire_table args)
{
    ck_assert_int_eq(exch_bind(src, dst, S(rk), args), 0);
}

/* Argument tables, built once per test. */
static uint8_t args_buf[4][128];
static struct wire_table args_alt, args_x, args_q, args_hdr;

static void
build_args(void)
{
    struct wire_writer w;
    wire_writer_init(&w, args_buf[0], sizeof(args_buf[0]));
    wire_table_put_longstr(&w, "alternate-exchange", S("ae"));
    args_alt = (struct wire_table){args_buf[0], (uint32_t)wire_writer_len(&w)};
    wire_writer_init(&w, args_buf[1], sizeof(args_buf[1]));
    wire_table_put_i64(&w, "x-foo", 7);
    wire_table_put_bool(&w, "x-bar", true);
    args_x = (struct wire_table){args_buf[1], (uint32_t)wire_writer_len(&w)};
    wire_writer_init(&w, args_buf[2], sizeof(args_buf[2]));
    wire_table_put_i64(&w, "x-max-length", 10);
    wire_table_put_longstr(&w, "x-queue-mode", S("lazy"));
    args_q = (struct wire_table){args_buf[2], (uint32_t)wire_writer_len(&w)};
    wire_writer_init(&w, args_buf[3], sizeof(args_buf[3]));
    wire_table_put_longstr(&w, "x-match", S("any"));
    wire_table_put_longstr(&w, "h", S("v"));
    args_hdr = (struct wire_table){args_buf[3], (uint32_t)wire_writer_len(&w)};
}

static void
check_exch(const char *name, enum exch_type type, bool auto_delete, bool internal,
           struct wire_table args)
{
    struct exch *e = exch(name);
    ck_assert_msg(e != NULL, "exchange '%s' not restored", name);
    ck_assert_int_eq(e->type, type);
    ck_assert(e->durable);
    ck_assert_int_eq(e->auto_delete, auto_delete);
    ck_assert_int_eq(e->internal, internal);
    ck_assert_uint_eq(e->args_len, args.len);
    if (args.len > 0)
        ck_assert_mem_eq(e->args, args.ptr, args.len);
}

static void
check_queue(struct vhost *v, const char *name, bool auto_delete, struct wire_table args)
{
    struct queue *q = vhost_queue_find(v, S(name));
    ck_assert_msg(q != NULL, "queue '%s' not restored", name);
    ck_assert(q->durable_state);
    ck_assert_int_eq(q->auto_delete, auto_delete);
    ck_assert_ptr_null(q->owner);
    ck_assert_uint_ne(qid(q), 0);
    ck_assert_uint_eq(q->args_len, args.len);
    if (args.len > 0)
        ck_assert_mem_eq(q->args, args.ptr, args.len);
}

/* ---- fixture ---- */

static void
setup(void)
{
    strcpy(data_dir, "/tmp/check_durable.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(data_dir));
    snprintf(store_dir, sizeof(store_dir), "%s", data_dir);
    store_opts = NULL;
    log_set_level(LOG_NONE);
    base = event_base_new();
    ck_assert_ptr_nonnull(base);
    win = 0;
    clustered = false;
    build_args();
    broker_open();
}

static void
teardown(void)
{
    if (st != NULL)
        broker_close();
    if (mnt_dir[0] != '\0') {
        umount2(mnt_dir, MNT_DETACH);
        mnt_dir[0] = '\0';
    }
    event_base_free(base);
    base = NULL;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", data_dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* ---- 1. entities ---- */

/* The stored entities of test_entities, checked after each restart. */
static void
check_entities(void)
{
    check_exch("dx", EXCH_DIRECT, false, false, args_alt);
    ck_assert_ptr_nonnull(exch("dx")->alternate);
    ck_assert_str_eq(exch("dx")->alternate, "ae");
    check_exch("tx", EXCH_TOPIC, true, true, args_x);
    check_exch("hx", EXCH_HEADERS, false, false, no_args);
    check_exch("ae", EXCH_FANOUT, false, false, no_args);
    ck_assert_ptr_null(exch("tmpx"));
    /* The five predeclared ones, once each, and the four stored ones. */
    ck_assert_uint_eq(vh->exchanges.count, 9);
    ck_assert_ptr_nonnull(exch("amq.direct"));
    ck_assert_ptr_nonnull(exch("amq.match"));
    check_queue(vh, "dq", false, args_q);
    check_queue(vh, "adq", true, args_x);
    ck_assert_ptr_null(queue("tq"));
    ck_assert_ptr_null(queue("exq"));
    ck_assert_uint_eq(vh->queues.count, 2);

    struct queue *dq = queue("dq");
    ck_assert(exch_has_binding(exch("dx"), bind_dest_queue(dq), S("rk1"), no_args));
    ck_assert(exch_has_binding(exch("dx"), bind_dest_queue(dq), S("rk2"), args_x));
    ck_assert(exch_has_binding(exch("dx"), bind_dest_exch(exch("tx")), S("e2e"), no_args));
    ck_assert(exch_has_binding(exch("tx"), bind_dest_queue(dq), S("a.*"), no_args));
    ck_assert(exch_has_binding(exch("hx"), bind_dest_queue(dq), S(""), args_hdr));
    ck_assert(exch_has_binding(exch("amq.direct"), bind_dest_queue(dq), S("amqrk"), no_args));
    ck_assert(exch_has_binding(exch("amq.fanout"), bind_dest_exch(exch("dx")), S(""), no_args));
    ck_assert(exch_has_binding(exch("amq.topic"), bind_dest_queue(queue("adq")), S("#"), no_args));
    ck_assert_uint_eq(exch("dx")->n_bindings_out, 3);
    ck_assert_uint_eq(exch("tx")->n_bindings_out, 1);
    ck_assert_uint_eq(exch("hx")->n_bindings_out, 1);
    ck_assert_uint_eq(exch("ae")->n_bindings_out, 0);
    ck_assert_uint_eq(exch("amq.direct")->n_bindings_out, 1);
    ck_assert_uint_eq(exch("amq.fanout")->n_bindings_out, 1);
    ck_assert_uint_eq(exch("amq.topic")->n_bindings_out, 1);
    ck_assert_uint_eq(exch("amq.headers")->n_bindings_out, 0);

    /* Another vhost, with a queue of the same name: its own. */
    struct vhost *v2 = vhost_find(&reg, S("v2"));
    ck_assert_ptr_nonnull(v2);
    ck_assert_ptr_eq(v2->durable, d);
    check_queue(v2, "dq", false, no_args);
    ck_assert_uint_ne(qid(vhost_queue_find(v2, S("dq"))), qid(dq));
    ck_assert_uint_eq(v2->exchanges.count, 5);
    ck_assert(exch_has_binding(vhost_exch_find(v2, S("amq.direct")),
                               bind_dest_queue(vhost_queue_find(v2, S("dq"))), S("v2rk"), no_args));

    /* In the store: no amq.* exchange, only the bindings between stored ends. */
    ck_assert_int_eq(count_tag(STORE_TAG_EXCHANGE), 4);
    ck_assert_int_eq(count_tag(STORE_TAG_QUEUE), 3);
    ck_assert_int_eq(count_tag(STORE_TAG_BINDING), 9);
}

START_TEST(test_entities)
{
    struct queue_owner owner;
    TAILQ_INIT(&owner.queues);
    struct exch *dx = add_exch(vh, "dx", EXCH_DIRECT, true, false, false, args_alt);
    struct exch *tx = add_exch(vh, "tx", EXCH_TOPIC, true, true, true, args_x);
    struct exch *hx = add_exch(vh, "hx", EXCH_HEADERS, true, false, false, no_args);
    add_exch(vh, "ae", EXCH_FANOUT, true, false, false, no_args);
    struct exch *tmpx = add_exch(vh, "tmpx", EXCH_FANOUT, false, false, false, no_args);
    struct queue *dq = add_queue(vh, "dq", true, false, NULL, args_q);
    struct queue *adq = add_queue(vh, "adq", true, true, NULL, args_x);
    struct queue *tq = add_queue(vh, "tq", false, false, NULL, no_args);
    struct queue *exq = add_queue(vh, "exq", true, false, &owner, no_args);
    ck_assert_uint_eq(qid(exq), 0);
    ck_assert_uint_eq(qid(tq), 0);

    add_bind(dx, bind_dest_queue(dq), "rk1", no_args);
    add_bind(dx, bind_dest_queue(dq), "rk2", args_x);
    add_bind(dx, bind_dest_exch(tx), "e2e", no_args);
    add_bind(tx, bind_dest_queue(dq), "a.*", no_args);
    add_bind(hx, bind_dest_queue(dq), "", args_hdr);
    add_bind(exch("amq.direct"), bind_dest_queue(dq), "amqrk", no_args);
    add_bind(exch("amq.fanout"), bind_dest_exch(dx), "", no_args);
    add_bind(exch("amq.topic"), bind_dest_queue(adq), "#", no_args);
    /* Not stored: an end that is not. */
    add_bind(dx, bind_dest_queue(tq), "rk", no_args);
    add_bind(dx, bind_dest_queue(exq), "rk", no_args);
    add_bind(tmpx, bind_dest_queue(dq), "", no_args);
    add_bind(dx, bind_dest_exch(tmpx), "tmp", no_args);
    add_bind(exch("amq.direct"), bind_dest_queue(exq), "exrk", no_args);

    struct vhost *v2 = vhost_add(&reg, "v2");
    ck_assert_ptr_nonnull(v2);
    ck_assert_ptr_eq(v2->durable, d);
    struct queue *v2dq = add_queue(v2, "dq", true, false, NULL, no_args);
    add_bind(vhost_exch_find(v2, S("amq.direct")), bind_dest_queue(v2dq), "v2rk", no_args);

    barrier();
    restart();
    check_entities();
    /* Restoring writes nothing back: a second restart finds the same. */
    restart();
    check_entities();
}
END_TEST

/* Unbinding, deleting an exchange and a queue, and the auto-delete exchange that a queue's
 * deletion empties are written too. */
START_TEST(test_entity_removal)
{
    struct exch *dx = add_exch(vh, "dx", EXCH_DIRECT, true, false, false, no_args);
    struct exch *gone = add_exch(vh, "gone", EXCH_FANOUT, true, false, false, no_args);
    struct exch *adx = add_exch(vh, "adx", EXCH_DIRECT, true, true, false, no_args);
    struct queue *q1 = add_queue(vh, "q1", true, false, NULL, no_args);
    struct queue *q2 = add_queue(vh, "q2", true, false, NULL, no_args);
    add_bind(dx, bind_dest_queue(q1), "a", no_args);
    add_bind(dx, bind_dest_queue(q1), "b", no_args);
    add_bind(gone, bind_dest_queue(q1), "", no_args);
    add_bind(dx, bind_dest_exch(gone), "g", no_args);
    add_bind(adx, bind_dest_queue(q2), "x", no_args);
    barrier();
    ck_assert_int_eq(count_tag(STORE_TAG_BINDING), 5);

    ck_assert_int_eq(exch_unbind(dx, bind_dest_queue(q1), S("b"), no_args), 0);
    vhost_exch_delete(vh, gone);
    vhost_queue_delete(vh, q2); /* and with it adx, left without bindings */
    ck_assert_ptr_null(exch("adx"));
    barrier();
    ck_assert_int_eq(count_tag(STORE_TAG_EXCHANGE), 1);
    ck_assert_int_eq(count_tag(STORE_TAG_QUEUE), 1);
    ck_assert_int_eq(count_tag(STORE_TAG_BINDING), 1);

    restart();
    ck_assert_ptr_nonnull(exch("dx"));
    ck_assert_ptr_null(exch("gone"));
    ck_assert_ptr_null(exch("adx"));
    ck_assert_ptr_nonnull(queue("q1"));
    ck_assert_ptr_null(queue("q2"));
    ck_assert(exch_has_binding(exch("dx"), bind_dest_queue(queue("q1")), S("a"), no_args));
    ck_assert_uint_eq(exch("dx")->n_bindings_out, 1);
}
END_TEST

/* In a cluster, what is not durable is stored too: a transient exchange, bindings to it,
 * another node's queue (with its home), this node's transient and exclusive queues (their
 * definitions, with the owner's id), an exclusive replicated queue (with its owner's node);
 * their messages are not. And the metadata log index. */
START_TEST(test_cluster_entities)
{
    clustered = true;
    restart();
    ck_assert_uint_eq(durable_meta_index(d), 0);
    struct exch *tmpx = add_exch(vh, "tmpx", EXCH_FANOUT, false, true, false, args_x);
    struct queue *remote = queue_new(vh, S("remote"), true, false, NULL, args_q);
    ck_assert_ptr_nonnull(remote);
    remote->home = strdup("warren2@elsewhere");
    ck_assert_int_eq(vhost_queue_add(vh, remote), 0);
    struct queue *tq = add_queue(vh, "tq", false, false, NULL, no_args);
    struct queue *exq = queue_new(vh, S("exq"), true, false, &reg.others, no_args);
    ck_assert_ptr_nonnull(exq);
    exq->owner_id = 0x1234567890abcdefULL;
    ck_assert_int_eq(vhost_queue_add(vh, exq), 0);
    /* an exclusive replicated queue: served elsewhere, owned by a connection of a third node */
    struct queue *exr = queue_new(vh, S("exr"), true, false, &reg.others, no_args);
    ck_assert_ptr_nonnull(exr);
    exr->owner_id = 77;
    exr->group_id = 9;
    exr->home = strdup("warren2@elsewhere");
    exr->owner_node = strdup("warren3@there");
    ck_assert_int_eq(vhost_queue_add(vh, exr), 0);
    struct queue *dq = add_queue(vh, "dq", true, false, NULL, no_args);
    add_bind(tmpx, bind_dest_queue(remote), "r", no_args);
    add_bind(tmpx, bind_dest_queue(tq), "t", no_args);
    add_bind(exch("amq.direct"), bind_dest_queue(exq), "x", no_args);
    enqueue_std(remote, 1, 2);
    enqueue_std(tq, 2, 2);
    enqueue_std(dq, 3, 2);
    durable_meta_index_put(d, 42);
    barrier();
    restart();

    ck_assert_uint_eq(durable_meta_index(d), 42);
    struct exch *e = exch("tmpx");
    ck_assert(e != NULL && !e->durable && e->auto_delete && e->type == EXCH_FANOUT);
    ck_assert(e->args_len == args_x.len && memcmp(e->args, args_x.ptr, args_x.len) == 0);
    remote = queue("remote");
    ck_assert_ptr_nonnull(remote);
    ck_assert_str_eq(remote->home, "warren2@elsewhere");
    ck_assert(remote->durable && remote->owner == NULL);
    ck_assert_uint_eq(remote->n_ready, 0); /* its messages are its home's */
    tq = queue("tq");
    ck_assert(tq != NULL && !tq->durable && tq->home == NULL && tq->n_ready == 0);
    exq = queue("exq");
    ck_assert(exq != NULL && exq->owner == &reg.others && exq->home == NULL);
    ck_assert_uint_eq(exq->owner_id, 0x1234567890abcdefULL);
    ck_assert_ptr_null(exq->owner_node);
    exr = queue("exr");
    ck_assert(exr != NULL && exr->owner == &reg.others && exr->owner_id == 77 &&
              exr->group_id == 9);
    ck_assert_str_eq(exr->home, "warren2@elsewhere");
    ck_assert_str_eq(exr->owner_node, "warren3@there");
    ck_assert_uint_eq(queue("dq")->n_ready, 1);
    ck_assert(exch_has_binding(exch("tmpx"), bind_dest_queue(remote), S("r"), no_args));
    ck_assert(exch_has_binding(exch("tmpx"), bind_dest_queue(tq), S("t"), no_args));
    ck_assert(exch_has_binding(exch("amq.direct"), bind_dest_queue(exq), S("x"), no_args));

    /* Deleted: their records go. */
    vhost_queue_delete(vh, exq);
    vhost_queue_delete(vh, tq);
    vhost_exch_delete(vh, exch("tmpx"));
    barrier();
    restart();
    ck_assert_ptr_null(queue("exq"));
    ck_assert_ptr_null(queue("tq"));
    ck_assert_ptr_null(exch("tmpx"));
    ck_assert_ptr_nonnull(queue("remote"));
    ck_assert_ptr_nonnull(queue("exr"));
    ck_assert_int_eq(count_tag(STORE_TAG_QUEUE), 3);
    ck_assert_int_eq(count_tag(STORE_TAG_BINDING), 0);
}
END_TEST

/* ---- 2. messages ---- */

START_TEST(test_persistent_messages)
{
    struct queue *dq = add_queue(vh, "dq", true, false, NULL, no_args);
    struct queue *tq = add_queue(vh, "tq", false, false, NULL, no_args);
    struct queue *dq2 = add_queue(vh, "dq2", true, false, NULL, no_args);
    for (int i = 0; i < 20; i++) {
        enqueue_std(dq, i, i % 3 == 2 ? 1 : 2);
        enqueue_std(tq, i, 2);
    }
    for (int i = 100; i < 105; i++)
        enqueue_std(dq2, i, 1); /* transient only */
    uint64_t dq_id = qid(dq);
    barrier();
    ck_assert_int_eq(count_entries(dq_id), 14);
    ck_assert_int_eq(count_entries(qid(dq2)), 0);

    restart();
    dq = queue("dq");
    int all[14];
    for (int i = 0, k = 0; i < 20; i++)
        if (i % 3 != 2)
            all[k++] = i;
    check_ready(dq, all, NULL, 14);
    ck_assert_ptr_null(queue("tq"));
    check_ready(queue("dq2"), NULL, NULL, 0);
    /* Messages enqueued after a restart come after the restored ones. */
    enqueue_std(dq, 50, 2);
    barrier();
    restart();
    int more[15];
    memcpy(more, all, sizeof(all));
    more[14] = 50;
    check_ready(queue("dq"), more, NULL, 15);
}
END_TEST

/* ---- 3. settle, requeue, redelivered ---- */

START_TEST(test_settle_requeue_redelivered)
{
    struct queue *q = add_queue(vh, "q", true, false, NULL, no_args);
    for (int i = 0; i < 6; i++)
        enqueue_std(q, i, 2);
    struct qentry *e[4];
    for (int i = 0; i < 4; i++) {
        e[i] = queue_cmd_deliver(q);
        ck_assert_ptr_nonnull(e[i]);
        ck_assert_int_eq(msg_index(e[i]->msg), i);
    }
    queue_cmd_settle(e[0]);  /* acked: gone for good */
    queue_cmd_requeue(e[1]); /* back in place, redelivered */
    barrier();
    restart();
    /* e[2] and e[3] were delivered and never settled: back, redelivered. */
    queue_cmd_settle(e[2]);
    queue_cmd_settle(e[3]);
    q = queue("q");
    static const int want1[] = {1, 2, 3, 4, 5};
    static const bool redel1[] = {true, true, true, false, false};
    check_ready(q, want1, redel1, 5);

    /* Once more without a barrier: the last batch goes with the close. Deliver 1 and 2,
     * settle 1, requeue nothing. */
    struct qentry *a = queue_cmd_deliver(q), *b = queue_cmd_deliver(q);
    ck_assert_int_eq(msg_index(a->msg), 1);
    ck_assert(a->redelivered);
    ck_assert_int_eq(msg_index(b->msg), 2);
    queue_cmd_settle(a);
    restart();
    queue_cmd_settle(b);
    static const int want2[] = {2, 3, 4, 5};
    static const bool redel2[] = {true, true, false, false};
    check_ready(queue("q"), want2, redel2, 4);

    /* Everything delivered, then requeued in reverse: all back in order, redelivered. */
    q = queue("q");
    struct qentry *all[4];
    for (int i = 0; i < 4; i++)
        all[i] = queue_cmd_deliver(q);
    for (int i = 3; i >= 0; i--)
        queue_cmd_requeue(all[i]);
    restart();
    static const bool redel3[] = {true, true, true, true};
    check_ready(queue("q"), want2, redel3, 4);
}
END_TEST

/* A replicated queue's image (durable_image.c): entries written, marked and removed as the
 * Raft thread applies commands, loaded into a queue (redelivered at or below the watermark, or
 * requeued), scanned for their positions; an entry whose message is missing (a snapshot's,
 * still to fetch) keeps the image from loading until its value is put back. */
static void
image_put_std(struct store_batch *b, uint64_t group, uint64_t seq, int i)
{
    struct msg *m = std_msg(i, 2);
    uint8_t hdr[DURABLE_MSG_HDR_LEN], rec[DURABLE_MSG_HDR_LEN + 200000];
    struct iovec parts[DURABLE_MSG_PARTS];
    durable_msg_parts(hdr, m, parts);
    size_t n = 0;
    for (int k = 0; k < DURABLE_MSG_PARTS; k++) {
        memcpy(rec + n, parts[k].iov_base, parts[k].iov_len);
        n += parts[k].iov_len;
    }
    durable_image_enqueue(b, group, seq, 0, rec, n);
    msg_unref(&m);
}

/* Loads group's image into a new queue and asserts it holds the standard messages want[0..n)
 * at seqs want[k] + 1, redelivered as said, with delivery counts counts[k]. */
static void
check_image(uint64_t group, const char *name, const int *want, const bool *redelivered,
            const uint32_t *counts, int n)
{
    struct durable_image_state ist;
    char err[256];
    ck_assert_int_eq(durable_image_state_get(st, group, &ist, err, sizeof(err)), 1);
    struct queue *q = add_queue(vh, name, false, false, NULL, no_args);
    q->group_id = group;
    ck_assert_int_eq(durable_image_load(st, group, q, &ist, err, sizeof(err)), n);
    int k = 0;
    struct qentry *e;
    TAILQ_FOREACH(e, &q->lanes[0].ready, link) {
        ck_assert_int_lt(k, n);
        check_std(e->msg, want[k], 2);
        ck_assert_uint_eq(e->seq, (uint64_t)want[k] + 1);
        ck_assert(e->redelivered == redelivered[k]);
        ck_assert_uint_eq(e->delivery_count, counts[k]);
        ck_assert(!e->stored); /* the image's, not the durable layer's */
        k++;
    }
    ck_assert_int_eq(k, n);
    ck_assert_uint_eq(q->lanes[0].next_seq, 7); /* past the last seq enqueued, 6 */
}

struct image_scan_result {
    struct durable_image_pos *pos;
    size_t *n;
};

static int
image_scanned(void *arg, const struct durable_image_pos *pos)
{
    struct image_scan_result *r = arg;
    r->pos[(*r->n)++] = *pos;
    return 0;
}

START_TEST(test_replica_image)
{
    char err[256];
    struct store_batch *b = store_batch_new();
    ck_assert_ptr_nonnull(b);
    for (int i = 0; i < 6; i++)
        image_put_std(b, 7, (uint64_t)i + 1, i); /* message i at seq i + 1 */
    durable_image_mark(b, 7, 2, 3, false, 0);    /* requeued three times */
    durable_image_remove(b, 7, 4);               /* settled */
    durable_image_mark(b, 7, 6, 1, false, 0);
    durable_image_remove(b, 7, 6); /* settled after a requeue: its mark goes too */
    struct durable_image_state ist = {.index = 10, .epoch = 5, .epoch_term = 2, .n_lanes = 1};
    ist.delivered[0] = 3;
    ist.last[0] = 6;
    durable_image_state_put(b, 7, &ist);
    ck_assert_int_eq(store_write_now(st, b, false, err, sizeof(err)), 0);

    struct durable_image_state got;
    ck_assert_int_eq(durable_image_state_get(st, 7, &got, err, sizeof(err)), 1);
    ck_assert(got.index == 10 && got.epoch == 5 && got.epoch_term == 2 && got.n_lanes == 1);
    ck_assert(got.delivered[0] == 3 && got.last[0] == 6);
    static const int want[] = {0, 1, 2, 4};
    static const bool redelivered[] = {true, true, true, false};
    static const uint32_t counts[] = {0, 3, 0, 0};
    check_image(7, "q7", want, redelivered, counts, 4);

    /* Positions, as a snapshot has them: the requeue count and death of each entry. */
    struct durable_image_pos seen[8];
    size_t n_seen = 0;
    ck_assert_int_eq(durable_image_scan(st, 7, image_scanned,
                                        &(struct image_scan_result){seen, &n_seen}, err,
                                        sizeof(err)),
                     0);
    ck_assert_uint_eq(n_seen, 4);
    ck_assert(seen[0].seq == 1 && seen[1].seq == 2 && seen[2].seq == 3 && seen[3].seq == 5);
    ck_assert(seen[1].count == 3 && seen[0].count == 0 && !seen[1].dead && !seen[1].missing);

    /* An entry restored from a snapshot, its message still to fetch: listed missing, and the
     * image does not load until another member's value is put in. */
    char *val;
    size_t vlen;
    ck_assert_int_eq(image_value(st, 7, 2, &val, &vlen), 1);
    ck_assert_int_eq(image_value(st, 7, 4, &(char *){NULL}, &(size_t){0}), 0);
    ck_assert_ptr_nonnull(b = store_batch_new());
    durable_image_put_missing(b, 7, 2);
    ck_assert_int_eq(store_write_now(st, b, false, err, sizeof(err)), 0);
    ck_assert_int_eq(image_value(st, 7, 2, &(char *){NULL}, &(size_t){0}), 0);
    n_seen = 0;
    ck_assert_int_eq(durable_image_scan(st, 7, image_scanned,
                                        &(struct image_scan_result){seen, &n_seen}, err,
                                        sizeof(err)),
                     0);
    ck_assert(n_seen == 4 && seen[1].missing && seen[1].count == 3 && !seen[0].missing);
    struct queue *qm = add_queue(vh, "q7m", false, false, NULL, no_args);
    qm->group_id = 7;
    ck_assert_int_eq(durable_image_load(st, 7, qm, &got, err, sizeof(err)), DURABLE_IMAGE_MISSING);
    queue_reset(qm);
    ck_assert_ptr_nonnull(b = store_batch_new());
    durable_image_put_value(b, 7, 2, val, vlen);
    ck_assert_int_eq(store_write_now(st, b, true, err, sizeof(err)), 0);
    free(val);
    check_image(7, "q7f", want, redelivered, counts, 4);

    /* The state's encoding, as snapshots carry it. */
    uint8_t enc[DURABLE_IMAGE_STATE_MAX];
    struct durable_image_state dec;
    size_t enc_len = durable_image_state_encode(enc, &got);
    ck_assert_uint_eq(durable_image_state_decode(enc, enc_len, &dec), enc_len);
    ck_assert(dec.index == 10 && dec.epoch == 5 && dec.last[0] == 6);
    ck_assert_uint_eq(durable_image_state_decode(enc, 3, &dec), 0);

    /* Dropped with its queue: no state, no entries. */
    ck_assert_ptr_nonnull(b = store_batch_new());
    durable_image_drop(b, 7);
    ck_assert_int_eq(store_write_now(st, b, false, err, sizeof(err)), 0);
    ck_assert_int_eq(durable_image_state_get(st, 7, &got, err, sizeof(err)), 0);
    struct queue *q = add_queue(vh, "q7b", false, false, NULL, no_args);
    q->group_id = 7;
    ck_assert_int_eq(durable_image_load(st, 7, q, &got, err, sizeof(err)), 0);
}
END_TEST

/* ---- 4. a message routed to two queues ---- */

START_TEST(test_shared_message)
{
    struct queue *q1 = add_queue(vh, "q1", true, false, NULL, no_args);
    struct queue *q2 = add_queue(vh, "q2", true, false, NULL, no_args);
    struct queue *tq = add_queue(vh, "tq", false, false, NULL, no_args);
    struct msg *m = std_msg(0, 2);
    durable_msg_routed(d, m, 2); /* as chan_route: tq does not count */
    enqueue(q1, m);
    enqueue(q2, m);
    enqueue(tq, m);
    msg_unref(&m);
    enqueue_std(q2, 1, 2); /* to one stored queue: inline */
    barrier();
    ck_assert_int_eq(count_tag(STORE_TAG_MSG), 1);
    ck_assert_int_eq(count_entries(qid(q1)), 1);
    ck_assert_int_eq(count_entries(qid(q2)), 2);

    restart();
    q1 = queue("q1");
    q2 = queue("q2");
    static const int want2[] = {0, 1};
    check_ready(q1, want2, NULL, 1);
    check_ready(q2, want2, NULL, 2);
    struct msg *m1 = TAILQ_FIRST(&q1->lanes[0].ready)->msg,
               *m2 = TAILQ_FIRST(&q2->lanes[0].ready)->msg;
    ck_assert_ptr_eq(m1, m2);
    ck_assert_uint_ne(m1->store_id, 0);
    ck_assert_uint_eq(TAILQ_LAST(&q2->lanes[0].ready, qentry_list)->msg->store_id, 0);

    /* The record stays while one entry holds it, across a restart too. */
    queue_cmd_settle(queue_cmd_deliver(q1));
    barrier();
    ck_assert_int_eq(count_tag(STORE_TAG_MSG), 1);
    restart();
    q2 = queue("q2");
    check_ready(queue("q1"), NULL, NULL, 0);
    check_ready(q2, want2, NULL, 2);
    struct qentry *e = queue_cmd_deliver(q2);
    ck_assert_int_eq(msg_index(e->msg), 0);
    queue_cmd_settle(e);
    barrier();
    ck_assert_int_eq(count_tag(STORE_TAG_MSG), 0);
    restart();
    static const int want1[] = {1};
    check_ready(queue("q2"), want1, NULL, 1);
    ck_assert_int_eq(count_tag(STORE_TAG_MSG), 0);

    /* Both settled within one run: the record goes with the second. */
    m = std_msg(2, 2);
    durable_msg_routed(d, m, 2);
    enqueue(queue("q1"), m);
    enqueue(queue("q2"), m);
    msg_unref(&m);
    barrier();
    ck_assert_int_eq(count_tag(STORE_TAG_MSG), 1);
    queue_cmd_settle(queue_cmd_deliver(queue("q1")));
    barrier();
    ck_assert_int_eq(count_tag(STORE_TAG_MSG), 1);
    e = queue_cmd_deliver(queue("q2")); /* message 1 */
    queue_cmd_settle(e);
    e = queue_cmd_deliver(queue("q2"));
    ck_assert_int_eq(msg_index(e->msg), 2);
    queue_cmd_settle(e);
    barrier();
    ck_assert_int_eq(count_tag(STORE_TAG_MSG), 0);
    ck_assert_int_eq(count_tag(STORE_TAG_QENTRY), 0);
}
END_TEST

/* ---- 5. purge, queue.delete ---- */

START_TEST(test_purge_and_delete)
{
    struct queue *q1 = add_queue(vh, "q1", true, false, NULL, no_args);
    struct queue *q2 = add_queue(vh, "q2", true, false, NULL, no_args);
    struct queue *q3 = add_queue(vh, "q3", true, false, NULL, no_args);
    for (int i = 0; i < 5; i++) {
        enqueue_std(q1, i, 2);
        enqueue_std(q2, i, 2);
    }
    /* Shared between q1 and q3, and between q2 and q3. */
    for (int i = 5; i < 7; i++) {
        struct msg *m = std_msg(i, 2);
        durable_msg_routed(d, m, 2);
        enqueue(i == 5 ? q1 : q2, m);
        enqueue(q3, m);
        msg_unref(&m);
    }
    struct qentry *held = queue_cmd_deliver(q1); /* message 0: unacked, survives the purge */
    uint64_t id1 = qid(q1), id2 = qid(q2);
    barrier();
    ck_assert_int_eq(count_entries(id1), 6);
    ck_assert_int_eq(count_entries(id2), 6);
    ck_assert_int_eq(count_tag(STORE_TAG_MSG), 2);

    ck_assert_uint_eq(queue_cmd_purge(q1), 5);
    ck_assert_uint_eq(vhost_queue_delete(vh, q2), 6);
    barrier();
    ck_assert_int_eq(count_entries(id1), 1); /* the unacked one */
    ck_assert_int_eq(count_entries(id2), 0);
    ck_assert_int_eq(count_tag(STORE_TAG_QUEUE), 2);
    ck_assert_int_eq(count_tag(STORE_TAG_MSG), 2); /* q3 holds both */
    uint8_t dkey[STORE_KEY_DELIVERED_LEN];
    ck_assert_int_eq(count_keys(dkey, store_key_delivered(dkey, id2)), 0);

    restart();
    queue_cmd_settle(held);
    static const bool redel[] = {true};
    static const int want0[] = {0};
    check_ready(queue("q1"), want0, redel, 1);
    ck_assert_ptr_null(queue("q2"));
    static const int want3[] = {5, 6};
    check_ready(queue("q3"), want3, NULL, 2);

    /* Deleting q3 drops the last references to both shared records. */
    vhost_queue_delete(vh, queue("q3"));
    ck_assert_uint_eq(queue_cmd_purge(queue("q1")), 1);
    barrier();
    ck_assert_int_eq(count_tag(STORE_TAG_MSG), 0);
    ck_assert_int_eq(count_tag(STORE_TAG_QENTRY), 0);
    restart();
    check_ready(queue("q1"), NULL, NULL, 0);
    ck_assert_ptr_null(queue("q3"));

    /* A queue declared after the restart gets an id of its own. */
    struct queue *q4 = add_queue(vh, "q4", true, false, NULL, no_args);
    ck_assert_uint_ne(qid(q4), qid(queue("q1")));
    enqueue_std(q4, 9, 2);
    restart();
    check_ready(queue("q1"), NULL, NULL, 0);
    static const int want4[] = {9};
    check_ready(queue("q4"), want4, NULL, 1);
}
END_TEST

/* ---- 6. lazy paging ---- */

#define PAGE_WINDOW 4096
#define PAGE_BODY 1024
#define PAGE_N 64

static uint8_t
page_mode(int i)
{
    return i % 4 == 3 ? 1 : 2;
}

static struct msg *
page_msg(int i)
{
    return make_msg(i, page_mode(i), PAGE_BODY, "amq.direct", "paged");
}

static void
check_page_msg(const struct msg *m, int i)
{
    check_msg(m, i, page_mode(i), PAGE_BODY, "amq.direct", "paged");
}

/* Fills q with PAGE_N messages of 1 KiB, a quarter of them transient. */
static void
page_fill(struct queue *q)
{
    for (int i = 0; i < PAGE_N; i++) {
        struct msg *m = page_msg(i);
        enqueue(q, m);
        msg_unref(&m);
        ck_assert_uint_le(q->mem_bytes, PAGE_WINDOW);
    }
    ck_assert_uint_eq(q->n_ready, PAGE_N);
    ck_assert_uint_gt(durable_queue_paged(q), PAGE_N / 2);
}

/* Delivers and settles everything in q, checking the messages are want(0), want(1), ... each
 * once, with redelivered for the first n_redelivered. Returns how many. */
static int
page_drain(struct queue *q, bool persistent_only, int n_redelivered)
{
    int next = 0, n = 0;
    struct qentry *e;
    struct msg *any = page_msg(0);
    uint64_t one = msg_size(any);
    msg_unref(&any);
    while ((e = deliver(q)) != NULL) {
        while (persistent_only && page_mode(next) != 2)
            next++;
        ck_assert_int_lt(next, PAGE_N);
        check_page_msg(e->msg, next);
        ck_assert_msg(e->redelivered == (n < n_redelivered), "message %d: redelivered %d", next,
                      e->redelivered);
        ck_assert_uint_le(q->mem_bytes, PAGE_WINDOW + one);
        queue_cmd_settle(e);
        next++;
        n++;
    }
    ck_assert_uint_eq(q->n_ready, 0);
    ck_assert_uint_eq(durable_queue_paged(q), 0);
    ck_assert_uint_eq(q->mem_bytes, 0);
    return n;
}

/* Stored entries of q in memory: the persistent ones (transient ones in memory are not
 * written), plus every paged one (transient ones too, flagged). */
static int
page_written(struct queue *q)
{
    int n = (int)durable_queue_paged(q);
    struct qentry *e;
    TAILQ_FOREACH(e, &q->lanes[0].ready, link)
        n += e->msg->delivery_mode == 2;
    return n;
}

START_TEST(test_paging)
{
    win = PAGE_WINDOW;
    durable_set_window(d, win);
    struct queue *q = add_queue(vh, "q", true, false, NULL, no_args);
    page_fill(q);
    /* No waiting for the store: the first deliveries find the paged entries unreadable. */
    ck_assert_int_eq(page_drain(q, false, 0), PAGE_N);
    barrier();
    ck_assert_int_eq(count_entries(qid(q)), 0);

    /* Again, written first; requeues keep their place among paged-in entries. */
    page_fill(q);
    barrier();
    ck_assert_int_eq(count_entries(qid(q)), page_written(q));
    struct qentry *e0 = deliver(q), *e1 = deliver(q);
    queue_cmd_requeue(e1);
    queue_cmd_requeue(e0);
    ck_assert_int_eq(page_drain(q, false, 2), PAGE_N);
    barrier();
    ck_assert_int_eq(count_entries(qid(q)), 0);
    ck_assert_int_eq(count_tag(STORE_TAG_DELIVERED), 1);
    restart();
    check_ready(queue("q"), NULL, NULL, 0);
}
END_TEST

START_TEST(test_paging_restart)
{
    win = PAGE_WINDOW;
    durable_set_window(d, win);
    struct queue *q = add_queue(vh, "q", true, false, NULL, no_args);
    page_fill(q);
    uint64_t id = qid(q);
    barrier();
    ck_assert_int_eq(count_entries(id), page_written(q));
    /* Two delivered and never settled: back first, redelivered. */
    struct qentry *e0 = deliver(q), *e1 = deliver(q);
    ck_assert_int_eq(msg_index(e0->msg), 0);
    ck_assert_int_eq(msg_index(e1->msg), 1);
    restart();
    queue_cmd_settle(e0);
    queue_cmd_settle(e1);
    q = queue("q");
    ck_assert_uint_eq(q->n_ready, PAGE_N / 4 * 3);
    ck_assert_uint_gt(durable_queue_paged(q), 0);
    ck_assert_uint_le(q->mem_bytes, PAGE_WINDOW + PAGE_BODY + 256);
    barrier(); /* the transient leftovers are deleted */
    ck_assert_int_eq(count_entries(id), PAGE_N / 4 * 3);
    ck_assert_int_eq(page_drain(q, true, 2), PAGE_N / 4 * 3);
    barrier();
    ck_assert_int_eq(count_tag(STORE_TAG_QENTRY), 0);
    restart();
    check_ready(queue("q"), NULL, NULL, 0);
}
END_TEST

/* The same without a barrier after the restart: the paged transient entries are still in the
 * store when the first deliveries read the queue back. */
START_TEST(test_paging_restart_no_wait)
{
    win = PAGE_WINDOW;
    durable_set_window(d, win);
    struct queue *q = add_queue(vh, "q", true, false, NULL, no_args);
    page_fill(q);
    restart();
    ck_assert_int_eq(page_drain(queue("q"), true, 0), PAGE_N / 4 * 3);
    barrier();
    ck_assert_int_eq(count_tag(STORE_TAG_QENTRY), 0);
}
END_TEST

/* Requeues of message i of test_delivery_count_restart: every round delivers the first
 * PAGE_N >> round entries and requeues them. */
static uint32_t
count_of(int i)
{
    return (uint32_t)((i < PAGE_N) + (i < PAGE_N / 2) + (i < PAGE_N / 4));
}

/* A requeue writes the entry's delivery count (x-delivery-limit), which a restart reads back,
 * whether the entry comes back in memory or paged out (read back later), inline or a
 * reference to a shared record, whose references stay as they were. */
START_TEST(test_delivery_count_restart)
{
    struct queue *q = add_queue(vh, "q", true, false, NULL, no_args);
    struct queue *q2 = add_queue(vh, "q2", true, false, NULL, no_args);
    for (int i = 0; i < PAGE_N; i++) {
        struct msg *m = make_msg(i, 2, PAGE_BODY, "amq.direct", "paged");
        if (i % 2 == 1) {
            durable_msg_routed(d, m, 2);
            enqueue(q2, m);
        }
        enqueue(q, m);
        msg_unref(&m);
    }
    struct qentry *out[PAGE_N];
    for (int round = 0; round < 3; round++) {
        int n = PAGE_N >> round;
        for (int i = 0; i < n; i++)
            out[i] = queue_cmd_deliver(q);
        for (int i = 0; i < n; i++)
            queue_cmd_requeue(out[i]);
    }
    /* Read back with a window of a few messages: most are paged out. */
    win = PAGE_WINDOW;
    restart();
    q = queue("q");
    ck_assert_uint_gt(durable_queue_paged(q), PAGE_N / 2);
    struct qentry *e;
    for (int i = 0; (e = deliver(q)) != NULL; i++) {
        check_msg(e->msg, i, 2, PAGE_BODY, "amq.direct", "paged");
        ck_assert(e->redelivered);
        ck_assert_msg(e->delivery_count == count_of(i), "message %d: delivery count %u, not %u", i,
                      e->delivery_count, count_of(i));
        queue_cmd_settle(e);
    }
    ck_assert_int_eq(count_tag(STORE_TAG_MSG), PAGE_N / 2); /* q2 holds them still */
    while ((e = deliver(queue("q2"))) != NULL) {
        ck_assert_uint_eq(e->delivery_count, 0);
        queue_cmd_settle(e);
    }
    barrier();
    ck_assert_int_eq(count_tag(STORE_TAG_MSG), 0);
    ck_assert_int_eq(count_tag(STORE_TAG_QENTRY), 0);
}
END_TEST

/* Deleting a paged queue drops its paged entries' references to shared records once: the
 * other queue's entries keep the records. */
START_TEST(test_paged_delete_keeps_shared)
{
    win = PAGE_WINDOW;
    durable_set_window(d, win);
    struct queue *qa = add_queue(vh, "qa", true, false, NULL, no_args);
    struct queue *qb = add_queue(vh, "qb", true, false, NULL, no_args);
    for (int i = 0; i < 8; i++) {
        struct msg *m = page_msg(i * 4); /* persistent */
        enqueue(qa, m);
        msg_unref(&m);
    }
    ck_assert_uint_gt(durable_queue_paged(qa), 0);
    static const int want[] = {100, 101, 102, 103};
    for (int k = 0; k < 4; k++) {
        struct msg *m = std_msg(want[k], 2);
        durable_msg_routed(d, m, 2);
        enqueue(qa, m); /* paged */
        enqueue(qb, m); /* in memory */
        msg_unref(&m);
    }
    ck_assert_uint_ge(durable_queue_paged(qa), 5); /* the shared ones among them */
    barrier();
    ck_assert_int_eq(count_tag(STORE_TAG_MSG), 4);
    vhost_queue_delete(vh, qa);
    barrier();
    ck_assert_int_eq(count_tag(STORE_TAG_MSG), 4);
    restart();
    check_ready(queue("qb"), want, NULL, 4);
}
END_TEST

/* Delivers q's next count entries, which must be the messages first, first + 1, ... (by
 * msg_index), redelivered as the first n_redelivered (-1: not checked), and settles them;
 * then q is empty. */
static void
drain_ids(struct queue *q, int first, int count, int n_redelivered)
{
    for (int k = 0; k < count; k++) {
        struct qentry *e = deliver(q);
        ck_assert_msg(e != NULL, "queue '%s': %d messages, expected %d", q->name, k, count);
        ck_assert_int_eq(msg_index(e->msg), first + k);
        if (n_redelivered >= 0)
            ck_assert_int_eq(e->redelivered, k < n_redelivered);
        queue_cmd_settle(e);
    }
    ck_assert_ptr_null(deliver(q));
    ck_assert_uint_eq(q->n_ready, 0);
}

/* Entries the store holds with seqs [lo, end) of the queue with that id go, as another
 * program (or a bug) would delete them. */
static void
delete_raw(uint64_t queue_id, uint64_t lo, uint64_t end)
{
    uint8_t begin[STORE_KEY_QENTRY_LEN], stop[STORE_KEY_QENTRY_LEN];
    struct store_batch *b = store_batch_new();
    struct barrier_wait w = {false, ""};
    ck_assert_ptr_nonnull(b);
    store_key_qentry(begin, queue_id, lo);
    store_key_qentry(stop, queue_id, end);
    ck_assert_int_eq(store_batch_delete_range(b, begin, sizeof(begin), stop, sizeof(stop)), 0);
    ck_assert_int_eq(store_submit(st, b, true, on_barrier, &w), 0);
    run_until(&w.done);
    ck_assert_msg(w.err[0] == '\0', "%s", w.err);
}

/* Paged entries missing from the store (deleted behind the broker's back): a page-in that
 * has read everything there is drops them from the count rather than wait for them. */
START_TEST(test_paged_entries_missing)
{
    win = PAGE_WINDOW;
    durable_set_window(d, win);
    struct queue *q = add_queue(vh, "q", true, false, NULL, no_args);
    for (int i = 0; i < PAGE_N; i++) {
        struct msg *m = make_msg(i, 2, PAGE_BODY, "amq.direct", "paged");
        enqueue(q, m);
        msg_unref(&m);
    }
    barrier();
    uint64_t lo = q->durable_state->lanes[0].page_lo;
    ck_assert_uint_gt(durable_queue_paged(q), 8);
    delete_raw(qid(q), lo + 4, lo + 8);
    int n = 0;
    struct qentry *e;
    while ((e = queue_cmd_deliver(q)) != NULL) {
        int want = n < (int)(lo - 1) + 4 ? n : n + 4;
        ck_assert_int_eq(msg_index(e->msg), want);
        queue_cmd_settle(e);
        n++;
    }
    ck_assert_int_eq(n, PAGE_N - 4);
    ck_assert_uint_eq(q->n_ready, 0);
    ck_assert_uint_eq(durable_queue_paged(q), 0);
    ck_assert(!q->durable_state->page_waiting);
}
END_TEST

/* Paging out onto a full disk: the batch holding the page-outs fails, and the queue counts
 * only the messages the store has, hands out exactly those (without waiting for the store
 * for the others), and a restart finds the same ones. */
START_TEST(test_pageout_batch_fails)
{
    broker_close();
    fullfs_mount(mnt_dir, sizeof(mnt_dir), data_dir);
    char filler[128];
    snprintf(store_dir, sizeof(store_dir), "%s/data", mnt_dir);
    snprintf(filler, sizeof(filler), "%s/filler", mnt_dir);
    struct store_options small;
    store_options_init(&small);
    small.write_buffer_size = 64 << 10;
    store_opts = &small;
    win = PAGE_WINDOW;
    broker_open();
    struct queue *q = add_queue(vh, "q", true, false, NULL, no_args);
    int n = 0;
    for (; n < 16; n++) {
        struct msg *m = make_msg(n, 2, PAGE_BODY, "amq.direct", "paged");
        enqueue(q, m);
        msg_unref(&m);
    }
    barrier();
    ck_assert_uint_gt(durable_queue_paged(q), 0);

    /* Rounds of 16 KiB messages, a batch each, until one fails. */
    fullfs_fill(filler);
    int stored = n;
    const char *err;
    do {
        ck_assert_msg(n < 4096, "%d messages written on a full 4 MiB disk", n);
        stored = n;
        for (int k = 0; k < 16; k++, n++) {
            struct msg *m = make_msg(n, 2, 16 << 10, "amq.direct", "paged");
            enqueue(q, m);
            msg_unref(&m);
        }
        ck_assert_uint_eq(q->n_ready, (uint64_t)n);
    } while ((err = barrier_result())[0] == '\0');
    ck_assert_msg(strstr(err, "No space left on device") != NULL, "error: %s", err);
    ck_assert_uint_eq(q->n_ready, (uint64_t)stored);

    /* Reads still work: every message stored, in order, at once; then none. */
    struct qentry *held[4096];
    for (int i = 0; i < stored; i++) {
        held[i] = queue_cmd_deliver(q);
        ck_assert_msg(held[i] != NULL, "message %d of %d not delivered", i, stored);
        ck_assert_int_eq(msg_index(held[i]->msg), i);
    }
    ck_assert_ptr_null(queue_cmd_deliver(q));
    ck_assert_uint_eq(q->n_ready, 0);
    ck_assert_uint_eq(durable_queue_paged(q), 0);
    ck_assert(!q->durable_state->page_waiting);

    /* With space again (RocksDB takes a moment to see it), a restart brings back those.
     * Each try writes something: a sync barrier alone after a failed write makes Debian's
     * RocksDB abort (an assertion in its WAL sync). */
    ck_assert_int_eq(unlink(filler), 0);
    struct exch *probe = add_exch(vh, "probe", EXCH_FANOUT, true, false, false, no_args);
    time_t start = time(NULL);
    while (durable_exchange_added(d, probe), (err = barrier_result())[0] != '\0') {
        ck_assert_msg(time(NULL) - start < 60, "writes still fail 60 s after freeing space: %s",
                      err);
        usleep(200 * 1000);
    }
    restart();
    for (int i = 0; i < stored; i++)
        queue_cmd_settle(held[i]);
    /* (Redelivered or not: the delivery watermark went with a batch that may have failed.) */
    drain_ids(queue("q"), 0, stored, -1);
}
END_TEST

/* Purging and deleting queues whose paged entries refer to shared records. */
#define SHARED_N 3000 /* entries per queue: more than one step of the background walk */

/* The purge markers' prefix, as the durable layer writes it (part of the on-disk format). */
static const char purged_prefix[] = "\0warren/purged";

/* Paged entries dropped and not deleted yet: purge markers, and removed queues' 'T' keys. */
static int
count_dropping(void)
{
    return count_keys(purged_prefix, sizeof(purged_prefix) - 1) + count_tag(STORE_TAG_TEMP_QUEUE);
}

/* Runs the loop until the paged entries dropped are deleted, and that is written. */
static void
drops_done(void)
{
    time_t start = time(NULL);
    do {
        ck_assert_msg(time(NULL) - start < 10, "dropped entries still there after 10 s");
        barrier();
    } while (count_dropping() > 0);
}

static const char *const shared_drop_cases[] = {
    "purge, then delete the other queue",
    "purge, restart at once",
    "delete the other queue, purge, restart while the purged entries are read",
    "purge, then delete the same queue at once",
};

/* Two queues share SHARED_N records, nearly all paged out of both. A purge empties its queue
 * at once, the records stay while the other queue refers to them and go with the last
 * reference, in the background; whenever a restart comes, it finds the rest right: the
 * purged entries stay gone, the others are all there, nothing is left over. */
START_TEST(test_paged_drop_shared)
{
    win = PAGE_WINDOW;
    durable_set_window(d, win);
    struct queue *qa = add_queue(vh, "qa", true, false, NULL, no_args);
    struct queue *qb = add_queue(vh, "qb", true, false, NULL, no_args);
    for (int i = 0; i < SHARED_N; i++) {
        struct msg *m = make_msg(i, 2, 16, "amq.fanout", "");
        durable_msg_routed(d, m, 2);
        enqueue(qa, m);
        enqueue(qb, m);
        msg_unref(&m);
    }
    ck_assert_uint_gt(durable_queue_paged(qa), SHARED_N - 100);
    ck_assert_uint_gt(durable_queue_paged(qb), SHARED_N - 100);
    /* Case 1: HELD delivered and held across the purge, more than a window's worth: after
     * the restart, the paged part of qa starts below the purged entries. */
    enum { HELD = 40, AFTER = 40 };
    struct qentry *held[HELD];
    for (int k = 0; _i == 1 && k < HELD; k++)
        held[k] = deliver(qa);
    /* Case 2: many more entries for qa alone, so that reading them takes many steps, and qb
     * deleted first: the purge's walk drops the records' last references. */
    for (int i = 0; _i == 2 && i < 20 * SHARED_N; i++) {
        struct msg *m = make_msg(SHARED_N + i, 2, 16, "amq.fanout", "");
        enqueue(qa, m);
        msg_unref(&m);
    }
    barrier();
    ck_assert_int_eq(count_tag(STORE_TAG_MSG), SHARED_N);
    if (_i == 2)
        ck_assert_uint_eq(vhost_queue_delete(vh, qb), SHARED_N);
    int purged = SHARED_N + (_i == 2 ? 20 * SHARED_N : 0) - (_i == 1 ? HELD : 0);
    ck_assert_uint_eq(queue_cmd_purge(qa), (uint64_t)purged);
    ck_assert_uint_eq(qa->n_ready, 0);
    ck_assert_uint_eq(durable_queue_paged(qa), 0);
    ck_assert_ptr_null(queue_cmd_deliver(qa));

    switch (_i) {
    case 0:
        drops_done();
        ck_assert_int_eq(count_entries(qid(qa)), 0);
        ck_assert_int_eq(count_tag(STORE_TAG_MSG), SHARED_N); /* qb's */
        ck_assert_uint_eq(vhost_queue_delete(vh, qb), SHARED_N);
        drops_done();
        break;
    case 1:
        for (int i = 0; i < AFTER; i++) {
            struct msg *m = make_msg(SHARED_N + i, 2, 16, "amq.fanout", "");
            enqueue(qa, m);
            msg_unref(&m);
        }
        restart();
        for (int k = 0; k < HELD; k++)
            queue_cmd_settle(held[k]);
        /* The held ones come back redelivered, then those enqueued after the purge; the
         * purged ones, still in the store until this start's batch is written, never. */
        qa = queue("qa");
        ck_assert_uint_eq(qa->n_ready, HELD + AFTER);
        ck_assert_uint_gt(durable_queue_paged(qa), AFTER);
        for (int k = 0; k < HELD + AFTER; k++) {
            struct qentry *e = deliver(qa);
            ck_assert_int_eq(msg_index(e->msg), k < HELD ? k : SHARED_N + k - HELD);
            ck_assert_int_eq(e->redelivered, k < HELD);
            queue_cmd_settle(e);
        }
        ck_assert_ptr_null(deliver(qa));
        drain_ids(queue("qb"), 0, SHARED_N, 0);
        break;
    case 2:
        /* Until the purge's walk has deleted records its entries refer to: the start must not
         * read those entries. A loop turn runs a step at most, and the walk takes 30: unless
         * the store thread lags far behind, it is not done (the purge marker is there). The
         * deletion's walk came first: it is done. */
        for (int tries = 0; count_tag(STORE_TAG_MSG) > SHARED_N / 2; tries++) {
            ck_assert_int_lt(tries, 100000);
            ck_assert_int_ge(event_base_loop(base, EVLOOP_ONCE), 0);
        }
        ck_assert_int_eq(count_tag(STORE_TAG_TEMP_QUEUE), 0);
        restart();
        ck_assert_ptr_null(queue("qb"));
        check_ready(queue("qa"), NULL, NULL, 0);
        break;
    case 3:
        ck_assert_uint_eq(vhost_queue_delete(vh, qa), 0);
        drops_done();
        ck_assert_int_eq(count_tag(STORE_TAG_MSG), SHARED_N);
        restart();
        ck_assert_ptr_null(queue("qa"));
        drain_ids(queue("qb"), 0, SHARED_N, 0);
        break;
    }
    barrier();
    ck_assert_int_eq(count_dropping(), 0);
    ck_assert_int_eq(count_tag(STORE_TAG_MSG), 0);
    ck_assert_int_eq(count_tag(STORE_TAG_QENTRY), 0);
    restart();
    if (queue("qa") != NULL)
        check_ready(queue("qa"), NULL, NULL, 0);
    if (queue("qb") != NULL)
        check_ready(queue("qb"), NULL, NULL, 0);
}
END_TEST

#define PRIO_MAX 5    /* x-max-priority: make_msg(i)'s priorities are i % 10, 6 to 9 above it */
#define PRIO_N 400    /* 400 KiB: a hundred windows */
#define PRIO_HELD 110 /* the whole top lane and some of the next: both lanes' watermarks move */

/* The lane of make_msg(i): its priority, capped at PRIO_MAX. */
static int
prio_lane(int i)
{
    return i % 10 < PRIO_MAX ? i % 10 : PRIO_MAX;
}

static const char *const prio_cases[] = {
    "drained as it is",
    "some delivered across a restart",
    "purged, restart",
    "deleted while the other queue shares its messages, restart",
};

/* A durable priority queue with a backlog a hundred times its window, in every lane, paged:
 * its memory stays bounded and it hands every message out once, by priority then FIFO, also
 * across a restart that brings back entries delivered before it redelivered (per lane: one
 * lane's watermark says nothing of another's). Purging it, or deleting it while another queue
 * shares its messages paged in several lanes, leaves the store right. */
START_TEST(test_priority_paging)
{
    uint8_t abuf[64];
    struct wire_writer w;
    wire_writer_init(&w, abuf, sizeof(abuf));
    wire_table_put_i64(&w, "x-max-priority", PRIO_MAX);
    struct wire_table args = {abuf, (uint32_t)wire_writer_len(&w)};
    win = PAGE_WINDOW;
    durable_set_window(d, win);
    struct queue *q = add_queue(vh, "qp", true, false, NULL, args);
    struct queue *other = _i == 3 ? add_queue(vh, "other", true, false, NULL, no_args) : NULL;
    for (int i = 0; i < PRIO_N; i++) {
        struct msg *m = make_msg(i, 2, PAGE_BODY, "amq.direct", "prio");
        if (other != NULL) {
            durable_msg_routed(d, m, 2);
            enqueue(other, m);
        }
        enqueue(q, m);
        msg_unref(&m);
        ck_assert_uint_le(q->mem_bytes, PAGE_WINDOW);
    }
    ck_assert_uint_eq(q->n_ready, PRIO_N);
    for (int lane = 0; lane <= PRIO_MAX; lane++)
        ck_assert_uint_gt(durable_lane_paged(q, lane), 0);
    /* The order expected: by lane, the highest first, then by index. */
    int order[PRIO_N], k = 0;
    bool redelivered[PRIO_N] = {false};
    for (int lane = PRIO_MAX; lane >= 0; lane--)
        for (int i = 0; i < PRIO_N; i++)
            if (prio_lane(i) == lane)
                order[k++] = i;
    barrier();
    ck_assert_int_eq(count_entries(qid(q)), PRIO_N);

    switch (_i) {
    case 1: {
        struct qentry *held[PRIO_HELD];
        for (k = 0; k < PRIO_HELD; k++) {
            held[k] = deliver(q);
            ck_assert_int_eq(msg_index(held[k]->msg), order[k]);
            redelivered[order[k]] = true;
        }
        restart();
        for (k = 0; k < PRIO_HELD; k++)
            queue_cmd_settle(held[k]);
        q = queue("qp");
        ck_assert_uint_eq(q->n_ready, PRIO_N);
        break;
    }
    case 2:
        ck_assert_uint_eq(queue_cmd_purge(q), PRIO_N);
        ck_assert_uint_eq(durable_queue_paged(q), 0);
        ck_assert_ptr_null(deliver(q));
        restart();
        check_ready(queue("qp"), NULL, NULL, 0);
        drops_done();
        ck_assert_int_eq(count_tag(STORE_TAG_QENTRY), 0);
        return;
    case 3:
        ck_assert_uint_eq(vhost_queue_delete(vh, q), PRIO_N);
        drops_done();
        ck_assert_int_eq(count_tag(STORE_TAG_MSG), PRIO_N); /* the other queue's */
        restart();
        ck_assert_ptr_null(queue("qp"));
        drain_ids(queue("other"), 0, PRIO_N, 0);
        barrier();
        ck_assert_int_eq(count_tag(STORE_TAG_MSG), 0);
        ck_assert_int_eq(count_tag(STORE_TAG_QENTRY), 0);
        return;
    }
    struct msg *any = make_msg(0, 2, PAGE_BODY, "amq.direct", "prio");
    uint64_t one = msg_size(any);
    msg_unref(&any);
    for (k = 0; k < PRIO_N; k++) {
        struct qentry *e = deliver(q);
        ck_assert_msg(e != NULL, "%d delivered, %d expected", k, PRIO_N);
        check_msg(e->msg, order[k], 2, PAGE_BODY, "amq.direct", "prio");
        ck_assert_msg(e->redelivered == redelivered[order[k]], "message %d: redelivered %d",
                      order[k], e->redelivered);
        /* The window, and a step of the lane read beyond it for each lane at most. */
        ck_assert_uint_le(q->mem_bytes, PAGE_WINDOW + (PRIO_MAX + 1) * ((64u << 10) + one));
        queue_cmd_settle(e);
    }
    ck_assert_ptr_null(deliver(q));
    ck_assert_uint_eq(q->mem_bytes, 0);
    barrier();
    ck_assert_int_eq(count_tag(STORE_TAG_QENTRY), 0);
    restart();
    check_ready(queue("qp"), NULL, NULL, 0);
}
END_TEST

/* A priority queue stored before lanes (a build that ignored x-max-priority): its entries are
 * lane 0's, its watermark one u64. It restarts with them as priority 0 and those delivered
 * before redelivered, and goes on by priority. */
START_TEST(test_priority_store_before_lanes)
{
    uint8_t abuf[64];
    struct wire_writer w;
    wire_writer_init(&w, abuf, sizeof(abuf));
    wire_table_put_i64(&w, "x-max-priority", 9);
    struct queue *q = add_queue(vh, "qp", true, false, NULL,
                                (struct wire_table){abuf, (uint32_t)wire_writer_len(&w)});
    for (int i = 0; i < 4; i++) {
        struct msg *m = make_msg(10 * i, 2, 16, "ex", "rk"); /* priority 0: lane 0 */
        enqueue(q, m);
        msg_unref(&m);
    }
    struct qentry *e0 = deliver(q), *e1 = deliver(q);
    barrier();
    /* The watermark as one u64, as before lanes: seq 2, lane 0's. */
    uint8_t key[STORE_KEY_DELIVERED_LEN], val[8];
    store_key_delivered(key, qid(q));
    bytes_put64(val, 2);
    put_raw(key, sizeof(key), val, sizeof(val));
    restart();
    queue_cmd_settle(e0);
    queue_cmd_settle(e1);
    q = queue("qp");
    ck_assert_uint_eq(q->n_ready, 4);
    struct msg *m = make_msg(7, 2, 16, "ex", "rk"); /* priority 7 */
    enqueue(q, m);
    msg_unref(&m);
    static const int want[] = {7, 0, 10, 20, 30};
    for (int k = 0; k < 5; k++) {
        struct qentry *e = deliver(q);
        ck_assert_int_eq(msg_index(e->msg), want[k]);
        ck_assert_int_eq(e->redelivered, k == 1 || k == 2);
        queue_cmd_settle(e);
    }
    ck_assert_ptr_null(deliver(q));
}
END_TEST

/* A queue emptied before a restart: messages enqueued after it are not delivered yet, and
 * come back so after the next one. */
START_TEST(test_watermark_after_restart)
{
    struct queue *q = add_queue(vh, "q", true, false, NULL, no_args);
    for (int i = 0; i < 3; i++)
        enqueue_std(q, i, 2);
    for (int i = 0; i < 3; i++)
        queue_cmd_settle(queue_cmd_deliver(q));
    restart();
    enqueue_std(queue("q"), 3, 2);
    restart();
    static const int want[] = {3};
    check_ready(queue("q"), want, NULL, 1);
}
END_TEST

/* Teardown in the order: registry cleared first (the layer detached), then the last batch. */
START_TEST(test_teardown_clear_first)
{
    /* main.c's shutdown frees queues (auto-delete ones, when their consumers go) after
     * detaching and before the last batch: a queue waiting for its watermark to be written
     * must not be touched once freed, and its watermark still reaches the store. */
    struct queue *q = add_queue(vh, "q", true, false, NULL, no_args);
    enqueue_std(q, 0, 2);
    barrier();
    struct qentry *e = queue_cmd_deliver(q); /* the watermark is to be written */
    char err[512] = "";
    durable_detach(d, &reg);
    vhost_registry_clear(&reg);
    durable_submit_pending(d);
    ck_assert_msg(store_close(st, err, sizeof(err)) == 0, "%s", err);
    durable_free(d);
    queue_cmd_settle(e);
    st = NULL;
    d = NULL;
    broker_open();
    static const bool redel[] = {true};
    static const int want[] = {0};
    check_ready(queue("q"), want, redel, 1);
}
END_TEST

/* ---- 7. corrupt records ---- */

static const struct corrupt_case {
    const char *what; /* expected in the error */
} corrupt_cases[] = {
    {"corrupt queue record"},       {"corrupt exchange record"},   {"corrupt binding record"},
    {"corrupt queue entry"},        {"shared message is missing"}, {"corrupt message record"},
    {"corrupt delivery watermark"}, {"corrupt purge marker"},      {"corrupt queue entry"},
    {"corrupt delivery watermark"},
};

START_TEST(test_corrupt)
{
    struct queue *q = add_queue(vh, "q", true, false, NULL, no_args);
    enqueue_std(q, 0, 2);
    barrier();
    uint64_t id = qid(q);
    uint8_t key[STORE_KEY_BINDING_MAX(0)], val[32];
    size_t klen;
    switch (_i) {
    case 0: /* a queue's value too short for its id and flags */
        klen = store_key_queue(key, "/", 1, "bad", 3);
        put_raw(key, klen, "xx", 2);
        break;
    case 1: /* an exchange type this build does not know */
        klen = store_key_exchange(key, "/", 1, "badx", 4);
        put_raw(key, klen, "\x09\x00", 2);
        break;
    case 2: /* a binding key cut after its source */
        klen = store_key_vhost_prefix(key, STORE_TAG_BINDING, "/", 1);
        memcpy(key + klen, "\x01x", 2);
        put_raw(key, klen + 2, "", 0);
        break;
    case 3: /* an inline entry shorter than a message record */
        klen = store_key_qentry(key, id, 100);
        put_raw(key, klen, "\x00\x01\x02\x03", 4);
        break;
    case 4: /* a shared entry whose record is not there */
        klen = store_key_qentry(key, id, 100);
        val[0] = 0x01;
        bytes_put64(val + 1, 999);
        put_raw(key, klen, val, 9);
        break;
    case 5: /* a shared entry whose record is garbage */
        klen = store_key_msg(key, 777);
        put_raw(key, klen, "garbage", 7);
        klen = store_key_qentry(key, id, 100);
        val[0] = 0x01;
        bytes_put64(val + 1, 777);
        put_raw(key, klen, val, 9);
        break;
    case 6: /* a delivery watermark that is not a u64 */
        klen = store_key_delivered(key, id);
        put_raw(key, klen, "abc", 3);
        break;
    case 7: /* a purge marker without its range */
        put_raw(purged_prefix, sizeof(purged_prefix) - 1, "", 0);
        break;
    case 8: /* an entry in lane 1 of a queue without priorities */
        klen = store_key_qentry(key, id, ((uint64_t)1 << QUEUE_LANE_SHIFT) + 1);
        put_raw(key, klen, "\x00", 1);
        break;
    case 9: /* a watermark of two lanes for a queue without priorities */
        klen = store_key_delivered(key, id);
        memset(val, 0, 16);
        put_raw(key, klen, val, 16);
        break;
    }
    broker_close();

    /* Twice: a failed start leaves the data as it was. */
    for (int round = 0; round < 2; round++) {
        char err[512] = "";
        st = store_open(data_dir, NULL, base, err, sizeof(err));
        ck_assert_msg(st != NULL, "%s", err);
        d = durable_new(st, base);
        ck_assert_ptr_nonnull(d);
        vhost_registry_init(&reg);
        ck_assert_ptr_nonnull(vhost_add(&reg, "/"));
        ck_assert_int_eq(durable_recover(d, &reg, err, sizeof(err)), -1);
        ck_assert_msg(strstr(err, corrupt_cases[_i].what) != NULL, "case %d: error '%s'", _i, err);
        ck_assert_ptr_null(reg.durable);
        durable_submit_pending(d);
        ck_assert_msg(store_close(st, err, sizeof(err)) == 0, "%s", err);
        durable_free(d);
        vhost_registry_clear(&reg);
        st = NULL;
        d = NULL;
    }
}
END_TEST

static Suite *
durable_suite(void)
{
    Suite *s = suite_create("durable");
    TCase *tc = tcase_create("entities");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_entities);
    tcase_add_test(tc, test_entity_removal);
    tcase_add_test(tc, test_cluster_entities);
    tcase_add_test(tc, test_replica_image);
    suite_add_tcase(s, tc);

    tc = tcase_create("messages");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_persistent_messages);
    tcase_add_test(tc, test_settle_requeue_redelivered);
    tcase_add_test(tc, test_shared_message);
    tcase_add_test(tc, test_purge_and_delete);
    tcase_add_test(tc, test_watermark_after_restart);
    tcase_add_test(tc, test_priority_store_before_lanes);
    tcase_add_test(tc, test_teardown_clear_first);
    suite_add_tcase(s, tc);

    tc = tcase_create("paging");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_paging);
    tcase_add_test(tc, test_paging_restart);
    tcase_add_test(tc, test_paging_restart_no_wait);
    tcase_add_test(tc, test_paged_delete_keeps_shared);
    tcase_add_test(tc, test_paged_entries_missing);
    tcase_add_test(tc, test_delivery_count_restart);
    tcase_add_test(tc, test_pageout_batch_fails);
    tcase_add_loop_test(tc, test_paged_drop_shared, 0, N_ELEMS(shared_drop_cases));
    tcase_add_loop_test(tc, test_priority_paging, 0, N_ELEMS(prio_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("corrupt");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_corrupt, 0, N_ELEMS(corrupt_cases));
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(durable_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    libevent_global_shutdown();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
