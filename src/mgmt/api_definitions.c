/* GET and POST /api/definitions[/{vhost}] (rabbit_mgmt_wm_definitions.erl): every user,
 * vhost, permission, limit, policy, parameter, queue, exchange and binding as RabbitMQ's
 * definitions file lists them (exclusive queues, the default exchange and amq.* left out),
 * and an import of such a file through warren/admin.h, answered once durable. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "mgmt_int.h"
#include "warren/admin.h"
#include "warren/auth.h"
#include "warren/exchange.h"
#include "warren/log.h"
#include "warren/queue.h"
#include "warren/vhost.h"
#include "warren/wire.h"

/* A GET's reply, written over loop turns (struct mgmt_stepped): the head (every section but
 * the last three, small) made at once, then the queues, the exchanges and the bindings written
 * one entry at a time from walks of the vhosts' tables, so that 100,000 queues never hold the
 * loop. Exclusive queues (and their bindings), the default exchange and amq.* are left out. */
enum defs_section {
    DEFS_QUEUES,         /* the queues' tables */
    DEFS_EXCHANGES,      /* the exchanges' tables */
    DEFS_BINDINGS_EXCH,  /* the exchanges' tables again: bindings to each */
    DEFS_BINDINGS_QUEUE, /* the queues' tables again: bindings to each */
    DEFS_DONE,
};

struct defs_job {
    struct mgmt_stepped base; /* first: what the transport holds */
    const struct vhost_registry *reg;
    char *head; /* owns: the head's JSON text, its closing brace cut; NULL once written */
    enum defs_section section;
    struct mgmt_walk walk;
    size_t written;       /* entries written in the current array */
    struct evbuffer *out; /* the step's */
    bool failed;          /* ENOMEM */
};

/* Writes o (taken; NULL: ENOMEM) as the next entry of the current array. */
static void
defs_write(struct defs_job *j, json_t *o)
{
    if (o == NULL || (j->written > 0 && evbuffer_add(j->out, ",", 1) < 0) ||
        mgmt_json_write(o, j->out) < 0)
        j->failed = true;
    json_decref(o);
    j->written++;
}

/* What bind_list_foreach hands each binding to one destination. */
struct defs_dest {
    struct defs_job *j;
    const char *vhost, *name, *type;
};

static void
defs_binding(void *arg, const struct exch *src, struct wire_str routing_key, struct wire_table args)
{
    const struct defs_dest *d = arg;
    defs_write(d->j,
               json_pack("{s:s, s:s, s:s, s:s, s:s%, s:o?}", "source", src->name, "vhost", d->vhost,
                         "destination", d->name, "destination_type", d->type, "routing_key",
                         (const char *)routing_key.ptr, (size_t)routing_key.len, "arguments",
                         mgmt_table_json(args.ptr, args.len, 0)));
}

/* mgmt_walk_fn: one queue or exchange, in the section's way. */
static void
defs_visit(void *arg, const struct vhost *v, const struct hmap_entry *e)
{
    struct defs_job *j = arg;
    if (j->failed)
        return;
    if (j->section == DEFS_QUEUES || j->section == DEFS_BINDINGS_QUEUE) {
        const struct queue *q = hmap_container_of(e, const struct queue, by_name);
        if (q->owner != NULL)
            return;
        if (j->section == DEFS_BINDINGS_QUEUE) {
            struct defs_dest d = {j, v->name, q->name, "queue"};
            bind_list_foreach(&q->bindings_in, defs_binding, &d);
            return;
        }
        defs_write(j, json_pack("{s:s, s:s, s:s, s:b, s:b, s:o?}", "name", q->name, "vhost",
                                v->name, "type", "classic", "durable", q->durable, "auto_delete",
                                q->auto_delete, "arguments",
                                mgmt_table_json(q->args, q->args_len, 0)));
        return;
    }
    const struct exch *x = hmap_container_of(e, const struct exch, by_name);
    if (j->section == DEFS_BINDINGS_EXCH) {
        struct defs_dest d = {j, v->name, x->name, "exchange"};
        bind_list_foreach(&x->bindings_in, defs_binding, &d);
        return;
    }
    if (x->name_len == 0 || strncmp(x->name, "amq.", 4) == 0)
        return;
    defs_write(j, json_pack("{s:s, s:s, s:s, s:b, s:b, s:b, s:o?}", "name", x->name, "vhost",
                            v->name, "type", exch_type_name(x->type), "durable", x->durable,
                            "auto_delete", x->auto_delete, "internal", x->internal, "arguments",
                            mgmt_table_json(x->args, x->args_len, 0)));
}

/* struct mgmt_stepped's step. */
static int
defs_step(struct mgmt_stepped *base, struct evbuffer *out, unsigned budget_us)
{
    /* What goes before each section's entries, and the table it walks. */
    static const struct {
        const char *open;
        enum mgmt_walk_table table;
    } sections[] = {
        [DEFS_QUEUES] = {",\"queues\":[", MGMT_WALK_QUEUES},
        [DEFS_EXCHANGES] = {"],\"exchanges\":[", MGMT_WALK_EXCHANGES},
        [DEFS_BINDINGS_EXCH] = {"],\"bindings\":[", MGMT_WALK_EXCHANGES},
        [DEFS_BINDINGS_QUEUE] = {"", MGMT_WALK_QUEUES},
    };
    struct defs_job *j = (struct defs_job *)base;
    uint64_t until = mgmt_now_us() + budget_us;
    j->out = out;
    if (j->head != NULL) {
        if (evbuffer_add(out, j->head, strlen(j->head)) < 0 ||
            evbuffer_add(out, sections[DEFS_QUEUES].open, strlen(sections[DEFS_QUEUES].open)) < 0)
            goto nomem;
        free(j->head);
        j->head = NULL;
        j->walk.table = sections[DEFS_QUEUES].table;
    }
    while (j->section < DEFS_DONE) {
        int rc = mgmt_walk_step(&j->walk, j->reg, until, defs_visit, j);
        if (rc < 0 || j->failed)
            goto nomem;
        if (rc == 0)
            return 0;
        if (++j->section < DEFS_DONE) {
            const char *open = sections[j->section].open;
            if (open[0] != '\0') /* a new array: else the bindings go on */
                j->written = 0;
            if (evbuffer_add(out, open, strlen(open)) < 0)
                goto nomem;
            j->walk.table = sections[j->section].table;
        }
    }
    if (evbuffer_add(out, "]}", 2) < 0)
        goto nomem;
    return 200;
nomem:
    log_msg(LOG_ERROR, "management: out of memory for a definitions export");
    return mgmt_stepped_error(out, 500, "internal_server_error", "out of memory");
}

static void
defs_free(struct mgmt_stepped *base)
{
    struct defs_job *j = (struct defs_job *)base;
    free(j->head);
    mgmt_walk_clear(&j->walk);
    free(j);
}

/* The head of a GET's reply: every section before the queues, as a new object; NULL on
 * ENOMEM. */
static json_t *
api_definitions_head(struct mgmt_req *r, const char *vhost)
{
    struct admin *a = r->env->admin;
    json_t *d = json_pack("{s:s, s:s, s:s, s:s}", "rabbit_version", API_RABBITMQ_VERSION,
                          "rabbitmq_version", API_RABBITMQ_VERSION, "product_name", "Warren",
                          "product_version", PACKAGE_VERSION);
    if (d == NULL)
        return NULL;
    bool failed = false;
    if (vhost == NULL) {
        failed |= json_object_set_new(d, "users", mgmt_users_json(r)) < 0;
        failed |= json_object_set_new(d, "vhosts", admin_vhosts_json(a)) < 0;
        failed |= json_object_set_new(d, "permissions", admin_permissions_json(a)) < 0;
        failed |= json_object_set_new(d, "topic_permissions", admin_topic_permissions_json(a)) < 0;
        failed |= json_object_set_new(d, "global_parameters",
                                      admin_stored_json(a, "global_parameters")) < 0;
    }
    json_t *policies = admin_stored_json(a, "policies");
    json_t *params = admin_stored_json(a, "parameters");
    if (vhost != NULL) {
        policies = mgmt_filter(policies, "vhost", vhost, NULL, NULL);
        params = mgmt_filter(params, "vhost", vhost, NULL, NULL);
    }
    failed |= json_object_set_new(d, "parameters", params) < 0;
    failed |= json_object_set_new(d, "policies", policies) < 0;
    if (failed) {
        json_decref(d);
        return NULL;
    }
    return d;
}

static void
api_definitions_get(struct mgmt_req *r)
{
    const char *vhost = r->n_segs > 1 ? r->segs[1] : NULL;
    if (vhost != NULL && mgmt_vhost_find(r, vhost) == NULL) {
        mgmt_not_found(r);
        return;
    }
    json_t *head = api_definitions_head(r, vhost);
    struct defs_job *j = head != NULL ? calloc(1, sizeof(*j)) : NULL;
    if (j != NULL)
        j->head = json_dumps(head, JSON_COMPACT);
    json_decref(head);
    if (j == NULL || j->head == NULL) {
        free(j);
        mgmt_nomem(r);
        return;
    }
    j->head[strlen(j->head) - 1] = '\0'; /* the closing brace: the entities' sections follow */
    j->base.step = defs_step;
    j->base.free = defs_free;
    j->reg = r->env->vhosts;
    j->walk.only = vhost;
    r->stepped(r, &j->base);
}

/* POST /api/definitions[/{vhost}]: imports, answers 204 once durable. For one vhost, the
 * objects go into it whatever vhost they name, and users, vhosts and permissions are not
 * read (as RabbitMQ's vhost import does). */
static void
api_definitions_post(struct mgmt_req *r)
{
    const char *vhost = r->n_segs > 1 ? r->segs[1] : NULL;
    if (vhost != NULL && mgmt_vhost_find(r, vhost) == NULL) {
        mgmt_not_found(r);
        return;
    }
    json_t *defs = mgmt_body(r);
    if (defs == NULL)
        return;
    if (vhost != NULL) {
        static const char *const global[] = {"users", "vhosts", "permissions", "topic_permissions",
                                             "global_parameters"};
        static const char *const local[] = {"queues", "exchanges", "bindings", "policies",
                                            "parameters"};
        for (size_t i = 0; i < sizeof(global) / sizeof(global[0]); i++)
            json_object_del(defs, global[i]);
        for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
            size_t j;
            json_t *e;
            json_array_foreach(json_object_get(defs, local[i]), j, e)
            {
                if (json_is_object(e))
                    json_object_set_new(e, "vhost", json_string(vhost));
            }
        }
    }
    char err[512] = "";
    r->ok_status = 204;
    enum admin_result res =
        admin_definitions_put(r->env->admin, defs, mgmt_on_durable, r, err, sizeof(err));
    json_decref(defs);
    mgmt_changed(r, res == ADMIN_NOT_FOUND ? ADMIN_INVALID : res, err);
}

void
mgmt_api_definitions(struct mgmt_req *r)
{
    if (r->method == MGMT_GET)
        api_definitions_get(r);
    else
        api_definitions_post(r);
}
