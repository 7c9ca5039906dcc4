/* Queues' consumers and dispatch: consumers linked to their queue, the round robin among those
 * of the highest priority that can take a message (a heap by priority then turn, the full ones
 * parked out of it until woken), single active consumer (the active one, and the others
 * waiting by priority then registration), and the dispatch loop that hands ready entries to
 * them, a publish's included. The orders are include/warren/queue.h's. */
#include "config.h"

#include "queue_int.h"
#include "warren/assert.h"
#include "warren/queue.h"

/* The consumer served next: the highest priority, then the least recently served. */
bool
queue_cons_before(const struct pheap_node *a, const struct pheap_node *b)
{
    const struct cons *ca = pheap_container_of(a, struct cons, ready_node);
    const struct cons *cb = pheap_container_of(b, struct cons, ready_node);
    return ca->priority != cb->priority ? ca->priority > cb->priority : ca->turn < cb->turn;
}

/* The single active consumer's successor: the highest priority, then the first registered. */
bool
queue_cons_waits_before(const struct pheap_node *a, const struct pheap_node *b)
{
    const struct cons *ca = pheap_container_of(a, struct cons, ready_node);
    const struct cons *cb = pheap_container_of(b, struct cons, ready_node);
    return ca->priority != cb->priority ? ca->priority > cb->priority : ca->since < cb->since;
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
