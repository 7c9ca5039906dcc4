/* GET /api/queues[/{vhost}[/{name}]], PUT and DELETE /api/queues/{vhost}/{name} and DELETE
 * /api/queues/{vhost}/{name}/contents (through the AMQP methods' code, net.h): queues as
 * RabbitMQ 3.10's HTTP API shows them (rabbit_mgmt_wm_queues.erl, rabbit_mgmt_wm_queue.erl), with
 * the fields Warren has: name, vhost, type, durable, auto_delete, exclusive, arguments, state,
 * node, the message and consumer counts (messages_dlx and message_bytes_dlx: dead-lettered messages
 * kept for dead-letter-strategy at-least-once, as RabbitMQ's quorum queues show them), the
 * policy, operator policy and effective policy definition in force (warren/policy.h), and
 * message_stats once the queue had traffic (warren/stats.h). Lists are sorted, filtered and
 * paged as RabbitMQ's (api_list.c); a management user sees its own vhosts' queues only. No
 * memory figures: the broker keeps none. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "mgmt_int.h"
#include "warren/admin.h"
#include "warren/net.h"
#include "warren/queue.h"
#include "warren/vhost.h"
#include "warren/wire_gen.h"

/* One queue's entry (obj: a struct queue). A new object; NULL on ENOMEM. */
static json_t *
api_queue_entry(struct mgmt_req *r, const void *obj)
{
    const struct queue *q = obj;
    char node[300];
    mgmt_node_name(node, sizeof(node));
    const struct queue_settings *s = &q->settings;
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:b, s:b, s:b, s:o?, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:s?, s:s?, "
        "s:o?}",
        "name", q->name, "vhost", q->vhost->name, "type", s->quorum ? "quorum" : "classic",
        "durable", q->durable, "auto_delete", q->auto_delete, "exclusive", q->owner != NULL,
        "arguments", mgmt_table_json(q->args, q->args_len, 0), "state", "running", "node", node,
        "messages", (json_int_t)(q->n_ready + q->n_unacked), "messages_ready",
        (json_int_t)q->n_ready, "messages_unacknowledged", (json_int_t)q->n_unacked, "messages_dlx",
        (json_int_t)q->n_dlx, "message_bytes_dlx", (json_int_t)q->dlx_bytes, "consumers",
        (json_int_t)q->n_consumers, "policy", s->policy, "operator_policy", s->operator_policy,
        "effective_policy_definition", admin_queue_policy_json(r->env->admin, q));
    json_t *ms = mgmt_message_stats(&q->stats, MGMT_STATS_QUEUE);
    if (o == NULL) {
        json_decref(ms);
        return NULL;
    }
    if (ms != NULL && json_object_set_new(o, "message_stats", ms) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static const char *
api_queue_vhost(const void *obj)
{
    return ((const struct queue *)obj)->vhost->name;
}

static const char *
api_queue_name(const void *obj)
{
    return ((const struct queue *)obj)->name;
}

/* The counts of api_queue_entry a list sorts by without building entries (the page of the
 * longest queues, as the web UI and monitoring scripts ask for it). */
enum api_queue_count {
    QC_MESSAGES,
    QC_READY,
    QC_UNACKED,
    QC_DLX,
    QC_DLX_BYTES,
    QC_CONSUMERS,
    QC_N,
};

static const char *const api_queue_count_keys[QC_N] = {
    [QC_MESSAGES] = "messages",
    [QC_READY] = "messages_ready",
    [QC_UNACKED] = "messages_unacknowledged",
    [QC_DLX] = "messages_dlx",
    [QC_DLX_BYTES] = "message_bytes_dlx",
    [QC_CONSUMERS] = "consumers",
};

static int
api_queue_count_field(const char *key)
{
    for (int i = 0; i < QC_N; i++)
        if (strcmp(key, api_queue_count_keys[i]) == 0)
            return i;
    return -1;
}

static double
api_queue_count(const void *obj, int field)
{
    const struct queue *q = obj;
    switch ((enum api_queue_count)field) {
    case QC_MESSAGES:
        return (double)(q->n_ready + q->n_unacked);
    case QC_READY:
        return (double)q->n_ready;
    case QC_UNACKED:
        return (double)q->n_unacked;
    case QC_DLX:
        return (double)q->n_dlx;
    case QC_DLX_BYTES:
        return (double)q->dlx_bytes;
    case QC_CONSUMERS:
    case QC_N:
        break;
    }
    return (double)q->n_consumers;
}

static const struct mgmt_list_src api_queue_src = {
    api_queue_vhost, api_queue_name, api_queue_entry, api_queue_count_field, api_queue_count,
};

/* DELETE /api/queues/{vhost}/{name} (queue.delete with if-unused, if-empty) and
 * /api/queues/{vhost}/{name}/contents (queue.purge): 204, 404 when missing. */
static void
api_queue_delete(struct mgmt_req *r, struct vhost *v, struct queue *q)
{
    const char *user;
    const struct auth_perm *perm = mgmt_user_perm(r, v, &user);
    struct wire_str name = {(const uint8_t *)q->name, q->name_len};
    struct net_decl_err err;
    uint64_t n;
    int rc = r->n_segs == 4
                 ? net_queue_purge(v, perm, user, NULL, name, &n, &err)
                 : net_queue_delete(v, perm, user, NULL, name, mgmt_query_true(r, "if-unused"),
                                    mgmt_query_true(r, "if-empty"), &n, &err);
    if (rc < 0)
        mgmt_decl_failed(r, &err);
    else
        r->reply(r, 204, NULL);
}

/* PUT /api/queues/{vhost}/{name}: queue.declare with the body's durable, auto_delete and
 * arguments (validated as the AMQP declare validates them); 201 created, 204 already there,
 * 400 or 401 with RabbitMQ's texts. Not exclusive: no connection owns it. */
static void
api_queue_put(struct mgmt_req *r)
{
    struct vhost *v = mgmt_vhost_find(r, r->segs[1]);
    if (v == NULL) {
        mgmt_reply_error(r, 404, "not_found", "vhost_not_found");
        return;
    }
    uint8_t *buf;
    struct wire_table args;
    json_t *body = mgmt_declare_body(r, &buf, &args);
    if (body != NULL) {
        const char *user;
        const struct auth_perm *perm = mgmt_user_perm(r, v, &user);
        struct wire_str name = {(const uint8_t *)r->segs[2], (uint32_t)strlen(r->segs[2])};
        struct wire_queue_declare d = {
            .queue = name,
            .durable = admin_json_bool(body, "durable"),
            .auto_delete = admin_json_bool(body, "auto_delete"),
            .arguments = args,
        };
        struct queue *q;
        bool created;
        struct net_decl_err err;
        if (net_queue_declare(v, perm, user, NULL, NULL, name, &d, &q, &created, &err) < 0)
            mgmt_decl_failed(r, &err);
        else
            r->reply(r, created ? 201 : 204, NULL);
    }
    free(buf);
    json_decref(body);
}

void
mgmt_api_queues(struct mgmt_req *r)
{
    if (r->method == MGMT_PUT) {
        api_queue_put(r);
        return;
    }
    const char *vname = r->n_segs > 1 ? r->segs[1] : NULL;
    struct vhost *only = NULL;
    if (vname != NULL) {
        only = mgmt_vhost_find(r, vname);
        if (only == NULL || !mgmt_vhost_visible(r, vname)) {
            mgmt_not_found(r);
            return;
        }
    }
    if (r->n_segs >= 3) {
        struct queue *q = vhost_queue_find(
            only, (struct wire_str){(const uint8_t *)r->segs[2], (uint32_t)strlen(r->segs[2])});
        if (q == NULL || (r->n_segs == 4 && strcmp(r->segs[3], "contents") != 0))
            mgmt_not_found(r);
        else if (r->method == MGMT_DELETE)
            api_queue_delete(r, only, q);
        else
            mgmt_reply_json(r, api_queue_entry(r, q));
        return;
    }
    size_t n = 0, cap = 0;
    void **qs = NULL;
    for (struct vhost *v = r->env->vhosts->head; v != NULL; v = v->next) {
        if ((only != NULL && v != only) || !mgmt_vhost_visible(r, v->name))
            continue;
        struct hmap_iter it;
        struct hmap_entry *e;
        hmap_iter_init(&it, &v->queues);
        while ((e = hmap_iter_next(&it)) != NULL) {
            if (n == cap) {
                size_t ncap = cap > 0 ? cap * 2 : 64;
                void **g = realloc(qs, ncap * sizeof(*qs));
                if (g == NULL) {
                    free(qs);
                    mgmt_nomem(r);
                    return;
                }
                qs = g;
                cap = ncap;
            }
            qs[n++] = hmap_container_of(e, struct queue, by_name);
        }
    }
    mgmt_list_reply_objs(r, &api_queue_src, qs, n);
    free(qs);
}
