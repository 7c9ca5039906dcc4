/* GET and POST /api/definitions[/{vhost}] (rabbit_mgmt_wm_definitions.erl): every user,
 * vhost, permission, limit, policy, parameter, queue, exchange and binding as RabbitMQ's
 * definitions file lists them (exclusive queues, the default exchange and amq.* left out),
 * and an import of such a file through warren/admin.h, answered once durable. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgmt_int.h"
#include "warren/admin.h"
#include "warren/auth.h"
#include "warren/exchange.h"
#include "warren/queue.h"
#include "warren/vhost.h"
#include "warren/wire.h"

/* Exchanges, queues and bindings of one vhost (or all, vhost NULL) as definitions list
 * them: exclusive queues, the default exchange and amq.* left out. */
struct api_entities {
    const char *vhost;
    json_t *queues, *exchanges, *bindings;
};

struct api_bind_ctx {
    json_t *arr;
    const char *vhost, *dest, *dest_type;
};

static void
api_binding_entry(void *arg, const struct exch *src, struct wire_str routing_key,
                  struct wire_table args)
{
    struct api_bind_ctx *b = arg;
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s%, s:o?}", "source", src->name, "vhost",
                          b->vhost, "destination", b->dest, "destination_type", b->dest_type,
                          "routing_key", (const char *)routing_key.ptr, (size_t)routing_key.len,
                          "arguments", mgmt_table_json(args.ptr, args.len, 0));
    if (o != NULL)
        json_array_append_new(b->arr, o);
}

static void
api_entities_of(struct api_entities *out, const struct vhost *v)
{
    struct hmap_iter it;
    struct hmap_entry *e;
    hmap_iter_init(&it, &v->exchanges);
    while ((e = hmap_iter_next(&it)) != NULL) {
        struct exch *x = hmap_container_of(e, struct exch, by_name);
        struct api_bind_ctx b = {out->bindings, v->name, x->name, "exchange"};
        bind_list_foreach(&x->bindings_in, api_binding_entry, &b);
        if (x->name_len == 0 || strncmp(x->name, "amq.", 4) == 0)
            continue;
        json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:b, s:b, s:o?}", "name", x->name, "vhost",
                              v->name, "type", exch_type_name(x->type), "durable", x->durable,
                              "auto_delete", x->auto_delete, "internal", x->internal, "arguments",
                              mgmt_table_json(x->args, x->args_len, 0));
        if (o != NULL)
            json_array_append_new(out->exchanges, o);
    }
    hmap_iter_init(&it, &v->queues);
    while ((e = hmap_iter_next(&it)) != NULL) {
        struct queue *q = hmap_container_of(e, struct queue, by_name);
        if (q->owner != NULL)
            continue;
        struct api_bind_ctx b = {out->bindings, v->name, q->name, "queue"};
        bind_list_foreach(&q->bindings_in, api_binding_entry, &b);
        json_t *o =
            json_pack("{s:s, s:s, s:s, s:b, s:b, s:o?}", "name", q->name, "vhost", v->name, "type",
                      "classic", "durable", q->durable, "auto_delete", q->auto_delete, "arguments",
                      mgmt_table_json(q->args, q->args_len, 0));
        if (o != NULL)
            json_array_append_new(out->queues, o);
    }
}

static void
api_definitions_get(struct mgmt_req *r)
{
    const char *vhost = r->n_segs > 1 ? r->segs[1] : NULL;
    if (vhost != NULL && mgmt_vhost_find(r, vhost) == NULL) {
        mgmt_not_found(r);
        return;
    }
    struct admin *a = r->env->admin;
    json_t *d = json_pack("{s:s, s:s, s:s, s:s}", "rabbit_version", API_RABBITMQ_VERSION,
                          "rabbitmq_version", API_RABBITMQ_VERSION, "product_name", "Warren",
                          "product_version", PACKAGE_VERSION);
    if (d == NULL) {
        mgmt_nomem(r);
        return;
    }
    if (vhost == NULL) {
        json_object_set_new(d, "users", mgmt_users_json(r));
        json_object_set_new(d, "vhosts", admin_vhosts_json(a));
        json_object_set_new(d, "permissions", admin_permissions_json(a));
        json_object_set_new(d, "topic_permissions", admin_topic_permissions_json(a));
        json_object_set_new(d, "global_parameters", admin_stored_json(a, "global_parameters"));
    }
    json_t *policies = admin_stored_json(a, "policies");
    json_t *params = admin_stored_json(a, "parameters");
    if (vhost != NULL) {
        policies = mgmt_filter(policies, "vhost", vhost, NULL, NULL);
        params = mgmt_filter(params, "vhost", vhost, NULL, NULL);
    }
    json_object_set_new(d, "parameters", params);
    json_object_set_new(d, "policies", policies);
    struct api_entities ent = {vhost, json_array(), json_array(), json_array()};
    for (struct vhost *v = r->env->vhosts->head; v != NULL; v = v->next)
        if (vhost == NULL || strcmp(v->name, vhost) == 0)
            api_entities_of(&ent, v);
    json_object_set_new(d, "queues", ent.queues);
    json_object_set_new(d, "exchanges", ent.exchanges);
    json_object_set_new(d, "bindings", ent.bindings);
    r->reply(r, 200, d);
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
    enum admin_result res = admin_definitions_import(r->env->admin, defs, err, sizeof(err));
    json_decref(defs);
    if (res != ADMIN_OK) {
        mgmt_changed(r, res == ADMIN_NOT_FOUND ? ADMIN_INVALID : res, err);
        return;
    }
    r->ok_status = 204;
    if (admin_sync(r->env->admin, mgmt_on_durable, r) < 0)
        mgmt_nomem(r);
}

void
mgmt_api_definitions(struct mgmt_req *r)
{
    if (r->method == MGMT_GET)
        api_definitions_get(r);
    else
        api_definitions_post(r);
}
