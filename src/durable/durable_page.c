/* Lazy paging: which entries go to the store only, reading them back ahead of consumers in
 * seq order, and deleting them (purge, queue removal). See warren/durable.h. A priority
 * queue's lanes page each on its own (struct durable_lane): what is said here of a queue is
 * said of each lane, but for the window, which is the queue's.
 *
 * A queue counts its paged entries as they are added to a batch. A batch that fails takes
 * its page-outs with it: each batch's count per queue (struct durable_pageout) is taken off
 * the queue when it fails, and while some are not completed a page-in that finds nothing
 * waits for the store; with none left, entries counted but not found are a count gone
 * wrong, dropped with an error rather than looked for again and again.
 *
 * Dropping paged entries (purge, queue removal) must drop their references to shared
 * records, which only reading them tells. Entries that refer to none are deleted at once;
 * the others are dropped from the queue at once and read in the background in bounded
 * steps (struct durable_sweep), then deleted. A marker written with the drop (a purge marker,
 * or a removed queue's 'T' key) tells a start in the meantime that they are gone. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "durable_int.h"
#include "warren/assert.h"
#include "warren/bytes.h"
#include "warren/log.h"
#include "warren/msg.h"
#include "warren/store.h"

/* Entries read per sweep step at most (and DURABLE_PAGE_IN_STEP bytes): about a millisecond
 * of the loop, between which other connections are served. */
#define DURABLE_SWEEP_STEP 2048

/* Bytes read back per durable_page_in call at most: the loop reads synchronously, so a
 * step bounds how long other connections wait (about a millisecond), and a draining queue
 * asks again as soon as its in-memory part is under half the window. */
#define DURABLE_PAGE_IN_STEP (1u << 20)

/* Bytes read back at least (if there are) from a lane none of which is in memory, whatever
 * the window says: lower priorities can fill it, and the lane delivered next must not be read
 * one entry per delivery. Each lane can hold that much beyond the window. */
#define DURABLE_PAGE_IN_FORCED (64u << 10)

size_t
durable_key_purged(uint8_t *buf, uint64_t queue_id, uint64_t first)
{
    memcpy(buf, DURABLE_PURGED_PREFIX, DURABLE_PURGED_PREFIX_LEN);
    bytes_put64(buf + DURABLE_PURGED_PREFIX_LEN, queue_id);
    bytes_put64(buf + DURABLE_PURGED_PREFIX_LEN + 8, first);
    return DURABLE_PURGED_KEY_LEN;
}

/* Calls fn for each of the paged-out entries of q's lane in seq order (page_lo on). Returns
 * as store_iter_range; a read error is logged, saying what the walk was for. */
static int
durable_paged_walk(struct durable *d, struct queue *q, unsigned lane, store_iter_fn fn, void *arg,
                   const char *why)
{
    uint8_t begin[STORE_KEY_QENTRY_LEN], end[STORE_KEY_QENTRY_LEN];
    char err[256];
    uint64_t id = q->durable_state->store_id;
    store_key_qentry(begin, id, q->durable_state->lanes[lane].page_lo);
    /* The lane ends where the next one starts, the last one with the queue's keys. */
    size_t elen = lane + 1 < QUEUE_LANES_MAX
                      ? store_key_qentry(end, id, (uint64_t)(lane + 1) << QUEUE_LANE_SHIFT)
                      : store_key_qentry_prefix(end, id + 1);
    int rc = store_iter_range(d->st, begin, sizeof(begin), end, elen, fn, arg, err, sizeof(err));
    if (rc < 0)
        log_msg(LOG_ERROR, "store: reading queue '%s' %s: %s", q->name, why, err);
    return rc;
}

/* ---- page-outs and their batches ---- */

/* Counts one more entry paged out of q's lane in this turn's batch, with body_len bytes of
 * body. 0, or -1 on ENOMEM. */
static int
durable_pageout_count(struct durable *d, struct queue *q, unsigned lane, uint64_t body_len)
{
    /* This turn's counts are the first ones of the queue's (the newest first). */
    struct durable_pageout *po = LIST_FIRST(&q->durable_state->pageouts);
    while (po != NULL && po->turn == d->turn && po->lane != lane)
        po = LIST_NEXT(po, by_queue);
    if (po == NULL || po->turn != d->turn) {
        if ((po = malloc(sizeof(*po))) == NULL)
            return -1;
        po->q = q;
        po->turn = d->turn;
        po->n = 0;
        po->body_bytes = 0;
        po->lane = lane;
        LIST_INSERT_HEAD(&q->durable_state->pageouts, po, by_queue);
        TAILQ_INSERT_TAIL(&d->pageouts, po, by_turn);
    }
    po->n++;
    po->body_bytes += body_len;
    return 0;
}

void
durable_pageouts_detach(struct durable_queue *dq)
{
    struct durable_pageout *po;
    while ((po = LIST_FIRST(&dq->pageouts)) != NULL) {
        LIST_REMOVE(po, by_queue);
        po->q = NULL;
    }
}

/* The entries paged out of q by po's batch, which failed: they are not in the store. */
static void
durable_pageout_lost(struct queue *q, const struct durable_pageout *po, const char *err)
{
    struct durable_lane *dl = &q->durable_state->lanes[po->lane];
    uint64_t n = po->n;
    if (n > dl->n_paged)
        n = dl->n_paged; /* never: a failed write is not read back */
    dl->n_paged -= n;
    queue_paged_lost(q, po->lane, n, po->body_bytes);
    log_msg(LOG_ERROR,
            "queue '%s': %" PRIu64 " messages lost: in the store only, whose write failed (%s)",
            q->name, n, err);
}

/* Arms the sweep timer if the oldest sweep can go on. */
static void
durable_sweep_arm(struct durable *d)
{
    static const struct timeval now = {0, 0};
    struct durable_sweep *s = TAILQ_FIRST(&d->sweeps);
    if (s != NULL && s->ready && !evtimer_pending(d->sweep_ev, NULL))
        evtimer_add(d->sweep_ev, &now);
}

void
durable_page_turn_done(struct durable *d, uint64_t turn, const char *err)
{
    /* Batches complete in order, but one that could not be submitted completes at once:
     * earlier ones may still be pending, skipped here. */
    struct durable_pageout *po, *po_next;
    for (po = TAILQ_FIRST(&d->pageouts); po != NULL && po->turn <= turn; po = po_next) {
        po_next = TAILQ_NEXT(po, by_turn);
        if (po->turn < turn)
            continue;
        TAILQ_REMOVE(&d->pageouts, po, by_turn);
        if (po->q != NULL) {
            LIST_REMOVE(po, by_queue);
            if (err != NULL)
                durable_pageout_lost(po->q, po, err);
        }
        free(po);
    }
    struct durable_sweep *s, *s_next;
    for (s = TAILQ_FIRST(&d->sweeps); s != NULL && s->turn <= turn; s = s_next) {
        s_next = TAILQ_NEXT(s, link);
        if (s->turn < turn)
            continue;
        if (err == NULL) {
            s->ready = true;
            continue;
        }
        log_msg(LOG_ERROR,
                "store: the %s of queue id %" PRIu64 " was not written (%s): a restart brings "
                "its messages back",
                s->deleted ? "deletion" : "purge", s->queue_id, err);
        TAILQ_REMOVE(&d->sweeps, s, link);
        free(s);
    }
    durable_sweep_arm(d);
}

void
durable_page_wait(struct durable *d, struct queue *q)
{
    struct durable_queue *dq = q->durable_state;
    if (dq->page_waiting)
        return;
    dq->page_waiting = true;
    TAILQ_INSERT_TAIL(&d->page_wait, dq, page_link);
    durable_arm(d);
}

/* ---- dropping paged entries ---- */

/* Whether a sweep of the queue with that store id has entries left to read. */
static bool
durable_sweeping(const struct durable *d, uint64_t queue_id)
{
    const struct durable_sweep *s;
    TAILQ_FOREACH(s, &d->sweeps, link) {
        if (s->queue_id == queue_id)
            return true;
    }
    return false;
}

/* Starts a sweep of seqs [lo, end) of the queue with that store id, writing its marker in
 * b. 0, or -1 on ENOMEM (nothing written). */
static int
durable_sweep_add(struct durable *d, struct store_batch *b, uint64_t queue_id, uint64_t lo,
                  uint64_t end, bool deleted)
{
    struct durable_sweep *s = malloc(sizeof(*s));
    if (s == NULL)
        return -1;
    uint8_t key[DURABLE_PURGED_KEY_LEN], val[8];
    if (deleted) {
        store_key_temp_queue(key, queue_id);
        store_batch_put(b, key, STORE_KEY_DELIVERED_LEN, NULL, 0);
    } else {
        bytes_put64(val, end);
        store_batch_put(b, key, durable_key_purged(key, queue_id, lo), val, sizeof(val));
    }
    *s = (struct durable_sweep){.turn = d->turn,
                                .deleted = deleted,
                                .queue_id = queue_id,
                                .lo = lo,
                                .next = lo,
                                .end = end};
    TAILQ_INSERT_TAIL(&d->sweeps, s, link);
    return 0;
}

/* Deletes q's entries with seqs [lo, end) in b. */
static void
durable_entries_delete(struct store_batch *b, uint64_t queue_id, uint64_t lo, uint64_t end)
{
    uint8_t begin[STORE_KEY_QENTRY_LEN], stop[STORE_KEY_QENTRY_LEN];
    store_key_qentry(begin, queue_id, lo);
    store_key_qentry(stop, queue_id, end);
    store_batch_delete_range(b, begin, sizeof(begin), stop, sizeof(stop));
}

static void durable_paged_drop(struct durable *d, struct store_batch *b, struct queue *q,
                               unsigned lane);

void
durable_queue_entries_drop(struct durable *d, struct store_batch *b, struct queue *q)
{
    struct durable_queue *dq = q->durable_state;
    uint64_t lo = UINT64_MAX;
    if (dq->n_lanes == 1) {
        /* Its paged entries are the queue's last keys: the deletion's sweep reads them. */
        if (dq->lanes[0].n_paged > 0 && dq->lanes[0].paged_shared)
            lo = dq->lanes[0].page_lo;
    } else {
        /* Other lanes' in-memory entries lie between them: each lane's are read as a purge's,
         * and the deletion's sweep, after those, reads nothing. */
        for (unsigned i = 0; i < dq->n_lanes; i++) {
            if (dq->lanes[i].n_paged > 0 && dq->lanes[i].paged_shared)
                durable_paged_drop(d, b, q, i);
        }
    }
    if (lo != UINT64_MAX || durable_sweeping(d, dq->store_id)) {
        /* After the sweeps of its earlier purges (whose entries must still be there to be
         * read), and its paged entries read: the sweep then deletes them all. */
        if (durable_sweep_add(d, b, dq->store_id, lo, UINT64_MAX, true) == 0)
            return;
        log_msg(LOG_ERROR,
                "out of memory deleting queue '%s': the shared messages it refers to are kept "
                "until the next start",
                q->name);
    }
    durable_entries_delete_all(b, dq->store_id);
}

/* Drops the paged entries of q's lane in b (purge). */
static void
durable_paged_drop(struct durable *d, struct store_batch *b, struct queue *q, unsigned lane)
{
    struct durable_queue *dq = q->durable_state;
    struct durable_lane *dl = &dq->lanes[lane];
    uint64_t end = q->lanes[lane].next_seq;
    if (dl->paged_shared) {
        if (durable_sweep_add(d, b, dq->store_id, dl->page_lo, end, false) == 0)
            return;
        log_msg(LOG_ERROR,
                "out of memory purging queue '%s': the shared messages it refers to are kept "
                "until the next start",
                q->name);
    }
    durable_entries_delete(b, dq->store_id, dl->page_lo, end);
}

void
durable_page_forget(struct durable *d, struct queue *q)
{
    struct durable_queue *dq = q->durable_state;
    if (dq == NULL)
        return;
    durable_pageouts_detach(dq);
    for (unsigned i = 0; i < dq->n_lanes; i++) {
        struct store_batch *b;
        if (dq->lanes[i].n_paged > 0 && d != NULL && dq->store_id != 0 &&
            (b = durable_batch(d)) != NULL)
            durable_paged_drop(d, b, q, i);
        dq->lanes[i].n_paged = 0;
    }
}

struct sweep_ctx {
    struct durable *d;
    struct store_batch *b; /* this turn's batch; NULL on ENOMEM */
    struct durable_sweep *s;
    uint32_t read;
    size_t bytes;
};

static int
durable_sweep_entry(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct sweep_ctx *x = arg;
    const uint8_t *v = val;
    if (klen != STORE_KEY_QENTRY_LEN)
        return 0; /* not an entry: nothing of ours */
    x->s->next = bytes_get64((const uint8_t *)key + 9) + 1;
    struct durable_entry_head h;
    if (durable_entry_head_decode(v, vlen, &h) && (h.flags & DURABLE_ENTRY_SHARED))
        durable_shared_unref(x->d, x->b, h.shared_id);
    x->bytes += vlen;
    return ++x->read >= DURABLE_SWEEP_STEP || x->bytes >= DURABLE_PAGE_IN_STEP;
}

void
durable_sweep_step(evutil_socket_t fd, short what, void *arg)
{
    struct durable *d = arg;
    struct durable_sweep *s = TAILQ_FIRST(&d->sweeps);
    if (s == NULL || !s->ready)
        return;
    /* A batch that cannot be had (ENOMEM) leaves the records whose count drops to zero and
     * the marker to the next start. */
    struct sweep_ctx x = {d, durable_batch(d), s, 0, 0};
    uint8_t begin[STORE_KEY_QENTRY_LEN], end[STORE_KEY_QENTRY_LEN];
    char err[256];
    int rc = 0;
    if (s->next < s->end) {
        store_key_qentry(begin, s->queue_id, s->next);
        store_key_qentry(end, s->queue_id, s->end);
        rc = store_iter_range(d->st, begin, sizeof(begin), end, sizeof(end), durable_sweep_entry,
                              &x, err, sizeof(err));
    }
    if (rc == 1) {
        durable_sweep_arm(d);
        return;
    }
    if (rc < 0) {
        log_msg(LOG_ERROR,
                "store: reading dropped entries of queue id %" PRIu64 ": %s; the next start "
                "deletes them",
                s->queue_id, err);
    } else if (x.b != NULL) {
        uint8_t key[DURABLE_PURGED_KEY_LEN];
        if (s->deleted) {
            durable_entries_delete_all(x.b, s->queue_id);
            store_key_temp_queue(key, s->queue_id);
            store_batch_delete(x.b, key, STORE_KEY_DELIVERED_LEN);
        } else {
            durable_entries_delete(x.b, s->queue_id, s->lo, s->end);
            store_batch_delete(x.b, key, durable_key_purged(key, s->queue_id, s->lo));
        }
    }
    TAILQ_REMOVE(&d->sweeps, s, link);
    free(s);
    durable_sweep_arm(d);
}

void
durable_sweeps_free(struct durable *d)
{
    struct durable_sweep *s;
    while ((s = TAILQ_FIRST(&d->sweeps)) != NULL) {
        TAILQ_REMOVE(&d->sweeps, s, link);
        free(s);
    }
}

/* ---- paging out and in ---- */

bool
durable_page_out_wanted(const struct durable *d, const struct queue *q, unsigned lane,
                        const struct msg *m)
{
    /* A replicated queue's entries are all in memory on the node that leads it (its image
     * holds them on disk, but a purge must name each one it drops: durable_image.c). */
    if (d == NULL || q->group_id != 0)
        return false;
    if (durable_lane_paged(q, lane) > 0)
        return true; /* in order: behind the lane's paged entries */
    if (q->mem_bytes + msg_size(m) <= d->window)
        return false;
    return durable_queue_stored(q) || (d->pressure != 0 && msg_bytes_live > d->pressure);
}

/* A queue that is not stored and starts paging gets an id for its entries, recorded so that
 * the next start deletes them. 0, or -1 on ENOMEM. */
static int
durable_queue_temp_id(struct durable *d, struct queue *q)
{
    struct store_batch *b = durable_batch(d);
    if (b == NULL)
        return -1;
    struct durable_queue *dq = durable_queue_attach(q);
    if (dq == NULL)
        return -1;
    uint8_t key[STORE_KEY_DELIVERED_LEN];
    dq->store_id = d->next_queue_id++;
    dq->store_temp = true;
    store_key_temp_queue(key, dq->store_id);
    return store_batch_put(b, key, sizeof(key), NULL, 0);
}

int
durable_entry_page_out(struct durable *d, struct queue *q, const struct msg *m, uint64_t seq,
                       uint64_t expires_at)
{
    bool transient = !durable_entry_wanted(q, m);
    unsigned lane = queue_seq_lane(seq);
    if ((durable_queue_id(q) == 0 && durable_queue_temp_id(d, q) < 0) ||
        durable_entry_write(d, q, m, seq, expires_at, transient) < 0) {
        log_msg(LOG_ERROR, "out of memory paging out a message of queue '%s'", q->name);
        return -1;
    }
    if (durable_pageout_count(d, q, lane, m->body_len) < 0) {
        /* Written, but a failure could not be accounted for: the batch must not go. */
        log_msg(LOG_ERROR, "out of memory paging out a message of queue '%s'", q->name);
        d->lost = true;
        return -1;
    }
    struct durable_lane *dl = &q->durable_state->lanes[lane];
    if (dl->n_paged == 0) {
        dl->paged_shared = false;
        dl->page_lo = seq;
    }
    if (m->store_id != 0 && !transient)
        dl->paged_shared = true;
    dl->n_paged++;
    return 0;
}

uint64_t
durable_queue_paged(const struct queue *q)
{
    uint64_t n = 0;
    for (unsigned i = 0; q->durable_state != NULL && i < q->durable_state->n_lanes; i++)
        n += q->durable_state->lanes[i].n_paged;
    return n;
}

uint64_t
durable_lane_paged(const struct queue *q, unsigned lane)
{
    return q->durable_state != NULL ? q->durable_state->lanes[lane].n_paged : 0;
}

/* Whether none of lane's ready entries is in memory: all of them are paged. */
static bool
durable_lane_all_paged(const struct queue *q, unsigned lane)
{
    return q->lanes[lane].n_ready == q->durable_state->lanes[lane].n_paged;
}

bool
durable_page_in_wanted(const struct durable *d, const struct queue *q, unsigned lane)
{
    return !q->durable_state->page_waiting &&
           (q->mem_bytes < d->window / 2 || durable_lane_all_paged(q, lane));
}

struct page_in_ctx {
    struct durable *d;
    struct queue *q;
    unsigned lane;
    bool forced;    /* none of the lane was in memory, and other lanes' filled half the window:
                     * DURABLE_PAGE_IN_FORCED bytes at least */
    uint64_t read;  /* entries */
    uint64_t bytes; /* value bytes */
};

static int
durable_page_in_entry(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct page_in_ctx *x = arg;
    struct queue *q = x->q;
    struct durable_lane *dl = &q->durable_state->lanes[x->lane];
    const uint8_t *v = val;
    struct queue_stored_entry se = {
        .seq = klen == STORE_KEY_QENTRY_LEN ? bytes_get64((const uint8_t *)key + 9) : 0};
    struct msg *m = NULL;
    enum durable_load rc = DURABLE_LOAD_CORRUPT;
    char err[256] = "";
    struct durable_entry_head h;
    bool decoded = durable_entry_head_decode(v, vlen, &h);
    if (decoded && (h.flags & DURABLE_ENTRY_TRANSIENT) && se.seq < dl->restored_below)
        return 0; /* from before the start, which is deleting it: not counted in n_paged */
    if (decoded && (h.flags & DURABLE_ENTRY_SHARED))
        rc = durable_shared_load(x->d, h.shared_id, &m, err, sizeof(err));
    else if (decoded)
        rc = durable_msg_decode(h.msg, h.msg_len, &m);
    se.expires_at = h.expires_at;
    se.delivery_count = h.delivery_count;
    se.redelivered = se.seq <= dl->delivered_seq;
    WR_ASSERT(rc != DURABLE_LOAD_OK || se.seq >= dl->page_lo);
    if (rc == DURABLE_LOAD_NOMEM || (rc == DURABLE_LOAD_OK && queue_entry_page_in(q, m, &se) < 0)) {
        msg_unref(&m);
        log_msg(LOG_ERROR, "out of memory reading queue '%s' back from the store", q->name);
        return 1;
    }
    if (rc != DURABLE_LOAD_OK) {
        /* Left in the store for inspection, skipped here: the queue goes on. */
        char sample[64];
        log_msg(LOG_ERROR, "store: cannot read entry %s of queue '%s' (%s): skipped",
                log_escape(sample, sizeof(sample), key, klen), q->name,
                rc == DURABLE_LOAD_MISSING      ? "its shared message is missing"
                : rc == DURABLE_LOAD_READ_ERROR ? err
                                                : "corrupt record");
        queue_paged_lost(q, x->lane, 1,
                         h.flags & DURABLE_ENTRY_SHARED ? h.body_len
                                                        : durable_msg_body_len(h.msg, h.msg_len));
    }
    dl->n_paged--;
    dl->page_lo = se.seq + 1;
    msg_unref(&m);
    x->read++;
    x->bytes += vlen;
    return dl->n_paged == 0 || x->bytes >= DURABLE_PAGE_IN_STEP ||
           (q->mem_bytes >= x->d->window && (!x->forced || x->bytes >= DURABLE_PAGE_IN_FORCED));
}

void
durable_page_in(struct durable *d, struct queue *q, unsigned lane)
{
    bool forced = q->mem_bytes >= d->window / 2 && durable_lane_all_paged(q, lane);
    struct page_in_ctx x = {d, q, lane, forced, 0, 0};
    /* Stopped (enough in memory, or ENOMEM) or a read error: the next dispatch asks again. */
    struct durable_queue *dq = q->durable_state;
    struct durable_lane *dl = &dq->lanes[lane];
    if (durable_paged_walk(d, q, lane, durable_page_in_entry, &x, "back") != 0 || dl->n_paged == 0)
        return;
    if (!LIST_EMPTY(&dq->pageouts)) {
        /* The rest is in batches the store has not completed yet. */
        if (x.read == 0)
            durable_page_wait(d, q);
        return;
    }
    /* Every batch that paged out of q is done, and every entry read: those counted but not
     * found are not there (a bug's mark). Looking for them again would never end. */
    log_msg(LOG_ERROR,
            "queue '%s': %" PRIu64 " messages counted as paged out are not in the store: "
            "dropped",
            q->name, dl->n_paged);
    queue_paged_lost(q, lane, dl->n_paged, 0);
    dl->n_paged = 0;
}
