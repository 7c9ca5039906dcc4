/* Dead-letter-strategy at-least-once (x-dead-letter-strategy on quorum queues, the policy key
 * dead-letter-strategy on any queue), as RabbitMQ's quorum queues have it: a message dying in
 * a queue (expired, rejected, past its delivery limit) whose dead-lettered copy reaches no
 * queue (its dead-letter exchange missing, nothing bound, every target refusing it by
 * x-overflow reject-publish, ENOMEM) is not dropped but kept by its queue, in dlx_waiting:
 * neither ready nor unacked (RabbitMQ reports them as messages_dlx), counted against the
 * queue's length limits as RabbitMQ counts them, and tried again, in the order they died,
 * every dead_letter_worker_publisher_confirm_timeout ms (RabbitMQ's 180 s, without backoff,
 * as its dead-letter worker) from the queue's one timer, and at once when the queue's settings
 * change. A copy that reaches a queue is enqueued, and written, in the same store batch as the
 * original's removal: that is Warren's publisher confirm from the target. A held entry stays
 * in the store, marked dead (durable.h), so a restart brings it back into dlx_waiting.
 *
 * As in RabbitMQ, at-least-once needs a dead-letter exchange and x-overflow reject-publish
 * (drop-head would drop ready messages to make room for dead ones that cannot leave): without
 * them the queue warns and dead-letters at most once. Warren applies the same rule to classic
 * queues, reject-publish-dlx falling back too. Deliberate differences from RabbitMQ:
 * - done is a copy reaching one queue at least: targets that refused it while others took it
 *   do not get it later (RabbitMQ tracks each target's confirm and resends to the others);
 * - when a queue stops being at-least-once (its strategy, overflow or dead-letter exchange
 *   changed), its waiting messages are dead-lettered one last time, at most once, rather than
 *   deleted untried as RabbitMQ does;
 * - (as RabbitMQ 3.10) a purge leaves them, and does not count them; deleting the queue
 *   drops them with it;
 * - after a restart they are tried again in seq (publish) order, which is the order they died
 *   in but for rejections out of order. */
#include "config.h"

#include "queue_int.h"
#include "warren/log.h"
#include "warren/msg.h"
#include "warren/vhost.h"

/* Entries tried by one retry: the rest in the next turn, so that a long wait list does not
 * hold the loop. */
#define QUEUE_DLX_STEP 1024

/* us between two tries (queue_set_dlx_retry_interval). Loop thread only. */
static uint64_t queue_dlx_retry_us = 180000u * 1000u;

void
queue_set_dlx_retry_interval(uint64_t ms)
{
    queue_dlx_retry_us = ms * 1000u;
}

/* Whether q dead-letters at least once: it asks to, and has what RabbitMQ requires for it. */
static bool
queue_dlx_at_least_once(const struct queue *q)
{
    const struct queue_settings *s = &q->settings;
    return s->dlx_strategy == QUEUE_DLX_AT_LEAST_ONCE && s->dlx != NULL &&
           s->overflow == QUEUE_OVERFLOW_REJECT_PUBLISH;
}

static const char *
queue_dlx_vhost_name(const struct queue *q)
{
    return q->vhost != NULL ? q->vhost->name : "";
}

/* Plans a try of dlx_waiting in wait us, unless one is planned earlier. */
static void
queue_dlx_plan(struct queue *q, uint64_t wait)
{
    uint64_t when = queue_now() + wait;
    if (q->dlx_retry_at == 0 || when < q->dlx_retry_at) {
        q->dlx_retry_at = when;
        queue_deadline_arm(q);
    }
}

bool
queue_dlx_send(struct queue *q, struct msg *m, enum deadletter_reason why)
{
    struct publish_outcome out;
    bool at_least_once = queue_dlx_at_least_once(q);
    enum deadletter_status st = deadletter_message(q, m, why, !at_least_once, &out);
    return !at_least_once || st == DEADLETTER_CYCLE || (st == DEADLETTER_OK && out.n_queues > 0);
}

void
queue_dlx_hold(struct queue *q, struct qentry *e, enum deadletter_reason why)
{
    if (!q->dlx_warned)
        log_msg(LOG_WARNING,
                "queue '%s' in vhost '%s' keeps its dead-lettered messages "
                "(dead-letter-strategy at-least-once): they reach no queue through "
                "dead-letter-exchange '%s' (missing, nothing bound, or its queues refuse them); "
                "tried again every %llu ms",
                q->name, queue_dlx_vhost_name(q), q->settings.dlx,
                (unsigned long long)(queue_dlx_retry_us / 1000u));
    q->dlx_warned = true;
    e->dlx_reason = (uint8_t)why;
    TAILQ_INSERT_TAIL(&q->dlx_waiting, e, link);
    q->n_dlx++;
    q->dlx_bytes += e->msg->body_len;
    queue_journal(&(struct queue_cmd){.kind = QUEUE_CMD_DLX_HOLD, .q = q, .e = e});
    queue_dlx_plan(q, queue_dlx_retry_us);
}

void
queue_dlx_replayed(struct queue *q, struct qentry *e, uint8_t why)
{
    e->dlx_reason = why;
    TAILQ_INSERT_TAIL(&q->dlx_waiting, e, link);
    q->n_dlx++;
    q->dlx_bytes += e->msg->body_len;
    queue_dlx_plan(q, 0);
}

/* e, taken off dlx_waiting, leaves q: the DLX_RELEASE command. */
static void
queue_dlx_release(struct queue *q, struct qentry *e)
{
    q->n_dlx--;
    q->dlx_bytes -= e->msg->body_len;
    queue_journal(&(struct queue_cmd){.kind = QUEUE_CMD_DLX_RELEASE, .q = q, .e = e});
    queue_entry_free(e);
}

void
queue_dlx_retry(struct queue *q)
{
    q->dlx_retry_at = 0;
    /* Tried off the list: what dies meanwhile (a copy sent back to q itself may expire it at
     * once) queues up behind, in order. */
    struct qentry_list todo = TAILQ_HEAD_INITIALIZER(todo), kept = TAILQ_HEAD_INITIALIZER(kept);
    TAILQ_CONCAT(&todo, &q->dlx_waiting, link);
    bool more = false;
    struct qentry *e;
    for (uint32_t n = 0; (e = TAILQ_FIRST(&todo)) != NULL; n++) {
        if (n == QUEUE_DLX_STEP) {
            more = true;
            break;
        }
        TAILQ_REMOVE(&todo, e, link);
        struct publish_outcome out;
        enum deadletter_status st = deadletter_message(q, e->msg, e->dlx_reason, false, &out);
        if (st == DEADLETTER_CYCLE || (st == DEADLETTER_OK && out.n_queues > 0)) {
            queue_dlx_release(q, e);
            continue;
        }
        TAILQ_INSERT_TAIL(&kept, e, link);
        if (st == DEADLETTER_NO_EXCHANGE)
            break; /* none of the others can go either */
    }
    TAILQ_CONCAT(&kept, &todo, link);
    TAILQ_CONCAT(&kept, &q->dlx_waiting, link);
    TAILQ_CONCAT(&q->dlx_waiting, &kept, link);
    if (q->n_dlx > 0)
        queue_dlx_plan(q, more ? 0 : queue_dlx_retry_us);
}

/* The warnings RabbitMQ logs when a quorum queue's at-least-once strategy cannot apply. */
static void
queue_dlx_warn_fallback(const struct queue *q)
{
    const struct queue_settings *s = &q->settings;
    if (s->dlx_strategy != QUEUE_DLX_AT_LEAST_ONCE || queue_dlx_at_least_once(q))
        return;
    if (s->dlx == NULL) {
        log_msg(LOG_WARNING,
                "Disabling dead-lettering for queue '%s' in vhost '%s' despite configured "
                "dead-letter-strategy 'at-least-once' because dead-letter-exchange is not "
                "configured.",
                q->name, queue_dlx_vhost_name(q));
        return;
    }
    log_msg(LOG_WARNING,
            "Falling back to dead-letter-strategy at-most-once for queue '%s' in vhost '%s' "
            "because configured dead-letter-strategy at-least-once is incompatible with "
            "effective overflow strategy %s. To enable dead-letter-strategy at-least-once, set "
            "overflow strategy to reject-publish.",
            q->name, queue_dlx_vhost_name(q),
            s->overflow == QUEUE_OVERFLOW_DROP_HEAD ? "drop-head" : "reject-publish-dlx");
}

void
queue_dlx_settings_applied(struct queue *q)
{
    queue_dlx_warn_fallback(q);
    q->dlx_warned = false;
    if (q->n_dlx == 0)
        return;
    if (queue_dlx_at_least_once(q)) {
        queue_dlx_plan(q, 0);
        return;
    }
    log_msg(LOG_INFO,
            "queue '%s' in vhost '%s' no longer dead-letters at least once: its %llu waiting "
            "dead-lettered messages (%llu bytes) are dead-lettered at most once",
            q->name, queue_dlx_vhost_name(q), (unsigned long long)q->n_dlx,
            (unsigned long long)q->dlx_bytes);
    q->dlx_retry_at = 0;
    struct qentry *e;
    while ((e = TAILQ_FIRST(&q->dlx_waiting)) != NULL) {
        TAILQ_REMOVE(&q->dlx_waiting, e, link);
        deadletter_message(q, e->msg, e->dlx_reason, true, NULL);
        queue_dlx_release(q, e);
    }
}
