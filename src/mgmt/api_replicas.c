/* The members (replicas) of replicated queues' groups, as RabbitMQ 3.12's management API
 * changes them (administrators only):
 *   POST   /api/queues/quorum/{vhost}/{name}/replicas/add      {"node": N}   204
 *   DELETE /api/queues/quorum/{vhost}/{name}/replicas/delete   {"node": N}   204
 *   POST   /api/queues/quorum/replicas/on/{node}/grow
 *          {"strategy": "all"|"even", "vhost_pattern": P, "queue_pattern": P}
 *   DELETE /api/queues/quorum/replicas/on/{node}/shrink
 * A change is made by the node serving the queue (net_queue_member_change); a refusal is a
 * 503 with its reason, as RabbitMQ's, a missing vhost or queue a 404. grow adds node to every
 * replicated queue matching the patterns that lacks it (even: only to those with an even
 * number of members), shrink removes it from every one it is a member of, one queue after the
 * other; where RabbitMQ answers 204, Warren answers 200 with what rabbitmq-queues prints for
 * each queue: [{"vhost", "name", "size": members after (before, on error), "result": "ok" or
 * "error: why"}]. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgmt_int.h"
#include "warren/net.h"
#include "warren/queue.h"
#include "warren/regex.h"
#include "warren/vhost.h"
#include "warren/wire_gen.h"

/* The node a request names: the body's "node", or NULL after replying 400. */
static const char *
replicas_node(struct mgmt_req *r, json_t *body)
{
    const char *node = json_string_value(json_object_get(body, "node"));
    if (node == NULL)
        mgmt_bad_request(r, "[{key_missing,node}]");
    return node;
}

static void
replicas_on_changed(void *arg, const struct net_decl_err *err, bool created, uint64_t members)
{
    (void)created;
    (void)members;
    struct mgmt_req *r = arg;
    if (err->code == 0)
        r->reply(r, 204, NULL);
    else if (err->code == WIRE_NOT_FOUND)
        mgmt_reply_error(r, 404, "not_found", err->text);
    else
        mgmt_reply_error(r, 503, "service_unavailable", err->text);
}

/* POST .../replicas/add, DELETE .../replicas/delete. */
void
mgmt_api_replicas_one(struct mgmt_req *r)
{
    struct vhost *v = mgmt_vhost_find(r, r->segs[2]);
    json_t *body = v != NULL ? mgmt_body(r) : NULL;
    const char *node = body != NULL ? replicas_node(r, body) : NULL;
    struct net_decl_err err;
    if (v == NULL) {
        mgmt_not_found(r);
    } else if (node != NULL &&
               net_queue_member_change(
                   r->env->net, v,
                   (struct wire_str){(const uint8_t *)r->segs[3], (uint32_t)strlen(r->segs[3])},
                   node, r->method == MGMT_POST ? NET_MEMBER_ADD : NET_MEMBER_REMOVE,
                   replicas_on_changed, r, &err) < 0) {
        replicas_on_changed(r, &err, false, 0);
    }
    json_decref(body);
}

/* A grow or shrink under way: the queues to change, one after the other. */
struct replicas_sweep {
    struct mgmt_req *r;
    char *node; /* owns */
    enum net_member_op op;
    json_t *todo; /* owns: [[vhost, name]...] */
    size_t next;  /* todo's next one; the one before is under way */
    json_t *rows; /* owns: the reply */
};

static void
sweep_free(struct replicas_sweep *w)
{
    json_decref(w->todo);
    json_decref(w->rows);
    free(w->node);
    free(w);
}

/* The outcome of the queue under way (todo's next - 1), as a row of the reply. */
static void
sweep_row(struct replicas_sweep *w, const struct net_decl_err *err, uint64_t members)
{
    if (err->code == WIRE_PRECONDITION_FAILED)
        return; /* nothing to do there */
    json_t *q = json_array_get(w->todo, w->next - 1);
    char result[600];
    snprintf(result, sizeof(result), err->code == 0 ? "ok" : "error: %s", err->text);
    json_array_append_new(w->rows, json_pack("{s:O, s:O, s:I, s:s}", "vhost", json_array_get(q, 0),
                                             "name", json_array_get(q, 1), "size",
                                             (json_int_t)members, "result", result));
}

static void sweep_next(struct replicas_sweep *w);

static void
sweep_on_changed(void *arg, const struct net_decl_err *err, bool created, uint64_t members)
{
    (void)created;
    struct replicas_sweep *w = arg;
    sweep_row(w, err, members);
    sweep_next(w);
}

/* Asks the change of the next queue, or replies once none is left. */
static void
sweep_next(struct replicas_sweep *w)
{
    while (w->next < json_array_size(w->todo)) {
        json_t *q = json_array_get(w->todo, w->next++);
        const char *name = json_string_value(json_array_get(q, 1));
        struct vhost *v = mgmt_vhost_find(w->r, json_string_value(json_array_get(q, 0)));
        struct net_decl_err err = {.code = WIRE_PRECONDITION_FAILED}; /* gone: skipped */
        if (v != NULL &&
            net_queue_member_change(
                w->r->env->net, v, (struct wire_str){(const uint8_t *)name, (uint32_t)strlen(name)},
                w->node, w->op, sweep_on_changed, w, &err) == 0)
            return; /* sweep_on_changed goes on */
        sweep_row(w, &err, 0);
    }
    mgmt_reply_json(w->r, json_incref(w->rows));
    sweep_free(w);
}

/* Compiles pattern (a JSON string; absent: ".*") into *code. 0, or -1 after replying 400
 * for a bad pattern. */
static int
sweep_pattern_compile(struct mgmt_req *r, json_t *pattern, pcre2_code **code)
{
    const char *p = json_is_string(pattern) ? json_string_value(pattern) : ".*";
    char why[256], reason[400];
    size_t off;
    if ((*code = regex_compile(p, why, sizeof(why), &off)) != NULL)
        return 0;
    snprintf(reason, sizeof(reason), "invalid pattern '%s': %s at %zu", p, why, off);
    mgmt_bad_request(r, reason);
    return -1;
}

/* POST .../replicas/on/{node}/grow, DELETE .../replicas/on/{node}/shrink. */
void
mgmt_api_replicas_sweep(struct mgmt_req *r)
{
    bool grow = r->method == MGMT_POST;
    json_t *body = grow ? mgmt_body(r) : json_object();
    if (body == NULL)
        return;
    const char *strategy = json_string_value(json_object_get(body, "strategy"));
    pcre2_code *vpat = NULL, *qpat = NULL;
    if (grow &&
        (strategy == NULL || (strcmp(strategy, "all") != 0 && strcmp(strategy, "even") != 0))) {
        mgmt_bad_request(r, "strategy must be all or even");
    } else if (sweep_pattern_compile(r, json_object_get(body, "vhost_pattern"), &vpat) == 0 &&
               sweep_pattern_compile(r, json_object_get(body, "queue_pattern"), &qpat) == 0) {
        struct replicas_sweep *w = calloc(1, sizeof(*w));
        pcre2_match_data *vmd = pcre2_match_data_create_from_pattern(vpat, NULL);
        pcre2_match_data *qmd = pcre2_match_data_create_from_pattern(qpat, NULL);
        int rc = -1;
        if (w != NULL) {
            w->r = r;
            w->node = strdup(r->segs[4]);
            w->op = !grow                           ? NET_MEMBER_REMOVE
                    : strcmp(strategy, "even") == 0 ? NET_MEMBER_ADD_IF_EVEN
                                                    : NET_MEMBER_ADD;
            w->todo = json_array();
            w->rows = json_array();
            rc = w->node != NULL && w->todo != NULL && w->rows != NULL && vmd != NULL && qmd != NULL
                     ? 0
                     : -1;
        }
        /* Every replicated queue matching (the node serving it decides what is to do). */
        for (struct vhost *v = r->env->vhosts->head; v != NULL && rc == 0; v = v->next) {
            if (!regex_match(vpat, vmd, v->name, strlen(v->name)))
                continue;
            struct hmap_iter it;
            struct hmap_entry *he;
            hmap_iter_init(&it, &v->queues);
            while ((he = hmap_iter_next(&it)) != NULL && rc == 0) {
                const struct queue *q = hmap_container_of(he, struct queue, by_name);
                if (q->group_id != 0 && regex_match(qpat, qmd, q->name, q->name_len))
                    rc = json_array_append_new(w->todo, json_pack("[s, s]", v->name, q->name));
            }
        }
        pcre2_match_data_free(vmd);
        pcre2_match_data_free(qmd);
        if (rc == 0) {
            sweep_next(w);
        } else {
            if (w != NULL)
                sweep_free(w);
            mgmt_nomem(r);
        }
    }
    pcre2_code_free(vpat);
    pcre2_code_free(qpat);
    json_decref(body);
}
