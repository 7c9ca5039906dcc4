/* Queues: the commands that change a queue (enqueue, deliver, settle, requeue, purge,
 * delete), its consumers, and dispatch. Every change to a queue's entries goes through a
 * queue_cmd_* function (or queue_free), which hands the applied command to the journal
 * (queue_journal): persisting or mirroring a queue means consuming that stream. The orders
 * (ready entries, requeued ones, consumers' turns) and the commands' invariants are
 * include/warren/queue.h's. */
#include "config.h"

#include "warren/queue.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "queue_int.h"
#include "warren/assert.h"
#include "warren/deadletter.h"
#include "warren/durable.h"
#include "warren/log.h"
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

/* Where deadline timers live (queue_set_event_base); NULL: no timers. Loop thread only. */
static struct event_base *queue_event_base;

/* Expired entries dropped by one timer callback or publish at most, so that a million
 * expiring at once do not hold the loop: the rest go in the next turns. */
#define QUEUE_EXPIRE_STEP 4096

void
queue_set_event_base(struct event_base *base)
{
    queue_event_base = base;
}

/* The time now, in us since the epoch: expiry times are absolute, so that they mean the same
 * after a restart. */
uint64_t
queue_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Where the queue's changes are written (NULL: nowhere, as for queues made without a vhost
 * by unit tests and benchmarks). */
static struct durable *
queue_durable(const struct queue *q)
{
    return q->vhost != NULL ? q->vhost->durable : NULL;
}

/* Hands an applied command to whoever records the queue's changes: the durable layer. */
void
queue_journal(const struct queue_cmd *c)
{
    durable_queue_cmd(queue_durable(c->q), c);
}

/* Requeued entries come back in seq order. */
static bool
queue_entry_before(const struct pheap_node *a, const struct pheap_node *b)
{
    return pheap_container_of(a, struct qentry, requeued_node)->seq <
           pheap_container_of(b, struct qentry, requeued_node)->seq;
}

/* The consumer served next: the highest priority, then the least recently served. */
static bool
queue_cons_before(const struct pheap_node *a, const struct pheap_node *b)
{
    const struct cons *ca = pheap_container_of(a, struct cons, ready_node);
    const struct cons *cb = pheap_container_of(b, struct cons, ready_node);
    return ca->priority != cb->priority ? ca->priority > cb->priority : ca->turn < cb->turn;
}

/* The single active consumer's successor: the highest priority, then the first registered. */
static bool
queue_cons_waits_before(const struct pheap_node *a, const struct pheap_node *b)
{
    const struct cons *ca = pheap_container_of(a, struct cons, ready_node);
    const struct cons *cb = pheap_container_of(b, struct cons, ready_node);
    return ca->priority != cb->priority ? ca->priority > cb->priority : ca->since < cb->since;
}

struct queue *
queue_new(struct vhost *vh, struct wire_str name, bool durable, bool auto_delete,
          struct queue_owner *owner, struct wire_table args)
{
    struct queue *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return NULL;
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
    free(q->args);
    queue_settings_free(&q->settings);
    free(q);
    return dropped;
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

/* When an entry for m enqueued now on q expires: after the lower of the queue's message TTL
 * and the message's expiration (us since the epoch); 0 if neither is set. */
static uint64_t
queue_entry_expiry(const struct queue *q, const struct msg *m)
{
    int64_t ttl = q->settings.message_ttl;
    if (m->expiration_ms >= 0 && (ttl < 0 || m->expiration_ms < ttl))
        ttl = m->expiration_ms;
    return ttl < 0 ? 0 : queue_now() + (uint64_t)ttl * 1000u;
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
static struct qentry *
queue_head(struct queue *q)
{
    queue_page_in(q);
    return queue_ready_first(q);
}

/* Whether e has expired by now. The entry the publish being dispatched just enqueued has
 * not: a TTL of 0 lets it go to a consumer that can take it at once. */
static bool
queue_entry_expired(const struct queue *q, const struct qentry *e, uint64_t now)
{
    return e->expires_at != 0 && e->expires_at <= now && e->seq != q->fresh_seq;
}

/* The head ready entry e leaves q undelivered (the DROP command), dead-lettered first if q
 * has a dead-letter exchange: the copy is enqueued (and its write added to this turn's store
 * batch) before the original's removal is, so a crash loses neither. At least once, a copy
 * that reached no queue keeps e in dlx_waiting instead (DLX_HOLD). */
static void
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

/* Drops the expired entries at the head (as RabbitMQ, which looks at the head only: an entry
 * behind a longer-lived one waits for it to go), up to QUEUE_EXPIRE_STEP of them. Sets *head
 * to the head entry it stopped at (NULL if none is in memory), so that arming the timer next
 * need not look it up again. Returns true if it stopped at the step with more perhaps
 * expired. */
static bool
queue_expire_head(struct queue *q, struct qentry **head)
{
    uint64_t now = 0;
    for (int n = 0; n < QUEUE_EXPIRE_STEP; n++) {
        struct qentry *e = *head = queue_head(q);
        if (e == NULL || e->expires_at == 0)
            return false;
        if (now == 0)
            now = queue_now();
        if (!queue_entry_expired(q, e, now))
            return false;
        queue_cmd_drop(q, e, DEADLETTER_EXPIRED);
    }
    *head = queue_head(q);
    return true;
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
static void
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

/* ---- time: expiry of head entries (x-message-ttl, expiration) and of queues (x-expires) */

/* When q next has something to do: expire its head entry e (queue_head's answer), or itself
 * if unused, or try its waiting dead letters again; 0 if nothing. */
static uint64_t
queue_next_deadline(const struct queue *q, const struct qentry *e)
{
    uint64_t when = e != NULL ? e->expires_at : 0;
    if (q->unused_until != 0 && q->n_consumers == 0 && (when == 0 || q->unused_until < when))
        when = q->unused_until;
    if (q->dlx_retry_at != 0 && (when == 0 || q->dlx_retry_at < when))
        when = q->dlx_retry_at;
    return when;
}

static void queue_deadline_fired(evutil_socket_t fd, short what, void *arg);

/* queue_deadline_arm, head being q's head entry (queue_head's answer, looked up by the caller
 * since the last change). */
static void
queue_deadline_arm_head(struct queue *q, const struct qentry *head)
{
    if (queue_event_base == NULL)
        return;
    uint64_t when = queue_next_deadline(q, head);
    if (when == 0 || (q->deadline != 0 && q->deadline <= when))
        return;
    if (q->deadline_ev == NULL &&
        (q->deadline_ev = evtimer_new(queue_event_base, queue_deadline_fired, q)) == NULL) {
        log_msg(LOG_ERROR, "out of memory arming the expiry timer of queue '%s'", q->name);
        return;
    }
    uint64_t now = queue_now(), wait = when > now ? when - now : 0;
    struct timeval tv = {(time_t)(wait / 1000000u), (suseconds_t)(wait % 1000000u)};
    evtimer_add(q->deadline_ev, &tv);
    q->deadline = when;
}

/* Arms q's timer for its next deadline, unless it is armed for an earlier one already (which
 * looks again when it fires): a publish or delivery that moves the head costs no re-arming. */
void
queue_deadline_arm(struct queue *q)
{
    if (queue_event_base != NULL)
        queue_deadline_arm_head(q, queue_head(q));
}

/* q's timer: deletes q if it went unused for its x-expires, else tries its waiting dead
 * letters again if it is time, drops its expired head entries (a step at a time: the rest in
 * the next turn) and arms the timer again. */
static void
queue_deadline_fired(evutil_socket_t fd, short what, void *arg)
{
    struct queue *q = arg;
    (void)fd;
    (void)what;
    q->deadline = 0;
    uint64_t now = queue_now();
    if (q->unused_until != 0 && q->n_consumers == 0 && now >= q->unused_until && q->vhost != NULL) {
        log_msg(LOG_INFO, "queue '%s' in vhost '%s' deleted: unused for %lld ms (x-expires)",
                q->name, q->vhost->name, (long long)q->settings.expires);
        vhost_queue_delete(q->vhost, q);
        return;
    }
    if (q->dlx_retry_at != 0 && now >= q->dlx_retry_at)
        queue_dlx_retry(q);
    struct qentry *head;
    if (queue_expire_head(q, &head)) {
        static const struct timeval next_turn = {0, 0};
        evtimer_add(q->deadline_ev, &next_turn);
        q->deadline = now;
        return;
    }
    queue_deadline_arm_head(q, head);
}

void
queue_used(struct queue *q)
{
    q->unused_until =
        q->settings.expires > 0 ? queue_now() + (uint64_t)q->settings.expires * 1000u : 0;
    queue_deadline_arm(q);
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

/* Puts c at the back of the round robin of its priority. */
static void
queue_cons_ready(struct queue *q, struct cons *c)
{
    c->state = CONS_READY;
    c->turn = ++q->cons_turn;
    pheap_push(&q->cons_ready, &c->ready_node);
}

/* Takes c out of the round robin until queue_consumer_wake. */
static void
queue_cons_park(struct queue *q, struct cons *c)
{
    pheap_remove(&q->cons_ready, &c->ready_node);
    c->state = CONS_PARKED;
}

/* Takes c out of whichever heap holds it (READY, WAITING); it is in none afterwards. */
static void
queue_cons_unlink(struct queue *q, struct cons *c)
{
    if (c->state == CONS_READY)
        pheap_remove(&q->cons_ready, &c->ready_node);
    else if (c->state == CONS_WAITING)
        pheap_remove(&q->sac_waiting, &c->ready_node);
}

/* Single active consumer: makes the consumer RabbitMQ 3.12+ would choose the active one. With
 * none active, the first waiting one (highest priority, then first registered) becomes
 * active. When one of a higher priority than the active one waits, the active one hands
 * over at once if it has nothing unsettled; otherwise it quiesces: it gets nothing more,
 * keeps what it has, and hands over when its channel wakes it with everything settled
 * (queue_consumer_wake), so that one consumer at a time ever holds the queue's messages. A
 * quiescing consumer whose rival went (cancelled) before it handed over resumes at once
 * (RabbitMQ's quorum queues would wait for it to settle everything first). */
static void
queue_sac_update(struct queue *q)
{
    struct pheap_node *n = pheap_min(&q->sac_waiting);
    struct cons *next = n != NULL ? pheap_container_of(n, struct cons, ready_node) : NULL;
    struct cons *active = q->sac_active;
    if (active != NULL && (next == NULL || next->priority <= active->priority)) {
        if (active->state == CONS_QUIESCING)
            queue_cons_ready(q, active);
        return;
    }
    if (next == NULL)
        return;
    if (active != NULL) {
        if (active->ops->unsettled(active) > 0) {
            queue_cons_unlink(q, active);
            active->state = CONS_QUIESCING;
            return;
        }
        queue_cons_unlink(q, active);
        active->state = CONS_WAITING;
        pheap_push(&q->sac_waiting, &active->ready_node);
    }
    pheap_remove(&q->sac_waiting, &next->ready_node);
    q->sac_active = next;
    queue_cons_ready(q, next);
}

void
queue_consumer_add(struct queue *q, struct cons *c)
{
    c->queue = q;
    TAILQ_INSERT_TAIL(&q->consumers, c, link);
    c->since = ++q->cons_turn;
    if (q->settings.single_active_consumer) {
        c->state = CONS_WAITING;
        pheap_push(&q->sac_waiting, &c->ready_node);
        queue_sac_update(q);
    } else {
        queue_cons_ready(q, c);
    }
    q->n_consumers++;
    q->n_exclusive += c->exclusive;
    q->had_consumer = true;
    queue_used(q);
}

bool
queue_consumer_remove(struct cons *c)
{
    struct queue *q = c->queue;
    WR_ASSERT(q != NULL);
    TAILQ_REMOVE(&q->consumers, c, link);
    queue_cons_unlink(q, c);
    c->queue = NULL;
    q->n_consumers--;
    q->n_exclusive -= c->exclusive;
    if (q->settings.single_active_consumer) {
        /* The next one takes over; or a quiescing active one lost its rival. */
        if (q->sac_active == c)
            q->sac_active = NULL;
        queue_sac_update(q);
    }
    queue_used(q);
    return q->auto_delete && q->n_consumers == 0;
}

bool
queue_has_exclusive_consumer(const struct queue *q)
{
    return q->n_exclusive > 0;
}

void
queue_consumer_wake(struct cons *c)
{
    struct queue *q = c->queue;
    if (q == NULL)
        return;
    if (c->state == CONS_PARKED)
        queue_cons_ready(q, c);
    else if (c->state == CONS_QUIESCING)
        queue_sac_update(q); /* hands over if it has settled everything */
    queue_dispatch(q);
}

/* The consumer that gets the next message: the first in the round robin that can take one
 * now. Those met first that cannot are parked on the way, so each is looked at once until
 * its channel wakes it. NULL if none can take. */
static struct cons *
queue_pick_consumer(struct queue *q)
{
    struct pheap_node *n;
    while ((n = pheap_min(&q->cons_ready)) != NULL) {
        struct cons *c = pheap_container_of(n, struct cons, ready_node);
        if (c->ops->can_take(c))
            return c;
        queue_cons_park(q, c);
    }
    return NULL;
}

/* Hands ready entries to consumers that can take them, until none can or none are ready,
 * without arming q's timer. Returns false if a pass over q is running already (up the stack):
 * a delivery can free consumer capacity elsewhere and ask for dispatch again, and one pass at a
 * time is enough, the loop below picks up whatever became possible. */
static bool
queue_dispatch_pass(struct queue *q)
{
    if (q->dispatching)
        return false;
    q->dispatching = true;
    while (q->n_ready > 0) {
        struct cons *c = queue_pick_consumer(q);
        if (c == NULL)
            break;
        struct qentry *e = queue_cmd_deliver(q);
        if (e == NULL)
            break; /* paged out, not readable yet: the durable layer dispatches again */
        pheap_pop(&q->cons_ready); /* c, to the back of its round robin */
        queue_cons_ready(q, c);
        if (c->ops->deliver(c, e) < 0) {
            queue_delivery_undo(e); /* not taken after all */
            queue_cons_park(q, c);
        }
    }
    q->dispatching = false;
    return true;
}

void
queue_dispatch(struct queue *q)
{
    if (queue_dispatch_pass(q))
        queue_deadline_arm(q);
}

/* The head entry is looked up once after the dispatch (by queue_expire_head), and the timer
 * armed from it: dispatch does not arm it first for a head that may be dropped next. */
void
queue_publish_dispatch(struct queue *q)
{
    q->fresh_seq = q->last_seq;
    queue_dispatch_pass(q);
    q->fresh_seq = 0;
    queue_drop_over_limit(q);
    struct qentry *head;
    queue_expire_head(q, &head); /* what is left past the step, the timer drops a step per turn */
    queue_deadline_arm_head(q, head);
}
