/* Definitions: RabbitMQ's JSON document of users, vhosts, permissions, topic permissions,
 * policies, parameters, exchanges, queues and bindings (rabbitmqctl export_definitions, the
 * management API's /api/definitions), imported in RabbitMQ's order (rabbit_definitions.erl):
 * users, vhosts, permissions, topic permissions, parameters, global parameters, policies,
 * queues, exchanges, bindings. The access records go through admin_apply like any change;
 * exchanges, queues and bindings are made as their declares would make them (arguments
 * checked the same way; ones that exist are kept, as RabbitMQ keeps them; amq.* exchanges are
 * skipped). Exports write the same format back. JSON comes from jansson, an OSS-Fuzz-fuzzed
 * parser. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_int.h"
#include "warren/cluster.h"
#include "warren/conf.h"
#include "warren/exchange.h"
#include "warren/log.h"
#include "warren/queue.h"
#include "warren/queue_args.h"
#include "warren/vhost.h"
#include "warren/wire.h"

#define DEFS_DEPTH_MAX 16 /* nesting of tables and arrays in arguments */
/* The definitions format exports follow: RabbitMQ 3.10's. */
#define DEFS_FORMAT_VERSION "3.10.8"

static void defs_put_value(struct wire_writer *w, json_t *v, int depth, bool *bad);

/* Writes the entries of object o as a field table's body. */
static void
defs_put_entries(struct wire_writer *w, json_t *o, int depth, bool *bad)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        size_t kl = strlen(key);
        if (kl > 255) {
            *bad = true;
            return;
        }
        wire_put_shortstr(w, (struct wire_str){(const uint8_t *)key, (uint32_t)kl});
        defs_put_value(w, v, depth, bad);
    }
}

/* Writes one field value as RabbitMQ turns JSON into AMQP (rabbit_misc:to_amqp_table):
 * integers long ('l'), reals double ('d'), strings longstr ('S'), booleans 't', objects
 * tables ('F'), lists arrays ('A'), null void ('V'). */
static void
defs_put_value(struct wire_writer *w, json_t *v, int depth, bool *bad)
{
    if (depth > DEFS_DEPTH_MAX) {
        *bad = true;
        return;
    }
    switch (json_typeof(v)) {
    case JSON_INTEGER:
        wire_put_u8(w, 'l');
        wire_put_u64(w, (uint64_t)json_integer_value(v));
        break;
    case JSON_REAL: {
        double d = json_real_value(v);
        uint64_t bits;
        memcpy(&bits, &d, sizeof(bits));
        wire_put_u8(w, 'd');
        wire_put_u64(w, bits);
        break;
    }
    case JSON_STRING:
        wire_put_u8(w, 'S');
        wire_put_longstr(w, (struct wire_str){(const uint8_t *)json_string_value(v),
                                              (uint32_t)json_string_length(v)});
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        wire_put_u8(w, 't');
        wire_put_u8(w, json_is_true(v));
        break;
    case JSON_NULL:
        wire_put_u8(w, 'V');
        break;
    case JSON_OBJECT:
    case JSON_ARRAY: {
        wire_put_u8(w, json_is_object(v) ? 'F' : 'A');
        uint8_t *len_at = w->p;
        wire_put_u32(w, 0);
        size_t start = wire_writer_len(w);
        if (json_is_object(v)) {
            defs_put_entries(w, v, depth + 1, bad);
        } else {
            size_t i;
            json_t *x;
            json_array_foreach(v, i, x) defs_put_value(w, x, depth + 1, bad);
        }
        if (!w->overflow) {
            uint32_t n = (uint32_t)(wire_writer_len(w) - start);
            len_at[0] = (uint8_t)(n >> 24);
            len_at[1] = (uint8_t)(n >> 16);
            len_at[2] = (uint8_t)(n >> 8);
            len_at[3] = (uint8_t)n;
        }
        break;
    }
    }
}

int
admin_json_args(json_t *e, uint8_t *buf, struct wire_table *t, char *err, size_t errlen)
{
    json_t *args = json_object_get(e, "arguments");
    *t = (struct wire_table){buf, 0};
    if (args == NULL || json_is_null(args) || (json_is_array(args) && json_array_size(args) == 0))
        return 0;
    if (!json_is_object(args)) {
        snprintf(err, errlen, "arguments is not an object");
        return -1;
    }
    struct wire_writer w;
    bool bad = false;
    wire_writer_init(&w, buf, ADMIN_ARGS_MAX);
    defs_put_entries(&w, args, 0, &bad);
    if (bad || w.overflow) {
        snprintf(err, errlen, "arguments too large, too deep, or with a key over 255 bytes");
        return -1;
    }
    t->len = (uint32_t)wire_writer_len(&w);
    return 0;
}

bool
admin_json_bool(json_t *e, const char *field)
{
    json_t *v = json_object_get(e, field);
    return json_is_true(v) || (json_is_string(v) && strcmp(json_string_value(v), "true") == 0);
}

static struct wire_str
defs_wstr(const char *s)
{
    return (struct wire_str){(const uint8_t *)s, (uint32_t)strlen(s)};
}

/* The vhost an entry names, existing. */
static struct vhost *
defs_vhost(struct admin *a, json_t *e, char *err, size_t errlen)
{
    const char *name = admin_get_name(e, "vhost", "entry", err, errlen);
    if (name == NULL)
        return NULL;
    struct vhost *v = admin_vhost_get(a, name);
    if (v == NULL)
        snprintf(err, errlen, "no vhost '%s'", name);
    return v;
}

static enum admin_result
defs_exchange(struct admin *a, json_t *e, uint8_t *buf, char *err, size_t errlen)
{
    struct vhost *v = defs_vhost(a, e, err, errlen);
    const char *name = v != NULL ? admin_get_name(e, "name", "exchange", err, errlen) : NULL;
    if (name == NULL)
        return ADMIN_INVALID;
    if (strncmp(name, "amq.", 4) == 0 || vhost_exch_find(v, defs_wstr(name)) != NULL)
        return ADMIN_OK; /* predeclared, or kept as it is */
    json_t *jt = json_object_get(e, "type");
    enum exch_type type;
    if (!json_is_string(jt) || exch_type_parse(defs_wstr(json_string_value(jt)), &type) < 0)
        return admin_fail(err, errlen, ADMIN_INVALID, "exchange '%s': unknown type", name);
    struct wire_table args;
    if (admin_json_args(e, buf, &args, err, errlen) < 0)
        return ADMIN_INVALID;
    struct exch *x =
        exch_new(v, defs_wstr(name), type, admin_json_bool(e, "durable"),
                 admin_json_bool(e, "auto_delete"), admin_json_bool(e, "internal"), args);
    if (x == NULL || vhost_exch_add(v, x) < 0) {
        if (x != NULL)
            exch_free(x);
        return admin_fail(err, errlen, ADMIN_NOMEM, "out of memory");
    }
    return ADMIN_OK;
}

static enum admin_result
defs_queue(struct admin *a, json_t *e, uint8_t *buf, char *err, size_t errlen)
{
    struct vhost *v = defs_vhost(a, e, err, errlen);
    const char *name = v != NULL ? admin_get_name(e, "name", "queue", err, errlen) : NULL;
    if (name == NULL)
        return ADMIN_INVALID;
    if (vhost_queue_find(v, defs_wstr(name)) != NULL)
        return ADMIN_OK;
    struct wire_table args;
    if (admin_json_args(e, buf, &args, err, errlen) < 0)
        return ADMIN_INVALID;
    struct queue_args_decl qd = {.name = defs_wstr(name),
                                 .vhost = v->name,
                                 .durable = admin_json_bool(e, "durable"),
                                 .auto_delete = admin_json_bool(e, "auto_delete")};
    char text[256];
    if (queue_args_check(args, &qd, text, sizeof(text)) < 0)
        return admin_fail(err, errlen, ADMIN_INVALID, "queue '%s': %s", name, text);
    struct queue *q = queue_new(v, defs_wstr(name), qd.durable, qd.auto_delete, NULL, args);
    if (q != NULL && a->import_home != NULL && (q->home = strdup(a->import_home)) == NULL) {
        queue_free(q, NULL, NULL);
        q = NULL;
    }
    if (q == NULL || vhost_queue_add(v, q) < 0) {
        if (q != NULL)
            queue_free(q, NULL, NULL);
        return admin_fail(err, errlen, ADMIN_NOMEM, "out of memory");
    }
    if (queue_args_unapplied(args, text, sizeof(text)) > 0)
        log_msg(LOG_WARNING, "queue '%s' in vhost '%s': arguments not applied yet: %s", name,
                v->name, text);
    return ADMIN_OK;
}

static enum admin_result
defs_binding(struct admin *a, json_t *e, uint8_t *buf, char *err, size_t errlen)
{
    struct vhost *v = defs_vhost(a, e, err, errlen);
    if (v == NULL)
        return ADMIN_INVALID;
    json_t *js = json_object_get(e, "source"), *jd = json_object_get(e, "destination");
    json_t *jk = json_object_get(e, "routing_key"), *jt = json_object_get(e, "destination_type");
    if (!json_is_string(js) || !json_is_string(jd) || !json_is_string(jt) ||
        (jk != NULL && !json_is_string(jk)))
        return admin_fail(err, errlen, ADMIN_INVALID,
                          "source, destination, destination_type and routing_key must be strings");
    const char *dt = json_string_value(jt);
    struct exch *src = vhost_exch_find(v, defs_wstr(json_string_value(js)));
    if (src == NULL)
        return admin_fail(err, errlen, ADMIN_NOT_FOUND, "no exchange '%s' in vhost '%s'",
                          json_string_value(js), v->name);
    struct bind_dest bd;
    if (strcmp(dt, "queue") == 0) {
        struct queue *q = vhost_queue_find(v, defs_wstr(json_string_value(jd)));
        if (q == NULL)
            return admin_fail(err, errlen, ADMIN_NOT_FOUND, "no queue '%s' in vhost '%s'",
                              json_string_value(jd), v->name);
        bd = bind_dest_queue(q);
    } else if (strcmp(dt, "exchange") == 0) {
        struct exch *x = vhost_exch_find(v, defs_wstr(json_string_value(jd)));
        if (x == NULL)
            return admin_fail(err, errlen, ADMIN_NOT_FOUND, "no exchange '%s' in vhost '%s'",
                              json_string_value(jd), v->name);
        bd = bind_dest_exch(x);
    } else {
        return admin_fail(err, errlen, ADMIN_INVALID,
                          "destination_type '%s' is neither queue nor exchange", dt);
    }
    struct wire_table args;
    if (admin_json_args(e, buf, &args, err, errlen) < 0)
        return ADMIN_INVALID;
    const char *rk = jk != NULL ? json_string_value(jk) : "";
    if (strlen(rk) > 255)
        return admin_fail(err, errlen, ADMIN_INVALID, "routing_key longer than 255 bytes");
    char why[200];
    if (exch_check_bind_args(src, args, why, sizeof(why)) < 0)
        return admin_fail(err, errlen, ADMIN_INVALID, "%s", why);
    if (exch_has_binding(src, bd, defs_wstr(rk), args))
        return ADMIN_OK;
    if (exch_bind(src, bd, defs_wstr(rk), args) < 0)
        return admin_fail(err, errlen, ADMIN_NOMEM, "out of memory");
    return ADMIN_OK;
}

enum admin_result
admin_definitions_import(struct admin *a, json_t *defs, char *err, size_t errlen)
{
    static const char *const order[] = {
        "users",    "vhosts", "permissions", "topic_permissions", "parameters", "global_parameters",
        "policies", "queues", "exchanges",   "bindings",
    };
    if (!json_is_object(defs))
        return admin_fail(err, errlen, ADMIN_INVALID, "definitions are not a JSON object");
    json_t *jv = json_object_get(defs, "rabbit_version");
    if (jv == NULL)
        jv = json_object_get(defs, "rabbitmq_version");
    const char *version = json_is_string(jv) ? json_string_value(jv) : NULL;
    uint8_t *buf = malloc(ADMIN_ARGS_MAX);
    if (buf == NULL)
        return admin_fail(err, errlen, ADMIN_NOMEM, "out of memory");
    enum admin_result r = ADMIN_OK;
    for (size_t k = 0; r == ADMIN_OK && k < sizeof(order) / sizeof(order[0]); k++) {
        json_t *list = json_object_get(defs, order[k]);
        if (list == NULL || json_is_null(list))
            continue;
        if (!json_is_array(list)) {
            r = admin_fail(err, errlen, ADMIN_INVALID, "%s is not a list", order[k]);
            break;
        }
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e)
        {
            char why[512];
            if (!json_is_object(e))
                r = admin_fail(why, sizeof(why), ADMIN_INVALID, "not a JSON object");
            else if (k == 7)
                r = defs_queue(a, e, buf, why, sizeof(why));
            else if (k == 8)
                r = defs_exchange(a, e, buf, why, sizeof(why));
            else if (k == 9)
                r = defs_binding(a, e, buf, why, sizeof(why));
            else
                r = admin_apply(a, order[k], e, version, true, why, sizeof(why));
            if (r != ADMIN_OK) {
                snprintf(err, errlen, "%s[%zu]: %s", order[k], i, why);
                break;
            }
        }
    }
    free(buf);
    return r;
}

enum admin_result
admin_definitions_put(struct admin *a, json_t *defs, admin_done_fn done, void *arg, char *err,
                      size_t errlen)
{
    if (admin_replicated(a)) {
        if (!json_is_object(defs))
            return admin_fail(err, errlen, ADMIN_INVALID, "definitions are not a JSON object");
        json_t *copy = json_deep_copy(defs);
        if (copy == NULL || admin_prehash_users(a, json_object_get(copy, "users")) < 0) {
            json_decref(copy);
            return admin_fail(err, errlen, ADMIN_NOMEM, "cannot hash a password (see the log)");
        }
        return admin_submit(a, 'D', json_pack("[os]", copy, cluster_self_name(a->cluster)), done,
                            arg, err, errlen);
    }
    enum admin_result r = admin_definitions_import(a, defs, err, errlen);
    return r == ADMIN_OK ? admin_done(a, done, arg, err, errlen) : r;
}

/* ---- export ---- */

static json_t *defs_table_json(struct wire_table t, int depth);

/* A string of AMQP bytes: JSON strings are UTF-8, so bytes that are not become "". */
static json_t *
defs_str_json(struct wire_str s)
{
    json_t *j = json_stringn((const char *)s.ptr, s.len);
    return j != NULL ? j : json_string("");
}

/* One field value as RabbitMQ's export writes it (the reverse of defs_put_value). */
static json_t *
defs_value_json(const struct wire_value *v, int depth)
{
    int64_t i;
    if (wire_value_to_i64(v, &i))
        return json_integer(i);
    switch (v->type) {
    case WIRE_FIELD_BOOL:
        return json_boolean(v->v.b);
    case WIRE_FIELD_FLOAT:
        return json_real(v->v.f);
    case WIRE_FIELD_DOUBLE:
        return json_real(v->v.d);
    case WIRE_FIELD_DECIMAL: {
        double d = v->v.dec.value;
        for (int k = 0; k < v->v.dec.scale; k++)
            d /= 10;
        return json_real(d);
    }
    case WIRE_FIELD_LONGSTR:
    case WIRE_FIELD_BYTES:
        return defs_str_json(v->v.str);
    case WIRE_FIELD_TABLE:
        return defs_table_json(v->v.table, depth + 1);
    case WIRE_FIELD_ARRAY: {
        json_t *arr = json_array();
        struct wire_table_iter it;
        struct wire_value x;
        wire_array_iter_init(&it, v->v.array);
        while (arr != NULL && wire_array_next(&it, &x))
            json_array_append_new(arr, defs_value_json(&x, depth + 1));
        return arr;
    }
    default:
        return json_null();
    }
}

/* A stored (validated) arguments table as a JSON object. */
static json_t *
defs_table_json(struct wire_table t, int depth)
{
    json_t *o = json_object();
    if (o == NULL || depth > DEFS_DEPTH_MAX)
        return o;
    struct wire_table_iter it;
    struct wire_str key;
    struct wire_value v;
    wire_table_iter_init(&it, t);
    while (wire_table_next(&it, &key, &v)) {
        char k[256];
        memcpy(k, key.ptr, key.len);
        k[key.len] = '\0';
        json_object_set_new(o, k, defs_value_json(&v, depth));
    }
    return o;
}

struct defs_export {
    json_t *bindings;
    const struct vhost *v;
    const char *dest;
    const char *dest_type;
};

static void
defs_export_binding(void *arg, const struct exch *src, struct wire_str routing_key,
                    struct wire_table args)
{
    struct defs_export *x = arg;
    json_array_append_new(x->bindings,
                          json_pack("{s:s, s:s, s:s, s:s, s:o, s:o}", "source", src->name, "vhost",
                                    x->v->name, "destination", x->dest, "destination_type",
                                    x->dest_type, "routing_key", defs_str_json(routing_key),
                                    "arguments", defs_table_json(args, 0)));
}

/* The vhost's queues, exchanges and bindings (exclusive queues, the default and amq.*
 * exchanges and internal ones left out, as RabbitMQ's export leaves them). */
static void
defs_export_entities(const struct vhost *v, json_t *queues, json_t *exchanges, json_t *bindings)
{
    struct defs_export x = {bindings, v, NULL, NULL};
    struct hmap_iter it;
    struct hmap_entry *he;
    hmap_iter_init(&it, &v->queues);
    while ((he = hmap_iter_next(&it)) != NULL) {
        const struct queue *q = hmap_container_of(he, struct queue, by_name);
        if (q->owner != NULL)
            continue;
        struct wire_table args = {q->args, q->args_len};
        json_array_append_new(queues, json_pack("{s:s, s:s, s:s, s:b, s:b, s:o}", "name", q->name,
                                                "vhost", v->name, "type", "classic", "durable",
                                                q->durable, "auto_delete", q->auto_delete,
                                                "arguments", defs_table_json(args, 0)));
        x.dest = q->name;
        x.dest_type = "queue";
        bind_list_foreach(&q->bindings_in, defs_export_binding, &x);
    }
    hmap_iter_init(&it, &v->exchanges);
    while ((he = hmap_iter_next(&it)) != NULL) {
        const struct exch *e = hmap_container_of(he, struct exch, by_name);
        x.dest = e->name;
        x.dest_type = "exchange";
        bind_list_foreach(&e->bindings_in, defs_export_binding, &x);
        if (strncmp(e->name, "amq.", 4) == 0 || e->internal)
            continue;
        struct wire_table args = {e->args, e->args_len};
        json_array_append_new(exchanges,
                              json_pack("{s:s, s:s, s:s, s:b, s:b, s:o}", "name", e->name, "vhost",
                                        v->name, "type", exch_type_name(e->type), "durable",
                                        e->durable, "auto_delete", e->auto_delete, "arguments",
                                        defs_table_json(args, 0)));
    }
}

json_t *
admin_definitions_export(struct admin *a)
{
    /* A default user whose password waits for the first login is hashed now: an export
     * holds hashes, never a marker only this broker understands. */
    if (auth_db_hash_now(a->env.auth) < 0)
        return NULL;
    json_t *d = json_pack(
        "{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "rabbit_version",
        DEFS_FORMAT_VERSION, "warren_version", PACKAGE_VERSION, "users", admin_users_json(a),
        "vhosts", admin_vhosts_json(a), "permissions", admin_permissions_json(a),
        "topic_permissions", admin_topic_permissions_json(a), "parameters",
        admin_stored_json(a, "parameters"), "global_parameters",
        admin_stored_json(a, "global_parameters"), "policies", admin_stored_json(a, "policies"),
        "queues", json_array(), "exchanges", json_array(), "bindings", json_array());
    if (d == NULL)
        return NULL;
    /* Vhost limits as RabbitMQ 3.10 exports them: [name, value] pairs in the vhost, and a
     * vhost-limits parameter (which is what its import reads). */
    json_t *params = json_object_get(d, "parameters");
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(d, "vhosts"), i, v)
    {
        json_t *lim = json_object_get(v, "limits"), *pairs = json_array();
        const char *key;
        json_t *val;
        json_object_foreach(lim, key, val)
            json_array_append_new(pairs, json_pack("[s,O]", key, val));
        if (json_object_size(lim) > 0)
            json_array_append_new(
                params, json_pack("{s:O, s:s, s:s, s:O}", "vhost", json_object_get(v, "name"),
                                  "component", "vhost-limits", "name", "limits", "value", lim));
        json_object_set_new(v, "limits", pairs);
    }
    for (struct vhost *vh = a->env.vhosts->head; vh != NULL; vh = vh->next)
        defs_export_entities(vh, json_object_get(d, "queues"), json_object_get(d, "exchanges"),
                             json_object_get(d, "bindings"));
    return d;
}

enum admin_result
admin_definitions_load(struct admin *a, const char *path, char *err, size_t errlen)
{
    json_error_t je;
    json_t *defs = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (defs == NULL) {
        if (je.line < 0)
            return admin_fail(err, errlen, ADMIN_INVALID, "load_definitions %s: %s", path, je.text);
        return admin_fail(err, errlen, ADMIN_INVALID, "load_definitions %s:%d:%d: %s", path,
                          je.line, je.column, je.text);
    }
    if (a->env.conf->cluster_nodes.n > 0) {
        /* In a cluster, through its log once the node is in it (admin_set_cluster): every
         * node then imports the same, in the same order as the other changes. */
        admin_boot_defs(a, defs, path);
        return ADMIN_OK;
    }
    char why[600];
    enum admin_result r = admin_definitions_import(a, defs, why, sizeof(why));
    json_decref(defs);
    if (r != ADMIN_OK)
        return admin_fail(err, errlen, r, "load_definitions %s: %s", path, why);
    log_msg(LOG_INFO, "imported definitions from %s", path);
    return ADMIN_OK;
}
