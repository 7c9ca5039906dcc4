/* Routing dead-lettered messages (include/warren/deadletter.h), as RabbitMQ 3.10's
 * rabbit_dead_letter:publish: the queue's dead-letter exchange is looked up when a message
 * dies (a missing one drops it, silently in RabbitMQ, at debug level here), the copy is routed
 * like any publish but with all of its routing keys at once, the queues that would close an
 * automatic cycle are left out, and the rest get it through the publish pipeline. */
#include "config.h"

#include "warren/deadletter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "warren/exchange.h"
#include "warren/log.h"
#include "warren/msg.h"
#include "warren/queue.h"
#include "warren/vhost.h"

/* Cycles already reported: RabbitMQ warns once per cycle (per queue process); a small ring of
 * their hashes keeps that bounded here, at the price of warning again after 64 others. */
#define DL_CYCLES_SEEN 64
static uint64_t dl_cycles_seen[DL_CYCLES_SEEN];
static uint32_t dl_cycles_next;

/* FNV-1a over the queue names of a cycle. */
static uint64_t
dl_hash(uint64_t h, struct wire_str s)
{
    for (uint32_t i = 0; i < s.len; i++)
        h = (h ^ s.ptr[i]) * 0x100000001b3ull;
    return (h ^ 0xff) * 0x100000001b3ull; /* a separator: "ab","c" is not "a","bc" */
}

/* Warns that dead was not sent to queue to, which would close a cycle, unless this cycle (to,
 * then the queues of its x-death) was reported already. */
static void
dl_log_cycle(const struct msg *dead, struct queue *to)
{
    char names[512];
    size_t len = (size_t)snprintf(names, sizeof(names), "'%s'", to->name);
    uint64_t h =
        dl_hash(0xcbf29ce484222325ull, (struct wire_str){(const uint8_t *)to->name, to->name_len});
    struct wire_value xd, e, q;
    struct wire_table_iter it;
    wire_table_get(msg_headers(dead), "x-death", &xd); /* deadletter_is_cycle found it */
    wire_array_iter_init(&it, xd.v.array);
    while (wire_array_next(&it, &e)) {
        if (e.type != WIRE_FIELD_TABLE || !wire_table_get(e.v.table, "queue", &q) ||
            q.type != WIRE_FIELD_LONGSTR)
            continue;
        h = dl_hash(h, q.v.str);
        if (len < sizeof(names))
            len += (size_t)snprintf(names + len, sizeof(names) - len, ", '%.*s'",
                                    WIRE_STR_ARG(q.v.str));
    }
    for (uint32_t i = 0; i < DL_CYCLES_SEEN; i++)
        if (dl_cycles_seen[i] == h)
            return;
    dl_cycles_seen[dl_cycles_next] = h;
    dl_cycles_next = (dl_cycles_next + 1) % DL_CYCLES_SEEN;
    log_msg(LOG_WARNING,
            "message dropped: dead-letter queues cycle detected in vhost '%s' (queues by death "
            "recency, without a rejection): [%s]; this cycle will not be reported again",
            to->vhost->name, names);
}

/* Leaves out of r the queues where dead would close a cycle. */
static void
dl_drop_cycles(const struct msg *dead, struct route_result *r)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < r->n; i++) {
        struct queue *q = r->queues[i];
        if (deadletter_is_cycle(dead, (struct wire_str){(const uint8_t *)q->name, q->name_len}))
            dl_log_cycle(dead, q);
        else
            r->queues[n++] = q;
    }
    r->n = n;
}

enum deadletter_status
deadletter_message(struct queue *q, struct msg *m, enum deadletter_reason reason, bool remote,
                   struct publish_outcome *out)
{
    struct publish_outcome ignored;
    if (out == NULL)
        out = &ignored;
    *out = (struct publish_outcome){0};
    const char *dlx = q->settings.dlx;
    if (dlx == NULL)
        return DEADLETTER_NO_DLX;
    struct vhost *vh = q->vhost;
    struct wire_str dlx_name = {(const uint8_t *)dlx, (uint32_t)strlen(dlx)};
    struct exch *x = NULL;
    if (dlx_name.len > 0 && (x = vhost_exch_find(vh, dlx_name)) == NULL) {
        log_msg(LOG_DEBUG,
                "queue '%s' in vhost '%s': no dead-letter exchange '%s': message dropped", q->name,
                vh->name, dlx);
        return DEADLETTER_NO_EXCHANGE;
    }
    const char *dlrk = q->settings.dlx_routing_key;
    struct wire_str rk = {(const uint8_t *)dlrk, dlrk != NULL ? (uint32_t)strlen(dlrk) : 0};
    if (rk.len > UINT8_MAX) {
        /* A routing key is a shortstr: no message can carry this one. */
        log_msg(LOG_DEBUG,
                "queue '%s' in vhost '%s': dead-letter routing key longer than 255 bytes: "
                "message dropped",
                q->name, vh->name);
        return DEADLETTER_OK;
    }

    enum deadletter_status st = DEADLETTER_NOMEM;
    struct route_result r = {0};
    struct publish_keys keys = {.v = keys.inline_v, .n = 1};
    const char *failed = "making its copy";
    struct msg *dead =
        deadletter_msg_new(m, (struct wire_str){(const uint8_t *)q->name, q->name_len}, reason,
                           dlx_name, dlrk != NULL ? &rk : NULL, (uint64_t)time(NULL));
    if (dead == NULL)
        goto done;
    /* RabbitMQ routes with the routing keys the message had (the dead-letter routing key
     * replaces all of them). */
    failed = "routing it";
    if (dlrk != NULL)
        keys.v[0] = rk;
    else if (publish_keys_init(&keys, m) < 0)
        goto done;
    if (publish_route_keys(vh, x, keys.v, keys.n, msg_headers(dead), &r) < 0)
        goto done;
    failed = NULL; /* publish_routed logs its own failures */
    if (reason != DEADLETTER_REJECTED && r.n > 0) {
        dl_drop_cycles(dead, &r);
        if (r.n == 0) {
            st = DEADLETTER_CYCLE;
            goto done;
        }
    }
    struct publish_outcome routed;
    if (out == NULL)
        out = &routed;
    st = publish_routed(vh, dead, &r, out) == PUBLISH_OK ? DEADLETTER_OK : DEADLETTER_NOMEM;
    /* publish_routed leaves the other nodes' queues past r.n. */
    if (remote && out->n_remote > 0 && vh->reg->forward_dead != NULL)
        vh->reg->forward_dead(vh->reg->forward_dead_arg, vh, r.queues + r.n, out->n_remote, dead);
done:
    if (failed != NULL)
        log_msg(LOG_ERROR, "queue '%s' in vhost '%s': could not dead-letter a message: %s failed",
                q->name, vh->name, failed);
    publish_keys_free(&keys);
    route_result_free(&r);
    msg_unref(&dead);
    return st;
}
