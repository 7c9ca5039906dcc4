/* The publish pipeline of include/warren/publish.h. */
#include "config.h"

#include "warren/publish.h"

#include "warren/deadletter.h"
#include "warren/durable.h"
#include "warren/exchange.h"
#include "warren/log.h"
#include "warren/msg.h"
#include "warren/queue.h"
#include "warren/vhost.h"

/* The queues m goes to, into r. PUBLISH_OK, NO_EXCHANGE or NOMEM. */
static enum publish_status
publish_route(struct vhost *vh, struct msg *m, struct route_result *r)
{
    struct wire_str ex = {m->exchange, m->exchange_len};
    struct wire_str rk = {m->routing_key, m->routing_key_len};
    r->n = 0;
    if (ex.len == 0) {
        /* The default exchange: every queue is bound to it by its name. */
        struct queue *q = vhost_queue_find(vh, rk);
        return q == NULL || route_result_add(r, q) == 0 ? PUBLISH_OK : PUBLISH_NOMEM;
    }
    struct exch *e = vhost_exch_find(vh, ex);
    if (e == NULL)
        return PUBLISH_NO_EXCHANGE;
    return exch_route(e, rk, msg_headers(m), r) == 0 ? PUBLISH_OK : PUBLISH_NOMEM;
}

/* A persistent message going to stored queues: with several, one shared record. Returns
 * whether any stores it. */
static bool
publish_store(struct vhost *vh, struct msg *m, const struct route_result *r)
{
    if (m->delivery_mode != 2)
        return false;
    uint32_t n_stored = 0;
    for (uint32_t i = 0; i < r->n; i++)
        n_stored += durable_entry_wanted(r->queues[i], m);
    if (n_stored > 0)
        durable_msg_routed(vh->durable, m, n_stored);
    return n_stored > 0;
}

/* Takes the queues that refuse m by their length limits (x-overflow reject-publish*) out of
 * r, counting them in out; reject-publish-dlx dead-letters it from them (reason maxlen), as
 * RabbitMQ does. */
static void
publish_refusals(struct msg *m, struct route_result *r, struct publish_outcome *out)
{
    for (uint32_t i = 0; i < r->n;) {
        if (queue_refuses(r->queues[i], m)) {
            if (r->queues[i]->settings.overflow == QUEUE_OVERFLOW_REJECT_PUBLISH_DLX)
                deadletter_message(r->queues[i], m, DEADLETTER_MAXLEN, NULL);
            out->n_refused++;
            r->queues[i] = r->queues[--r->n];
        } else {
            i++;
        }
    }
}

/* Out of memory routing or enqueueing m: it reached n of its queues. */
static void
publish_log_nomem(struct vhost *vh, const struct msg *m, uint32_t n)
{
    log_msg(LOG_ERROR,
            "out of memory publishing to exchange '%.*s' in vhost '%s': reached %u of its queues",
            (int)m->exchange_len, (const char *)m->exchange, vh->name, n);
}

enum publish_status
publish_routed(struct vhost *vh, struct msg *m, struct route_result *r, struct publish_outcome *out)
{
    enum publish_status st = PUBLISH_OK;
    *out = (struct publish_outcome){0};
    publish_refusals(m, r, out);
    out->stored = publish_store(vh, m, r);
    for (uint32_t i = 0; i < r->n; i++) {
        if (queue_cmd_enqueue(r->queues[i], m) == 0)
            out->n_queues++;
        else
            st = PUBLISH_NOMEM;
    }
    if (st == PUBLISH_NOMEM)
        publish_log_nomem(vh, m, out->n_queues);
    for (uint32_t i = 0; i < r->n; i++)
        queue_publish_dispatch(r->queues[i]);
    return st;
}

enum publish_status
publish_message(struct vhost *vh, struct msg *m, struct route_result *scratch,
                struct publish_outcome *out)
{
    *out = (struct publish_outcome){0};
    enum publish_status st = publish_route(vh, m, scratch);
    if (st == PUBLISH_NOMEM)
        publish_log_nomem(vh, m, 0);
    if (st != PUBLISH_OK)
        return st;
    return publish_routed(vh, m, scratch, out);
}
