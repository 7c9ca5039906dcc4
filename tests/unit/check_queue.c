/* Unit tests for src/broker/queue.c: each queue command (enqueue, deliver, settle, requeue,
 * purge), the original-position rule for requeued entries (also for 20,000 requeued in the
 * worst order), dispatch (round robin, consumer priority, capacity, a refused delivery,
 * parking: a full consumer is asked once until woken, however many messages go by),
 * single active consumer (registration order, failover, priorities as RabbitMQ 3.12+ with
 * the quiescing hand-over), consumer bookkeeping (exclusive, auto-delete), deletion detaching
 * consumers and unacked entries, TTLs (at the head only, TTL 0, per message) and limits
 * (drop-head by count and bytes, reject-publish, delivery limit, a lower limit applied at
 * once), and priority queues (order, the maximum, requeue within a priority, purge, dispatch
 * under prefetch). Consumers here are test doubles whose capacity the test sets. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "warren/msg.h"
#include "warren/queue.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* A consumer double: takes up to `capacity` entries, keeping them in order. */
struct fake_cons {
    struct cons base;
    int capacity; /* how many more it may take */
    int asked;    /* can_take calls */
    bool refuse;  /* deliver fails */
    struct qentry *got[64];
    int n_got;
    int unsettled; /* of got: what the test has not settled (settle_all) */
    bool deleted;
};

static bool
fake_can_take(struct cons *c)
{
    struct fake_cons *f = (struct fake_cons *)c;
    f->asked++;
    return f->capacity > 0;
}

static int
fake_deliver(struct cons *c, struct qentry *e)
{
    struct fake_cons *f = (struct fake_cons *)c;
    if (f->refuse)
        return -1;
    f->capacity--;
    if (f->n_got < (int)N_ELEMS(f->got)) {
        f->got[f->n_got] = e;
        f->unsettled++;
    } else {
        queue_cmd_settle(e); /* the big tests keep count only */
    }
    f->n_got++;
    return 0;
}

static uint32_t
fake_unsettled(const struct cons *c)
{
    return (uint32_t)((const struct fake_cons *)c)->unsettled;
}

static void
fake_queue_deleted(struct cons *c)
{
    ((struct fake_cons *)c)->deleted = true;
}

static const struct cons_ops fake_ops = {fake_can_take, fake_unsettled, fake_deliver,
                                         fake_queue_deleted};

static void
fake_init(struct fake_cons *f, int capacity, int32_t priority)
{
    memset(f, 0, sizeof(*f));
    f->base.ops = &fake_ops;
    f->base.priority = priority;
    f->capacity = capacity;
}

static struct queue *
new_queue(bool auto_delete)
{
    struct queue *q =
        queue_new(NULL, WIRE_STR_LIT("q"), false, auto_delete, NULL, (struct wire_table){NULL, 0});
    ck_assert_ptr_nonnull(q);
    return q;
}

/* A queue declared with x-single-active-consumer = true. */
static struct queue *
new_sac_queue(void)
{
    static const uint8_t args[] = "\x18x-single-active-consumer"
                                  "t\x01";
    struct queue *q = queue_new(NULL, WIRE_STR_LIT("sac"), false, false, NULL,
                                (struct wire_table){args, sizeof(args) - 1});
    ck_assert_ptr_nonnull(q);
    ck_assert(q->settings.single_active_consumer);
    return q;
}

/* Settles what f was given and has not settled yet. */
static void
settle_all(struct fake_cons *f)
{
    for (int i = f->n_got - f->unsettled; i < f->n_got; i++)
        queue_cmd_settle(f->got[i]);
    f->unsettled = 0;
}

/* Enqueues messages whose routing keys are "0", "1", ... so tests can tell them apart. */
static void
enqueue_n(struct queue *q, int n)
{
    static const char *const keys[] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
    for (int i = 0; i < n; i++) {
        struct msg *m = msg_new(NULL, 0, 1, 0, WIRE_STR_LIT(""),
                                (struct wire_str){(const uint8_t *)keys[i], 1}, 0);
        ck_assert_ptr_nonnull(m);
        ck_assert_int_eq(queue_cmd_enqueue(q, m), 0);
        msg_unref(&m); /* the queue holds its own reference */
    }
}

static char
key_of(const struct qentry *e)
{
    return (char)e->msg->routing_key[0];
}

/* The ready entries' keys, in order, as a string. */
static const char *
ready_keys(const struct queue *q)
{
    static char buf[64];
    int n = 0;
    const struct qentry *e;
    TAILQ_FOREACH(e, &q->lanes[0].ready, link)
        buf[n++] = key_of(e);
    buf[n] = '\0';
    return buf;
}

/* Delivers every ready entry in order: their keys as a string, with a '*' after each
 * redelivered one; every entry is settled. */
static const char *
delivery_order(struct queue *q)
{
    static char buf[128];
    int n = 0;
    struct qentry *e;
    while ((e = queue_cmd_deliver(q)) != NULL) {
        buf[n++] = key_of(e);
        if (e->redelivered)
            buf[n++] = '*';
        queue_cmd_settle(e);
    }
    buf[n] = '\0';
    return buf;
}

START_TEST(test_enqueue_deliver_settle)
{
    uint64_t live = msg_bytes_live;
    struct queue *q = new_queue(false);
    enqueue_n(q, 3);
    ck_assert_uint_eq(q->n_ready, 3);
    ck_assert_str_eq(ready_keys(q), "012");
    struct qentry *e = queue_cmd_deliver(q);
    ck_assert_int_eq(key_of(e), '0');
    ck_assert(!e->redelivered);
    ck_assert_uint_eq(q->n_ready, 2);
    ck_assert_uint_eq(q->n_unacked, 1);
    queue_cmd_settle(e);
    ck_assert_uint_eq(q->n_unacked, 0);
    ck_assert_uint_eq(queue_free(q, NULL, NULL), 2);
    ck_assert_uint_eq(msg_bytes_live, live); /* every message was freed */
}
END_TEST

START_TEST(test_deliver_empty)
{
    struct queue *q = new_queue(false);
    ck_assert_ptr_null(queue_cmd_deliver(q));
    queue_free(q, NULL, NULL);
}
END_TEST

/* Requeued entries go back to their original positions whatever the requeue order. */
static const struct {
    const char *order; /* which delivered entries (by key) to requeue, in that order */
    const char *want;  /* delivery order afterwards (entries 4 and 5 were never delivered) */
} requeues[] = {
    {"0", "0*45"},          {"3", "3*45"},    {"03", "0*3*45"}, {"30", "0*3*45"},
    {"2130", "0*1*2*3*45"}, {"12", "1*2*45"}, {"", "45"},
};

START_TEST(test_requeue_original_position)
{
    struct queue *q = new_queue(false);
    enqueue_n(q, 6);
    struct qentry *delivered[4];
    for (int i = 0; i < 4; i++)
        delivered[i] = queue_cmd_deliver(q);
    const char *order = requeues[_i].order;
    bool requeued[4] = {false};
    for (const char *p = order; *p != '\0'; p++) {
        queue_cmd_requeue(delivered[*p - '0']);
        requeued[*p - '0'] = true;
    }
    for (int i = 0; i < 4; i++)
        if (!requeued[i])
            queue_cmd_settle(delivered[i]);
    ck_assert_str_eq(delivery_order(q), requeues[_i].want);
    queue_free(q, NULL, NULL);
}
END_TEST

/* 20,000 entries delivered, then requeued one by one in increasing seq order (each lands
 * behind all those requeued before it: what a list walk made quadratic), with never-delivered
 * entries behind them: all come back in seq order, the requeued ones redelivered. */
START_TEST(test_requeue_many)
{
    enum { N = 20000, FRESH = 10 };
    struct queue *q = new_queue(false);
    struct qentry **e = calloc(N, sizeof(*e));
    ck_assert_ptr_nonnull(e);
    for (int i = 0; i < N + FRESH; i++) {
        struct msg *m = msg_new(NULL, 0, 1, 0, WIRE_STR_LIT(""), WIRE_STR_LIT("k"), 0);
        ck_assert_ptr_nonnull(m);
        ck_assert_int_eq(queue_cmd_enqueue(q, m), 0);
        msg_unref(&m);
    }
    for (int i = 0; i < N; i++)
        e[i] = queue_cmd_deliver(q);
    for (int i = 0; i < N; i++)
        queue_cmd_requeue(e[_i == 0 ? i : N - 1 - i]);
    ck_assert_uint_eq(q->n_ready, N + FRESH);
    for (uint64_t seq = 1; seq <= N + FRESH; seq++) {
        struct qentry *got = queue_cmd_deliver(q);
        ck_assert_uint_eq(got->seq, seq);
        ck_assert(got->redelivered == (seq <= N));
        queue_cmd_settle(got);
    }
    ck_assert_ptr_null(queue_cmd_deliver(q));
    free(e);
    queue_free(q, NULL, NULL);
}
END_TEST

START_TEST(test_purge_keeps_unacked)
{
    struct queue *q = new_queue(false);
    enqueue_n(q, 5);
    struct qentry *e = queue_cmd_deliver(q);
    ck_assert_uint_eq(queue_cmd_purge(q), 4);
    ck_assert_uint_eq(q->n_ready, 0);
    ck_assert_uint_eq(q->n_unacked, 1);
    queue_cmd_requeue(e); /* a purge does not touch what was delivered */
    ck_assert_str_eq(delivery_order(q), "0*");
    enqueue_n(q, 3);
    e = queue_cmd_deliver(q);
    queue_cmd_requeue(e);
    ck_assert_uint_eq(queue_cmd_purge(q), 3); /* requeued ones too */
    ck_assert_str_eq(delivery_order(q), "");
    queue_free(q, NULL, NULL);
}
END_TEST

/* A queue declared with x-max-priority max (0: none). */
static struct queue *
new_priority_queue(int max)
{
    uint8_t buf[64];
    struct wire_writer w;
    wire_writer_init(&w, buf, sizeof(buf));
    wire_table_put_i64(&w, "x-max-priority", max);
    struct queue *q = queue_new(NULL, WIRE_STR_LIT("q"), false, false, NULL,
                                (struct wire_table){buf, (uint32_t)wire_writer_len(&w)});
    ck_assert_ptr_nonnull(q);
    return q;
}

/* Enqueues the messages spec names: "a0 b3" is routing key "a" with priority 0, then "b"
 * with priority 3 (one key letter, one priority digit each). */
static void
enqueue_spec(struct queue *q, const char *spec)
{
    for (const char *p = spec; p[0] != '\0'; p += p[2] == ' ' ? 3 : 2) {
        struct msg *m = msg_new(NULL, 0, 1, (uint8_t)(p[1] - '0'), WIRE_STR_LIT(""),
                                (struct wire_str){(const uint8_t *)p, 1}, 0);
        ck_assert_ptr_nonnull(m);
        ck_assert_int_eq(queue_cmd_enqueue(q, m), 0);
        msg_unref(&m);
    }
}

/* Priority queues: delivery in priority order (above the maximum counts as the maximum),
 * FIFO within one; requeued entries go back to their place within their priority. */
static const struct {
    int max;             /* x-max-priority */
    const char *spec;    /* enqueued, as enqueue_spec */
    int n_deliver;       /* delivered first */
    const char *requeue; /* of those, which to requeue (by delivery index), in that order; the
                          * others are settled */
    const char *want;    /* delivery order afterwards, '*' after a redelivered one */
} prio_cases[] = {
    {5, "a0 b3 c3 d9 e1", 0, "", "dbcea"}, /* 9 counts as 5 */
    {5, "a5 b9 c7 d5", 0, "", "abcd"},     /* all at the maximum: FIFO */
    {9, "a0 b0 c0", 0, "", "abc"},         /* no priority given: 0, FIFO */
    {0, "a0 b9 c3", 0, "", "abc"},         /* x-max-priority 0: one lane, FIFO */
    {9, "a1 b2 c9 d2 e1", 3, "0", "c*ae"}, /* delivered c b d: c back at the top */
    {9, "a1 b2 c9 d2 e1", 3, "21", "b*d*ae"},
    {9, "a1 b2 c9 d2 e1", 4, "310", "c*b*a*e"},
    {3, "a1 b1 c1 d1", 3, "20", "a*c*d"}, /* requeued in the other order: seq order */
    {3, "a1 b2 c3", 2, "10", "c*b*a"},    /* requeued below an entry never delivered */
};

START_TEST(test_priority_order)
{
    struct queue *q = new_priority_queue(prio_cases[_i].max);
    ck_assert_uint_eq(q->n_lanes, prio_cases[_i].max + 1);
    enqueue_spec(q, prio_cases[_i].spec);
    struct qentry *delivered[8];
    bool requeued[8] = {false};
    for (int i = 0; i < prio_cases[_i].n_deliver; i++)
        delivered[i] = queue_cmd_deliver(q);
    for (const char *p = prio_cases[_i].requeue; *p != '\0'; p++) {
        queue_cmd_requeue(delivered[*p - '0']);
        requeued[*p - '0'] = true;
    }
    for (int i = 0; i < prio_cases[_i].n_deliver; i++)
        if (!requeued[i])
            queue_cmd_settle(delivered[i]);
    ck_assert_str_eq(delivery_order(q), prio_cases[_i].want);
    ck_assert_uint_eq(q->n_ready, 0);
    queue_free(q, NULL, NULL);
}
END_TEST

/* Purge and deletion take every lane's entries, requeued ones too (the sanitizers check that
 * none is left behind); new entries after a purge are delivered by priority again. */
START_TEST(test_priority_purge_free)
{
    struct queue *q = new_priority_queue(255);
    enqueue_spec(q, "a0 b9 c4 d9 e0");
    struct qentry *e = queue_cmd_deliver(q);
    ck_assert_int_eq(key_of(e), 'b');
    queue_cmd_requeue(e);
    ck_assert_uint_eq(queue_cmd_purge(q), 5);
    ck_assert_uint_eq(q->n_ready, 0);
    ck_assert_ptr_null(queue_cmd_deliver(q));
    enqueue_spec(q, "f1 g2 h0");
    ck_assert_int_eq(key_of(e = queue_cmd_deliver(q)), 'g');
    queue_cmd_requeue(e);
    ck_assert_uint_eq(queue_free(q, NULL, NULL), 3);
}
END_TEST

/* Dispatch under prefetch: a consumer that can take 2 gets the two highest, and when it has
 * room again, a higher priority that arrived in the meantime goes before the rest. */
START_TEST(test_priority_dispatch)
{
    struct queue *q = new_priority_queue(9);
    struct fake_cons c;
    fake_init(&c, 2, 0);
    enqueue_spec(q, "a1 b5 c3 d5");
    queue_consumer_add(q, &c.base);
    queue_dispatch(q);
    ck_assert_int_eq(c.n_got, 2);
    ck_assert_int_eq(key_of(c.got[0]), 'b');
    ck_assert_int_eq(key_of(c.got[1]), 'd');
    enqueue_spec(q, "e9 f0");
    c.capacity = 3;
    queue_consumer_wake(&c.base);
    ck_assert_int_eq(c.n_got, 5);
    ck_assert_int_eq(key_of(c.got[2]), 'e');
    ck_assert_int_eq(key_of(c.got[3]), 'c');
    ck_assert_int_eq(key_of(c.got[4]), 'a');
    queue_cmd_requeue(c.got[2]); /* e, back before anything else */
    c.capacity = 1;
    queue_consumer_wake(&c.base);
    ck_assert_int_eq(key_of(c.got[5]), 'e');
    ck_assert(c.got[5]->redelivered);
    for (int i = 0; i < c.n_got; i++)
        if (i != 2)
            queue_cmd_settle(c.got[i]);
    ck_assert(!queue_consumer_remove(&c.base));
    ck_assert_str_eq(delivery_order(q), "f");
    queue_free(q, NULL, NULL);
}
END_TEST

START_TEST(test_dispatch_round_robin)
{
    struct queue *q = new_queue(false);
    struct fake_cons a, b;
    fake_init(&a, 10, 0);
    fake_init(&b, 10, 0);
    queue_consumer_add(q, &a.base);
    queue_consumer_add(q, &b.base);
    enqueue_n(q, 6);
    queue_dispatch(q);
    ck_assert_int_eq(a.n_got, 3);
    ck_assert_int_eq(b.n_got, 3);
    ck_assert_int_eq(key_of(a.got[0]), '0');
    ck_assert_int_eq(key_of(b.got[0]), '1');
    ck_assert_int_eq(key_of(a.got[1]), '2');
    for (int i = 0; i < 3; i++) {
        queue_cmd_settle(a.got[i]);
        queue_cmd_settle(b.got[i]);
    }
    queue_consumer_remove(&a.base);
    queue_consumer_remove(&b.base);
    queue_free(q, NULL, NULL);
}
END_TEST

START_TEST(test_dispatch_capacity_and_priority)
{
    struct queue *q = new_queue(false);
    struct fake_cons low, high, full;
    fake_init(&low, 10, 0);
    fake_init(&high, 2, 5);
    fake_init(&full, 0, 9); /* highest priority but no room: skipped */
    queue_consumer_add(q, &low.base);
    queue_consumer_add(q, &high.base);
    queue_consumer_add(q, &full.base);
    enqueue_n(q, 5);
    queue_dispatch(q);
    ck_assert_int_eq(full.n_got, 0);
    ck_assert_int_eq(high.n_got, 2); /* until it is full */
    ck_assert_int_eq(low.n_got, 3);  /* then the lower priority gets the rest */
    ck_assert_int_eq(key_of(high.got[0]), '0');
    ck_assert_int_eq(key_of(high.got[1]), '1');
    ck_assert_int_eq(key_of(low.got[0]), '2');
    /* Room again: nothing left to give. */
    full.capacity = 1;
    queue_consumer_wake(&full.base);
    ck_assert_int_eq(full.n_got, 0);
    /* Entries still unacked when the queue goes are detached, not freed under their owner. */
    struct qentry *kept = low.got[0];
    for (int i = 1; i < low.n_got; i++)
        queue_cmd_settle(low.got[i]);
    for (int i = 0; i < high.n_got; i++)
        queue_cmd_settle(high.got[i]);
    ck_assert_uint_eq(queue_free(q, NULL, NULL), 0);
    ck_assert(low.deleted && high.deleted && full.deleted);
    ck_assert_ptr_null(low.base.queue);
    ck_assert_ptr_null(kept->queue);
    queue_cmd_requeue(kept); /* its queue is gone: it is just freed */
}
END_TEST

START_TEST(test_dispatch_refused_delivery)
{
    struct queue *q = new_queue(false);
    struct fake_cons a;
    fake_init(&a, 10, 0);
    a.refuse = true;
    queue_consumer_add(q, &a.base);
    enqueue_n(q, 2);
    queue_dispatch(q);
    ck_assert_uint_eq(q->n_ready, 2);
    ck_assert_uint_eq(q->n_unacked, 0);
    ck_assert_int_eq(a.asked, 1); /* refused once, then parked */
    queue_consumer_remove(&a.base);
    ck_assert_str_eq(delivery_order(q), "01"); /* not redelivered: never reached the client */
    queue_free(q, NULL, NULL);
}
END_TEST

/* A consumer that cannot take a message is parked: asked once, however many messages go by,
 * until queue_consumer_wake; then it rejoins the round robin at its back. 2,000 full
 * consumers cost 2,000 questions for 1,000 messages, not 2,000,000. */
START_TEST(test_dispatch_parks_full_consumers)
{
    enum { FULL = 2000, MSGS = 1000 };
    struct queue *q = new_queue(false);
    struct fake_cons *full = calloc(FULL, sizeof(*full));
    struct fake_cons a, b;
    ck_assert_ptr_nonnull(full);
    for (int i = 0; i < FULL; i++) {
        fake_init(&full[i], 0, 0);
        queue_consumer_add(q, &full[i].base);
    }
    fake_init(&a, MSGS, 0);
    queue_consumer_add(q, &a.base);
    for (int i = 0; i < MSGS; i++) {
        enqueue_n(q, 1);
        queue_dispatch(q);
    }
    ck_assert_int_eq(a.n_got, MSGS);
    long asked = 0;
    for (int i = 0; i < FULL; i++)
        asked += full[i].asked;
    ck_assert_int_eq(asked, FULL);
    /* Capacity comes back without a wake: it stays parked. With one, it takes again, after
     * a, which was served before it woke. */
    fake_init(&b, 2, 0);
    queue_consumer_add(q, &b.base);
    full[7].capacity = 2;
    enqueue_n(q, 2);
    queue_dispatch(q);
    ck_assert_int_eq(full[7].n_got, 0);
    ck_assert_int_eq(b.n_got, 2);
    a.capacity = 1;
    queue_consumer_wake(&full[7].base);
    queue_consumer_wake(&a.base); /* not parked: a no-op but for the dispatch */
    enqueue_n(q, 2);
    queue_dispatch(q);
    ck_assert_int_eq(a.n_got, MSGS + 1);
    ck_assert_int_eq(full[7].n_got, 1);
    for (int i = 0; i < FULL; i++)
        for (int k = 0; k < full[i].n_got; k++)
            queue_cmd_settle(full[i].got[k]);
    for (int k = 0; k < b.n_got; k++)
        queue_cmd_settle(b.got[k]);
    for (int k = 0; k < (int)N_ELEMS(a.got); k++)
        queue_cmd_settle(a.got[k]);
    queue_consumer_remove(&a.base);
    queue_consumer_remove(&b.base);
    for (int i = 0; i < FULL; i++)
        queue_consumer_remove(&full[i].base);
    queue_free(q, NULL, NULL);
    free(full);
}
END_TEST

START_TEST(test_consumer_bookkeeping)
{
    struct queue *q = new_queue(true);
    struct fake_cons a, b;
    fake_init(&a, 0, 0);
    fake_init(&b, 0, 0);
    b.base.exclusive = true;
    ck_assert(!q->had_consumer);
    queue_consumer_add(q, &a.base);
    ck_assert(!queue_has_exclusive_consumer(q));
    queue_consumer_add(q, &b.base);
    ck_assert(queue_has_exclusive_consumer(q));
    ck_assert_uint_eq(q->n_consumers, 2);
    ck_assert(!queue_consumer_remove(&b.base)); /* one consumer left */
    ck_assert(queue_consumer_remove(&a.base));  /* auto-delete: the last one went */
    queue_free(q, NULL, NULL);

    q = new_queue(false);
    queue_consumer_add(q, &a.base);
    ck_assert(!queue_consumer_remove(&a.base)); /* not auto-delete */
    queue_free(q, NULL, NULL);
}
END_TEST

/* The first consumer registered gets everything, however much room the others have; when it
 * goes the next registered takes over, and so on. */
START_TEST(test_sac_registration_order)
{
    struct queue *q = new_sac_queue();
    struct fake_cons a, b, c;
    fake_init(&a, 10, 0);
    fake_init(&b, 10, 0);
    fake_init(&c, 10, 0);
    queue_consumer_add(q, &a.base);
    queue_consumer_add(q, &b.base);
    queue_consumer_add(q, &c.base);
    ck_assert_ptr_eq(q->sac_active, &a.base);
    ck_assert_uint_eq(q->n_consumers, 3);
    enqueue_n(q, 3);
    queue_dispatch(q);
    ck_assert_int_eq(a.n_got, 3);
    ck_assert_int_eq(b.n_got + c.n_got, 0);
    /* a goes with its deliveries requeued, as its channel does: b gets them, in order. */
    queue_consumer_remove(&a.base);
    ck_assert_ptr_eq(q->sac_active, &b.base);
    for (int i = 0; i < a.n_got; i++)
        queue_cmd_requeue(a.got[i]);
    enqueue_n(q, 1);
    queue_dispatch(q);
    ck_assert_int_eq(b.n_got, 4);
    ck_assert_int_eq(key_of(b.got[0]), '0');
    ck_assert(b.got[0]->redelivered);
    ck_assert_int_eq(key_of(b.got[3]), '0'); /* enqueue_n's keys start at "0" again */
    ck_assert(!b.got[3]->redelivered);
    ck_assert_int_eq(c.n_got, 0);
    /* A waiting consumer that goes changes nothing. */
    queue_consumer_remove(&c.base);
    ck_assert_ptr_eq(q->sac_active, &b.base);
    settle_all(&b);
    queue_consumer_remove(&b.base);
    ck_assert_ptr_null(q->sac_active);
    queue_free(q, NULL, NULL);
}
END_TEST

/* A full active consumer is not replaced: the others wait, and the messages too, until it
 * has room and its channel wakes it. */
START_TEST(test_sac_full_active_keeps_the_queue)
{
    struct queue *q = new_sac_queue();
    struct fake_cons a, b;
    fake_init(&a, 1, 0);
    fake_init(&b, 10, 0);
    queue_consumer_add(q, &a.base);
    queue_consumer_add(q, &b.base);
    enqueue_n(q, 3);
    queue_dispatch(q);
    ck_assert_int_eq(a.n_got, 1);
    ck_assert_int_eq(b.n_got, 0);
    ck_assert_uint_eq(q->n_ready, 2);
    ck_assert_int_eq(a.base.state, CONS_PARKED);
    ck_assert_int_eq(b.base.state, CONS_WAITING);
    queue_consumer_wake(&b.base); /* not the active one: nothing for it */
    ck_assert_int_eq(b.n_got, 0);
    a.capacity = 5;
    queue_consumer_wake(&a.base);
    ck_assert_int_eq(a.n_got, 3);
    settle_all(&a);
    queue_consumer_remove(&a.base);
    queue_consumer_remove(&b.base);
    queue_free(q, NULL, NULL);
}
END_TEST

/* Successors by priority, then registration order: a (9) is active; b (1), c (5), d (5)
 * wait; they take over in the order c, d, b. */
START_TEST(test_sac_successor_by_priority)
{
    struct queue *q = new_sac_queue();
    struct fake_cons a, b, c, d;
    fake_init(&a, 10, 9);
    fake_init(&b, 10, 1);
    fake_init(&c, 10, 5);
    fake_init(&d, 10, 5);
    queue_consumer_add(q, &a.base);
    queue_consumer_add(q, &b.base);
    queue_consumer_add(q, &c.base);
    queue_consumer_add(q, &d.base);
    ck_assert_ptr_eq(q->sac_active, &a.base);
    queue_consumer_remove(&a.base);
    ck_assert_ptr_eq(q->sac_active, &c.base);
    queue_consumer_remove(&c.base);
    ck_assert_ptr_eq(q->sac_active, &d.base);
    queue_consumer_remove(&d.base);
    ck_assert_ptr_eq(q->sac_active, &b.base);
    enqueue_n(q, 1);
    queue_dispatch(q);
    ck_assert_int_eq(b.n_got, 1);
    settle_all(&b);
    queue_consumer_remove(&b.base);
    queue_free(q, NULL, NULL);
}
END_TEST

/* A consumer of a higher priority than the active one (RabbitMQ 3.12+): it takes over at once
 * from an active one with nothing unsettled; one with deliveries unsettled quiesces (gets
 * nothing more) and hands over when woken with everything settled. */
START_TEST(test_sac_higher_priority_takes_over)
{
    struct queue *q = new_sac_queue();
    struct fake_cons a, b, c;
    fake_init(&a, 10, 0);
    fake_init(&b, 10, 5);
    fake_init(&c, 10, 7);
    queue_consumer_add(q, &a.base);
    queue_consumer_add(q, &b.base); /* a has nothing unsettled: b at once */
    ck_assert_ptr_eq(q->sac_active, &b.base);
    ck_assert_int_eq(a.base.state, CONS_WAITING);
    enqueue_n(q, 2);
    queue_dispatch(q);
    ck_assert_int_eq(b.n_got, 2);
    queue_consumer_add(q, &c.base); /* b has 2 unsettled: it quiesces */
    ck_assert_ptr_eq(q->sac_active, &b.base);
    ck_assert_int_eq(b.base.state, CONS_QUIESCING);
    enqueue_n(q, 1);
    queue_dispatch(q);
    ck_assert_int_eq(b.n_got + c.n_got + a.n_got, 2); /* nobody gets the third yet */
    queue_cmd_settle(b.got[0]);
    b.unsettled--;
    queue_consumer_wake(&b.base); /* one left: still b's */
    ck_assert_ptr_eq(q->sac_active, &b.base);
    ck_assert_int_eq(c.n_got, 0);
    settle_all(&b);
    queue_consumer_wake(&b.base);
    ck_assert_ptr_eq(q->sac_active, &c.base);
    ck_assert_int_eq(b.base.state, CONS_WAITING);
    ck_assert_int_eq(c.n_got, 1);
    settle_all(&c);
    /* c goes: b (5) before a (0), though a registered first. */
    queue_consumer_remove(&c.base);
    ck_assert_ptr_eq(q->sac_active, &b.base);
    queue_consumer_remove(&a.base);
    queue_consumer_remove(&b.base);
    queue_free(q, NULL, NULL);
}
END_TEST

/* The rival of a quiescing consumer goes before the hand-over: the active one resumes. */
START_TEST(test_sac_quiescing_resumes)
{
    struct queue *q = new_sac_queue();
    struct fake_cons a, b;
    fake_init(&a, 10, 0);
    fake_init(&b, 10, 5);
    queue_consumer_add(q, &a.base);
    enqueue_n(q, 1);
    queue_dispatch(q);
    queue_consumer_add(q, &b.base);
    ck_assert_int_eq(a.base.state, CONS_QUIESCING);
    queue_consumer_remove(&b.base);
    ck_assert_ptr_eq(q->sac_active, &a.base);
    ck_assert_int_eq(a.base.state, CONS_READY);
    enqueue_n(q, 1);
    queue_dispatch(q);
    ck_assert_int_eq(a.n_got, 2);
    settle_all(&a);
    queue_consumer_remove(&a.base);
    queue_free(q, NULL, NULL);
}
END_TEST

/* Deleting the queue detaches the active and the waiting consumers alike. */
START_TEST(test_sac_queue_deleted)
{
    struct queue *q = new_sac_queue();
    struct fake_cons a, b, c;
    fake_init(&a, 10, 0);
    fake_init(&b, 10, 0);
    fake_init(&c, 10, 5);
    queue_consumer_add(q, &a.base);
    enqueue_n(q, 1);
    queue_dispatch(q);
    queue_consumer_add(q, &b.base);
    queue_consumer_add(q, &c.base); /* a quiesces */
    struct qentry *kept = a.got[0];
    queue_free(q, NULL, NULL);
    ck_assert(a.deleted && b.deleted && c.deleted);
    ck_assert_ptr_null(kept->queue);
    queue_cmd_settle(kept);
}
END_TEST

/* ---- TTLs and limits ---- */

/* Gives q these settings through queue_settings_set, as a policy would. */
static void
set_ttl_and_limits(struct queue *q, int64_t ttl, int64_t max_length, int64_t max_bytes,
                   enum queue_overflow overflow, int64_t delivery_limit)
{
    struct queue_settings s;
    queue_settings_init(&s);
    s.message_ttl = ttl;
    s.max_length = max_length;
    s.max_length_bytes = max_bytes;
    s.overflow = overflow;
    s.delivery_limit = delivery_limit;
    queue_settings_set(q, &s);
}

#define NONE QUEUE_SETTING_NONE

/* A message with routing key key, a body of body_len bytes and an expiration (-1: none). */
static struct msg *
new_msg(char key, uint64_t body_len, int64_t expiration_ms)
{
    struct msg *m = msg_new(NULL, 0, 1, 0, WIRE_STR_LIT(""),
                            (struct wire_str){(const uint8_t *)&key, 1}, body_len);
    ck_assert_ptr_nonnull(m);
    msg_body_filled(m, (uint32_t)body_len);
    m->expiration_ms = expiration_ms;
    return m;
}

/* Enqueues and dispatches as a publish does. */
static void
publish(struct queue *q, char key, uint64_t body_len, int64_t expiration_ms)
{
    struct msg *m = new_msg(key, body_len, expiration_ms);
    ck_assert_int_eq(queue_cmd_enqueue(q, m), 0);
    msg_unref(&m);
    queue_publish_dispatch(q);
}

START_TEST(test_ttl_expires_at_head)
{
    struct queue *q = new_queue(false);
    set_ttl_and_limits(q, 0, NONE, NONE, QUEUE_OVERFLOW_DROP_HEAD, NONE);
    enqueue_n(q, 3); /* not dispatched: their TTL of 0 passes before anyone looks */
    ck_assert_uint_eq(q->n_ready, 3);
    ck_assert_ptr_null(queue_cmd_deliver(q)); /* expired entries are never delivered */
    ck_assert_uint_eq(q->n_ready, 0);
    ck_assert_uint_eq(q->ready_bytes, 0);
    queue_free(q, NULL, NULL);
}
END_TEST

/* TTL 0: to a consumer that can take it at once, else gone (as RabbitMQ). */
START_TEST(test_ttl_zero)
{
    struct queue *q = new_queue(false);
    set_ttl_and_limits(q, 0, NONE, NONE, QUEUE_OVERFLOW_DROP_HEAD, NONE);
    struct fake_cons c;
    fake_init(&c, 1, 0);
    queue_consumer_add(q, &c.base);
    publish(q, 'a', 0, -1);
    ck_assert_int_eq(c.n_got, 1);
    publish(q, 'b', 0, -1); /* the consumer is full */
    ck_assert_uint_eq(q->n_ready, 0);
    queue_cmd_settle(c.got[0]);
    queue_consumer_remove(&c.base);
    queue_free(q, NULL, NULL);
}
END_TEST

/* Per-message expiration: the lower of it and the queue's TTL; only the head expires (an
 * expired entry behind a live one waits, as in RabbitMQ), and is never delivered. */
START_TEST(test_ttl_per_message)
{
    struct queue *q = new_queue(false);
    publish(q, 'a', 0, -1);
    publish(q, 'b', 0, 0);
    publish(q, 'c', 0, 3600000);
    ck_assert_uint_eq(q->n_ready, 3);
    ck_assert_uint_ne(TAILQ_LAST(&q->lanes[0].ready, qentry_list)->expires_at, 0);
    ck_assert_str_eq(delivery_order(q), "ac");
    set_ttl_and_limits(q, 3600000, NONE, NONE, QUEUE_OVERFLOW_DROP_HEAD, NONE);
    publish(q, 'd', 0, 0); /* the message's 0 is lower than the queue's hour */
    ck_assert_uint_eq(q->n_ready, 0);
    queue_free(q, NULL, NULL);
}
END_TEST

/* drop-head: the oldest ready entries go, by count and by body bytes. */
START_TEST(test_drop_head)
{
    struct queue *q = new_queue(false);
    set_ttl_and_limits(q, NONE, 2, NONE, QUEUE_OVERFLOW_DROP_HEAD, NONE);
    for (char k = '0'; k <= '4'; k++)
        publish(q, k, 10, -1);
    ck_assert_str_eq(ready_keys(q), "34");
    ck_assert_uint_eq(q->ready_bytes, 20);
    set_ttl_and_limits(q, NONE, NONE, 25, QUEUE_OVERFLOW_DROP_HEAD, NONE);
    publish(q, '5', 10, -1);
    ck_assert_str_eq(ready_keys(q), "45");
    /* Unacked entries do not count; requeued ones do again. */
    struct qentry *e = queue_cmd_deliver(q);
    publish(q, '6', 10, -1);
    ck_assert_str_eq(ready_keys(q), "56");
    queue_cmd_requeue(e);
    ck_assert_str_eq(delivery_order(q), "56");
    /* A lower limit applies at once. */
    publish(q, '7', 10, -1);
    publish(q, '8', 10, -1);
    set_ttl_and_limits(q, NONE, 1, NONE, QUEUE_OVERFLOW_DROP_HEAD, NONE);
    ck_assert_str_eq(ready_keys(q), "8");
    queue_free(q, NULL, NULL);
}
END_TEST

START_TEST(test_reject_publish)
{
    struct queue *q = new_queue(false);
    set_ttl_and_limits(q, NONE, 1, 15, QUEUE_OVERFLOW_REJECT_PUBLISH, NONE);
    struct msg *small = new_msg('s', 10, -1), *big = new_msg('b', 16, -1);
    ck_assert(!queue_refuses(q, small));
    ck_assert(queue_refuses(q, big)); /* 16 bytes would be over 15 */
    ck_assert_int_eq(queue_cmd_enqueue(q, small), 0);
    ck_assert(queue_refuses(q, small)); /* a second message would be over 1 */
    queue_publish_dispatch(q);
    ck_assert_uint_eq(q->n_ready, 1); /* refusing is the publisher's answer: nothing dropped */
    msg_unref(&small);
    msg_unref(&big);
    queue_free(q, NULL, NULL);
}
END_TEST

/* x-delivery-limit 1: delivered, requeued, delivered again, requeued: over the limit, gone. */
START_TEST(test_delivery_limit)
{
    struct queue *q = new_queue(false);
    set_ttl_and_limits(q, NONE, NONE, NONE, QUEUE_OVERFLOW_DROP_HEAD, 1);
    enqueue_n(q, 1);
    struct qentry *e = queue_cmd_deliver(q);
    queue_cmd_requeue(e);
    ck_assert_uint_eq(e->delivery_count, 1);
    e = queue_cmd_deliver(q);
    ck_assert_ptr_nonnull(e);
    queue_cmd_requeue(e);
    ck_assert_uint_eq(q->n_ready, 0);
    ck_assert_uint_eq(q->n_unacked, 0);
    queue_free(q, NULL, NULL);
}
END_TEST

static Suite *
queue_suite(void)
{
    Suite *s = suite_create("queue");
    TCase *tc = tcase_create("commands");
    tcase_add_test(tc, test_enqueue_deliver_settle);
    tcase_add_test(tc, test_deliver_empty);
    tcase_add_loop_test(tc, test_requeue_original_position, 0, N_ELEMS(requeues));
    tcase_add_loop_test(tc, test_requeue_many, 0, 2);
    tcase_add_test(tc, test_purge_keeps_unacked);
    suite_add_tcase(s, tc);
    tc = tcase_create("priorities");
    tcase_add_loop_test(tc, test_priority_order, 0, N_ELEMS(prio_cases));
    tcase_add_test(tc, test_priority_purge_free);
    tcase_add_test(tc, test_priority_dispatch);
    suite_add_tcase(s, tc);
    tc = tcase_create("consumers");
    tcase_add_test(tc, test_dispatch_round_robin);
    tcase_add_test(tc, test_dispatch_capacity_and_priority);
    tcase_add_test(tc, test_dispatch_refused_delivery);
    tcase_add_test(tc, test_dispatch_parks_full_consumers);
    tcase_add_test(tc, test_consumer_bookkeeping);
    suite_add_tcase(s, tc);
    tc = tcase_create("ttl and limits");
    tcase_add_test(tc, test_ttl_expires_at_head);
    tcase_add_test(tc, test_ttl_zero);
    tcase_add_test(tc, test_ttl_per_message);
    tcase_add_test(tc, test_drop_head);
    tcase_add_test(tc, test_reject_publish);
    tcase_add_test(tc, test_delivery_limit);
    suite_add_tcase(s, tc);
    tc = tcase_create("single active consumer");
    tcase_add_test(tc, test_sac_registration_order);
    tcase_add_test(tc, test_sac_full_active_keeps_the_queue);
    tcase_add_test(tc, test_sac_successor_by_priority);
    tcase_add_test(tc, test_sac_higher_priority_takes_over);
    tcase_add_test(tc, test_sac_quiescing_resumes);
    tcase_add_test(tc, test_sac_queue_deleted);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(queue_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
