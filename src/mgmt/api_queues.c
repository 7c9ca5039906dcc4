/* GET /api/queues[/{vhost}[/{name}]], PUT and DELETE /api/queues/{vhost}/{name} and DELETE
 * /api/queues/{vhost}/{name}/contents (through the AMQP methods' code, net.h): queues as
 * RabbitMQ 3.10's HTTP API shows them (rabbit_mgmt_wm_queues.erl, rabbit_mgmt_wm_queue.erl), with
 * the fields Warren has: name, vhost, type, durable, auto_delete, exclusive, arguments, state,
 * node, the message and consumer counts (messages_dlx and message_bytes_dlx: dead-lettered messages
 * kept for dead-letter-strategy at-least-once, as RabbitMQ's quorum queues show them), the
 * policy, operator policy and effective policy definition in force (warren/policy.h), and
 * message_stats once the queue had traffic (warren/stats.h). Lists are sorted, filtered and
 * paged as RabbitMQ's (api_list.c); a management user sees its own vhosts' queues only. The
 * depth rates and idle_since come from the statistics sampler (stats.h); memory is what the
 * queue's entries and in-memory messages take. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mgmt_int.h"
#include "warren/admin.h"
#include "warren/net.h"
#include "warren/queue.h"
#include "warren/vhost.h"
#include "warren/wire_gen.h"

/* ms (wall clock) as RabbitMQ 3.10 writes idle_since: "2026-12-07T04:10:58.541+00:00". */
static void
api_time_text(char *buf, size_t cap, uint64_t ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char day[32];
    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, cap, "%s.%03u+00:00", day, (unsigned)(ms % 1000));
}

/* Adds to o what q's depth and activity show: messages(_ready, _unacknowledged)_details
 * {rate} (their rates of change, sampled: stats.h), idle_since while idle, consumer
 * utilisation and capacity, memory. 0, or -1 on ENOMEM. */
static int
api_queue_gauges(json_t *o, const struct queue *q)
{
    double ready = stats_gauge_rate(&q->stats, 0), unacked = stats_gauge_rate(&q->stats, 1);
    /* Warren's nearest to RabbitMQ's consumer utilisation (the share of time the queue could
     * hand messages to its consumers at once): 1 while they keep the queue empty, 0 while
     * messages wait for them or there are none. */
    double util = q->n_consumers > 0 && q->n_ready == 0 ? 1.0 : 0.0;
    uint64_t memory =
        sizeof(*q) + q->mem_bytes + (q->n_ready + q->n_unacked) * (uint64_t)sizeof(struct qentry);
    uint64_t since;
    if (stats_idle(&q->stats, &since)) {
        char text[64];
        api_time_text(text, sizeof(text), since != 0 ? since : q->created_ms);
        if (json_object_set_new(o, "idle_since", json_string(text)) < 0)
            return -1;
    }
    json_t *add = json_pack("{s:{s:f}, s:{s:f}, s:{s:f}, s:f, s:f, s:I, s:I}", "messages_details",
                            "rate", ready + unacked, "messages_ready_details", "rate", ready,
                            "messages_unacknowledged_details", "rate", unacked,
                            "consumer_utilisation", util, "consumer_capacity", util, "memory",
                            (json_int_t)memory, "message_bytes_ready", (json_int_t)q->ready_bytes);
    int rc = add != NULL ? json_object_update(o, add) : -1;
    json_decref(add);
    return rc;
}

/* A replicated queue's "leader", and as far as this node is one of them its "members" and
 * those "online", as RabbitMQ's quorum queues have them, and (Warren's) "raft": this member's
 * term, commit index and last applied index (rabbitmq-queues quorum_status's), and how many
 * messages it still fetches from the others after a snapshot. 0, or -1 on ENOMEM. */
static int
api_queue_members(json_t *o, const struct queue *q, const char *leader)
{
    if (q->group_id == 0)
        return 0;
    if (json_object_set_new(o, "leader", json_string(leader)) < 0)
        return -1;
    struct cluster_replica_view *v = malloc(sizeof(*v));
    if (v == NULL)
        return -1;
    if (!net_quorum_view(q, v)) {
        free(v);
        return 0;
    }
    json_t *members = json_array(), *up = json_array();
    int rc = members != NULL && up != NULL ? 0 : -1;
    for (unsigned i = 0; i < v->n_members && rc == 0; i++)
        if (json_array_append_new(members, json_string(v->names[i])) < 0 ||
            (v->online[i] && json_array_append_new(up, json_string(v->names[i])) < 0))
            rc = -1;
    if (rc == 0 &&
        (json_object_set(o, "members", members) < 0 || json_object_set(o, "online", up) < 0 ||
         json_object_set_new(o, "raft",
                             json_pack("{s:I, s:I, s:I, s:I}", "term", (json_int_t)v->term,
                                       "commit_index", (json_int_t)v->commit_index, "last_applied",
                                       (json_int_t)v->last_applied, "messages_to_fetch",
                                       (json_int_t)net_quorum_to_fetch(q))) < 0))
        rc = -1;
    json_decref(members);
    json_decref(up);
    free(v);
    return rc;
}

/* One queue's entry (obj: a struct queue). A new object; NULL on ENOMEM. */
static json_t *
api_queue_entry(struct mgmt_req *r, const void *obj)
{
    const struct queue *q = obj;
    const char *node = q->home != NULL ? q->home : mgmt_node_name(r->env); /* where it lives */
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
    if ((ms != NULL && json_object_set_new(o, "message_stats", ms) < 0) ||
        api_queue_gauges(o, q) < 0 || api_queue_members(o, q, node) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
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

static const void *
api_queue_of_entry(const struct hmap_entry *e)
{
    return hmap_container_of(e, const struct queue, by_name);
}

static const void *
api_queue_find(const struct vhost *v, const char *name)
{
    return vhost_queue_find(v, (struct wire_str){(const uint8_t *)name, (uint32_t)strlen(name)});
}

static const struct mgmt_list_src api_queue_src = {
    .table = MGMT_WALK_QUEUES,
    .of_entry = api_queue_of_entry,
    .find = api_queue_find,
    .name = api_queue_name,
    .entry = api_queue_entry,
    .number_field = api_queue_count_field,
    .number = api_queue_count,
};

/* DELETE /api/queues/{vhost}/{name} (queue.delete with if-unused, if-empty; in a cluster
 * through its log) and /api/queues/{vhost}/{name}/contents (queue.purge, here; in a cluster,
 * a queue whose home is another node is purged there, answered later): 204, 404 when
 * missing. */
static void
api_queue_delete(struct mgmt_req *r, struct vhost *v, struct queue *q)
{
    const char *user;
    const struct auth_perm *perm = mgmt_user_perm(r, v, &user);
    struct wire_str name = {(const uint8_t *)q->name, q->name_len};
    struct net_decl_err err;
    uint64_t n;
    struct queue *remote = NULL;
    bool if_unused = mgmt_query_true(r, "if-unused"), if_empty = mgmt_query_true(r, "if-empty");
    bool clustered = r->n_segs == 3 && net_clustered(r->env->net);
    int rc;
    if (r->n_segs == 4) {
        rc = net_queue_purge(v, perm, user, NULL, name, &n, &remote, &err);
        if (rc == 0 && remote != NULL) /* its home purges it: answered later */
            rc = net_queue_purge_remote(r->env->net, v, remote, mgmt_on_topology, r, &err);
    } else if (clustered) {
        rc = net_topo_queue_delete(r->env->net, v, r->user, name, if_unused, if_empty,
                                   mgmt_on_topology, r, &err);
    } else {
        rc = net_queue_delete(v, perm, user, NULL, name, if_unused, if_empty, &n, &err);
    }
    if (rc < 0)
        mgmt_decl_failed(r, &err);
    else if (!clustered && remote == NULL)
        r->reply(r, 204, NULL);
}

/* PUT /api/queues/{vhost}/{name}: queue.declare with the body's durable, auto_delete and
 * arguments (validated as the AMQP declare validates them; in a cluster through its log, the
 * queue's home this node); 201 created, 204 already there, 400 or 401 with RabbitMQ's texts.
 * Not exclusive: no connection owns it. */
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
        bool created, clustered = net_clustered(r->env->net);
        struct net_decl_err err;
        if (clustered
                ? net_topo_queue_declare(r->env->net, v, r->user, &d, mgmt_on_topology, r, &err) < 0
                : net_queue_declare(v, perm, user, NULL, NULL, NULL, name, &d, &q, &created, &err) <
                      0)
            mgmt_decl_failed(r, &err);
        else if (!clustered)
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
    mgmt_list_reply_objs(r, &api_queue_src, vname);
}
