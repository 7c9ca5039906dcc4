/* Private to queue.c and queue_dlx.c: what the queue core shares with its dead-letter part
 * (at-least-once dead-lettering, queue_dlx.c). */
#ifndef WARREN_QUEUE_INT_H
#define WARREN_QUEUE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "warren/deadletter.h"
#include "warren/queue.h"

/* queue.c */
/* The time now, in us since the epoch. */
uint64_t queue_now(void);
/* Hands an applied command to whoever records the queue's changes (the durable layer). */
void queue_journal(const struct queue_cmd *c);
/* Frees an entry that is in no list, with its message reference. */
void queue_entry_free(struct qentry *e);
/* Arms q's timer for its next deadline (expiry, x-expires, dead letters to try again). */
void queue_deadline_arm(struct queue *q);

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
