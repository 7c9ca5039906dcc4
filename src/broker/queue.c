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

#include "warren/assert.h"
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

/* Hands an applied command to whoever records the queue's changes: the durable layer. */
static void
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
    TAILQ_INIT(&q->consumers);
    pheap_init(&q->cons_ready, queue_cons_before);
    q->owner = owner;
    if (owner != NULL)
        TAILQ_INSERT_TAIL(&owner->queues, q, owner_link);
    return q;
}

void
queue_settings_set(struct queue *q, struct queue_settings *s)
{
    queue_settings_free(&q->settings);
    q->settings = *s;
    queue_settings_init(s);
}

static void
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
    /* The store forgets the queue with its entries in one go (their range). */
    queue_requeued_flatten(q);
    uint64_t dropped = q->n_ready;
    queue_journal(&(struct queue_cmd){.kind = QUEUE_CMD_DELETE, .q = q});
    struct cons *c;
    pheap_init(&q->cons_ready, queue_cons_before); /* its nodes are the consumers' */
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

/* Appends an entry for m (taking a reference) at the tail of its lane's in-memory ready list
 * (the lane is seq's): a new one, or one read back from the store (stored). Not counted in
 * n_ready here. NULL on ENOMEM. */
static struct qentry *
queue_entry_append(struct queue *q, struct msg *m, uint64_t seq, bool redelivered, bool stored)
{
    unsigned lane = queue_seq_lane(seq);
    WR_ASSERT(lane < q->n_lanes);
    WR_ASSERT(seq >= q->lanes[lane].next_seq || durable_lane_paged(q, lane) > 0);
    struct qentry *e = pool_get(&queue_entry_pool);
    if (e == NULL)
        return NULL;
    e->msg = msg_ref(m);
    e->queue = q;
    e->seq = seq;
    e->redelivered = redelivered;
    e->stored = stored;
    TAILQ_INSERT_TAIL(&q->lanes[lane].ready, e, link);
    q->mem_bytes += msg_size(m);
    return e;
}

int
queue_cmd_enqueue(struct queue *q, struct msg *m)
{
    struct durable *d = queue_durable(q);
    unsigned lane = queue_msg_lane(q, m);
    uint64_t seq = q->lanes[lane].next_seq;
    struct qentry *e = NULL;
    if (durable_page_out_wanted(d, q, lane, m)) {
        /* Past the window: the entry exists in the store only, until read back. */
        if (durable_entry_page_out(d, q, m, seq) < 0)
            return -1;
    } else if ((e = queue_entry_append(q, m, seq, false, false)) == NULL) {
        return -1;
    }
    q->lanes[lane].next_seq++;
    queue_lane_count(q, lane);
    queue_journal(
        &(struct queue_cmd){.kind = QUEUE_CMD_ENQUEUE, .q = q, .e = e, .m = m, .seq = seq});
    return 0;
}

int
queue_cmd_enqueue_replayed(struct queue *q, struct msg *m, uint64_t seq, bool redelivered)
{
    unsigned lane = queue_seq_lane(seq);
    WR_ASSERT(lane < q->n_lanes && seq >= q->lanes[lane].next_seq);
    struct qentry *e = NULL;
    if (m != NULL && (e = queue_entry_append(q, m, seq, redelivered, false)) == NULL)
        return -1;
    q->lanes[lane].next_seq = seq + 1;
    queue_lane_count(q, lane);
    queue_journal(&(struct queue_cmd){
        .kind = QUEUE_CMD_ENQUEUE, .q = q, .e = e, .m = m, .seq = seq, .replayed = true});
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
queue_entry_page_in(struct queue *q, struct msg *m, uint64_t seq, bool redelivered)
{
    return queue_entry_append(q, m, seq, redelivered, true) != NULL ? 0 : -1;
}

void
queue_paged_lost(struct queue *q, unsigned lane, uint64_t n)
{
    q->lanes[lane].n_ready -= n;
    q->n_ready -= n;
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

/* Takes e, which queue_ready_first returned, out of the ready entries. */
static void
queue_ready_take(struct queue *q, struct qentry *e)
{
    struct queue_lane *l = &q->lanes[queue_seq_lane(e->seq)];
    if (pheap_min(&l->requeued) == &e->requeued_node)
        pheap_pop(&l->requeued);
    else
        TAILQ_REMOVE(&l->ready, e, link);
    l->n_ready--;
    q->n_ready--;
    q->mem_bytes -= msg_size(e->msg);
}

struct qentry *
queue_cmd_deliver(struct queue *q)
{
    queue_page_in(q);
    struct qentry *e = queue_ready_first(q);
    if (e == NULL)
        return NULL;
    queue_ready_take(q, e);
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

/* Puts e back among the ready entries of its lane at its original position (by seq). */
static void
queue_ready_insert(struct queue *q, struct qentry *e)
{
    unsigned lane = queue_seq_lane(e->seq);
    pheap_push(&q->lanes[lane].requeued, &e->requeued_node);
    queue_lane_count(q, lane);
    q->mem_bytes += msg_size(e->msg);
}

void
queue_cmd_requeue(struct qentry *e)
{
    struct queue *q = e->queue;
    if (q == NULL) {
        queue_entry_free(e);
        return;
    }
    queue_unacked_remove(e);
    e->redelivered = true;
    queue_ready_insert(q, e);
    queue_journal(&(struct queue_cmd){.kind = QUEUE_CMD_REQUEUE, .q = q, .e = e});
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
    queue_journal(&(struct queue_cmd){.kind = QUEUE_CMD_PURGE, .q = q, .dropped = &dropped});
    struct qentry *e;
    while ((e = TAILQ_FIRST(&dropped)) != NULL) {
        TAILQ_REMOVE(&dropped, e, link);
        queue_entry_free(e);
    }
    return n;
}

/* Puts c at the back of the round robin of its priority. */
static void
queue_cons_ready(struct queue *q, struct cons *c)
{
    c->parked = false;
    c->turn = ++q->cons_turn;
    pheap_push(&q->cons_ready, &c->ready_node);
}

/* Takes c out of the round robin until queue_consumer_wake. */
static void
queue_cons_park(struct queue *q, struct cons *c)
{
    pheap_remove(&q->cons_ready, &c->ready_node);
    c->parked = true;
}

void
queue_consumer_add(struct queue *q, struct cons *c)
{
    c->queue = q;
    TAILQ_INSERT_TAIL(&q->consumers, c, link);
    queue_cons_ready(q, c);
    q->n_consumers++;
    q->n_exclusive += c->exclusive;
    q->had_consumer = true;
}

bool
queue_consumer_remove(struct cons *c)
{
    struct queue *q = c->queue;
    WR_ASSERT(q != NULL);
    TAILQ_REMOVE(&q->consumers, c, link);
    if (!c->parked)
        pheap_remove(&q->cons_ready, &c->ready_node);
    c->queue = NULL;
    q->n_consumers--;
    q->n_exclusive -= c->exclusive;
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
    if (c->parked)
        queue_cons_ready(q, c);
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

void
queue_dispatch(struct queue *q)
{
    /* A delivery can free consumer capacity elsewhere and ask for dispatch again: one pass at
     * a time is enough, the loop below picks up whatever became possible. */
    if (q->dispatching)
        return;
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
            /* Not taken after all: back to its place, not marked redelivered. */
            queue_unacked_remove(e);
            queue_ready_insert(q, e);
            queue_cons_park(q, c);
        }
    }
    q->dispatching = false;
}
