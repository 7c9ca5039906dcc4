/* Queues' time: entries that expire (x-message-ttl, a message's expiration), dropped from the
 * head, as RabbitMQ does, by a publish or a delivery that looks at it or by the queue's timer;
 * queues that expire unused (x-expires); and that one timer per queue, armed for whichever of
 * these (and of the dead letters to try again, queue_dlx.c) comes first. Without an event base
 * (unit tests) nothing expires by itself. */
#include "config.h"

#include <time.h>

#include <event2/event.h>

#include "queue_int.h"
#include "warren/deadletter.h"
#include "warren/log.h"
#include "warren/msg.h"
#include "warren/queue.h"
#include "warren/vhost.h"

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

/* When an entry for m enqueued now on q expires: after the lower of the queue's message TTL
 * and the message's expiration (us since the epoch); 0 if neither is set. */
uint64_t
queue_entry_expiry(const struct queue *q, const struct msg *m)
{
    int64_t ttl = q->settings.message_ttl;
    if (m->expiration_ms >= 0 && (ttl < 0 || m->expiration_ms < ttl))
        ttl = m->expiration_ms;
    return ttl < 0 ? 0 : queue_now() + (uint64_t)ttl * 1000u;
}

/* Drops the expired entries at the head (as RabbitMQ, which looks at the head only: an entry
 * behind a longer-lived one waits for it to go), up to QUEUE_EXPIRE_STEP of them. Sets *head
 * to the head entry it stopped at (NULL if none is in memory), so that arming the timer next
 * need not look it up again. Returns true if it stopped at the step with more perhaps
 * expired. */
bool
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
void
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
 * looks again when it fires): a publish or delivery that moves the head re-arms it only when
 * the new head expires first. */
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
        vhost_queue_delete_self(q);
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
    if (q->home != NULL)
        return; /* its home node's to expire */
    q->unused_until =
        q->settings.expires > 0 ? queue_now() + (uint64_t)q->settings.expires * 1000u : 0;
    queue_deadline_arm(q);
}
