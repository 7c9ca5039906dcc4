/* warren-perf's producer thread. The publish method frame and the content header frame are
 * the same for every message, so they are encoded once (with libwarren's codec) and copied;
 * each body starts with the CLOCK_MONOTONIC time of the send and a sequence number, both
 * big-endian. With --priorities N there are N such prefixes, one per priority, and each
 * message takes one at random; with --expire-at they are encoded again before each batch,
 * with the milliseconds left until that time as the expiration. Messages are written in
 * batches into the connection's output buffer and sent with one send(). In confirm mode at most
 * --confirm messages are unconfirmed: a ring indexed by delivery tag holds each one's send time (0
 * once settled), so acks (multiple or not, in any order) and nacks settle exactly the tags they
 * name, and each ack records the confirm latency (send to basic.ack) of the tags it covers in the
 * worker's histogram. --rate paces the batches against the clock. */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "perf.h"
#include "warren/assert.h"

#define BATCH_MAX 256            /* messages per send() */
#define BATCH_BYTES (256 * 1024) /* ... unless they are large */
#define SETTLE_TIMEOUT_MS 5000   /* outstanding confirms awaited at the end */
#define PREFIX_MAX 1024          /* publish method frame + content header frame */

struct prod {
    struct perf_worker *w; /* borrows */
    const struct perf_opts *o;
    struct perf_conn c;
    uint8_t *prefixes; /* owns: nprefixes of prefix_len bytes, one per priority (or just one):
                        * publish method frame + content header frame */
    unsigned nprefixes;
    size_t prefix_len;
    uint64_t rng;        /* xorshift64 state, for the priorities */
    uint8_t *body;       /* owns: the body template */
    size_t msg_len;      /* bytes one message takes on the wire */
    uint64_t seq;        /* messages published = the last delivery tag */
    uint64_t floor;      /* every tag <= floor is settled */
    uint64_t *unsettled; /* owns: confirm mode: [tag % confirm] = send time in ns while
                          * unconfirmed, 0 once settled (CLOCK_MONOTONIC is never 0) */
    uint64_t confirmed, nacked;
};

static void
put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static void
prod_settle(struct prod *p, uint64_t tag, bool multiple, bool nack)
{
    uint32_t win = p->o->confirm;
    if (tag > p->seq || tag <= p->floor)
        return; /* already settled, or never published: nothing to do */
    uint64_t now = perf_now_ns();
    for (uint64_t t = multiple ? p->floor + 1 : tag; t <= tag; t++) {
        uint64_t *sent = &p->unsettled[t % win];
        if (*sent == 0)
            continue;
        if (nack) {
            p->nacked++;
        } else {
            p->confirmed++;
            perf_hist_record(&p->w->hist, now > *sent ? now - *sent : 0);
        }
        *sent = 0;
    }
    while (p->floor < p->seq && p->unsettled[(p->floor + 1) % win] == 0)
        p->floor++;
    /* With confirms a message counts as published when it is confirmed. */
    atomic_store_explicit(&p->w->last_ns, now, memory_order_relaxed);
    atomic_store_explicit(&p->w->confirmed, p->confirmed, memory_order_relaxed);
    atomic_store_explicit(&p->w->nacked, p->nacked, memory_order_relaxed);
}

static void
prod_on_frame(struct prod *p, const struct perf_in *in)
{
    if (in->f.type != WIRE_FRAME_METHOD || p->o->confirm == 0)
        return; /* basic.return frames and their content: not mandatory, so none expected */
    if (in->m.id == WIRE_BASIC_ACK)
        prod_settle(p, in->m.u.basic_ack.delivery_tag, in->m.u.basic_ack.multiple, false);
    else if (in->m.id == WIRE_BASIC_NACK)
        prod_settle(p, in->m.u.basic_nack.delivery_tag, in->m.u.basic_nack.multiple, true);
}

/* Handles what has arrived, waiting at most timeout_ms for the first frame. */
static int
prod_read(struct prod *p, int timeout_ms)
{
    struct perf_in in;
    int r;
    while ((r = perf_conn_next(&p->c, timeout_ms, &in)) == 1) {
        prod_on_frame(p, &in);
        timeout_ms = 0;
    }
    return r;
}

/* Milliseconds until --expire-at (0 once past it), as the expiration property wants them. */
static void
prod_expiration(const struct perf_opts *o, char *buf, size_t cap)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double left_ms = (o->expire_at - (double)ts.tv_sec - (double)ts.tv_nsec / 1e9) * 1e3;
    snprintf(buf, cap, "%llu", left_ms > 0 ? (unsigned long long)left_ms + 1 : 0ull);
}

/* Encodes the frames every message shares, one prefix per priority; sets msg_len. */
static void
prod_encode(struct prod *p)
{
    const struct perf_opts *o = p->o;
    struct wire_method m = {.id = WIRE_BASIC_PUBLISH};
    struct wire_basic_props props = {.flags = WIRE_BASIC_DELIVERY_MODE_FLAG};
    const char *ex = perf_exchange(o);
    char expiration[32];
    m.u.basic_publish.exchange = (struct wire_str){(const uint8_t *)ex, (uint32_t)strlen(ex)};
    m.u.basic_publish.routing_key =
        (struct wire_str){(const uint8_t *)p->w->rkey, (uint32_t)strlen(p->w->rkey)};
    props.delivery_mode = o->persistent ? 2 : 1;
    if (o->expire_at > 0) {
        prod_expiration(o, expiration, sizeof expiration);
        props.flags |= WIRE_BASIC_EXPIRATION_FLAG;
        props.expiration = (struct wire_str){(const uint8_t *)expiration, strlen(expiration)};
    }
    if (o->priorities > 0)
        props.flags |= WIRE_BASIC_PRIORITY_FLAG;
    for (unsigned i = 0; i < p->nprefixes; i++) {
        uint8_t *dst = p->prefixes + (size_t)i * PREFIX_MAX;
        props.priority = (uint8_t)i;
        size_t n = perf_frame_method(dst, PREFIX_MAX, PERF_CHANNEL, &m);
        n += perf_frame_content_header(dst + n, PREFIX_MAX - n, PERF_CHANNEL, o->size, &props);
        p->prefix_len = n; /* the same for every priority: one octet each */
    }
    size_t chunk = p->c.frame_max - FRAME_OVERHEAD;
    size_t frames = (o->size + chunk - 1) / chunk;
    p->msg_len = p->prefix_len + o->size + frames * FRAME_OVERHEAD;
}

/* The prefixes and the body template. */
static void
prod_prepare(struct prod *p)
{
    const struct perf_opts *o = p->o;
    p->nprefixes = o->priorities > 0 ? o->priorities : 1;
    p->prefixes = malloc((size_t)p->nprefixes * PREFIX_MAX);
    p->body = malloc(o->size);
    WR_ASSERT(p->prefixes != NULL && p->body != NULL);
    for (uint32_t i = 0; i < o->size; i++)
        p->body[i] = (uint8_t)('a' + i % 26);
    p->rng = (perf_now_ns() ^ ((uint64_t)p->w->id + 1) * 0x9e3779b97f4a7c15u) | 1; /* never 0 */
    prod_encode(p);
}

/* The prefix of the next message: a random priority's with --priorities. */
static const uint8_t *
prod_next_prefix(struct prod *p)
{
    if (p->nprefixes == 1)
        return p->prefixes;
    p->rng ^= p->rng << 13;
    p->rng ^= p->rng >> 7;
    p->rng ^= p->rng << 17;
    return p->prefixes + (size_t)(p->rng % p->nprefixes) * PREFIX_MAX;
}

/* Appends n messages to the output buffer. */
static void
prod_write(struct prod *p, uint64_t n)
{
    uint32_t size = p->o->size;
    size_t chunk = p->c.frame_max - FRAME_OVERHEAD;
    if (p->o->expire_at > 0)
        prod_encode(p); /* shorter or equal: the batch stays within BATCH_BYTES */
    uint8_t *dst = perf_conn_reserve(&p->c, (size_t)n * p->msg_len), *start = dst;
    uint64_t sent_ns = 0;
    for (uint64_t i = 0; i < n; i++) {
        memcpy(dst, prod_next_prefix(p), p->prefix_len);
        dst += p->prefix_len;
        for (size_t off = 0; off < size; off += chunk) {
            size_t len = size - off < chunk ? size - off : chunk;
            dst[0] = WIRE_FRAME_BODY;
            dst[1] = 0;
            dst[2] = PERF_CHANNEL;
            dst[3] = (uint8_t)(len >> 24);
            dst[4] = (uint8_t)(len >> 16);
            dst[5] = (uint8_t)(len >> 8);
            dst[6] = (uint8_t)len;
            memcpy(dst + FRAME_HEADER_SIZE, p->body + off, len);
            if (off == 0) {
                sent_ns = perf_now_ns();
                put_be64(dst + FRAME_HEADER_SIZE, sent_ns);
                put_be64(dst + FRAME_HEADER_SIZE + 8, p->seq + 1);
            }
            dst[FRAME_HEADER_SIZE + len] = WIRE_FRAME_END;
            dst += len + FRAME_OVERHEAD;
        }
        p->seq++;
        if (p->o->confirm)
            p->unsettled[p->seq % p->o->confirm] = sent_ns;
    }
    perf_conn_commit(&p->c, (size_t)(dst - start));
}

/* How many messages may go now. When none: *pace_ns is when --rate allows the next one, or 0
 * when the confirm window is full. */
static uint64_t
prod_allowance(struct prod *p, uint64_t start_ns, uint64_t *pace_ns)
{
    const struct perf_opts *o = p->o;
    uint64_t n = BATCH_MAX;
    uint64_t by_bytes = BATCH_BYTES / p->msg_len;
    *pace_ns = 0;
    if (n > by_bytes)
        n = by_bytes > 0 ? by_bytes : 1;
    if (p->w->quota && n > p->w->quota - p->seq)
        n = p->w->quota - p->seq;
    if (o->confirm && n > o->confirm - (p->seq - p->floor))
        n = o->confirm - (p->seq - p->floor);
    if (o->rate > 0 && n > 0) {
        uint64_t now = perf_now_ns();
        double due = (double)(now - start_ns) / 1e9 * o->rate + 1 - (double)p->seq;
        if (due < 1) {
            /* Sleep at least 1 ms: at high rates that sends batches, not one message per
             * wake-up. */
            double wait_ns = (1 - due) / o->rate * 1e9;
            *pace_ns = now + (wait_ns < 1e6   ? 1000000u
                              : wait_ns > 1e8 ? 100000000u
                                              : (uint64_t)wait_ns);
            return 0;
        }
        if ((double)n > due)
            n = (uint64_t)due;
    }
    return n;
}

/* Nothing may be sent: handles confirms until the pace allows more (pace_ns), or until the
 * first confirm frees the window (pace_ns == 0; at most 100 ms). */
static int
prod_wait(struct prod *p, uint64_t pace_ns)
{
    if (pace_ns == 0)
        return prod_read(p, 100);
    for (;;) {
        uint64_t now = perf_now_ns();
        if (now >= pace_ns)
            return 0;
        if (prod_read(p, (int)((pace_ns - now + 999999) / 1000000)) < 0)
            return -1;
    }
}

static void
prod_run(struct prod *p)
{
    struct perf_worker *w = p->w;
    struct perf_run *run = w->run;
    uint64_t start_ns = perf_now_ns();

    while (!atomic_load_explicit(&run->stop_producers, memory_order_relaxed)) {
        uint64_t pace_ns;
        if (w->quota && p->seq >= w->quota)
            break;
        uint64_t n = prod_allowance(p, start_ns, &pace_ns);
        if (n == 0) {
            if (prod_wait(p, pace_ns) < 0)
                goto fail;
            continue;
        }
        prod_write(p, n);
        if (perf_conn_flush(&p->c) < 0)
            goto fail;
        uint64_t now = perf_now_ns();
        if (atomic_load_explicit(&w->first_ns, memory_order_relaxed) == 0)
            atomic_store_explicit(&w->first_ns, start_ns, memory_order_relaxed);
        atomic_store_explicit(&w->last_ns, now, memory_order_relaxed);
        atomic_store_explicit(&w->sent, p->seq, memory_order_relaxed);
        if (prod_read(p, 0) < 0)
            goto fail;
    }
    /* Wait for the outstanding confirms, so that "confirmed" means what it says. */
    uint64_t deadline = perf_now_ns() + (uint64_t)SETTLE_TIMEOUT_MS * 1000000u;
    while (p->o->confirm && p->floor < p->seq) {
        if (perf_now_ns() >= deadline) {
            fprintf(stderr, "warren-perf: %s: %llu messages still unconfirmed after %d ms\n",
                    w->name, (unsigned long long)(p->seq - p->floor), SETTLE_TIMEOUT_MS);
            break;
        }
        if (prod_read(p, 100) < 0)
            goto fail;
        if (atomic_load(&run->abort))
            break;
    }
    if (w->quota && p->seq >= w->quota && (p->o->confirm == 0 || p->floor == p->seq))
        atomic_store(&w->done, true);
    return;
fail:
    if (atomic_load(&run->stop_producers) && atomic_load(&run->abort)) {
        /* The run was over, and the broker had stopped reading our socket (its flow control)
         * for the whole join timeout: what was measured stands. */
        fprintf(stderr,
                "warren-perf: %s: the broker was not reading when the run ended; "
                "connection abandoned\n",
                w->name);
        return;
    }
    perf_worker_fail(w, p->c.err);
}

/* --churn: connects (TCP, TLS with --tls, login, connection.open, channel.open) and closes
 * politely in a loop until stopped; each connection counts as a message sent, its open and
 * close time in the histogram. */
static void
prod_churn(struct perf_worker *w)
{
    const struct perf_opts *o = w->run->opts;
    uint64_t n = 0;
    if (perf_worker_ready(w, true) < 0)
        return;
    while (!atomic_load_explicit(&w->run->stop_producers, memory_order_relaxed)) {
        struct perf_conn c;
        uint64_t t0 = perf_now_ns();
        if (perf_conn_open(&c, o, w->name, &w->run->abort) < 0) {
            if (!atomic_load(&w->run->abort))
                perf_worker_fail(w, c.err);
            return;
        }
        perf_conn_close(&c, PERF_RPC_TIMEOUT_MS);
        uint64_t now = perf_now_ns();
        perf_hist_record(&w->hist, now - t0);
        if (n++ == 0)
            atomic_store_explicit(&w->first_ns, t0, memory_order_relaxed);
        atomic_store_explicit(&w->last_ns, now, memory_order_relaxed);
        atomic_store_explicit(&w->sent, n, memory_order_relaxed);
    }
}

void *
perf_producer_main(void *arg)
{
    struct prod p = {.w = arg, .o = ((struct perf_worker *)arg)->run->opts};
    struct perf_worker *w = p.w;
    char tname[16];
    snprintf(tname, sizeof tname, "wp-prod-%u", w->id % 10000);
    pthread_setname_np(pthread_self(), tname); /* for top -H */
    if (p.o->churn) {
        prod_churn(w);
        atomic_store(&w->exited, true);
        return NULL;
    }
    bool ok = perf_conn_open(&p.c, p.o, w->name, &w->run->abort) == 0;
    if (ok && p.o->confirm) {
        struct wire_method m = {.id = WIRE_CONFIRM_SELECT};
        ok = perf_conn_rpc(&p.c, &m, WIRE_CONFIRM_SELECT_OK, NULL, PERF_RPC_TIMEOUT_MS) == 0;
        p.unsettled = calloc(p.o->confirm, sizeof *p.unsettled);
        WR_ASSERT(p.unsettled != NULL);
    }
    if (!ok)
        perf_worker_fail(w, p.c.err);
    else
        prod_prepare(&p);
    if (perf_worker_ready(w, ok) == 0)
        prod_run(&p);
    perf_conn_close(&p.c, PERF_RPC_TIMEOUT_MS);
    free(p.body);
    free(p.prefixes);
    free(p.unsettled);
    atomic_store(&w->exited, true);
    return NULL;
}
