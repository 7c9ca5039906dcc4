/* The durable layer's write side: the queues' commands (durable_queue_cmd, in the order
 * queue.c applies them) and the broker's other hooks turn into puts and deletes on one batch
 * per loop turn, submitted by a zero-delay timer so that everything the turn changed shares
 * one RocksDB write (and at most one fsync); barriers ride on the batch and run when the
 * store completes it. See warren/durable.h for what is stored. */
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
#include "warren/vhost.h"

/* One submitted batch's completion, handed to the store as its done argument. */
struct durable_group {
    struct durable *d;                  /* borrows */
    uint64_t turn;                      /* the batch's number (d->turn when it was built) */
    struct durable_waiter_list waiters; /* owns */
};

static void durable_on_flush(evutil_socket_t fd, short what, void *arg);

struct durable *
durable_new(struct store *st, struct event_base *base)
{
    struct durable *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    d->flush_ev = evtimer_new(base, durable_on_flush, d);
    d->sweep_ev = evtimer_new(base, durable_sweep_step, d);
    if (d->flush_ev == NULL || d->sweep_ev == NULL) {
        if (d->flush_ev != NULL)
            event_free(d->flush_ev);
        free(d);
        return NULL;
    }
    d->st = st;
    STAILQ_INIT(&d->waiters);
    TAILQ_INIT(&d->dirty);
    TAILQ_INIT(&d->page_wait);
    d->turn = 1;
    TAILQ_INIT(&d->pageouts);
    TAILQ_INIT(&d->sweeps);
    hmap_init(&d->shared);
    d->window = DURABLE_WINDOW_DEFAULT;
    d->next_queue_id = 1;
    d->next_msg_id = 1;
    return d;
}

struct store *
durable_store(const struct durable *d)
{
    return d->st;
}

void
durable_arm(struct durable *d)
{
    static const struct timeval now = {0, 0};
    if (!evtimer_pending(d->flush_ev, NULL))
        evtimer_add(d->flush_ev, &now);
}

struct store_batch *
durable_batch(struct durable *d)
{
    if (d->batch == NULL) {
        d->batch = store_batch_new();
        if (d->batch == NULL) {
            if (!d->lost)
                log_msg(LOG_ERROR, "out of memory: changes of this turn are not stored");
            d->lost = true;
            return NULL;
        }
    }
    durable_arm(d);
    return d->batch;
}

/* Runs and frees the waiters of list. */
static void
durable_waiters_run(struct durable_waiter_list *list, const char *err)
{
    struct durable_waiter *w;
    while ((w = STAILQ_FIRST(list)) != NULL) {
        STAILQ_REMOVE_HEAD(list, link);
        w->fn(w->arg, err);
        free(w);
    }
}

/* The paging side first: the waiters (confirms, gets) then see the queues as they are. */
static void
durable_group_done(struct durable_group *g, const char *err)
{
    durable_page_turn_done(g->d, g->turn, err);
    durable_waiters_run(&g->waiters, err);
    free(g);
}

/* Queues whose paged entries were not readable yet may read them now. */
static void
durable_page_wake(struct durable *d)
{
    struct durable_queue_list waiting;
    TAILQ_INIT(&waiting);
    TAILQ_CONCAT(&waiting, &d->page_wait, page_link);
    struct durable_queue *dq;
    while ((dq = TAILQ_FIRST(&waiting)) != NULL) {
        TAILQ_REMOVE(&waiting, dq, page_link);
        dq->page_waiting = false;
        queue_dispatch(dq->q);
    }
}

static void
durable_on_done(void *arg, const char *err)
{
    struct durable_group *g = arg;
    struct durable *d = g->d;
    durable_group_done(g, err);
    durable_page_wake(d);
}

/* Writes the delivery watermarks that moved this turn: one u64 per lane. */
static void
durable_write_watermarks(struct durable *d)
{
    struct durable_queue *dq;
    while ((dq = TAILQ_FIRST(&d->dirty)) != NULL) {
        TAILQ_REMOVE(&d->dirty, dq, dirty_link);
        dq->delivered_dirty = false;
        struct store_batch *b = durable_batch(d);
        if (b == NULL)
            continue;
        uint8_t key[STORE_KEY_DELIVERED_LEN], val[8 * QUEUE_LANES_MAX];
        store_key_delivered(key, dq->store_id);
        for (unsigned i = 0; i < dq->n_lanes; i++)
            bytes_put64(val + 8 * i, dq->lanes[i].delivered_seq);
        store_batch_put(b, key, sizeof(key), val, 8 * dq->n_lanes);
    }
}

/* Submits this turn's batch with its waiters. */
static void
durable_flush(struct durable *d)
{
    durable_write_watermarks(d);
    if (d->batch == NULL && STAILQ_EMPTY(&d->waiters) && TAILQ_EMPTY(&d->page_wait) && !d->lost)
        return;
    uint64_t turn = d->turn++;
    struct durable_group *g = malloc(sizeof(*g));
    if (g == NULL) {
        /* Nobody could be told when the batch is done: they learn it failed now. */
        durable_page_turn_done(d, turn, "out of memory");
        durable_waiters_run(&d->waiters, "out of memory");
    } else {
        g->d = d;
        g->turn = turn;
        STAILQ_INIT(&g->waiters);
        STAILQ_CONCAT(&g->waiters, &d->waiters);
    }
    struct store_batch *b = d->batch;
    bool sync = d->want_sync, lost = d->lost;
    d->batch = NULL;
    d->want_sync = false;
    d->lost = false;
    if (b == NULL)
        b = store_batch_new(); /* an empty batch: a barrier after the previous ones */
    if (lost || b == NULL || g == NULL) {
        store_batch_free(b);
        if (g != NULL)
            durable_group_done(g, "out of memory");
        return;
    }
    if (store_submit(d->st, b, sync, durable_on_done, g) < 0) {
        log_msg(LOG_ERROR, "out of memory: changes of this turn are not stored");
        durable_group_done(g, "out of memory");
    }
}

static void
durable_on_flush(evutil_socket_t fd, short what, void *arg)
{
    durable_flush(arg);
}

void
durable_set_clustered(struct durable *d)
{
    d->clustered = true;
}

uint64_t
durable_meta_index(const struct durable *d)
{
    return d->meta_index;
}

void
durable_meta_index_put(struct durable *d, uint64_t index)
{
    char text[24];
    int n = snprintf(text, sizeof(text), "%" PRIu64, index);
    durable_record_put(d, DURABLE_META_INDEX_KEY, DURABLE_META_INDEX_KEY_LEN, text, (size_t)n);
}

void
durable_set_window(struct durable *d, uint64_t bytes)
{
    d->window = bytes;
}

void
durable_set_memory_pressure(struct durable *d, uint64_t bytes)
{
    d->pressure = bytes;
}

struct durable_queue *
durable_queue_attach(struct queue *q)
{
    if (q->durable_state != NULL)
        return q->durable_state;
    struct durable_queue *dq = calloc(1, sizeof(*dq) + q->n_lanes * sizeof(dq->lanes[0]));
    if (dq == NULL)
        return NULL;
    dq->q = q;
    dq->n_lanes = q->n_lanes;
    LIST_INIT(&dq->pageouts);
    q->durable_state = dq;
    return dq;
}

uint64_t
durable_queue_id(const struct queue *q)
{
    return q->durable_state != NULL ? q->durable_state->store_id : 0;
}

bool
durable_queue_stored(const struct queue *q)
{
    return durable_queue_id(q) != 0 && !q->durable_state->store_temp;
}

static void
durable_shared_free(struct hmap_entry *e)
{
    free(hmap_container_of(e, struct durable_shared, by_id));
}

void
durable_discard_pending(struct durable *d)
{
    store_batch_free(d->batch);
    d->batch = NULL;
    d->lost = false;
    struct durable_queue *dq;
    while ((dq = TAILQ_FIRST(&d->page_wait)) != NULL) {
        TAILQ_REMOVE(&d->page_wait, dq, page_link);
        dq->page_waiting = false;
    }
}

void
durable_detach(struct durable *d, struct vhost_registry *reg)
{
    vhost_registry_set_durable(reg, NULL);
    if (d == NULL)
        return;
    durable_write_watermarks(d);
    struct durable_queue *dq;
    while ((dq = TAILQ_FIRST(&d->page_wait)) != NULL) {
        TAILQ_REMOVE(&d->page_wait, dq, page_link);
        dq->page_waiting = false;
    }
}

void
durable_submit_pending(struct durable *d)
{
    if (d != NULL)
        durable_flush(d);
}

void
durable_free(struct durable *d)
{
    if (d == NULL)
        return;
    WR_ASSERT(d->batch == NULL && STAILQ_EMPTY(&d->waiters) && TAILQ_EMPTY(&d->pageouts));
    event_free(d->flush_ev);
    event_free(d->sweep_ev);
    durable_sweeps_free(d);
    hmap_drain(&d->shared, durable_shared_free);
    free(d);
}

int
durable_barrier(struct durable *d, bool sync, durable_done_fn fn, void *arg)
{
    struct durable_waiter *w = malloc(sizeof(*w));
    if (w == NULL)
        return -1;
    w->fn = fn;
    w->arg = arg;
    STAILQ_INSERT_TAIL(&d->waiters, w, link);
    d->want_sync |= sync;
    durable_arm(d);
    return 0;
}

/* ---- records of the administration layer ---- */

void
durable_record_put(struct durable *d, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct store_batch *b;
    if (d != NULL && (b = durable_batch(d)) != NULL)
        store_batch_put(b, key, klen, val, vlen);
}

void
durable_record_delete(struct durable *d, const void *key, size_t klen)
{
    struct store_batch *b;
    if (d != NULL && (b = durable_batch(d)) != NULL)
        store_batch_delete(b, key, klen);
}

void
durable_record_delete_prefix(struct durable *d, const void *prefix, size_t plen)
{
    struct store_batch *b;
    uint8_t end[STORE_KEY_NAMES_MAX];
    WR_ASSERT(plen >= 1 && plen <= sizeof(end));
    if (d == NULL || (b = durable_batch(d)) == NULL)
        return;
    /* The keys with this prefix are those below the prefix with its last byte that can be
     * incremented incremented (and what follows it dropped). */
    memcpy(end, prefix, plen);
    size_t elen = plen;
    while (elen > 0 && end[elen - 1] == 0xff)
        elen--;
    if (elen == 0)
        return; /* no key family is all 0xff */
    end[elen - 1]++;
    store_batch_delete_range(b, prefix, plen, end, elen);
}

/* ---- entities ---- */

/* Durable exchanges are stored, but the predeclared ones, which every vhost gets anyway
 * (clients cannot declare "amq." names). */
/* Whether e has a record: a durable exchange, or any in a cluster (durable_set_clustered),
 * but the predeclared ones. */
static bool
durable_exch_stored(const struct durable *d, const struct exch *e)
{
    return (e->durable || d->clustered) && strncmp(e->name, "amq.", 4) != 0;
}

void
durable_exchange_added(struct durable *d, const struct exch *e)
{
    struct store_batch *b;
    if (d == NULL || !durable_exch_stored(d, e) || (b = durable_batch(d)) == NULL)
        return;
    const char *vh = e->vhost->name;
    uint8_t key[STORE_KEY_NAMED_MAX], hdr[DURABLE_EXCH_HDR_LEN];
    size_t klen = store_key_exchange(key, vh, strlen(vh), e->name, e->name_len);
    hdr[0] = (uint8_t)e->type;
    hdr[1] = (e->auto_delete ? DURABLE_EXCH_AUTO_DELETE : 0) |
             (e->internal ? DURABLE_EXCH_INTERNAL : 0) | (e->durable ? 0 : DURABLE_EXCH_TRANSIENT);
    struct iovec parts[2] = {{hdr, sizeof(hdr)}, {e->args, e->args_len}};
    store_batch_putv(b, key, klen, parts, 2);
}

void
durable_exchange_removed(struct durable *d, const struct exch *e)
{
    struct store_batch *b;
    if (d == NULL || !durable_exch_stored(d, e) || (b = durable_batch(d)) == NULL)
        return;
    const char *vh = e->vhost->name;
    uint8_t key[STORE_KEY_NAMED_MAX];
    size_t klen = store_key_exchange(key, vh, strlen(vh), e->name, e->name_len);
    store_batch_delete(b, key, klen);
}

/* Whether q's messages are stored: a durable queue of this node, not exclusive, and not
 * replicated (its replicas keep images instead: durable_image.c). */
static bool
durable_queue_storable(const struct queue *q)
{
    return q->durable && q->owner == NULL && q->home == NULL && q->group_id == 0;
}

/* In a cluster, the record of a queue whose messages are not stored here (see
 * DURABLE_QUEUE_CLUSTER). */
static void
durable_queue_definition_put(struct durable *d, const struct queue *q)
{
    struct store_batch *b = durable_batch(d);
    if (b == NULL)
        return;
    const char *vh = q->vhost->name;
    uint8_t key[STORE_KEY_NAMED_MAX], hdr[DURABLE_QUEUE_CLUSTER_HDR_LEN];
    size_t klen = store_key_queue(key, vh, strlen(vh), q->name, q->name_len);
    /* node names: under 256 bytes */
    size_t home_len = q->home != NULL ? strlen(q->home) : 0;
    uint8_t owner_node_len = (uint8_t)(q->owner_node != NULL ? strlen(q->owner_node) : 0);
    bytes_put64(hdr, q->group_id);
    hdr[8] = (uint8_t)(DURABLE_QUEUE_CLUSTER | (q->auto_delete ? DURABLE_QUEUE_AUTO_DELETE : 0) |
                       (q->durable ? 0 : DURABLE_QUEUE_TRANSIENT) |
                       (q->owner != NULL ? DURABLE_QUEUE_EXCLUSIVE : 0) |
                       (q->owner_node != NULL ? DURABLE_QUEUE_OWNER_NODE : 0));
    bytes_put64(hdr + DURABLE_QUEUE_HDR_LEN, q->owner_id);
    hdr[DURABLE_QUEUE_HDR_LEN + 8] = (uint8_t)home_len;
    bool owned = q->owner_node != NULL;
    struct iovec parts[5] = {{hdr, sizeof(hdr)},
                             {q->home != NULL ? q->home : "", home_len},
                             {&owner_node_len, owned ? 1 : 0},
                             {owned ? q->owner_node : "", owner_node_len},
                             {q->args, q->args_len}};
    store_batch_putv(b, key, klen, parts, 5);
}

void
durable_queue_added(struct durable *d, struct queue *q)
{
    struct store_batch *b;
    if (d == NULL)
        return;
    if (!durable_queue_storable(q)) {
        if (d->clustered)
            durable_queue_definition_put(d, q);
        return;
    }
    struct durable_queue *dq = durable_queue_attach(q);
    if (dq == NULL) {
        /* Not stored at all, as if its write was lost: the next barrier fails. */
        log_msg(LOG_ERROR, "out of memory storing queue '%s'", q->name);
        d->lost = true;
        return;
    }
    dq->store_id = d->next_queue_id++;
    if ((b = durable_batch(d)) == NULL)
        return;
    const char *vh = q->vhost->name;
    uint8_t key[STORE_KEY_NAMED_MAX], hdr[DURABLE_QUEUE_HDR_LEN];
    size_t klen = store_key_queue(key, vh, strlen(vh), q->name, q->name_len);
    bytes_put64(hdr, dq->store_id);
    hdr[8] = q->auto_delete ? DURABLE_QUEUE_AUTO_DELETE : 0;
    struct iovec parts[2] = {{hdr, sizeof(hdr)}, {q->args, q->args_len}};
    store_batch_putv(b, key, klen, parts, 2);
}

int
durable_shared_ref(struct durable *d, uint64_t id)
{
    uint8_t key[8];
    bytes_put64(key, id);
    struct hmap_entry *he = hmap_find(&d->shared, key, sizeof(key));
    if (he != NULL) {
        hmap_container_of(he, struct durable_shared, by_id)->refs++;
        return 0;
    }
    struct durable_shared *sh = malloc(sizeof(*sh));
    if (sh == NULL)
        return -1;
    memcpy(sh->id, key, sizeof(key));
    sh->refs = 1;
    if (hmap_insert(&d->shared, &sh->by_id, sh->id, sizeof(sh->id)) < 0) {
        free(sh);
        return -1;
    }
    return 0;
}

void
durable_shared_unref(struct durable *d, struct store_batch *b, uint64_t id)
{
    uint8_t key[8];
    bytes_put64(key, id);
    struct hmap_entry *he = hmap_find(&d->shared, key, sizeof(key));
    if (he == NULL)
        return; /* its count was lost to ENOMEM: the next start removes the record */
    struct durable_shared *sh = hmap_container_of(he, struct durable_shared, by_id);
    if (--sh->refs > 0)
        return;
    hmap_remove(&d->shared, he);
    free(sh);
    if (b != NULL) {
        uint8_t mkey[STORE_KEY_MSG_LEN];
        store_key_msg(mkey, id);
        store_batch_delete(b, mkey, sizeof(mkey));
    }
}

/* The entries of a queue being removed: their keys go with the queue's range; what is left
 * is their references to shared records, and their stored mark. */
static void
durable_entries_forget(struct durable *d, struct store_batch *b, struct qentry_list *list)
{
    struct qentry *e;
    TAILQ_FOREACH(e, list, link) {
        if (!e->stored)
            continue;
        e->stored = false;
        if (e->msg->store_id != 0)
            durable_shared_unref(d, b, e->msg->store_id);
    }
}

void
durable_entries_delete_all(struct store_batch *b, uint64_t queue_id)
{
    uint8_t begin[9], end[9];
    store_key_qentry_prefix(begin, queue_id);
    store_key_qentry_prefix(end, queue_id + 1);
    store_batch_delete_range(b, begin, sizeof(begin), end, sizeof(end));
    store_key_qentry_prefix(begin, queue_id | DURABLE_DEAD_QUEUE);
    store_key_qentry_prefix(end, (queue_id | DURABLE_DEAD_QUEUE) + 1);
    store_batch_delete_range(b, begin, sizeof(begin), end, sizeof(end));
}

/* Takes dq off the lists of queues waiting for a flush or a page-in. */
static void
durable_queue_unlist(struct durable *d, struct durable_queue *dq)
{
    if (dq->delivered_dirty) {
        TAILQ_REMOVE(&d->dirty, dq, dirty_link);
        dq->delivered_dirty = false;
    }
    if (dq->page_waiting) {
        TAILQ_REMOVE(&d->page_wait, dq, page_link);
        dq->page_waiting = false;
    }
}

/* Writes the removal of q (stored, or with paged entries) with all its entries. */
static void
durable_queue_delete(struct durable *d, struct queue *q, struct durable_queue *dq)
{
    durable_queue_unlist(d, dq);
    struct store_batch *b = durable_batch(d);
    for (unsigned i = 0; i < q->n_lanes; i++)
        durable_entries_forget(d, b, &q->lanes[i].ready);
    durable_entries_forget(d, b, &q->unacked);
    if (b == NULL)
        return; /* not deleted from the store: the next start finds it again */
    uint8_t key[STORE_KEY_NAMED_MAX];
    if (dq->store_temp) {
        store_key_temp_queue(key, dq->store_id);
        store_batch_delete(b, key, STORE_KEY_DELIVERED_LEN);
    } else {
        const char *vh = q->vhost->name;
        size_t klen = store_key_queue(key, vh, strlen(vh), q->name, q->name_len);
        store_batch_delete(b, key, klen);
    }
    durable_queue_entries_drop(d, b, q);
    store_key_delivered(key, dq->store_id);
    store_batch_delete(b, key, STORE_KEY_DELIVERED_LEN);
}

/* DELETE: writes q's removal (if stored) and frees its bookkeeping, also with d NULL. */
static void
durable_queue_removed(struct durable *d, struct queue *q)
{
    struct durable_queue *dq = q->durable_state;
    struct store_batch *b;
    if (d != NULL && d->clustered && !durable_queue_storable(q) && (b = durable_batch(d)) != NULL) {
        const char *vh = q->vhost->name;
        uint8_t key[STORE_KEY_NAMED_MAX];
        store_batch_delete(b, key, store_key_queue(key, vh, strlen(vh), q->name, q->name_len));
    }
    if (dq == NULL)
        return;
    if (d != NULL && dq->store_id != 0)
        durable_queue_delete(d, q, dq);
    durable_pageouts_detach(dq);
    free(dq);
    q->durable_state = NULL;
}

void
durable_binding_changed(struct durable *d, const struct exch *src, struct bind_dest dst,
                        struct wire_str routing_key, struct wire_table args, bool added)
{
    if (d == NULL)
        return;
    /* In a cluster every binding is stored, as its ends are. */
    if (!d->clustered && (!src->durable || (dst.is_exch ? !dst.u.exch->durable
                                                        : !durable_queue_stored(dst.u.queue))))
        return;
    struct store_batch *b = durable_batch(d);
    if (b == NULL)
        return;
    const char *vh = src->vhost->name;
    const char *dname = dst.is_exch ? dst.u.exch->name : dst.u.queue->name;
    uint32_t dlen = dst.is_exch ? dst.u.exch->name_len : dst.u.queue->name_len;
    uint8_t stack[1024], *key = stack;
    size_t cap = STORE_KEY_BINDING_MAX(args.len);
    if (cap > sizeof(stack) && (key = malloc(cap)) == NULL) {
        log_msg(LOG_ERROR, "out of memory storing a binding of exchange '%s'", src->name);
        d->lost = true;
        return;
    }
    size_t klen =
        store_key_binding(key, vh, strlen(vh), src->name, src->name_len, dst.is_exch ? 'e' : 'q',
                          dname, dlen, routing_key.ptr, routing_key.len, args.ptr, args.len);
    if (added)
        store_batch_put(b, key, klen, NULL, 0);
    else
        store_batch_delete(b, key, klen);
    if (key != stack)
        free(key);
}

/* ---- queue entries ---- */

bool
durable_entry_wanted(const struct queue *q, const struct msg *m)
{
    return durable_queue_stored(q) && m->delivery_mode == 2;
}

void
durable_msg_routed(struct durable *d, struct msg *m, uint32_t n_stored_queues)
{
    struct store_batch *b;
    if (d == NULL || n_stored_queues < 2 || m->store_id != 0 || (b = durable_batch(d)) == NULL)
        return;
    m->store_id = d->next_msg_id++;
    uint8_t key[STORE_KEY_MSG_LEN], hdr[DURABLE_MSG_HDR_LEN];
    struct iovec parts[DURABLE_MSG_PARTS];
    store_key_msg(key, m->store_id);
    durable_msg_parts(hdr, m, parts);
    store_batch_putv(b, key, sizeof(key), parts, DURABLE_MSG_PARTS);
}

/* Puts the entry I(queue_id, seq) for m in b, its head h (flags and expiry set): a reference
 * to m's shared record when h says DURABLE_ENTRY_SHARED, else m inline. 0, or -1 on ENOMEM. */
static int
durable_entry_put(struct store_batch *b, uint64_t queue_id, const struct msg *m, uint64_t seq,
                  struct durable_entry_head *h)
{
    uint8_t key[STORE_KEY_QENTRY_LEN], head[DURABLE_ENTRY_HEAD_MAX + DURABLE_MSG_HDR_LEN];
    store_key_qentry(key, queue_id, seq);
    if (h->flags & DURABLE_ENTRY_SHARED) {
        h->shared_id = m->store_id;
        h->body_len = (uint32_t)m->body_len;
        return store_batch_put(b, key, sizeof(key), head, durable_entry_head_encode(head, h));
    }
    size_t n = durable_entry_head_encode(head, h);
    struct iovec parts[1 + DURABLE_MSG_PARTS];
    parts[0] = (struct iovec){head, n};
    durable_msg_parts(head + n, m, parts + 1);
    return store_batch_putv(b, key, sizeof(key), parts, 1 + DURABLE_MSG_PARTS);
}

int
durable_entry_write(struct durable *d, const struct queue *q, const struct msg *m, uint64_t seq,
                    uint64_t expires_at, bool transient)
{
    struct store_batch *b = durable_batch(d);
    if (b == NULL)
        return -1;
    struct durable_entry_head h = {.expires_at = expires_at};
    if (expires_at != 0)
        h.flags |= DURABLE_ENTRY_EXPIRES;
    if (m->store_id != 0 && !transient) {
        if (durable_shared_ref(d, m->store_id) < 0) {
            log_msg(LOG_ERROR, "out of memory counting references to a stored message");
            d->lost = true;
            return -1;
        }
        h.flags |= DURABLE_ENTRY_SHARED;
    }
    if (transient)
        h.flags |= DURABLE_ENTRY_TRANSIENT;
    return durable_entry_put(b, q->durable_state->store_id, m, seq, &h);
}

/* DLX_HOLD: moves e (stored) to its dead key, marked dead with its reason: a start puts it
 * back in its queue's dlx_waiting. It keeps its reference to a shared record (the message has
 * a store id only when its entries refer to one). A transient message paged out and back is
 * left as it is: it does not survive a restart anyway (DLX_RELEASE deletes both keys). */
static void
durable_entry_dead(struct durable *d, struct qentry *e)
{
    struct store_batch *b;
    if (d == NULL || !durable_entry_wanted(e->queue, e->msg) || (b = durable_batch(d)) == NULL)
        return;
    uint64_t id = e->queue->durable_state->store_id;
    uint8_t key[STORE_KEY_QENTRY_LEN];
    store_key_qentry(key, id, e->seq);
    store_batch_delete(b, key, sizeof(key));
    struct durable_entry_head h = {
        .flags = DURABLE_ENTRY_DEAD, .expires_at = e->expires_at, .dead_reason = e->dlx_reason};
    if (e->expires_at != 0)
        h.flags |= DURABLE_ENTRY_EXPIRES;
    if (e->msg->store_id != 0)
        h.flags |= DURABLE_ENTRY_SHARED;
    if (durable_entry_put(b, id | DURABLE_DEAD_QUEUE, e->msg, e->seq, &h) < 0) {
        log_msg(LOG_ERROR, "out of memory storing a dead-lettered message of queue '%s'",
                e->queue->name);
        d->lost = true;
    }
}

/* REQUEUE: writes e (stored, of a stored queue: durable_entry_wanted) again with its delivery
 * count, so that a restart does not give a poison message its delivery limit afresh: one write
 * per requeue, none on the publish, deliver, ack path. Its reference to a shared record, if it
 * has one, is the same key's: counted once already. A transient message paged out and back
 * does not survive a restart: its count is not written. */
static void
durable_entry_requeued(struct durable *d, struct qentry *e)
{
    struct store_batch *b;
    if (d == NULL || !durable_entry_wanted(e->queue, e->msg) || (b = durable_batch(d)) == NULL)
        return;
    struct durable_entry_head h = {.flags = DURABLE_ENTRY_COUNTED,
                                   .expires_at = e->expires_at,
                                   .delivery_count = e->delivery_count};
    if (e->expires_at != 0)
        h.flags |= DURABLE_ENTRY_EXPIRES;
    if (e->msg->store_id != 0)
        h.flags |= DURABLE_ENTRY_SHARED;
    if (durable_entry_put(b, e->queue->durable_state->store_id, e->msg, e->seq, &h) < 0) {
        log_msg(LOG_ERROR, "out of memory storing the delivery count of a message of queue '%s'",
                e->queue->name);
        d->lost = true;
    }
}

/* ENQUEUE: writes e (just enqueued on its stored queue, durable_entry_wanted). */
static void
durable_entry_added(struct durable *d, struct qentry *e)
{
    if (d != NULL && durable_entry_write(d, e->queue, e->msg, e->seq, e->expires_at, false) == 0)
        e->stored = true;
}

/* e (stored) left its queue for good: settled or purged, or (dead) released from
 * dlx_waiting, which deletes its dead key too (its live one, if it kept it: see
 * durable_entry_dead). */
static void
durable_entry_removed(struct durable *d, struct qentry *e, bool dead)
{
    e->stored = false;
    struct store_batch *b;
    if (d == NULL || (b = durable_batch(d)) == NULL)
        return;
    uint8_t key[STORE_KEY_QENTRY_LEN];
    store_key_qentry(key, e->queue->durable_state->store_id, e->seq);
    store_batch_delete(b, key, sizeof(key));
    if (dead) {
        store_key_qentry(key, e->queue->durable_state->store_id | DURABLE_DEAD_QUEUE, e->seq);
        store_batch_delete(b, key, sizeof(key));
    }
    if (e->msg->store_id != 0)
        durable_shared_unref(d, b, e->msg->store_id);
}

void
durable_watermark_moved(struct durable *d, struct durable_queue *dq)
{
    if (!dq->delivered_dirty) {
        dq->delivered_dirty = true;
        TAILQ_INSERT_TAIL(&d->dirty, dq, dirty_link);
        durable_arm(d);
    }
}

/* DELIVER: q handed out the entry with this seq (the watermark is written once per batch). */
static void
durable_entry_delivered(struct durable *d, struct queue *q, uint64_t seq)
{
    struct durable_queue *dq = q->durable_state;
    if (d == NULL || !durable_queue_stored(q))
        return;
    struct durable_lane *dl = &dq->lanes[queue_seq_lane(seq)];
    if (seq <= dl->delivered_seq)
        return;
    dl->delivered_seq = seq;
    durable_watermark_moved(d, dq);
}

/* PURGE: the dropped stored entries go, then the paged ones; even with none paged, batches
 * writing some may still be pending, whose counts are no longer the queue's. */
static void
durable_queue_purged(struct durable *d, struct queue *q, struct qentry_list *dropped)
{
    struct qentry *e;
    TAILQ_FOREACH(e, dropped, link) {
        if (e->stored)
            durable_entry_removed(d, e, false);
    }
    durable_page_forget(d, q);
}

void
durable_queue_cmd(struct durable *d, const struct queue_cmd *c)
{
    switch (c->kind) {
    case QUEUE_CMD_ENQUEUE:
        if (c->replayed) {
            /* Read back from its record (a replicated queue's from its image, not ours). */
            if (c->e != NULL && c->q->group_id == 0)
                c->e->stored = true;
        } else if (c->e != NULL && durable_entry_wanted(c->q, c->m)) {
            durable_entry_added(d, c->e);
        }
        break;
    case QUEUE_CMD_DELIVER:
        if (c->e->stored)
            durable_entry_delivered(d, c->q, c->seq);
        break;
    case QUEUE_CMD_DLX_HOLD:
        if (c->e->stored)
            durable_entry_dead(d, c->e);
        break;
    case QUEUE_CMD_SETTLE:
    case QUEUE_CMD_DROP:
    case QUEUE_CMD_DLX_RELEASE:
        if (c->e->stored)
            durable_entry_removed(d, c->e, c->kind == QUEUE_CMD_DLX_RELEASE);
        break;
    case QUEUE_CMD_REQUEUE:
        if (c->e->stored)
            durable_entry_requeued(d, c->e);
        break;
    case QUEUE_CMD_PURGE:
        durable_queue_purged(d, c->q, c->dropped);
        break;
    case QUEUE_CMD_DELETE:
        durable_queue_removed(d, c->q);
        break;
    }
}
