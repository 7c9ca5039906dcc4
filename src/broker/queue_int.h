/* Private to the queue core's files: what queue.c (entries and their commands),
 * queue_expiry.c (time: TTLs, x-expires, the queue's timer), queue_consumers.c (consumers,
 * single active consumer, dispatch) and queue_dlx.c (at-least-once dead-lettering) share. */
#ifndef WARREN_QUEUE_INT_H
#define WARREN_QUEUE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "warren/deadletter.h"
#include "warren/queue.h"

/* queue.c */
/* Hands an applied command to whoever records the queue's changes (the durable layer). */
void queue_journal(const struct queue_cmd *c);
/* Frees an entry that is in no list, with its message reference. */
void queue_entry_free(struct qentry *e);
/* The head ready entry (delivered next), reading paged ones back first if memory has room
 * for them; NULL if none is in memory. */
struct qentry *queue_head(struct queue *q);
/* The head ready entry e (queue_head's) leaves q undelivered for why (the DROP command),
 * dead-lettered first if q says so; kept in dlx_waiting (DLX_HOLD) at least once when the copy
 * reached no queue. */
void queue_cmd_drop(struct queue *q, struct qentry *e, enum deadletter_reason why);
/* x-overflow drop-head: drops (dead-letters) head entries while q is over its limits. */
void queue_drop_over_limit(struct queue *q);

/* queue_expiry.c */
/* The time now, in us since the epoch. */
uint64_t queue_now(void);
/* When an entry for m enqueued now on q expires (us since the epoch); 0: never. */
uint64_t queue_entry_expiry(const struct queue *q, const struct msg *m);
/* Whether e has expired by now. The entry the publish being dispatched just enqueued has
 * not: a TTL of 0 lets it go to a consumer that can take it at once. Inline: the delivery
 * path asks it of each entry with an expiry. */
static inline bool
queue_entry_expired(const struct queue *q, const struct qentry *e, uint64_t now)
{
    return e->expires_at != 0 && e->expires_at <= now && e->seq != q->fresh_seq;
}
/* Drops the expired head entries, a step at most; sets *head to the head it stopped at.
 * True if it stopped at the step with more perhaps expired. */
bool queue_expire_head(struct queue *q, struct qentry **head);
/* Arms q's timer for its next deadline (expiry, x-expires, dead letters to try again). */
void queue_deadline_arm(struct queue *q);
/* The same, head being q's head entry as queue_head just answered. */
void queue_deadline_arm_head(struct queue *q, const struct qentry *head);

/* queue_consumers.c */
/* The orders of q->cons_ready (priority, then turn) and q->sac_waiting (priority, then
 * registration). */
bool queue_cons_before(const struct pheap_node *a, const struct pheap_node *b);
bool queue_cons_waits_before(const struct pheap_node *a, const struct pheap_node *b);

/* queue_dlx.c */
/* Dead-letters m, of an entry of q dying for why, as q's strategy says. True if the original
 * may go: at-most-once (whatever became of the copy), or the copy reached a queue, or it was
 * dropped for closing a cycle. False: q is at-least-once and the copy reached no queue, so the
 * caller takes the entry off its list and hands it to queue_dlx_hold. */
bool queue_dlx_send(struct queue *q, struct msg *m, enum deadletter_reason why);
/* e (off every list, uncounted) waits in q's dlx_waiting for a copy to reach a queue: the
 * DLX_HOLD command; a try is planned. */
void queue_dlx_hold(struct queue *q, struct qentry *e, enum deadletter_reason why);
/* Recovery: e, stored dead (se), joins dlx_waiting without a command (the ENQUEUE replayed
 * that the caller journals is its record); it is tried again on the loop's first turn. */
void queue_dlx_replayed(struct queue *q, struct qentry *e, uint8_t why);
/* q's timer found q->dlx_retry_at due: tries dlx_waiting's entries again, in order, a step
 * at a time. */
void queue_dlx_retry(struct queue *q);
/* q's settings were set (declared, recovered, a policy changed): warns of an at-least-once
 * strategy that falls back to at-most-once, as RabbitMQ; if q waits on dead letters, tries
 * them now (the dead-letter exchange or routing key may have changed), and if q is not
 * at-least-once any more, at most once, for the last time. */
void queue_dlx_settings_applied(struct queue *q);

#endif
