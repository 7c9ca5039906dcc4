/* warren-perf's consumer thread: basic.qos, basic.consume once the run starts, then reads
 * deliveries in large chunks. Only the first 8 body bytes are looked at (the producer's send
 * time): the latency is recorded in the thread's histogram, no copy of the body is made. With
 * manual acks, one basic.ack goes out per --multiple-ack messages (multiple=true, or a single
 * ack when that is 1); acks are queued and flushed whenever the input buffer runs dry, so a
 * burst of deliveries is answered with one send(). With --priorities it counts the
 * deliveries whose priority is above the one before (0 when a backlog drains in priority
 * order; about 45% of them with 10 levels delivered in FIFO order). At the end: the last ack,
 * basic.cancel, and the channel and connection close. */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "perf.h"
#include "warren/bytes.h"

enum cons_state {
    CONS_METHOD = 0, /* waiting for basic.deliver */
    CONS_HEADER,     /* for its content header */
    CONS_BODY,       /* for its body frames */
};

struct cons {
    struct perf_worker *w; /* borrows */
    const struct perf_opts *o;
    struct perf_conn c;
    char tag[64]; /* consumer tag */
    enum cons_state st;
    uint64_t dtag;    /* delivery tag of the message being read */
    uint64_t left;    /* body bytes still to come */
    uint8_t stamp[8]; /* first body bytes: the send time */
    size_t stamp_len;
    uint64_t received;
    uint64_t last_tag; /* latest delivery tag not yet acked */
    uint32_t unacked;
    int last_priority; /* of the previous delivery; -1 before the first */
    uint64_t priority_rises;
};

static void
cons_ack(struct cons *k, uint64_t tag, bool multiple)
{
    struct wire_method m = {.id = WIRE_BASIC_ACK};
    m.u.basic_ack.delivery_tag = tag;
    m.u.basic_ack.multiple = multiple;
    perf_conn_put_method(&k->c, PERF_CHANNEL, &m);
}

/* A whole message is in. */
static void
cons_complete(struct cons *k)
{
    struct perf_worker *w = k->w;
    uint64_t now = perf_now_ns();
    if (k->stamp_len == sizeof k->stamp) {
        uint64_t sent = bytes_get64(k->stamp);
        perf_hist_record(&w->hist, now > sent ? now - sent : 0);
    }
    k->received++;
    if (atomic_load_explicit(&w->first_ns, memory_order_relaxed) == 0)
        atomic_store_explicit(&w->first_ns, now, memory_order_relaxed);
    atomic_store_explicit(&w->last_ns, now, memory_order_relaxed);
    atomic_store_explicit(&w->received, k->received, memory_order_relaxed);
    if (k->o->auto_ack)
        return;
    k->last_tag = k->dtag;
    if (++k->unacked >= k->o->multiple_ack) {
        cons_ack(k, k->dtag, k->o->multiple_ack > 1);
        k->unacked = 0;
    }
}

/* 0, or -1 with k->c.err set. */
static int
cons_on_frame(struct cons *k, const struct perf_in *in)
{
    const struct frame *f = &in->f;
    switch (f->type) {
    case WIRE_FRAME_METHOD:
        if (in->m.id == WIRE_BASIC_DELIVER) {
            if (k->st != CONS_METHOD)
                return perf_conn_fail(&k->c, "basic.deliver in the middle of a message");
            k->dtag = in->m.u.basic_deliver.delivery_tag;
            k->st = CONS_HEADER;
        } else if (in->m.id == WIRE_BASIC_CANCEL) {
            return perf_conn_fail(&k->c, "the server cancelled the consumer (queue deleted?)");
        }
        return 0;
    case WIRE_FRAME_HEADER:
        if (k->st != CONS_HEADER)
            return perf_conn_fail(&k->c, "content header without basic.deliver");
        k->left = in->header.body_size;
        k->stamp_len = 0;
        if (k->o->priorities > 0) {
            int prio = in->props.flags & WIRE_BASIC_PRIORITY_FLAG ? in->props.priority : 0;
            if (k->last_priority >= 0 && prio > k->last_priority)
                atomic_store_explicit(&k->w->priority_rises, ++k->priority_rises,
                                      memory_order_relaxed);
            k->last_priority = prio;
        }
        k->st = CONS_BODY;
        if (k->left == 0) {
            k->st = CONS_METHOD;
            cons_complete(k);
        }
        return 0;
    case WIRE_FRAME_BODY:
        if (k->st != CONS_BODY || f->size > k->left)
            return perf_conn_fail(&k->c, "unexpected body frame (%u bytes)", f->size);
        if (k->stamp_len < sizeof k->stamp) {
            size_t n = sizeof k->stamp - k->stamp_len;
            n = f->size < n ? f->size : n;
            memcpy(k->stamp + k->stamp_len, f->payload, n);
            k->stamp_len += n;
        }
        k->left -= f->size;
        if (k->left == 0) {
            k->st = CONS_METHOD;
            cons_complete(k);
        }
        return 0;
    default:
        return 0;
    }
}

static int
cons_run(struct cons *k)
{
    struct perf_run *run = k->w->run;
    struct perf_in in;
    struct wire_method m = {.id = WIRE_BASIC_CONSUME};

    m.u.basic_consume.queue =
        (struct wire_str){(const uint8_t *)k->w->queue, (uint32_t)strlen(k->w->queue)};
    m.u.basic_consume.consumer_tag =
        (struct wire_str){(const uint8_t *)k->tag, (uint32_t)strlen(k->tag)};
    m.u.basic_consume.no_ack = k->o->auto_ack;
    if (perf_conn_rpc(&k->c, &m, WIRE_BASIC_CONSUME_OK, NULL, PERF_RPC_TIMEOUT_MS) < 0)
        return -1;
    for (;;) {
        /* Deliveries completed after the stop are not counted. */
        if (atomic_load_explicit(&run->stop_consumers, memory_order_relaxed))
            break;
        if (k->c.wlen > 0 && !perf_conn_buffered(&k->c) && perf_conn_flush(&k->c) < 0)
            return -1;
        int r = perf_conn_next(&k->c, 100, &in);
        if (r < 0)
            return -1;
        if (r == 1 && cons_on_frame(k, &in) < 0)
            return -1;
    }
    if (k->unacked > 0)
        cons_ack(k, k->last_tag, true);
    m = (struct wire_method){.id = WIRE_BASIC_CANCEL};
    m.u.basic_cancel.consumer_tag =
        (struct wire_str){(const uint8_t *)k->tag, (uint32_t)strlen(k->tag)};
    return perf_conn_rpc(&k->c, &m, WIRE_BASIC_CANCEL_OK, NULL, PERF_RPC_TIMEOUT_MS);
}

void *
perf_consumer_main(void *arg)
{
    struct cons k = {.w = arg, .o = ((struct perf_worker *)arg)->run->opts, .last_priority = -1};
    struct perf_worker *w = k.w;
    char tname[16];
    snprintf(tname, sizeof tname, "wp-cons-%u", w->id % 10000);
    pthread_setname_np(pthread_self(), tname); /* for top -H */
    snprintf(k.tag, sizeof k.tag, "warren-perf-%u", w->id);
    bool ok = perf_conn_open(&k.c, k.o, w->name, &w->run->abort) == 0;
    if (ok && !k.o->auto_ack && k.o->prefetch > 0) {
        struct wire_method m = {.id = WIRE_BASIC_QOS};
        m.u.basic_qos.prefetch_count = (uint16_t)k.o->prefetch;
        ok = perf_conn_rpc(&k.c, &m, WIRE_BASIC_QOS_OK, NULL, PERF_RPC_TIMEOUT_MS) == 0;
    }
    if (!ok)
        perf_worker_fail(w, k.c.err);
    if (perf_worker_ready(w, ok) == 0 && cons_run(&k) < 0)
        perf_worker_fail(w, k.c.err);
    perf_conn_close(&k.c, PERF_RPC_TIMEOUT_MS);
    atomic_store(&w->exited, true);
    return NULL;
}
