/* The exchange and binding routes as RabbitMQ 3.10's HTTP API answers them
 * (rabbit_mgmt_wm_exchange(s).erl, rabbit_mgmt_wm_bindings.erl, rabbit_mgmt_wm_binding.erl):
 *   GET /api/exchanges[/{vhost}[/{name}]]           the default exchange is amq.default in paths
 *   PUT, DELETE /api/exchanges/{vhost}/{name}       exchange.declare, exchange.delete (net.h)
 *   GET /api/exchanges/{vhost}/{name}/bindings/source|destination
 *   GET /api/queues/{vhost}/{name}/bindings         with the default exchange's implicit one
 *   GET /api/bindings[/{vhost}]
 *   GET /api/bindings/{vhost}/e/{source}/q|e/{destination}[/{properties_key}]
 * Lists go through mgmt_list_reply (sorting, paging where RabbitMQ pages, columns). A
 * binding's properties_key is RabbitMQ's: the routing key quoted as a URL query value ('~' as
 * %7E), "~" alone for an empty key, and "~" and a hash of the arguments when there are some.
 * That hash is Warren's (FNV-1a of the encoded table, base64url): RabbitMQ's is
 * erlang:phash2 of its table term, so keys with arguments differ between the two brokers, but
 * each broker reads back the keys it lists. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgmt_int.h"
#include "warren/auth.h"
#include "warren/exchange.h"
#include "warren/net.h"
#include "warren/queue.h"
#include "warren/vhost.h"
#include "warren/wire_gen.h"

/* The exchange a path segment names in v: amq.default is the default exchange "", which the
 * broker routes to without an object (*x NULL). Returns its name (borrowed), or NULL when
 * there is none. */
static const char *
api_exch_lookup(const struct vhost *v, const char *seg, const struct exch **x)
{
    *x = NULL;
    if (strcmp(seg, "amq.default") == 0)
        return "";
    *x = vhost_exch_find(v, (struct wire_str){(const uint8_t *)seg, (uint32_t)strlen(seg)});
    return *x != NULL ? (*x)->name : NULL;
}

/* An exchange's entry (x NULL: v's default exchange). A new object; NULL on ENOMEM. */
static json_t *
api_exch_json(const struct vhost *v, const struct exch *x)
{
    if (x == NULL)
        return json_pack("{s:s, s:s, s:s, s:b, s:b, s:b, s:{}}", "name", "", "vhost", v->name,
                         "type", "direct", "durable", 1, "auto_delete", 0, "internal", 0,
                         "arguments");
    return json_pack("{s:s, s:s, s:s, s:b, s:b, s:b, s:o?}", "name", x->name, "vhost",
                     x->vhost->name, "type", exch_type_name(x->type), "durable", x->durable,
                     "auto_delete", x->auto_delete, "internal", x->internal, "arguments",
                     mgmt_table_json(x->args, x->args_len, 0));
}

/* The len bytes at p quoted as rabbit_http_util:quote_plus does (a URL query value: letters,
 * digits and "-_.~" kept, space as "+", the rest as %XX), into out (cap bytes, truncated),
 * "~" quoted too unless tilde (rabbit_mgmt_format:quote_binding: "~" separates a binding's
 * key from its arguments' hash). Returns the length written. */
static size_t
api_quote(char *out, size_t cap, const uint8_t *p, size_t len, bool tilde)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (size_t i = 0; i < len && n + 4 < cap; i++) {
        uint8_t c = p[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || (tilde && c == '~')) {
            out[n++] = (char)c;
        } else if (c == ' ') {
            out[n++] = '+';
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    out[n] = '\0';
    return n;
}

void
mgmt_props_key(char *out, size_t cap, struct wire_str rk, struct wire_table args)
{
    if (rk.len == 0 && args.len == 0) {
        snprintf(out, cap, "~");
        return;
    }
    size_t n = api_quote(out, cap, rk.ptr, rk.len, false);
    if (args.len == 0 || n + 8 >= cap)
        return;
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < args.len; i++)
        h = (h ^ args.ptr[i]) * 16777619u;
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t b[4] = {(uint8_t)(h >> 24), (uint8_t)(h >> 16), (uint8_t)(h >> 8), (uint8_t)h};
    out[n++] = '~';
    out[n++] = b64[b[0] >> 2];
    out[n++] = b64[((b[0] & 3) << 4) | (b[1] >> 4)];
    out[n++] = b64[((b[1] & 15) << 2) | (b[2] >> 6)];
    out[n++] = b64[b[2] & 63];
    out[n++] = b64[b[3] >> 2];
    out[n++] = b64[(b[3] & 3) << 4];
    out[n] = '\0';
}

/* RabbitMQ sorts bindings by vhost, then as whole terms: source first. */
static const char *const api_bind_sorts[] = {
    "vhost", "source", "destination", "destination_type", "routing_key", "properties_key", NULL};

/* Which bindings a route lists: NULL fields match any. */
struct api_bind_sel {
    const char *source;
    const char *dest, *dest_type; /* "queue" or "exchange" */
    const char *props_key;
    json_t *arr;                             /* borrows: where the entries found go */
    const char *vhost, *cur_dest, *cur_type; /* the destination being walked */
    uint8_t *found;    /* owns: the first match's routing key then arguments (keep_found) */
    uint32_t found_rk; /* bytes of found that are the routing key; the rest: arguments */
    uint32_t found_len;
    bool keep_found;
    bool failed; /* ENOMEM: arr misses entries */
};

static void
api_bind_add(struct api_bind_sel *s, const char *source, struct wire_str rk, struct wire_table args)
{
    if (s->failed || (s->source != NULL && strcmp(s->source, source) != 0))
        return;
    char key[1024];
    mgmt_props_key(key, sizeof(key), rk, args);
    if (s->props_key != NULL && strcmp(s->props_key, key) != 0)
        return;
    if (s->keep_found && s->found == NULL && (s->found = malloc(rk.len + args.len + 1)) != NULL) {
        memcpy(s->found, rk.ptr, rk.len);
        if (args.len > 0)
            memcpy(s->found + rk.len, args.ptr, args.len);
        s->found_rk = rk.len;
        s->found_len = rk.len + args.len;
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s%, s:o?, s:s}", "source", source, "vhost",
                          s->vhost, "destination", s->cur_dest, "destination_type", s->cur_type,
                          "routing_key", (const char *)rk.ptr, (size_t)rk.len, "arguments",
                          mgmt_table_json(args.ptr, args.len, 0), "properties_key", key);
    if (o == NULL || json_array_append_new(s->arr, o) < 0 || (s->keep_found && s->found == NULL))
        s->failed = true;
}

static void
api_bind_entry(void *arg, const struct exch *src, struct wire_str rk, struct wire_table args)
{
    api_bind_add(arg, src->name, rk, args);
}

/* Adds the bindings s selects to exchange x of v. */
static void
api_bind_to_exch(struct api_bind_sel *s, const struct vhost *v, const struct exch *x)
{
    s->vhost = v->name;
    s->cur_dest = x->name;
    s->cur_type = "exchange";
    bind_list_foreach(&x->bindings_in, api_bind_entry, s);
}

/* Adds the bindings s selects to queue q of v, the default exchange's first: implicit in the
 * broker, listed by RabbitMQ. */
static void
api_bind_to_queue(struct api_bind_sel *s, const struct vhost *v, const struct queue *q)
{
    s->vhost = v->name;
    s->cur_dest = q->name;
    s->cur_type = "queue";
    api_bind_add(s, "", (struct wire_str){(const uint8_t *)q->name, (uint32_t)strlen(q->name)},
                 (struct wire_table){NULL, 0});
    bind_list_foreach(&q->bindings_in, api_bind_entry, s);
}

/* Adds the bindings s selects to its destination s->dest (of type s->dest_type) in v. */
static void
api_bindings_to(struct api_bind_sel *s, const struct vhost *v)
{
    struct wire_str name = {(const uint8_t *)s->dest, (uint32_t)strlen(s->dest)};
    if (strcmp(s->dest_type, "queue") == 0) {
        const struct queue *q = vhost_queue_find(v, name);
        if (q != NULL)
            api_bind_to_queue(s, v, q);
    } else {
        const struct exch *x = vhost_exch_find(v, name);
        if (x != NULL)
            api_bind_to_exch(s, v, x);
    }
}

/* Answers r with the bindings s selects to s->dest in v (NULL: none, []). */
static void
api_bindings_reply(struct mgmt_req *r, struct api_bind_sel *s, const struct vhost *v)
{
    s->arr = json_array();
    if (s->arr != NULL && v != NULL)
        api_bindings_to(s, v);
    if (s->failed) {
        json_decref(s->arr);
        s->arr = NULL;
    }
    mgmt_list_reply(r, s->arr, api_bind_sorts, false);
}

/* A list's items made by a walk over loop turns, for mgmt_list_reply_produced: of the
 * exchanges' tables (an exchange's entry, or the bindings to it), then for bindings of the
 * queues'. It holds a copy of the source it selects by: the objects may go between turns. */
struct api_walk {
    struct mgmt_list_producer base; /* first: what the list job holds */
    struct mgmt_req *r;             /* borrows: the list job answering r outlives the walk */
    struct mgmt_walk walk;
    bool bindings;         /* the bindings to each exchange then queue; else the exchanges */
    struct api_bind_sel s; /* arr: the step's; failed: ENOMEM, whatever the walk makes */
    char *source;          /* owns: s.source's copy, or NULL */
};

/* mgmt_walk_fn: an exchange's entry, or the bindings to one exchange or queue. */
static void
api_walk_visit(void *arg, const struct vhost *v, const struct hmap_entry *e)
{
    struct api_walk *w = arg;
    if (w->walk.table == MGMT_WALK_QUEUES)
        api_bind_to_queue(&w->s, v, hmap_container_of(e, const struct queue, by_name));
    else if (w->bindings)
        api_bind_to_exch(&w->s, v, hmap_container_of(e, const struct exch, by_name));
    else if (!w->s.failed &&
             json_array_append_new(
                 w->s.arr, api_exch_json(v, hmap_container_of(e, const struct exch, by_name))) < 0)
        w->s.failed = true;
}

/* struct mgmt_list_producer's step. */
static int
api_walk_step(struct mgmt_list_producer *p, json_t *arr, uint64_t until)
{
    struct api_walk *w = (struct api_walk *)p;
    w->s.arr = arr;
    for (;;) {
        int rc = mgmt_walk_step(&w->walk, w->r->env->vhosts, until, api_walk_visit, w);
        if (rc < 0 || w->s.failed)
            return -1;
        if (rc == 0 || !w->bindings || w->walk.table == MGMT_WALK_QUEUES)
            return rc;
        w->walk.table = MGMT_WALK_QUEUES;
    }
}

static void
api_walk_free(struct mgmt_list_producer *p)
{
    struct api_walk *w = (struct api_walk *)p;
    mgmt_walk_clear(&w->walk);
    free(w->source);
    free(w);
}

/* Answers r with a list (sorted by sorts, pageable or not) of items (taken) and what a walk
 * adds to them: the exchanges, or with bindings the bindings from source (NULL: any); in the
 * vhost named only (NULL: every vhost r may see). */
static void
api_walked(struct mgmt_req *r, json_t *items, const char *only, bool bindings, const char *source,
           const char *const *sorts, bool pageable)
{
    struct api_walk *w = items != NULL ? calloc(1, sizeof(*w)) : NULL;
    if (w == NULL || (source != NULL && (w->source = strdup(source)) == NULL)) {
        free(w);
        json_decref(items);
        mgmt_nomem(r);
        return;
    }
    w->base.step = api_walk_step;
    w->base.free = api_walk_free;
    w->r = r;
    w->bindings = bindings;
    w->s.source = w->source;
    w->walk.table = MGMT_WALK_EXCHANGES;
    w->walk.only = only;
    w->walk.seen_by = r;
    mgmt_list_reply_produced(r, items, &w->base, sorts, pageable);
}

/* The vhost of segment i if it exists and r may see it; else NULL after replying 404. */
static struct vhost *
api_vhost_seg(struct mgmt_req *r, size_t i)
{
    struct vhost *v = mgmt_vhost_find(r, r->segs[i]);
    if (v == NULL || !mgmt_vhost_visible(r, r->segs[i])) {
        mgmt_not_found(r);
        return NULL;
    }
    return v;
}

void
mgmt_decl_failed(struct mgmt_req *r, const struct net_decl_err *err)
{
    if (err->code == NET_DECL_UNAVAILABLE)
        mgmt_reply_error(r, 503, "service_unavailable", err->text);
    else if (err->code == WIRE_ACCESS_REFUSED)
        mgmt_reply_error(r, 401, "not_authorised", "Access refused.");
    else if (err->code == WIRE_NOT_FOUND)
        mgmt_reply_error(r, 404, "not_found", err->text);
    else
        mgmt_bad_request(r, err->text);
}

void
mgmt_on_topology(void *arg, const struct net_decl_err *err, bool created, uint64_t count)
{
    (void)count;
    struct mgmt_req *r = arg;
    if (err->code != 0) {
        free(r->location); /* a binding's, set before it was made */
        r->location = NULL;
        mgmt_decl_failed(r, err);
    } else if (r->method == MGMT_DELETE) {
        r->reply(r, 204, NULL);
    } else {
        r->reply(r, created || r->method == MGMT_POST ? 201 : 204, NULL);
    }
}

const struct auth_perm *
mgmt_user_perm(const struct mgmt_req *r, const struct vhost *v, const char **user)
{
    *user = r->user != NULL ? auth_user_name(r->user) : NULL;
    return r->user != NULL ? auth_perm_find(r->user, v->name) : NULL;
}

json_t *
mgmt_declare_body(struct mgmt_req *r, uint8_t **buf, struct wire_table *args)
{
    char why[200];
    json_t *body = mgmt_body(r);
    *buf = NULL;
    if (body == NULL)
        return NULL;
    if ((*buf = malloc(ADMIN_ARGS_MAX)) == NULL)
        mgmt_nomem(r);
    else if (admin_json_args(body, *buf, args, why, sizeof(why)) < 0)
        mgmt_bad_request(r, why);
    else
        return body;
    json_decref(body);
    return NULL;
}

bool
mgmt_query_true(const struct mgmt_req *r, const char *key)
{
    const char *v = json_string_value(json_object_get(r->query, key));
    return v != NULL && strcmp(v, "true") == 0;
}

/* PUT /api/exchanges/{vhost}/{name}: exchange.declare with the body's type (default direct),
 * durable, auto_delete, internal and arguments; 201 created, 204 already there. DELETE:
 * exchange.delete (if-unused); 404 when missing. */
static void
api_exchange_change(struct mgmt_req *r)
{
    struct vhost *v = mgmt_vhost_find(r, r->segs[1]);
    if (v == NULL) {
        mgmt_reply_error(r, 404, "not_found", "vhost_not_found");
        return;
    }
    const char *user;
    const struct auth_perm *perm = mgmt_user_perm(r, v, &user);
    const struct exch *x;
    const char *name = api_exch_lookup(v, r->segs[2], &x);
    struct wire_str wname = {(const uint8_t *)(name != NULL ? name : r->segs[2]),
                             (uint32_t)strlen(name != NULL ? name : r->segs[2])};
    struct net_decl_err err;
    bool clustered = net_clustered(r->env->net);
    if (r->method == MGMT_DELETE) {
        bool if_unused = mgmt_query_true(r, "if-unused");
        if (name == NULL)
            mgmt_not_found(r);
        else if (clustered ? net_topo_exch_delete(r->env->net, v, r->user, wname, if_unused,
                                                  mgmt_on_topology, r, &err) < 0
                           : net_exch_delete(v, perm, user, wname, if_unused, &err) < 0)
            mgmt_decl_failed(r, &err);
        else if (!clustered)
            r->reply(r, 204, NULL);
        return;
    }
    uint8_t *buf;
    struct wire_table args;
    json_t *body = mgmt_declare_body(r, &buf, &args);
    if (body != NULL) {
        const char *type = json_string_value(json_object_get(body, "type"));
        if (type == NULL)
            type = "direct"; /* exchange.declare's default in RabbitMQ's record */
        struct wire_exchange_declare d = {
            .exchange = wname,
            .type = {(const uint8_t *)type, (uint32_t)strlen(type)},
            .durable = admin_json_bool(body, "durable"),
            .auto_delete = admin_json_bool(body, "auto_delete"),
            .internal = admin_json_bool(body, "internal"),
            .arguments = args,
        };
        bool created;
        if (clustered
                ? net_topo_exch_declare(r->env->net, v, r->user, &d, mgmt_on_topology, r, &err) < 0
                : net_exch_declare(v, perm, user, &d, &created, &err) < 0)
            mgmt_decl_failed(r, &err);
        else if (!clustered)
            r->reply(r, created ? 201 : 204, NULL);
    }
    free(buf);
    json_decref(body);
}

void
mgmt_api_exchanges(struct mgmt_req *r)
{
    if (r->method != MGMT_GET) {
        api_exchange_change(r);
        return;
    }
    struct vhost *only = NULL;
    if (r->n_segs > 1 && (only = api_vhost_seg(r, 1)) == NULL)
        return;
    if (r->n_segs >= 3) {
        const struct exch *x;
        const char *name = api_exch_lookup(only, r->segs[2], &x);
        if (r->n_segs == 3) {
            if (name == NULL)
                mgmt_not_found(r);
            else
                mgmt_reply_json(r, api_exch_json(only, x));
            return;
        }
        /* .../bindings/source or .../bindings/destination */
        bool source = strcmp(r->segs[4], "source") == 0;
        if (strcmp(r->segs[3], "bindings") != 0 ||
            (!source && strcmp(r->segs[4], "destination") != 0)) {
            mgmt_not_found(r);
            return;
        }
        /* A missing exchange has no bindings: [] (RabbitMQ). */
        struct api_bind_sel s = {.dest = name, .dest_type = "exchange"};
        if (source && name != NULL)
            api_walked(r, json_array(), r->segs[1], true, name, api_bind_sorts, false);
        else
            api_bindings_reply(r, &s, name != NULL ? only : NULL);
        return;
    }
    json_t *arr = json_array();
    for (struct vhost *v = r->env->vhosts->head; arr != NULL && v != NULL; v = v->next)
        /* the default exchanges, which are in no table */
        if ((only == NULL || v == only) && mgmt_vhost_visible(r, v->name) &&
            json_array_append_new(arr, api_exch_json(v, NULL)) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    api_walked(r, arr, r->n_segs > 1 ? r->segs[1] : NULL, false, NULL, NULL, true);
}

char *
mgmt_bind_location(const char *dest_seg, const char *props_key)
{
    char quoted[3 * 1024 + 1];
    api_quote(quoted, sizeof(quoted), (const uint8_t *)props_key, strlen(props_key), true);
    size_t n = strlen(dest_seg) + 1 + strlen(quoted) + 1;
    char *loc = malloc(n);
    if (loc != NULL)
        snprintf(loc, n, "%s/%s", dest_seg, quoted);
    return loc;
}

/* POST /api/bindings/{vhost}/e/{source}/q|e/{dest} with {"routing_key", "arguments"}:
 * queue.bind or exchange.bind (net_bind), 201 with the new binding's Location. A missing
 * source or destination is net_bind's 404, bad arguments its 400. */
static void
api_binding_create(struct mgmt_req *r, struct vhost *v, bool to_queue)
{
    const char *user;
    const struct auth_perm *perm = mgmt_user_perm(r, v, &user);
    uint8_t *buf;
    struct wire_table args;
    json_t *body = mgmt_declare_body(r, &buf, &args);
    if (body == NULL) {
        free(buf);
        return;
    }
    /* RabbitMQ takes a number as a key too (rabbitmqadmin sends strings). */
    json_t *rkj = json_object_get(body, "routing_key");
    char num[32];
    const char *rk = rkj == NULL ? "" : json_string_value(rkj);
    if (json_is_integer(rkj)) {
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(rkj));
        rk = num;
    }
    struct net_decl_err err;
    char key[1024];
    bool clustered = net_clustered(r->env->net);
    if (rk == NULL || strlen(rk) > 255 ||
        (json_is_string(rkj) && strlen(rk) != json_string_length(rkj))) {
        mgmt_bad_request(r, "routing_key must be a string of at most 255 bytes");
    } else {
        /* amq.default is "", which net_bind refuses as RabbitMQ does. */
        const char *src = strcmp(r->segs[3], "amq.default") == 0 ? "" : r->segs[3];
        const char *dst = !to_queue && strcmp(r->segs[5], "amq.default") == 0 ? "" : r->segs[5];
        struct wire_str wrk = {(const uint8_t *)rk, (uint32_t)strlen(rk)};
        struct wire_str wsrc = {(const uint8_t *)src, (uint32_t)strlen(src)};
        struct wire_str wdst = {(const uint8_t *)dst, (uint32_t)strlen(dst)};
        mgmt_props_key(key, sizeof(key), wrk, args);
        if ((r->location = mgmt_bind_location(r->segs[5], key)) == NULL)
            mgmt_nomem(r);
        else if (clustered ? net_topo_bind(r->env->net, v, r->user, false, to_queue, wdst, wsrc,
                                           wrk, args, mgmt_on_topology, r, &err) < 0
                           : net_bind(v, perm, r->user, NULL, false, to_queue, wdst, wsrc, wrk,
                                      args, &err) < 0)
            mgmt_on_topology(r, &err, false, 0); /* (forgets the Location) */
        else if (!clustered)
            r->reply(r, 201, NULL);
    }
    free(buf);
    json_decref(body);
}

/* DELETE /api/bindings/{vhost}/e/{source}/q|e/{dest}/{props}: the binding whose
 * properties_key the lists show as props, unbound (net_bind); 404 when there is none. */
static void
api_binding_delete(struct mgmt_req *r, struct vhost *v, bool to_queue)
{
    const struct exch *x;
    struct api_bind_sel s = {.keep_found = true, .arr = json_array()};
    struct wire_str dst = {(const uint8_t *)r->segs[5], (uint32_t)strlen(r->segs[5])};
    s.source = api_exch_lookup(v, r->segs[3], &x);
    s.dest = to_queue ? (vhost_queue_find(v, dst) != NULL ? r->segs[5] : NULL)
                      : api_exch_lookup(v, r->segs[5], &x);
    s.dest_type = to_queue ? "queue" : "exchange";
    s.props_key = r->segs[6];
    if (s.arr != NULL && s.source != NULL && s.dest != NULL)
        api_bindings_to(&s, v);
    if (s.arr == NULL || s.failed) {
        mgmt_nomem(r);
    } else if (s.found == NULL) {
        mgmt_not_found(r);
    } else {
        const char *user;
        const struct auth_perm *perm = mgmt_user_perm(r, v, &user);
        struct net_decl_err err;
        struct wire_str rk = {s.found, s.found_rk};
        struct wire_table args = {s.found + s.found_rk, s.found_len - s.found_rk};
        struct wire_str wsrc = {(const uint8_t *)s.source, (uint32_t)strlen(s.source)};
        struct wire_str wdst = {(const uint8_t *)s.dest, (uint32_t)strlen(s.dest)};
        bool clustered = net_clustered(r->env->net);
        if (clustered
                ? net_topo_bind(r->env->net, v, r->user, true, to_queue, wdst, wsrc, rk, args,
                                mgmt_on_topology, r, &err) < 0
                : net_bind(v, perm, r->user, NULL, true, to_queue, wdst, wsrc, rk, args, &err) < 0)
            mgmt_decl_failed(r, &err);
        else if (!clustered)
            r->reply(r, 204, NULL);
    }
    free(s.found);
    json_decref(s.arr);
}

void
mgmt_api_bindings(struct mgmt_req *r)
{
    struct api_bind_sel s = {0};
    struct vhost *only = NULL;
    bool queues = strcmp(r->segs[0], "queues") == 0;
    if (r->method == MGMT_POST && mgmt_vhost_find(r, r->segs[1]) == NULL) {
        mgmt_reply_error(r, 404, "not_found", "vhost_not_found");
        return;
    }
    if (r->n_segs > 1 && (only = api_vhost_seg(r, 1)) == NULL)
        return;
    if (r->method != MGMT_GET) {
        bool to_queue = strcmp(r->segs[4], "q") == 0;
        if (strcmp(r->segs[2], "e") != 0 || (!to_queue && strcmp(r->segs[4], "e") != 0))
            mgmt_not_found(r);
        else if (r->method == MGMT_POST)
            api_binding_create(r, only, to_queue);
        else
            api_binding_delete(r, only, to_queue);
        return;
    }
    /* Bindings of a missing queue or exchange: none, 200 [] (RabbitMQ). */
    bool none = false;
    if (queues) { /* /api/queues/{vhost}/{name}/bindings */
        none = vhost_queue_find(only, (struct wire_str){(const uint8_t *)r->segs[2],
                                                        (uint32_t)strlen(r->segs[2])}) == NULL;
        s.dest = r->segs[2];
        s.dest_type = "queue";
    } else if (r->n_segs >= 6) { /* /api/bindings/{vhost}/e/{source}/q|e/{dest}[/{key}] */
        bool to_queue = strcmp(r->segs[4], "q") == 0;
        if (strcmp(r->segs[2], "e") != 0 || (!to_queue && strcmp(r->segs[4], "e") != 0)) {
            mgmt_not_found(r);
            return;
        }
        const struct exch *x;
        struct wire_str dst = {(const uint8_t *)r->segs[5], (uint32_t)strlen(r->segs[5])};
        s.source = api_exch_lookup(only, r->segs[3], &x);
        s.dest = to_queue ? (vhost_queue_find(only, dst) != NULL ? r->segs[5] : NULL)
                          : api_exch_lookup(only, r->segs[5], &x);
        none = s.source == NULL || s.dest == NULL;
        s.dest_type = to_queue ? "queue" : "exchange";
        s.props_key = r->n_segs == 7 ? r->segs[6] : NULL;
    }
    if (s.dest == NULL && !none) { /* /api/bindings[/{vhost}]: every binding */
        api_walked(r, json_array(), r->n_segs > 1 ? r->segs[1] : NULL, true, NULL, api_bind_sorts,
                   false);
        return;
    }
    if (s.props_key == NULL) {
        api_bindings_reply(r, &s, none ? NULL : only);
        return;
    }
    s.arr = json_array();
    if (s.arr != NULL && !none)
        api_bindings_to(&s, only);
    if (s.arr == NULL || s.failed)
        mgmt_nomem(r);
    else if (json_array_size(s.arr) == 0)
        mgmt_not_found(r);
    else
        r->reply(r, 200, json_incref(json_array_get(s.arr, 0)));
    json_decref(s.arr);
}
