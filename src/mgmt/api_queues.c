/* GET /api/queues[/{vhost}[/{name}]]: queues as RabbitMQ 3.10's HTTP API shows them
 * (rabbit_mgmt_wm_queues.erl, rabbit_mgmt_wm_queue.erl), with the fields Warren has: name,
 * vhost, type, durable, auto_delete, exclusive, arguments, state, node, the message and
 * consumer counts (messages_dlx and message_bytes_dlx: dead-lettered messages kept for
 * dead-letter-strategy at-least-once, as RabbitMQ's quorum queues show them), and the policy,
 * operator policy and effective policy definition in force (warren/policy.h), and message_stats
 * once the queue had traffic (warren/stats.h). Lists are sorted by vhost, then name; a management
 * user sees its own vhosts' queues only. No memory figures: the broker keeps none. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "mgmt_int.h"
#include "warren/admin.h"
#include "warren/queue.h"
#include "warren/vhost.h"

/* One queue's entry. A new object; NULL on ENOMEM. */
static json_t *
api_queue_entry(struct mgmt_req *r, const struct queue *q)
{
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

static int
api_queue_cmp(const void *pa, const void *pb)
{
    const struct queue *a = *(const struct queue *const *)pa, *b = *(const struct queue *const *)pb;
    int c = strcmp(a->vhost->name, b->vhost->name);
    return c != 0 ? c : strcmp(a->name, b->name);
}

void
mgmt_api_queues(struct mgmt_req *r)
{
    const char *vname = r->n_segs > 1 ? r->segs[1] : NULL;
    struct vhost *only = NULL;
    if (vname != NULL) {
        only = mgmt_vhost_find(r, vname);
        if (only == NULL || !mgmt_vhost_visible(r, vname)) {
            mgmt_not_found(r);
            return;
        }
    }
    if (r->n_segs == 3) {
        struct queue *q = vhost_queue_find(
            only, (struct wire_str){(const uint8_t *)r->segs[2], (uint32_t)strlen(r->segs[2])});
        if (q == NULL)
            mgmt_not_found(r);
        else
            mgmt_reply_json(r, api_queue_entry(r, q));
        return;
    }
    size_t n = 0, cap = 0;
    const struct queue **qs = NULL;
    for (struct vhost *v = r->env->vhosts->head; v != NULL; v = v->next) {
        if ((only != NULL && v != only) || !mgmt_vhost_visible(r, v->name))
            continue;
        struct hmap_iter it;
        struct hmap_entry *e;
        hmap_iter_init(&it, &v->queues);
        while ((e = hmap_iter_next(&it)) != NULL) {
            if (n == cap) {
                size_t ncap = cap > 0 ? cap * 2 : 64;
                const struct queue **g = realloc(qs, ncap * sizeof(*qs));
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
    if (n > 0)
        qsort(qs, n, sizeof(*qs), api_queue_cmp);
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < n; i++)
        if (json_array_append_new(arr, api_queue_entry(r, qs[i])) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    free(qs);
    mgmt_reply_json(r, arr);
}
