/* Queues: their making and freeing, their entries (lanes, ready and requeued ones, paged ones
 * read back) and the commands that change them (enqueue, deliver, settle, requeue, drop, purge,
 * delete). Every change to a queue's entries goes through a queue_cmd_* function (or
 * queue_free), which hands the applied command to the journal (queue_journal): persisting or
 * mirroring a queue means consuming that stream. The orders (ready entries, requeued ones,
 * consumers' turns) and the commands' invariants are include/warren/queue.h's. Time (TTLs,
 * x-expires, the timer) is queue_expiry.c's, consumers and dispatch queue_consumers.c's,
 * at-least-once dead letters queue_dlx.c's. */
#include "config.h"

#include "warren/queue.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "queue_int.h"
#include "warren/assert.h"
#include "warren/deadletter.h"
#include "warren/durable.h"
#include "warren/msg.h"
#include "warren/pool.h"
#include "warren/vhost.h"

/* Every queue entry of the process comes from this pool (an entry can outlive its queue and
 * its vhost: a channel holds it until the client settles it). Loop thread only. */
static struct pool queue_entry_pool = POOL_INITIALIZER(sizeof(struct qentry), 8);

/* At exit, after main has freed every queue and connection, so that no cached slab outlives
 * the process for valgrind to report. */
static void queue_entry_pool_free(void) __attribute__((destructor));
static void
queue_entry_pool_free(void)
{
    pool_clear(&queue_entry_pool);
}

/* Where the queue's changes are written (NULL: nowhere, as for queues made without a vhost
 * by unit tests and benchmarks). */
static struct durable *
queue_durable(const struct queue *q)
{
    return q->vhost != NULL ? q->vhost->durable : NULL;
}

/* Hands an applied command to whoever records the queue's changes: the durable layer, and the
 * replication of a replicated queue. */
void
queue_journal(const struct queue_cmd *c)
{
    struct queue_replica *r = c->q->replica;
    durable_queue_cmd(queue_durable(c->q), c);
    if (r != NULL)
        r->journal(r, c);
}

/* Requeued entries come back in seq order. */
static bool
queue_entry_before(const struct pheap_node *a, const struct pheap_node *b)
{
    return pheap_container_of(a, struct qentry, requeued_node)->seq <
           pheap_container_of(b, struct qentry, requeued_node)->seq;
}

/* stats_gauges_fn of a queue: its ready and unacknowledged messages. */
static void
queue_stats_gauges(const struct stats_obj *o, uint64_t out[STATS_GAUGES])
{
    const struct queue *q = (const struct queue *)((const char *)o - offsetof(struct queue, stats));
    out[0] = q->n_ready;
    out[1] = q->n_unacked;
}

struct queue *
queue_new(struct vhost *vh, struct wire_str name, bool durable, bool auto_delete,
          struct queue_owner *owner, struct wire_table args)
{
    struct queue *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return NULL;
    q->stats.gauges = queue_stats_gauges;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    q->created_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
    q->name = malloc(name.len + 1);
    q->args = malloc(args.len > 0 ? args.len : 1);
    if (q->name == NULL || q->args == NULL || queue_settings_from_args(&q->settings, args) < 0) {
        free(q->name);
        free(q->args);
        free(q);
        return NULL;
    }
    memcpy(q->name, name.ptr, name.len);
    q->name[name.len] = '\0';
    q->name_len = name.len;
    if (args.len > 0)
        memcpy(q->args, args.ptr, args.len);
    q->args_len = args.len;
    q->vhost = vh;
    q->n_lanes = q->settings.max_priority + 1;
    q->lanes = &q->lane0;
    if (q->n_lanes > 1 && (q->lanes = calloc(q->n_lanes, sizeof(*q->lanes))) == NULL) {
        queue_settings_free(&q->settings);
        free(q->name);
        free(q->args);
        free(q);
        return NULL;
    }
    for (unsigned i = 0; i < q->n_lanes; i++) {
        struct queue_lane *l = &q->lanes[i];
        TAILQ_INIT(&l->ready);
        pheap_init(&l->requeued, queue_entry_before);
        /* 0 is below every seq of lane 0: a delivery watermark of 0 means none delivered */
        l->next_seq = ((uint64_t)i << QUEUE_LANE_SHIFT) + 1;
    }
    q->durable = durable;
    q->auto_delete = auto_delete;
    TAILQ_INIT(&q->unacked);
    TAILQ_INIT(&q->dlx_waiting);
    TAILQ_INIT(&q->consumers);
    pheap_init(&q->cons_ready, queue_cons_before);
    pheap_init(&q->sac_waiting, queue_cons_waits_before);
    q->owner = owner;
    if (owner != NULL)
        TAILQ_INSERT_TAIL(&owner->queues, q, owner_link);
    queue_used(q);
    queue_dlx_settings_applied(q);
    return q;
}

void
queue_entry_free(struct qentry *e)
{
    msg_unref(&e->msg);
    pool_put(&queue_entry_pool, e);
}

static void
queue_requeued_to_ready(struct pheap_node *n, void *arg)
{
    struct queue_lane *l = arg;
    TAILQ_INSERT_TAIL(&l->ready, pheap_container_of(n, struct qentry, requeued_node), link);
}

/* Moves the requeued entries into their lanes' ready lists, out of order, in O(n): for what
 * walks every ready entry once and keeps none (purge, deletion). */
static void
queue_requeued_flatten(struct queue *q)
{
    for (unsigned i = 0; i < q->n_lanes; i++)
        pheap_drain(&q->lanes[i].requeued, queue_requeued_to_ready, &q->lanes[i]);
}

/* The lane of m's entries: its priority, capped at the queue's maximum (0 without one). */
static unsigned
queue_msg_lane(const struct queue *q, const struct msg *m)
{
    return m->priority < q->n_lanes ? m->priority : q->n_lanes - 1u;
}

/* One more ready entry in lane l (in memory, paged or about to be). */
static void
queue_lane_count(struct queue *q, unsigned l)
{
    q->lanes[l].n_ready++;
    q->n_ready++;
    if (l > q->top_lane)
        q->top_lane = (uint16_t)l;
}

uint64_t
queue_free(struct queue *q, struct exch ***emptied, uint32_t *n_emptied)
{
    struct exch **ignored = NULL;
    uint32_t n_ignored = 0;
    exch_unbind_all(&q->bindings_in, emptied != NULL ? emptied : &ignored,
                    n_emptied != NULL ? n_emptied : &n_ignored);
    free(ignored);
    if (q->deadline_ev != NULL)
        event_free(q->deadline_ev);
    /* The store forgets the queue with its entries in one go (their range). */
    queue_requeued_flatten(q);
    uint64_t dropped = q->n_ready;
    TAILQ_CONCAT(&q->lanes[0].ready, &q->dlx_waiting, link); /* dropped with it, uncounted */
    queue_journal(&(struct queue_cmd){.kind = QUEUE_CMD_DELETE, .q = q});
    struct cons *c;
    pheap_init(&q->cons_ready, queue_cons_before); /* their nodes are the consumers' */
    pheap_init(&q->sac_waiting, queue_cons_waits_before);
    while ((c = TAILQ_FIRST(&q->consumers)) != NULL) {
        TAILQ_REMOVE(&q->consumers, c, link);
        c->queue = NULL;
        c->ops->queue_deleted(c);
    }
    struct qentry *e;
    while ((e = TAILQ_FIRST(&q->unacked)) != NULL) {
        TAILQ_REMOVE(&q->unacked, e, link);
        e->queue = NULL; /* its channel frees it when the client settles it */
    }
    for (unsigned i = 0; i < q->n_lanes; i++) {
        while ((e = TAILQ_FIRST(&q->lanes[i].ready)) != NULL) {
            TAILQ_REMOVE(&q->lanes[i].ready, e, link);
            queue_entry_free(e);
        }
    }
    if (q->owner != NULL)
        TAILQ_REMOVE(&q->owner->queues, q, owner_link);
    if (q->lanes != &q->lane0)
        free(q->lanes);
    free(q->name);
    free(q->home);
    free(q->owner_node);
    free(q->args);
    queue_settings_free(&q->settings);
    stats_obj_clear(&q->stats);
    free(q);
    return dropped;
}

void
queue_reset(struct queue *q)
{
    struct qentry *e;
    while ((e = TAILQ_FIRST(&q->unacked)) != NULL) {
        TAILQ_REMOVE(&q->unacked, e, link);
        e->queue = NULL;
    }
    queue_requeued_flatten(q);
    TAILQ_CONCAT(&q->lanes[0].ready, &q->dlx_waiting, link);
    for (unsigned i = 0; i < q->n_lanes; i++) {
        struct queue_lane *l = &q->lanes[i];
        while ((e = TAILQ_FIRST(&l->ready)) != NULL) {
            TAILQ_REMOVE(&l->ready, e, link);
            queue_entry_free(e);
        }
        l->n_ready = 0;
        l->next_seq = ((uint64_t)i << QUEUE_LANE_SHIFT) + 1;
    }
    q->top_lane = 0;
    q->n_ready = q->n_unacked = q->n_dlx = q->dlx_bytes = 0;
    q->mem_bytes = q->ready_bytes = 0;
    q->last_seq = q->fresh_seq = 0;
}

/* Counts e's message among the ready ones in memory. */
static void
queue_ready_count(struct queue *q, const struct qentry *e)
{
    queue_lane_count(q, queue_seq_lane(e->seq));
    q->mem_bytes += msg_size(e->msg);
    q->ready_bytes += e->msg->body_len;
}

/* Stops counting e's message among the ready ones (it left, or goes to a consumer). */
static void
queue_ready_uncount(struct queue *q, const struct qentry *e)
{
    q->lanes[queue_seq_lane(e->seq)].n_ready--;
    q->n_ready--;
    q->mem_bytes -= msg_size(e->msg);
    /* Bodies of entries paged out before a restart by an older build were not counted. */
    q->ready_bytes -=
        q->n_ready > 0 && q->ready_bytes > e->msg->body_len ? e->msg->body_len : q->ready_bytes;
}

/* An entry of q for m (taking a reference), as se describes it, in no list yet. NULL on
 * ENOMEM. */
static struct qentry *
queue_entry_new(struct queue *q, struct msg *m, const struct queue_stored_entry *se, bool stored)
{
    struct qentry *e = pool_get(&queue_entry_pool);
    if (e == NULL)
        return NULL;
    e->msg = msg_ref(m);
    e->queue = q;
    e->seq = se->seq;
    e->expires_at = se->expires_at;
    e->delivery_count = se->delivery_count;
    e->redelivered = se->redelivered;
    e->stored = stored;
    e->relayed = false;
    e->dlx_reason = 0;
    return e;
}

/* Appends an entry for m (taking a reference) at the tail of its lane's in-memory ready list
 * (the lane is the seq's): a new one, or one read back from the store (stored). Not counted in
 * n_ready here. NULL on ENOMEM. */
static struct qentry *
queue_entry_append(struct queue *q, struct msg *m, const struct queue_stored_entry *se, bool stored)
{
    unsigned lane = queue_seq_lane(se->seq); /* one of q's: the callers' seqs are */
    WR_ASSERT(se->seq >= q->lanes[lane].next_seq || durable_lane_paged(q, lane) > 0);
    struct qentry *e = queue_entry_new(q, m, se, stored);
    if (e == NULL)
        return NULL;
    TAILQ_INSERT_TAIL(&q->lanes[lane].ready, e, link);
    q->mem_bytes += msg_size(m);
    return e;
}

int
queue_cmd_enqueue(struct queue *q, struct msg *m)
{
    struct durable *d = queue_durable(q);
    unsigned lane = queue_msg_lane(q, m);
    struct queue_lane *l = &q->lanes[lane];
    struct queue_stored_entry se = {.seq = l->next_seq, .expires_at = queue_entry_expiry(q, m)};
    struct qentry *e = NULL;
    if (durable_page_out_wanted(d, q, lane, m)) {
        /* Past the window: the entry exists in the store only, until read back. */
        if (durable_entry_page_out(d, q, m, se.seq, se.expires_at) < 0)
            return -1;
    } else if ((e = queue_entry_append(q, m, &se, false)) == NULL) {
        return -1;
    }
    l->next_seq++;
    q->last_seq = se.seq;
    queue_lane_count(q, lane);
    q->ready_bytes += m->body_len;
    queue_journal(
        &(struct queue_cmd){.kind = QUEUE_CMD_ENQUEUE, .q = q, .e = e, .m = m, .seq = se.seq});
    return 0;
}

int
queue_cmd_enqueue_replayed(struct queue *q, struct msg *m, const struct queue_stored_entry *se)
{
    unsigned lane = queue_seq_lane(se->seq);
    WR_ASSERT(lane < q->n_lanes);
    struct qentry *e = NULL;
    if (se->dead) {
        /* Replayed after every other entry (its key sorts last): its seq may be below theirs;
         * new entries of its lane still get seqs above it. */
        WR_ASSERT(m != NULL);
        if ((e = queue_entry_new(q, m, se, false)) == NULL)
            return -1;
        queue_dlx_replayed(q, e, se->dlx_reason);
        queue_seq_raise(q, se->seq + 1);
    } else {
        WR_ASSERT(se->seq >= q->lanes[lane].next_seq);
        if (m != NULL && (e = queue_entry_append(q, m, se, false)) == NULL)
            return -1;
        q->lanes[lane].next_seq = se->seq + 1;
        queue_lane_count(q, lane);
        q->ready_bytes += m != NULL ? m->body_len : se->body_len;
    }
    queue_journal(&(struct queue_cmd){
        .kind = QUEUE_CMD_ENQUEUE, .q = q, .e = e, .m = m, .seq = se->seq, .replayed = true});
    return 0;
}

void
queue_seq_raise(struct queue *q, uint64_t seq)
{
    struct queue_lane *l = &q->lanes[queue_seq_lane(seq)];
    WR_ASSERT(queue_seq_lane(seq) < q->n_lanes);
    if (l->next_seq < seq)
        l->next_seq = seq;
}

int
queue_entry_page_in(struct queue *q, struct msg *m, const struct queue_stored_entry *se)
{
    return queue_entry_append(q, m, se, true) != NULL ? 0 : -1;
}

void
queue_paged_lost(struct queue *q, unsigned lane, uint64_t n, uint64_t body_bytes)
{
    q->lanes[lane].n_ready -= n;
    q->n_ready -= n;
    q->ready_bytes -= q->n_ready > 0 && q->ready_bytes > body_bytes ? body_bytes : q->ready_bytes;
}

/* The lane delivered from next: the highest one with ready entries (0 if none has). */
static unsigned
queue_top_lane(struct queue *q)
{
    while (q->top_lane > 0 && q->lanes[q->top_lane].n_ready == 0)
        q->top_lane--;
    return q->top_lane;
}

/* Reads paged entries of the lane delivered from next back, while the in-memory ones are
 * under half the window, or when none of that lane is in memory. */
static void
queue_page_in(struct queue *q)
{
    struct durable *d = queue_durable(q);
    unsigned lane = queue_top_lane(q);
    if (d != NULL && durable_lane_paged(q, lane) > 0 && durable_page_in_wanted(d, q, lane))
        durable_page_in(d, q, lane);
}

/* The ready entry delivered next, in memory: in the highest lane with ready entries, the
 * first requeued one or the first never delivered, whichever has the lower seq. NULL if
 * there is none in memory (that lane's are paged out, or there are none). */
static struct qentry *
queue_ready_first(struct queue *q)
{
    struct queue_lane *l = &q->lanes[queue_top_lane(q)];
    struct qentry *head = TAILQ_FIRST(&l->ready);
    struct pheap_node *n = pheap_min(&l->requeued);
    if (n != NULL) {
        struct qentry *r = pheap_container_of(n, struct qentry, requeued_node);
        if (head == NULL || r->seq < head->seq)
            return r;
    }
    return head;
}

/* Takes e, queue_ready_first's answer, out of the ready entries. */
static void
queue_ready_remove(struct queue *q, struct qentry *e)
{
    struct queue_lane *l = &q->lanes[queue_seq_lane(e->seq)];
    if (pheap_min(&l->requeued) == &e->requeued_node)
        pheap_pop(&l->requeued);
    else
        TAILQ_REMOVE(&l->ready, e, link);
    queue_ready_uncount(q, e);
}

/* The head entry, reading paged ones back first if memory has room for them. */
struct qentry *
queue_head(struct queue *q)
{
    queue_page_in(q);
    return queue_ready_first(q);
}

/* The head ready entry e leaves q undelivered (the DROP command), dead-lettered first if q
 * has a dead-letter exchange: the copy is enqueued (and its write added to this turn's store
 * batch) before the original's removal is, so a crash loses neither. At least once, a copy
 * that reached no queue keeps e in dlx_waiting instead (DLX_HOLD). */
void
queue_cmd_drop(struct queue *q, struct qentry *e, enum deadletter_reason why)
{
    queue_ready_remove(q, e);
    if (!queue_dlx_send(q, e->msg, why)) {
        queue_dlx_hold(q, e, why);
        return;
    }
    queue_journal(&(struct queue_cmd){.kind = QUEUE_CMD_DROP, .q = q, .e = e});
    queue_entry_free(e);
}

/* Whether q holds more than its length limits allow. */
static bool
queue_over_limit(const struct queue *q)
{
    const struct queue_settings *s = &q->settings;
    return (s->max_length >= 0 && q->n_ready > (uint64_t)s->max_length) ||
           (s->max_length_bytes >= 0 && q->ready_bytes > (uint64_t)s->max_length_bytes);
}

/* x-overflow drop-head: drops (dead-letters) head entries while q is over its limits. Those
 * paged out and not readable yet go when they are read back. */
void
queue_drop_over_limit(struct queue *q)
{
    if (q->settings.overflow != QUEUE_OVERFLOW_DROP_HEAD)
        return;
    struct qentry *e;
    while (queue_over_limit(q) && (e = queue_head(q)) != NULL)
        queue_cmd_drop(q, e, DEADLETTER_MAXLEN);
}

bool
queue_refuses(const struct queue *q, const struct msg *m)
{
    const struct queue_settings *s = &q->settings;
    /* A replicated queue is taken only where it is served: not by a copy that is not live, nor
     * by a node that just stopped being a member and does not know where it is served yet. */
    if ((q->replica != NULL && !q->replica->live) ||
        (q->group_id != 0 && q->replica == NULL && q->home == NULL))
        return true;
    if (s->overflow == QUEUE_OVERFLOW_DROP_HEAD)
        return false;
    /* Dead letters waiting (at-least-once) count too, as in RabbitMQ's quorum queues. */
    return (s->max_length >= 0 && q->n_ready + q->n_dlx + 1 > (uint64_t)s->max_length) ||
           (s->max_length_bytes >= 0 &&
            q->ready_bytes + q->dlx_bytes + m->body_len > (uint64_t)s->max_length_bytes);
}

struct qentry *
queue_cmd_deliver(struct queue *q)
{
    struct qentry *e;
    while ((e = queue_head(q)) != NULL && e->expires_at != 0 &&
           queue_entry_expired(q, e, queue_now()))
        queue_cmd_drop(q, e, DEADLETTER_EXPIRED);
    if (e == NULL)
        return NULL;
    queue_ready_remove(q, e);
    TAILQ_INSERT_TAIL(&q->unacked, e, link);
    q->n_unacked++;
    queue_journal(&(struct queue_cmd){.kind = QUEUE_CMD_DELIVER, .q = q, .e = e, .seq = e->seq});
    /* The next head may expire before the deadline armed (a message published with a short
     * expiration behind one with none): RabbitMQ drops it then, not at the later deadline. */
    queue_deadline_arm(q);
    return e;
}

/* Takes e off the unacked list of its (live) queue. */
static void
queue_unacked_remove(struct qentry *e)
{
    struct queue *q = e->queue;
    TAILQ_REMOVE(&q->unacked, e, link);
    q->n_unacked--;
}

void
queue_cmd_settle(struct qentry *e)
{
    if (e->queue != NULL) {
        queue_unacked_remove(e);
        queue_journal(&(struct queue_cmd){.kind = QUEUE_CMD_SETTLE, .q = e->queue, .e = e});
    }
    queue_entry_free(e);
}

/* The delivered entry e dies for why: dead-lettered, then settled, or kept in dlx_waiting
 * (at least once, when the copy reached no queue). An entry whose queue was deleted is
 * freed. */
static void
queue_unacked_die(struct qentry *e, enum deadletter_reason why)
{
    struct queue *q = e->queue;
    if (q != NULL && !queue_dlx_send(q, e->msg, why)) {
        queue_unacked_remove(e);
        queue_dlx_hold(q, e, why);
        return;
    }
    queue_cmd_settle(e);
}

void
queue_cmd_reject(struct qentry *e)
{
    queue_unacked_die(e, DEADLETTER_REJECTED);
}

/* Puts e back among the ready entries of its lane at its original position (by seq). */
static void
queue_ready_insert(struct queue *q, struct qentry *e)
{
    pheap_push(&q->lanes[queue_seq_lane(e->seq)].requeued, &e->requeued_node);
    queue_ready_count(q, e);
}

void
queue_delivery_undo(struct qentry *e)
{
    struct queue *q = e->queue;
    WR_ASSERT(q != NULL);
    queue_unacked_remove(e);
    queue_ready_insert(q, e);
}

void
queue_cmd_requeue(struct qentry *e)
{
    struct queue *q = e->queue;
    if (q == NULL) {
        queue_entry_free(e);
        return;
    }
    e->delivery_count++;
    if (q->settings.delivery_limit >= 0 && e->delivery_count > q->settings.delivery_limit) {
        queue_unacked_die(e, DEADLETTER_DELIVERY_LIMIT);
        return;
    }
    queue_unacked_remove(e);
    e->redelivered = true;
    queue_ready_insert(q, e);
    queue_journal(&(struct queue_cmd){.kind = QUEUE_CMD_REQUEUE, .q = q, .e = e});
    queue_drop_over_limit(q);
}

uint64_t
queue_cmd_purge(struct queue *q)
{
    uint64_t n = q->n_ready; /* paged ones included */
    struct qentry_list dropped = TAILQ_HEAD_INITIALIZER(dropped);
    queue_requeued_flatten(q);
    for (unsigned i = 0; i < q->n_lanes; i++) {
        TAILQ_CONCAT(&dropped, &q->lanes[i].ready, link);
        q->lanes[i].n_ready = 0;
    }
    q->n_ready = 0;
    q->top_lane = 0;
    q->mem_bytes = 0;
    q->ready_bytes = 0;
    queue_journal(&(struct queue_cmd){.kind = QUEUE_CMD_PURGE, .q = q, .dropped = &dropped});
    struct qentry *e;
    while ((e = TAILQ_FIRST(&dropped)) != NULL) {
        TAILQ_REMOVE(&dropped, e, link);
        queue_entry_free(e);
    }
    return n;
}

void
queue_settings_set(struct queue *q, struct queue_settings *s)
{
    bool expires_changed = s->expires != q->settings.expires;
    queue_settings_free(&q->settings);
    q->settings = *s;
    queue_settings_init(s);
    /* As RabbitMQ: a new x-expires counts from now; new limits apply at once; a new message
     * TTL applies to the messages published from now on. */
    if (expires_changed)
        queue_used(q);
    queue_dlx_settings_applied(q);
    queue_drop_over_limit(q);
    queue_deadline_arm(q);
}
