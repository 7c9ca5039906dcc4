/* The store thread and group commit.
 *
 * The event loop builds batches (store_batch_*: operations encoded in one malloc'd buffer, so
 * ENOMEM is an error return, not a C++ exception) and queues them (store_submit). The store
 * thread takes the whole queue at once, merges its batches, in order, into one RocksDB write
 * batch, and writes it with sync when any of them asked for sync: one WAL append and one
 * fsync for the group, however many batches it holds (group commit). It cuts the group into
 * several writes in two cases only: at most STORE_WRITE_MAX_BYTES per write (a bigger batch
 * goes alone), and before the first sync batch, so that the non-sync batches queued ahead of
 * it complete without waiting for its fsync. Batches queued behind a sync batch wait for it
 * anyway: completions are in submission order.
 *
 * Completed batches go to st->done and the thread wakes the loop through an eventfd (done_fd,
 * written when st->done turns non-empty); done_ev's callback on the loop takes st->done and
 * calls each batch's done in order. The store thread never calls libevent, so libevent needs
 * no locks (evthread): every event operation of the loop stays lock-free. st->mu guards the two
 * lists and the write counters and is never held during I/O or a callback. A failed write
 * completes its batches with RocksDB's message; the loop logs the first failure and the
 * recovery, not each batch. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "store_int.h"
#include "warren/assert.h"
#include "warren/log.h"
#include "warren/store.h"

#define STORE_BATCH_MIN_CAP 256
/* Most bytes of batches in one RocksDB write: bounds the copy in st->wb and what it keeps. */
#define STORE_WRITE_MAX_BYTES (8u << 20)

struct store_batch *
store_batch_new(void)
{
    return calloc(1, sizeof(struct store_batch));
}

void
store_batch_free(struct store_batch *b)
{
    if (b == NULL)
        return;
    free(b->ops);
    free(b->err);
    free(b);
}

size_t
store_batch_bytes(const struct store_batch *b)
{
    return sizeof(*b) + b->cap;
}

/* Appends an operation: its type, slice a, and (nslices 2) a second slice gathered from
 * parts (a base may be NULL when its length is 0). Returns 0, or -1 with errno ENOMEM after
 * marking the batch failed. */
static int
store_batch_addv(struct store_batch *b, enum store_op op, const void *a, size_t alen,
                 const struct iovec *parts, int nparts, int nslices)
{
    if (b->failed)
        goto fail;
    size_t clen = 0;
    for (int i = 0; i < nparts; i++) {
        if (parts[i].iov_len > SIZE_MAX / 4 - clen)
            goto fail;
        clen += parts[i].iov_len;
    }
    if (alen > SIZE_MAX / 4)
        goto fail;
    size_t need = 1 + (size_t)nslices * sizeof(size_t) + alen + clen;
    if (need > b->cap - b->len) {
        size_t cap = b->cap != 0 ? b->cap : STORE_BATCH_MIN_CAP;
        while (cap - b->len < need) {
            if (cap > SIZE_MAX / 2)
                goto fail;
            cap *= 2;
        }
        uint8_t *ops = realloc(b->ops, cap);
        if (ops == NULL)
            goto fail;
        b->ops = ops;
        b->cap = cap;
    }
    uint8_t *p = b->ops + b->len;
    *p++ = (uint8_t)op;
    memcpy(p, &alen, sizeof(alen));
    p += sizeof(alen);
    if (alen != 0)
        memcpy(p, a, alen);
    p += alen;
    if (nslices == 2) {
        memcpy(p, &clen, sizeof(clen));
        p += sizeof(clen);
        for (int i = 0; i < nparts; i++) {
            if (parts[i].iov_len != 0)
                memcpy(p, parts[i].iov_base, parts[i].iov_len);
            p += parts[i].iov_len;
        }
    }
    b->len = (size_t)(p - b->ops);
    return 0;
fail:
    b->failed = true;
    errno = ENOMEM;
    return -1;
}

/* One operation with one or two plain slices. */
static int
store_batch_add(struct store_batch *b, enum store_op op, const void *a, size_t alen, const void *c,
                size_t clen, int nslices)
{
    struct iovec second = {(void *)c, clen};
    return store_batch_addv(b, op, a, alen, nslices == 2 ? &second : NULL, nslices == 2 ? 1 : 0,
                            nslices);
}

int
store_batch_put(struct store_batch *b, const void *key, size_t klen, const void *val, size_t vlen)
{
    return store_batch_add(b, STORE_OP_PUT, key, klen, val, vlen, 2);
}

int
store_batch_putv(struct store_batch *b, const void *key, size_t klen, const struct iovec *parts,
                 int nparts)
{
    return store_batch_addv(b, STORE_OP_PUT, key, klen, parts, nparts, 2);
}

int
store_batch_delete(struct store_batch *b, const void *key, size_t klen)
{
    return store_batch_add(b, STORE_OP_DELETE, key, klen, NULL, 0, 1);
}

int
store_batch_delete_range(struct store_batch *b, const void *begin, size_t blen, const void *end,
                         size_t elen)
{
    size_t n = blen < elen ? blen : elen;
    int cmp = n != 0 ? memcmp(begin, end, n) : 0;
    if (cmp > 0 || (cmp == 0 && blen >= elen))
        return b->failed ? -1 : 0; /* empty range: nothing to delete */
    return store_batch_add(b, STORE_OP_DELETE_RANGE, begin, blen, end, elen, 2);
}

/* Reads one slice at p into *s, *n. Returns the byte after it. */
static const uint8_t *
store_op_slice(const uint8_t *p, const char **s, size_t *n)
{
    memcpy(n, p, sizeof(*n));
    *s = (const char *)p + sizeof(*n);
    return p + sizeof(*n) + *n;
}

/* Appends b's operations to wb. Writer thread (or store_write_now's). */
static void
store_writer_replay(rocksdb_writebatch_t *wb, const struct store_batch *b)
{
    if (b->len == 0)
        return;
    const uint8_t *p = b->ops, *end = b->ops + b->len;
    while (p < end) {
        uint8_t op = *p++;
        const char *k, *v;
        size_t klen, vlen;
        p = store_op_slice(p, &k, &klen);
        switch (op) {
        case STORE_OP_PUT:
            p = store_op_slice(p, &v, &vlen);
            rocksdb_writebatch_put(wb, k, klen, v, vlen);
            break;
        case STORE_OP_DELETE:
            rocksdb_writebatch_delete(wb, k, klen);
            break;
        case STORE_OP_DELETE_RANGE:
            p = store_op_slice(p, &v, &vlen);
            rocksdb_writebatch_delete_range(wb, k, klen, v, vlen);
            break;
        default:
            WR_ASSERT(!"unknown store batch operation");
        }
    }
    WR_ASSERT(p == end);
}

int
store_write_now(struct store *st, struct store_batch *b, bool sync, char *err, size_t errlen)
{
    int rc = 0;
    rocksdb_writebatch_t *wb = b->failed ? NULL : rocksdb_writebatch_create();
    if (wb == NULL) {
        snprintf(err, errlen, "store %s: out of memory writing", st->path);
        rc = -1;
    } else {
        char *rerr = NULL;
        store_writer_replay(wb, b);
        rocksdb_write(st->db, sync ? st->wo_sync : st->wo, wb, &rerr);
        rocksdb_writebatch_destroy(wb);
        if (rerr != NULL) {
            snprintf(err, errlen, "store %s: write failed: %s", st->path, rerr);
            rocksdb_free(rerr);
            rc = -1;
        }
    }
    store_batch_free(b);
    return rc;
}

/* Makes done_fd readable. An eventfd counter only fails to grow at 2^64 - 2, and EINTR is
 * retried: nothing here can fail for real. */
static void
store_wake_loop(struct store *st)
{
    uint64_t one = 1;
    while (write(st->done_fd, &one, sizeof(one)) < 0 && errno == EINTR)
        continue;
}

/* The histograms' upper bounds: microseconds from an fsync-free write to a slow disk's
 * stall, and batches per write from one to far past what one loop turn submits. */
static const uint64_t store_write_us_bounds[] = {
    50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000};
static const uint64_t store_group_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
#define STORE_N(a) (unsigned)(sizeof(a) / sizeof((a)[0]))

void
store_writer_hists_init(struct store *st)
{
    stats_hist_init(&st->write_us, store_write_us_bounds, STORE_N(store_write_us_bounds));
    stats_hist_init(&st->sync_write_us, store_write_us_bounds, STORE_N(store_write_us_bounds));
    stats_hist_init(&st->group_batches, store_group_bounds, STORE_N(store_group_bounds));
}

static uint64_t
store_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Takes the next write's batches off the head of group, writes them (with sync if one of
 * them asked for it), and hands them to the loop. Writer thread, st->mu not held. */
static void
store_writer_write(struct store *st, struct store_batch_list *group)
{
    struct store_batch_list seg = STAILQ_HEAD_INITIALIZER(seg);
    struct store_batch *b;
    bool sync = false;
    size_t bytes = 0;
    uint64_t n_batches = 0;

    rocksdb_writebatch_clear(st->wb);
    while ((b = STAILQ_FIRST(group)) != NULL) {
        if (!STAILQ_EMPTY(&seg) && (b->len > STORE_WRITE_MAX_BYTES - bytes || (b->sync && !sync)))
            break;
        STAILQ_REMOVE_HEAD(group, link);
        STAILQ_INSERT_TAIL(&seg, b, link);
        sync = sync || b->sync;
        n_batches++;
        bytes += b->len < STORE_WRITE_MAX_BYTES ? b->len : STORE_WRITE_MAX_BYTES;
        store_writer_replay(st->wb, b);
    }

    size_t wlen = 0;
    bool written = false;
    char *rerr = NULL;
    uint64_t start = store_now_us();
    rocksdb_writebatch_data(st->wb, &wlen);
    if (rocksdb_writebatch_count(st->wb) > 0) {
        rocksdb_write(st->db, sync ? st->wo_sync : st->wo, st->wb, &rerr);
        written = true;
    } else if (sync) {
        rocksdb_flush_wal(st->db, 1, &rerr); /* barriers only: sync what is there */
    }
    uint64_t took = store_now_us() - start;
    if (rerr != NULL) {
        STAILQ_FOREACH(b, &seg, link) {
            b->errored = true;
            b->err = strdup(rerr); /* NULL: the loop reports a generic message */
        }
        rocksdb_free(rerr);
    }
    if (wlen > STORE_WRITE_MAX_BYTES) {
        /* Clearing keeps the capacity: do not keep a huge group's memory. */
        rocksdb_writebatch_destroy(st->wb);
        st->wb = rocksdb_writebatch_create();
    }

    pthread_mutex_lock(&st->mu);
    st->n_writes += written;
    st->n_syncs += sync;
    st->n_bytes += written ? wlen : 0;
    if (written || sync) {
        stats_hist_observe(sync ? &st->sync_write_us : &st->write_us, took);
        stats_hist_observe(&st->group_batches, n_batches);
    }
    bool wake = STAILQ_EMPTY(&st->done); /* else the loop has a wake-up coming already */
    STAILQ_CONCAT(&st->done, &seg);
    pthread_cond_signal(&st->done_cv);
    pthread_mutex_unlock(&st->mu);
    if (wake)
        store_wake_loop(st);
}

static void *
store_writer_main(void *arg)
{
    struct store *st = arg;
    struct store_batch_list group = STAILQ_HEAD_INITIALIZER(group);

    pthread_mutex_lock(&st->mu);
    for (;;) {
        while (STAILQ_EMPTY(&st->queue) && !st->stopping)
            pthread_cond_wait(&st->work_cv, &st->mu);
        if (STAILQ_EMPTY(&st->queue))
            break;
        STAILQ_CONCAT(&group, &st->queue);
        pthread_mutex_unlock(&st->mu);
        while (!STAILQ_EMPTY(&group))
            store_writer_write(st, &group);
        pthread_mutex_lock(&st->mu);
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

/* Calls done for each batch of list, in order, and frees them. Loop thread. */
static void
store_deliver(struct store *st, struct store_batch_list *list)
{
    struct store_batch *b;
    st->delivering = true;
    while ((b = STAILQ_FIRST(list)) != NULL) {
        STAILQ_REMOVE_HEAD(list, link);
        const char *msg = NULL;
        if (b->errored) {
            msg = b->err != NULL ? b->err : "write failed (no memory left for RocksDB's message)";
            st->n_failed++;
            if (!st->failing)
                log_msg(LOG_ERROR,
                        "store %s: write failed: %s; its batches are reported failed (no "
                        "confirms), later writes will be tried again",
                        st->path, msg);
            st->failing = true;
        } else if (st->failing) {
            log_msg(LOG_WARNING, "store %s: writes succeed again", st->path);
            st->failing = false;
        }
        st->n_batches++;
        st->n_pending--;
        st->pending_bytes -= store_batch_bytes(b);
        b->done(b->arg, msg);
        store_batch_free(b);
    }
    st->delivering = false;
    if (st->n_pending == 0)
        event_del(st->done_ev);
}

/* st->done_ev: the writer has completed batches. */
static void
store_on_done(evutil_socket_t fd, short what, void *arg)
{
    struct store *st = arg;
    struct store_batch_list list = STAILQ_HEAD_INITIALIZER(list);
    uint64_t count;
    if (read(st->done_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
        log_msg(LOG_ERROR, "store %s: reading its wake-up eventfd: %s", st->path, strerror(errno));
    pthread_mutex_lock(&st->mu);
    STAILQ_CONCAT(&list, &st->done);
    pthread_mutex_unlock(&st->mu);
    store_deliver(st, &list);
}

int
store_submit(struct store *st, struct store_batch *b, bool sync, store_done_fn done, void *arg)
{
    WR_ASSERT(st->writer_running && done != NULL);
    if (b->failed) {
        store_batch_free(b);
        return -1;
    }
    b->sync = sync;
    b->done = done;
    b->arg = arg;
    /* done_ev waits while batches are pending (a loop with nothing else to wait for then
     * waits for them instead of returning "no events"). */
    if (st->n_pending++ == 0)
        event_add(st->done_ev, NULL);
    st->pending_bytes += store_batch_bytes(b);
    pthread_mutex_lock(&st->mu);
    bool wake = STAILQ_EMPTY(&st->queue); /* else the writer is busy or about to take it */
    STAILQ_INSERT_TAIL(&st->queue, b, link);
    pthread_mutex_unlock(&st->mu);
    if (wake)
        pthread_cond_signal(&st->work_cv);
    return 0;
}

void
store_stats(struct store *st, struct store_stats *s)
{
    pthread_mutex_lock(&st->mu);
    s->writes = st->n_writes;
    s->syncs = st->n_syncs;
    s->bytes = st->n_bytes;
    s->write_us = st->write_us;
    s->sync_write_us = st->sync_write_us;
    s->group_batches = st->group_batches;
    pthread_mutex_unlock(&st->mu);
    s->batches = st->n_batches;
    s->failed = st->n_failed;
    s->pending = st->n_pending;
    s->pending_bytes = st->pending_bytes;
}

int
store_writer_start(struct store *st, char *err, size_t errlen)
{
    st->done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (st->done_fd < 0) {
        snprintf(err, errlen, "cannot create the store's wake-up eventfd: %s", strerror(errno));
        return -1;
    }
    st->done_ev = event_new(st->base, st->done_fd, EV_READ | EV_PERSIST, store_on_done, st);
    if (st->done_ev == NULL) {
        snprintf(err, errlen, "cannot create the store's completion event");
        return -1;
    }
    /* Signals are the loop's business: the store thread blocks them all. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&st->writer, NULL, store_writer_main, st);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the store thread: %s", strerror(rc));
        return -1;
    }
    pthread_setname_np(st->writer, "warren-store");
    st->writer_running = true;
    return 0;
}

void
store_writer_stop(struct store *st)
{
    if (!st->writer_running)
        return;
    WR_ASSERT(!st->delivering); /* store_close from a done callback */
    while (st->n_pending > 0) {
        struct store_batch_list list = STAILQ_HEAD_INITIALIZER(list);
        pthread_mutex_lock(&st->mu);
        while (STAILQ_EMPTY(&st->done))
            pthread_cond_wait(&st->done_cv, &st->mu);
        STAILQ_CONCAT(&list, &st->done);
        pthread_mutex_unlock(&st->mu);
        store_deliver(st, &list); /* may submit more: the loop goes on until none is left */
    }
    pthread_mutex_lock(&st->mu);
    st->stopping = true;
    pthread_mutex_unlock(&st->mu);
    pthread_cond_signal(&st->work_cv);
    pthread_join(st->writer, NULL);
    st->writer_running = false;
}
