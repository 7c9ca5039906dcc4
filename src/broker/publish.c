/* The publish pipeline of include/warren/publish.h. A message without headers pays one test
 * for the CC and BCC headers; one with headers, a walk over its table's top-level entries. */
#include "config.h"

#include "warren/publish.h"

#include <stdio.h>
#include <stdlib.h>

#include "warren/deadletter.h"
#include "warren/durable.h"
#include "warren/exchange.h"
#include "warren/log.h"
#include "warren/msg.h"
#include "warren/msg_props.h"
#include "warren/queue.h"
#include "warren/vhost.h"

/* The first "CC" and "BCC" entries of headers, into cc and bcc (type 0 when absent): one walk
 * for both, since every message with headers goes through here. */
static void
publish_find_header_routes(struct wire_table headers, struct wire_value *cc, struct wire_value *bcc)
{
    struct wire_table_iter it;
    struct wire_str k;
    struct wire_value v;
    cc->type = bcc->type = 0;
    wire_table_iter_init(&it, headers);
    while ((cc->type == 0 || bcc->type == 0) && wire_table_next(&it, &k, &v)) {
        if (cc->type == 0 && wire_str_eq(k, "CC"))
            *cc = v;
        else if (bcc->type == 0 && wire_str_eq(k, "BCC"))
            *bcc = v;
    }
}

int
publish_check_header_routes(struct wire_table headers, char *why, size_t whylen)
{
    struct wire_value v[2];
    static const char *const names[2] = {"CC", "BCC"};
    publish_find_header_routes(headers, &v[0], &v[1]);
    for (int i = 0; i < 2; i++)
        if (v[i].type != 0 && v[i].type != WIRE_FIELD_ARRAY) {
            /* RabbitMQ's text prints its error term: the header's name, its type's name. */
            snprintf(why, whylen, "invalid message: {unacceptable_type_in_header,\"%s\",%s}",
                     names[i], wire_field_type_name(v[i].type));
            return -1;
        }
    return 0;
}

/* Appends the longstr values of v (an array, or nothing) to k->v, or counts them when k->v
 * is NULL. */
static void
publish_keys_add(struct publish_keys *k, const struct wire_value *v)
{
    struct wire_table_iter it;
    struct wire_value e;
    if (v->type != WIRE_FIELD_ARRAY)
        return;
    wire_array_iter_init(&it, v->v.array);
    while (wire_array_next(&it, &e))
        if (e.type == WIRE_FIELD_LONGSTR) {
            if (k->v != NULL)
                k->v[k->n] = e.v.str;
            k->n++;
        }
}

int
publish_keys_init(struct publish_keys *k, const struct msg *m)
{
    struct wire_value cc, bcc;
    k->v = k->inline_v;
    k->v[0] = (struct wire_str){m->routing_key, m->routing_key_len};
    k->n = 1;
    k->bcc = false;
    if (m->headers_len == 0)
        return 0;
    publish_find_header_routes(msg_headers(m), &cc, &bcc);
    k->bcc = bcc.type != 0;
    if (cc.type != WIRE_FIELD_ARRAY && bcc.type != WIRE_FIELD_ARRAY)
        return 0;
    k->v = NULL; /* count first */
    publish_keys_add(k, &cc);
    publish_keys_add(k, &bcc);
    uint32_t n = k->n;
    k->v = k->inline_v;
    if (n > PUBLISH_KEYS_INLINE && (k->v = malloc((size_t)n * sizeof(*k->v))) == NULL)
        return -1;
    k->v[0] = (struct wire_str){m->routing_key, m->routing_key_len};
    k->n = 1;
    publish_keys_add(k, &cc);
    publish_keys_add(k, &bcc);
    return 0;
}

void
publish_keys_free(struct publish_keys *k)
{
    if (k->v != k->inline_v)
        free(k->v);
    k->v = k->inline_v;
    k->n = 0;
}

int
publish_route_keys(struct vhost *vh, struct exch *x, const struct wire_str *keys, uint32_t n_keys,
                   struct wire_table headers, struct route_result *r)
{
    if (x != NULL)
        return exch_route_keys(x, keys, n_keys, headers, r);
    /* The default exchange: every queue is bound to it by its name. */
    r->n = 0;
    for (uint32_t i = 0; i < n_keys; i++) {
        struct queue *q = vhost_queue_find(vh, keys[i]);
        if (q != NULL && route_result_add(r, q) < 0)
            return -1;
    }
    return 0;
}

/* The queues m goes to, into r, by its routing key alone: a message without headers, so
 * without CC or BCC, the common case, routed as directly as before those headers counted.
 * *xs: the statistics of the exchange it went to (the vhost's for the default one).
 * PUBLISH_OK, NO_EXCHANGE or NOMEM. */
static enum publish_status
publish_route_plain(struct vhost *vh, struct msg *m, struct route_result *r, struct stats_obj **xs)
{
    struct wire_str ex = {m->exchange, m->exchange_len};
    struct wire_str rk = {m->routing_key, m->routing_key_len};
    r->n = 0;
    if (ex.len == 0) {
        *xs = &vh->default_exch_stats;
        struct queue *q = vhost_queue_find(vh, rk);
        return q == NULL || route_result_add(r, q) == 0 ? PUBLISH_OK : PUBLISH_NOMEM;
    }
    struct exch *e = vhost_exch_find(vh, ex);
    if (e == NULL)
        return PUBLISH_NO_EXCHANGE;
    *xs = &e->stats;
    return exch_route(e, rk, (struct wire_table){NULL, 0}, r) == 0 ? PUBLISH_OK : PUBLISH_NOMEM;
}

/* The queues *mp (a message with headers) goes to, into r, by its routing key and CC and BCC
 * keys; with a BCC header, *mp is replaced by its copy without it (publish_message). Same
 * results as publish_route_plain. */
static enum publish_status
publish_route_headers(struct vhost *vh, struct msg **mp, struct route_result *r,
                      struct stats_obj **xs)
{
    struct msg *m = *mp, *routed = m;
    struct wire_str ex = {m->exchange, m->exchange_len};
    struct exch *e = NULL;
    struct publish_keys k;
    r->n = 0;
    if (ex.len > 0 && (e = vhost_exch_find(vh, ex)) == NULL)
        return PUBLISH_NO_EXCHANGE;
    *xs = e != NULL ? &e->stats : &vh->default_exch_stats;
    if (publish_keys_init(&k, m) < 0)
        return PUBLISH_NOMEM;
    /* RabbitMQ removes BCC before routing: headers exchanges match the copy's headers, the
     * keys (borrowed from m, alive until the end) still include BCC's. */
    if (k.bcc && (routed = msg_without_header(m, "BCC")) == NULL) {
        publish_keys_free(&k);
        return PUBLISH_NOMEM;
    }
    int rc = publish_route_keys(vh, e, k.v, k.n, msg_headers(routed), r);
    publish_keys_free(&k);
    if (routed != m) {
        msg_unref(mp);
        *mp = routed;
    }
    return rc == 0 ? PUBLISH_OK : PUBLISH_NOMEM;
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

/* Moves the other nodes' queues of r (a cluster's) past its end, counting them in out. */
static void
publish_split_remote(struct route_result *r, struct publish_outcome *out)
{
    for (uint32_t i = 0; i < r->n;) {
        struct queue *q = r->queues[i];
        if (q->home != NULL) {
            r->queues[i] = r->queues[--r->n];
            r->queues[r->n] = q;
            out->n_remote++;
        } else {
            i++;
        }
    }
}

/* Takes the queues that refuse m by their length limits (x-overflow reject-publish*) out of
 * r, counting them in out; reject-publish-dlx dead-letters it from them (reason maxlen), as
 * RabbitMQ does. */
static void
publish_refusals(struct msg *m, struct route_result *r, struct publish_outcome *out)
{
    for (uint32_t i = 0; i < r->n;) {
        if (r->queues[i]->home == NULL && queue_refuses(r->queues[i], m)) {
            if (r->queues[i]->settings.overflow == QUEUE_OVERFLOW_REJECT_PUBLISH_DLX)
                deadletter_message(r->queues[i], m, DEADLETTER_MAXLEN, true, NULL);
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
    publish_split_remote(r, out);
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
publish_message(struct vhost *vh, struct msg **mp, struct route_result *scratch,
                struct publish_outcome *out)
{
    *out = (struct publish_outcome){0};
    struct stats_obj *xs = NULL;
    enum publish_status st = (*mp)->headers_len == 0 ? publish_route_plain(vh, *mp, scratch, &xs)
                                                     : publish_route_headers(vh, mp, scratch, &xs);
    if (st == PUBLISH_NOMEM)
        publish_log_nomem(vh, *mp, 0);
    if (st == PUBLISH_NO_EXCHANGE)
        return st;
    stats_add(xs, STATS_PUBLISH_IN, 1);
    if (st != PUBLISH_OK)
        return st;
    st = publish_routed(vh, *mp, scratch, out);
    /* Counted here, not in publish_routed: as RabbitMQ's, a queue's publish counts what
     * publishers sent it, not dead letters. */
    for (uint32_t i = 0; i < scratch->n; i++)
        stats_add(&scratch->queues[i]->stats, STATS_PUBLISH, 1);
    if (out->n_queues > 0)
        stats_add(xs, STATS_PUBLISH_OUT, 1);
    return st;
}
