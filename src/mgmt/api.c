/* The administration HTTP API's shared replies and checks, its route table and tag rules
 * (rabbit_mgmt_dispatcher.erl, rabbit_mgmt_util.erl), and the small routes: whoami, overview,
 * aliveness test, hash_password, connections. No tag: no API; management: own things (whoami,
 * overview, the vhosts it may use, its own connections); monitoring: every vhost and
 * connection; policymaker: policies and parameters; administrator: everything. The other
 * routes are in api_*.c by object (mgmt_int.h lists them); changes go through warren/admin.h
 * or net.h and are answered once durable: 201 when a PUT created the object, 204 when it
 * updated it. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "mgmt_int.h"
#include "warren/admin.h"
#include "warren/auth.h"
#include "warren/conf.h"
#include "warren/net.h"
#include "warren/queue.h"
#include "warren/vhost.h"
#include "warren/wire.h"

/* What a route requires of the user's tags (rabbit_mgmt_util is_authorized_*). */
enum api_tag {
    API_MANAGEMENT = 0, /* any of management, policymaker, monitoring, administrator (who
                         * see more: mgmt_vhost_visible, their own connections or all) */
    API_ADMIN,          /* administrator */
    API_POLICYMAKER,    /* policymaker with access to the path's vhost, or administrator,
                         * to read and to change (rabbit_mgmt_util:is_authorized_policies) */
    API_OBJECTS,        /* any management user, to read and to change: the handler checks
                         * the user's permissions as the AMQP method would (net.h) */
    API_MONITOR,        /* monitoring or administrator (rabbit_mgmt_util:is_authorized_monitor) */
};

struct api_route {
    const char *pattern[MGMT_SEGS_MAX]; /* "*" matches any one segment */
    unsigned methods;                   /* enum mgmt_method bits */
    enum api_tag tag;                   /* for GET; changes need administrator */
    void (*handler)(struct mgmt_req *r);
};

void
mgmt_reply_error(struct mgmt_req *r, int status, const char *error, const char *reason)
{
    r->reply(r, status, json_pack("{s:s, s:s}", "error", error, "reason", reason));
}

void
mgmt_not_found(struct mgmt_req *r)
{
    mgmt_reply_error(r, 404, "Object Not Found", "Not Found");
}

void
mgmt_bad_request(struct mgmt_req *r, const char *reason)
{
    mgmt_reply_error(r, 400, "bad_request", reason);
}

void
mgmt_nomem(struct mgmt_req *r)
{
    mgmt_reply_error(r, 500, "internal_server_error", "out of memory");
}

/* Replies 200 with body, or 500 when building it failed (body NULL). */
void
mgmt_reply_json(struct mgmt_req *r, json_t *body)
{
    if (body == NULL)
        mgmt_nomem(r);
    else
        r->reply(r, 200, body);
}

static int
api_json_add(const char *buf, size_t size, void *out)
{
    return evbuffer_add(out, buf, size);
}

int
mgmt_json_write(const json_t *v, struct evbuffer *out)
{
    /* A list's entry, most often: written whole at once when it fits, as evbuffer_add for
     * each of the many pieces the callback gets costs more than the writing. */
    char small[4096];
    size_t n = json_dumpb(v, small, sizeof(small), JSON_COMPACT);
    if (n > 0 && n <= sizeof(small))
        return evbuffer_add(out, small, n);
    return json_dump_callback(v, api_json_add, out, JSON_COMPACT);
}

int
mgmt_stepped_error(struct evbuffer *out, int status, const char *error, const char *reason)
{
    evbuffer_drain(out, evbuffer_get_length(out));
    json_t *e = json_pack("{s:s, s:s}", "error", error, "reason", reason);
    if (e == NULL || mgmt_json_write(e, out) < 0) {
        evbuffer_drain(out, evbuffer_get_length(out));
        status = 500;
    }
    json_decref(e);
    return status;
}

bool
mgmt_is_admin(const struct mgmt_req *r)
{
    return r->user == NULL || auth_user_has_tag(r->user, "administrator");
}

bool
mgmt_is_monitor(const struct mgmt_req *r)
{
    return mgmt_is_admin(r) || auth_user_has_tag(r->user, "monitoring");
}

/* Whether the user may see vhost (RabbitMQ: monitoring sees all, others their own). */
bool
mgmt_vhost_visible(const struct mgmt_req *r, const char *vhost)
{
    return mgmt_is_monitor(r) || auth_perm_find(r->user, vhost) != NULL;
}

/* The vhost named name (a C string, such as a path segment), or NULL. */
struct vhost *
mgmt_vhost_find(const struct mgmt_req *r, const char *name)
{
    return vhost_find(r->env->vhosts, (struct wire_str){(const uint8_t *)name, strlen(name)});
}

/* The done callback of a change: the status chosen before the change, or its error as
 * mgmt_changed answers it (in a cluster, the apply's or the cluster's). */
void
mgmt_on_durable(void *arg, enum admin_result res, const char *err)
{
    struct mgmt_req *r = arg;
    if (res == ADMIN_OK)
        r->reply(r, r->ok_status, NULL);
    else
        mgmt_changed(r, res, err);
}

/* Answers a change's result: nothing now on ADMIN_OK (done will), else its error. */
void
mgmt_changed(struct mgmt_req *r, enum admin_result res, const char *err)
{
    switch (res) {
    case ADMIN_OK:
        return;
    case ADMIN_NOT_FOUND:
        if (r->method == MGMT_DELETE)
            mgmt_not_found(r);
        else
            mgmt_bad_request(r, err);
        return;
    case ADMIN_INVALID:
        mgmt_bad_request(r, err);
        return;
    case ADMIN_NOMEM:
        mgmt_nomem(r);
        return;
    case ADMIN_FAILED:
        mgmt_reply_error(r, 500, "internal_server_error", err);
        return;
    case ADMIN_UNAVAILABLE:
        mgmt_reply_error(r, 503, "service_unavailable", err);
        return;
    }
}

/* rabbit_mgmt_util:with_decode: whether body lacks any of the n keys, listed into out (cap
 * bytes, cut if they do not fit) as RabbitMQ lists them: [{key_missing,write},...]. */
bool
mgmt_keys_missing(json_t *body, const char *const *keys, size_t n, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        if (json_object_get(body, keys[i]) == NULL && len < cap)
            len += (size_t)snprintf(out + len, cap - len, "%s{key_missing,%s}", len ? "," : "[",
                                    keys[i]);
    if (len > 0 && len < cap)
        snprintf(out + len, cap - len, "]");
    return len > 0;
}

/* The body as a JSON object ({} when empty, as RabbitMQ reads it), with jansson's flags, or
 * NULL after replying 400. The caller owns the result. */
static json_t *
api_body(struct mgmt_req *r, size_t flags)
{
    if (r->body_len == 0)
        return json_object();
    /* RabbitMQ's reasons: "not_json" for a PUT's body, "failed_to_parse_json" for
     * definitions. */
    bool defs = strcmp(r->segs[0], "definitions") == 0;
    json_t *j = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES | flags, NULL);
    if (j == NULL || !json_is_object(j)) {
        json_decref(j);
        mgmt_bad_request(r, defs ? "failed_to_parse_json" : "not_json");
        return NULL;
    }
    return j;
}

json_t *
mgmt_body(struct mgmt_req *r)
{
    return api_body(r, 0);
}

json_t *
mgmt_body_nul(struct mgmt_req *r)
{
    return api_body(r, JSON_ALLOW_NUL);
}

/* ---- whoami, overview, health ---- */

static json_t *
api_user_tags(const struct mgmt_req *r)
{
    json_t *tags = json_array();
    if (r->user == NULL) {
        json_array_append_new(tags, json_string("administrator"));
        return tags;
    }
    for (size_t i = 0; tags != NULL && i < auth_user_tag_count(r->user); i++)
        json_array_append_new(tags, json_string(auth_user_tag(r->user, i)));
    return tags;
}

static void
api_whoami(struct mgmt_req *r)
{
    const char *name = r->user != NULL ? auth_user_name(r->user) : "";
    mgmt_reply_json(r, json_pack("{s:s, s:o?}", "name", name, "tags", api_user_tags(r)));
}

/* The node name, fixed when the node starts as a RabbitMQ node's is: conf's. */
const char *
mgmt_node_name(const struct mgmt_env *env)
{
    return env->conf->nodename;
}

struct api_totals {
    const struct mgmt_req *r;
    uint64_t conns, chans;
};

static void
api_count_conn(void *arg, const struct net_conn_info *ci)
{
    struct api_totals *t = arg;
    if (mgmt_is_monitor(t->r) ||
        (ci->user != NULL && strcmp(ci->user, auth_user_name(t->r->user)) == 0)) {
        t->conns++;
        t->chans += ci->channels;
    }
}

/* GET /api/overview, over loop turns: the queue totals are sums over every queue (100,000
 * take milliseconds), added up by a walk of the queue tables a few ms per turn. */
struct api_overview {
    struct mgmt_stepped base; /* first: what the transport holds */
    struct mgmt_req *r;       /* borrows: the transport frees it after the job */
    struct mgmt_walk walk;
    uint64_t consumers, ready, unacked;
    double ready_rate, unacked_rate; /* the counts' rates of change (stats.h's gauges) */
};

/* mgmt_walk_fn: one queue into the sums. */
static void
api_overview_queue(void *arg, const struct vhost *v, const struct hmap_entry *e)
{
    (void)v;
    struct api_overview *o = arg;
    const struct queue *q = hmap_container_of(e, const struct queue, by_name);
    o->consumers += q->n_consumers;
    o->ready += q->n_ready;
    o->unacked += q->n_unacked;
    o->ready_rate += stats_gauge_rate(&q->stats, 0);
    o->unacked_rate += stats_gauge_rate(&q->stats, 1);
}

/* The overview once the sums are made: a new object; NULL on ENOMEM. */
static json_t *
api_overview_json(const struct api_overview *o)
{
    const struct mgmt_req *r = o->r;
    const char *node = mgmt_node_name(r->env);
    char cluster[300];
    mgmt_cluster_name(r->env, cluster, sizeof(cluster));
    uint64_t exchanges = 0, queues = 0;
    /* The node's message_stats: its (visible) vhosts' added up, rates too. */
    struct stats_rates rates = {0};
    struct stats_obj all = {.rates = &rates};
    for (struct vhost *v = r->env->vhosts->head; v != NULL; v = v->next) {
        if (!mgmt_vhost_visible(r, v->name))
            continue;
        for (int f = 0; f < STATS_N; f++) {
            all.n[f] += v->stats.n[f];
            rates.rate[f] += stats_rate(&v->stats, f);
        }
        exchanges += v->exchanges.count;
        queues += v->queues.count;
    }
    struct api_totals t = {r, 0, 0};
    if (r->env->net != NULL)
        net_server_conn_foreach(r->env->net, api_count_conn, &t);
    json_t *listeners = mgmt_listeners(r);
    json_t *ms = mgmt_message_stats(&all, MGMT_STATS_CHANNEL);
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o?, s:{s:I, s:I, s:I, s:I, s:I}, "
        "s:{s:I, s:{s:f}, s:I, s:{s:f}, s:I, s:{s:f}}, s:o}",
        "management_version", API_RABBITMQ_VERSION, "rabbitmq_version", API_RABBITMQ_VERSION,
        "product_name", "Warren", "product_version", PACKAGE_VERSION, "cluster_name", cluster,
        "node", node, "erlang_version", "none", "listeners", listeners, "object_totals",
        "connections", (json_int_t)t.conns, "channels", (json_int_t)t.chans, "exchanges",
        (json_int_t)exchanges, "queues", (json_int_t)queues, "consumers", (json_int_t)o->consumers,
        "queue_totals", "messages", (json_int_t)(o->ready + o->unacked), "messages_details", "rate",
        o->ready_rate + o->unacked_rate, "messages_ready", (json_int_t)o->ready,
        "messages_ready_details", "rate", o->ready_rate, "messages_unacknowledged",
        (json_int_t)o->unacked, "messages_unacknowledged_details", "rate", o->unacked_rate,
        "message_stats", ms != NULL ? ms : json_object());
}

/* struct mgmt_stepped's step. */
static int
api_overview_step(struct mgmt_stepped *base, struct evbuffer *out, unsigned budget_us)
{
    struct api_overview *o = (struct api_overview *)base;
    int rc = mgmt_walk_step(&o->walk, o->r->env->vhosts, mgmt_now_us() + budget_us,
                            api_overview_queue, o);
    if (rc == 0)
        return 0;
    json_t *body = rc > 0 ? api_overview_json(o) : NULL;
    rc = body != NULL ? mgmt_json_write(body, out) : -1;
    json_decref(body);
    return rc < 0 ? mgmt_stepped_error(out, 500, "internal_server_error", "out of memory") : 200;
}

static void
api_overview_free(struct mgmt_stepped *base)
{
    struct api_overview *o = (struct api_overview *)base;
    mgmt_walk_clear(&o->walk);
    free(o);
}

static void
api_overview(struct mgmt_req *r)
{
    struct api_overview *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        mgmt_nomem(r);
        return;
    }
    o->base.step = api_overview_step;
    o->base.free = api_overview_free;
    o->r = r;
    o->walk.table = MGMT_WALK_QUEUES;
    o->walk.seen_by = r;
    r->stepped(r, &o->base);
}

static void
api_aliveness(struct mgmt_req *r)
{
    if (mgmt_vhost_find(r, r->segs[1]) == NULL)
        mgmt_not_found(r);
    else if (!mgmt_vhost_visible(r, r->segs[1]))
        mgmt_reply_error(r, 401, "not_authorised", "Not authorised to access vhost");
    else
        r->reply(r, 200, json_pack("{s:s}", "status", "ok"));
}

/* GET /api/auth/hash_password/{password}: {"ok": base64(salt || SHA-256(salt || password))},
 * the hash a definitions file or PUT /api/users takes as password_hash. */
static void
api_hash_password(struct mgmt_req *r)
{
    const char *pw = r->segs[2];
    unsigned char buf[AUTH_SALT_LEN + EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx != NULL && RAND_bytes(buf, AUTH_SALT_LEN) == 1 &&
              EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
              EVP_DigestUpdate(ctx, buf, AUTH_SALT_LEN) == 1 &&
              EVP_DigestUpdate(ctx, pw, strlen(pw)) == 1 &&
              EVP_DigestFinal_ex(ctx, buf + AUTH_SALT_LEN, &dlen) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        mgmt_reply_error(r, 500, "internal_server_error", "hashing failed");
        return;
    }
    char b64[AUTH_HASH_B64_MAX];
    EVP_EncodeBlock((unsigned char *)b64, buf, (int)(AUTH_SALT_LEN + dlen));
    mgmt_reply_json(r, json_pack("{s:s}", "ok", b64));
}

/* ---- field tables ---- */

/* A client properties table as JSON (RabbitMQ's amqp_table to JSON): integers, strings,
 * booleans, nested tables; bytes as strings. */
json_t *
mgmt_table_json(const uint8_t *p, uint32_t len, int depth)
{
    json_t *o = json_object();
    struct wire_table_iter it;
    struct wire_str k;
    struct wire_value v;
    if (o == NULL || depth > WIRE_TABLE_MAX_DEPTH)
        return o;
    wire_table_iter_init(&it, (struct wire_table){p, len});
    while (wire_table_next(&it, &k, &v)) {
        char key[256];
        snprintf(key, sizeof(key), "%.*s", WIRE_STR_ARG(k));
        json_t *j = NULL;
        int64_t i;
        switch (v.type) {
        case WIRE_FIELD_BOOL:
            j = json_boolean(v.v.b);
            break;
        case WIRE_FIELD_LONGSTR:
        case WIRE_FIELD_BYTES:
            j = json_stringn_nocheck((const char *)v.v.str.ptr, v.v.str.len);
            if (j != NULL && !json_is_string(j))
                j = NULL;
            break;
        case WIRE_FIELD_TABLE:
            j = mgmt_table_json(v.v.table.ptr, v.v.table.len, depth + 1);
            break;
        case WIRE_FIELD_FLOAT:
            j = json_real(v.v.f);
            break;
        case WIRE_FIELD_DOUBLE:
            j = json_real(v.v.d);
            break;
        default:
            if (wire_value_to_i64(&v, &i))
                j = json_integer(i);
            break;
        }
        if (j != NULL)
            json_object_set_new(o, key, j);
    }
    return o;
}

/* ---- connections ---- */

struct api_conns {
    const struct mgmt_req *r;
    const char *name;  /* only this one, or NULL */
    const char *vhost; /* only this vhost's, or NULL */
    json_t *arr;
};

static void
api_conn_entry(void *arg, const struct net_conn_info *ci)
{
    struct api_conns *l = arg;
    const struct mgmt_req *r = l->r;
    if (l->name != NULL && strcmp(l->name, ci->name) != 0)
        return;
    if (l->vhost != NULL && (ci->vhost == NULL || strcmp(l->vhost, ci->vhost) != 0))
        return;
    if (!mgmt_is_monitor(r) && (ci->user == NULL || strcmp(ci->user, auth_user_name(r->user)) != 0))
        return;
    const char *node = mgmt_node_name(r->env);
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:I, s:s, s:s, s:o?, s:I, s:I, s:I, s:I, s:I, "
        "s:s, s:s, s:b}",
        "name", ci->name, "node", node, "user", ci->user != NULL ? ci->user : "", "vhost",
        ci->vhost != NULL ? ci->vhost : "", "peer_host", ci->peer_host, "peer_port",
        (json_int_t)ci->peer_port, "host", ci->host, "port", (json_int_t)ci->port, "state",
        ci->state, "protocol", "AMQP 0-9-1", "client_properties",
        mgmt_table_json(ci->client_properties, ci->client_properties_len, 0), "channels",
        (json_int_t)ci->channels, "frame_max", (json_int_t)ci->frame_max, "channel_max",
        (json_int_t)ci->channel_max, "timeout", (json_int_t)ci->heartbeat, "connected_at",
        (json_int_t)ci->connected_at, "type", "network", "auth_mechanism", "PLAIN", "ssl", 0);
    static const char *const io_names[NET_IO_N] = {"recv_oct", "recv_cnt", "send_oct", "send_cnt"};
    for (int i = 0; o != NULL && i < NET_IO_N; i++) {
        /* RabbitMQ shows the rates of the byte counts only */
        bool rate = i == NET_IO_RECV_OCT || i == NET_IO_SEND_OCT;
        char key[32];
        snprintf(key, sizeof(key), "%s_details", io_names[i]);
        if (json_object_set_new(o, io_names[i], json_integer((json_int_t)ci->io[i])) < 0 ||
            (rate && json_object_set_new(o, key, json_pack("{s:f}", "rate", ci->io_rate[i])) < 0)) {
            json_decref(o);
            o = NULL;
        }
    }
    json_t *cname = json_object_get(json_object_get(o, "client_properties"), "connection_name");
    if (json_is_string(cname))
        json_object_set(o, "user_provided_name", cname);
    if (l->arr != NULL && o != NULL)
        json_array_append_new(l->arr, o);
}

/* GET /api/connections, /api/vhosts/{vhost}/connections (404 for a vhost that is missing
 * or not the user's); GET and DELETE /api/connections/{name}. */
static void
api_connections(struct mgmt_req *r)
{
    bool of_vhost = strcmp(r->segs[0], "vhosts") == 0;
    if (of_vhost &&
        (mgmt_vhost_find(r, r->segs[1]) == NULL || !mgmt_vhost_visible(r, r->segs[1]))) {
        mgmt_not_found(r);
        return;
    }
    struct api_conns l = {r, r->n_segs > 1 && !of_vhost ? r->segs[1] : NULL,
                          of_vhost ? r->segs[1] : NULL, json_array()};
    if (r->env->net != NULL && l.arr != NULL)
        net_server_conn_foreach(r->env->net, api_conn_entry, &l);
    if (l.name == NULL) {
        mgmt_list_reply(r, l.arr, NULL, true);
        return;
    }
    if (json_array_size(l.arr) == 0) {
        json_decref(l.arr);
        mgmt_not_found(r);
        return;
    }
    if (r->method == MGMT_GET) {
        r->reply(r, 200, json_incref(json_array_get(l.arr, 0)));
    } else {
        /* RabbitMQ: the owner, or an administrator (monitoring only reads). */
        const char *owner = json_string_value(json_object_get(json_array_get(l.arr, 0), "user"));
        if (!mgmt_is_admin(r) && strcmp(owner, auth_user_name(r->user)) != 0) {
            mgmt_reply_error(r, 401, "not_authorised", "Not administrator user");
        } else {
            char text[300];
            if (r->reason != NULL)
                snprintf(text, sizeof(text), "%s", r->reason);
            else
                snprintf(text, sizeof(text), "Closed via management plugin");
            net_server_close_conn(r->env->net, l.name, text);
            r->reply(r, 204, NULL);
        }
    }
    json_decref(l.arr);
}

/* GET /api/extensions: the scripts RabbitMQ's web UI loads from its plugins. Warren's
 * dashboard has none to load. */
static void
api_extensions(struct mgmt_req *r)
{
    mgmt_reply_json(r, json_array());
}

/* POST /api/rebalance/queues: the replicated queues' leaders spread over the running nodes,
 * in the background (RabbitMQ's rebalance of quorum queues, answered 204 at once). */
static void
api_rebalance_queues(struct mgmt_req *r)
{
    if (r->env->net != NULL)
        net_rebalance_queues(r->env->net);
    r->reply(r, 204, NULL);
}

/* ---- the route table ---- */

#define GET MGMT_GET
#define CHANGE (MGMT_PUT | MGMT_DELETE)

static const struct api_route api_routes[] = {
    {{"whoami"}, GET, API_MANAGEMENT, api_whoami},
    {{"overview"}, GET, API_MANAGEMENT, api_overview},
    {{"health", "checks", "*"}, GET, API_MANAGEMENT, mgmt_api_health},
    {{"health", "checks", "*", "*"}, GET, API_MANAGEMENT, mgmt_api_health},
    {{"healthchecks", "node"}, GET, API_MANAGEMENT, mgmt_api_health},
    {{"healthchecks", "node", "*"}, GET, API_MANAGEMENT, mgmt_api_health},
    {{"nodes"}, GET, API_MONITOR, mgmt_api_nodes},
    /* DELETE: administrator only, checked by the handler */
    {{"nodes", "*"}, GET | MGMT_DELETE, API_MONITOR, mgmt_api_nodes},
    {{"aliveness-test", "*"}, GET, API_MANAGEMENT, api_aliveness},
    {{"rebalance", "queues"}, MGMT_POST, API_ADMIN, api_rebalance_queues},
    {{"auth", "hash_password", "*"}, GET, API_MANAGEMENT, api_hash_password},
    {{"users"}, GET, API_ADMIN, mgmt_api_users_list},
    {{"users", "*"}, GET | CHANGE, API_ADMIN, mgmt_api_user},
    {{"users", "*", "permissions"}, GET, API_ADMIN, mgmt_api_user_perms},
    {{"users", "*", "topic-permissions"}, GET, API_ADMIN, mgmt_api_user_perms},
    {{"user-limits"}, GET, API_ADMIN, mgmt_api_user_limits},
    {{"user-limits", "*"}, GET, API_ADMIN, mgmt_api_user_limits},
    {{"user-limits", "*", "*"}, CHANGE, API_ADMIN, mgmt_api_user_limits},
    {{"vhosts"}, GET, API_MANAGEMENT, mgmt_api_vhosts_list},
    {{"vhosts", "*"}, GET | CHANGE, API_MANAGEMENT, mgmt_api_vhost_one},
    {{"vhosts", "*", "permissions"}, GET, API_ADMIN, mgmt_api_vhost_perms},
    {{"vhosts", "*", "topic-permissions"}, GET, API_ADMIN, mgmt_api_vhost_perms},
    {{"vhost-limits"}, GET, API_MANAGEMENT, mgmt_api_vhost_limits},
    {{"vhost-limits", "*"}, GET, API_MANAGEMENT, mgmt_api_vhost_limits},
    {{"vhost-limits", "*", "*"}, CHANGE, API_ADMIN, mgmt_api_vhost_limits},
    {{"permissions"}, GET, API_ADMIN, mgmt_api_perms_list},
    {{"permissions", "*", "*"}, GET | CHANGE, API_ADMIN, mgmt_api_perm},
    {{"topic-permissions"}, GET, API_ADMIN, mgmt_api_perms_list},
    {{"topic-permissions", "*", "*"}, GET | CHANGE, API_ADMIN, mgmt_api_perm},
    {{"definitions"}, GET | MGMT_POST, API_ADMIN, mgmt_api_definitions},
    {{"definitions", "*"}, GET | MGMT_POST, API_ADMIN, mgmt_api_definitions},
    {{"queues"}, GET, API_MANAGEMENT, mgmt_api_queues},
    {{"queues", "*"}, GET, API_MANAGEMENT, mgmt_api_queues},
    {{"queues", "*", "*"}, GET | CHANGE, API_OBJECTS, mgmt_api_queues},
    {{"queues", "*", "*", "contents"}, MGMT_DELETE, API_OBJECTS, mgmt_api_queues},
    {{"queues", "*", "*", "bindings"}, GET, API_MANAGEMENT, mgmt_api_bindings},
    {{"queues", "*", "*", "get"}, MGMT_POST, API_OBJECTS, mgmt_api_queue_get},
    {{"queues", "quorum", "replicas", "on", "*", "grow"},
     MGMT_POST,
     API_ADMIN,
     mgmt_api_replicas_sweep},
    {{"queues", "quorum", "replicas", "on", "*", "shrink"},
     MGMT_DELETE,
     API_ADMIN,
     mgmt_api_replicas_sweep},
    {{"queues", "quorum", "*", "*", "replicas", "add"},
     MGMT_POST,
     API_ADMIN,
     mgmt_api_replicas_one},
    {{"queues", "quorum", "*", "*", "replicas", "delete"},
     MGMT_DELETE,
     API_ADMIN,
     mgmt_api_replicas_one},
    {{"exchanges"}, GET, API_MANAGEMENT, mgmt_api_exchanges},
    {{"exchanges", "*"}, GET, API_MANAGEMENT, mgmt_api_exchanges},
    {{"exchanges", "*", "*"}, GET | CHANGE, API_OBJECTS, mgmt_api_exchanges},
    {{"exchanges", "*", "*", "bindings", "*"}, GET, API_MANAGEMENT, mgmt_api_exchanges},
    {{"exchanges", "*", "*", "publish"}, MGMT_POST, API_OBJECTS, mgmt_api_exchange_publish},
    {{"bindings"}, GET, API_MANAGEMENT, mgmt_api_bindings},
    {{"bindings", "*"}, GET, API_MANAGEMENT, mgmt_api_bindings},
    {{"bindings", "*", "*", "*", "*", "*"}, GET | MGMT_POST, API_OBJECTS, mgmt_api_bindings},
    {{"bindings", "*", "*", "*", "*", "*", "*"}, GET | MGMT_DELETE, API_OBJECTS, mgmt_api_bindings},
    {{"policies"}, GET, API_MANAGEMENT, mgmt_api_policies},
    {{"policies", "*"}, GET, API_MANAGEMENT, mgmt_api_policies},
    {{"policies", "*", "*"}, GET | CHANGE, API_POLICYMAKER, mgmt_api_policies},
    {{"operator-policies"}, GET, API_MANAGEMENT, mgmt_api_policies},
    {{"operator-policies", "*"}, GET, API_MANAGEMENT, mgmt_api_policies},
    {{"operator-policies", "*", "*"}, GET | CHANGE, API_ADMIN, mgmt_api_policies},
    {{"connections"}, GET, API_MANAGEMENT, api_connections},
    {{"connections", "*"}, GET | MGMT_DELETE, API_MANAGEMENT, api_connections},
    {{"connections", "*", "channels"}, GET, API_MANAGEMENT, mgmt_api_channels},
    {{"vhosts", "*", "connections"}, GET, API_MANAGEMENT, api_connections},
    {{"extensions"}, GET, API_MANAGEMENT, api_extensions},
    {{"parameters"}, GET, API_POLICYMAKER, mgmt_api_parameters},
    {{"parameters", "*"}, GET, API_POLICYMAKER, mgmt_api_parameters},
    {{"parameters", "*", "*"}, GET, API_POLICYMAKER, mgmt_api_parameters},
    {{"parameters", "*", "*", "*"}, GET | CHANGE, API_POLICYMAKER, mgmt_api_parameters},
    {{"global-parameters"}, GET, API_POLICYMAKER, mgmt_api_global_parameters},
    {{"global-parameters", "*"}, GET | CHANGE, API_POLICYMAKER, mgmt_api_global_parameters},
    {{"cluster-name"}, GET | MGMT_PUT, API_MANAGEMENT, mgmt_api_cluster_name},
    {{"channels"}, GET, API_MANAGEMENT, mgmt_api_channels},
    {{"vhosts", "*", "channels"}, GET, API_MANAGEMENT, mgmt_api_channels},
    {{"consumers"}, GET, API_MANAGEMENT, mgmt_api_consumers},
    {{"consumers", "*"}, GET, API_MANAGEMENT, mgmt_api_consumers},
    {{"warren", "log-level"}, GET | MGMT_PUT, API_ADMIN, mgmt_api_log_level},
    {{"warren", "rotate-logs"}, MGMT_POST, API_ADMIN, mgmt_api_rotate_logs},
    {{"warren", "environment"}, GET, API_ADMIN, mgmt_api_environment},
};

#undef GET
#undef CHANGE

/* The vhost a policymaker route's path names (rabbit_mgmt_util:vhost): the second segment,
 * the third under /api/parameters/{component}; NULL when it names none (lists of every
 * vhost's, global parameters). */
static const char *
api_path_vhost(const struct mgmt_req *r)
{
    if (strcmp(r->segs[0], "global-parameters") == 0)
        return NULL;
    size_t at = strcmp(r->segs[0], "parameters") == 0 ? 2 : 1;
    return r->n_segs > at ? r->segs[at] : NULL;
}

static bool
api_route_matches(const struct api_route *rt, const struct mgmt_req *r)
{
    size_t n = 0;
    while (n < MGMT_SEGS_MAX && rt->pattern[n] != NULL)
        n++;
    if (n != r->n_segs)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(rt->pattern[i], "*") != 0 && strcmp(rt->pattern[i], r->segs[i]) != 0)
            return false;
    return true;
}

void
mgmt_api_dispatch(struct mgmt_req *r)
{
    const struct api_route *rt = NULL;
    for (size_t i = 0; i < sizeof(api_routes) / sizeof(api_routes[0]); i++)
        if (api_route_matches(&api_routes[i], r)) {
            rt = &api_routes[i];
            break;
        }
    if (rt == NULL) {
        mgmt_not_found(r);
        return;
    }
    if (!(rt->methods & r->method)) {
        r->allow = rt->methods;
        r->reply(r, 405, NULL);
        return;
    }
    /* Changes need administrator, except closing one's own connection. */
    enum api_tag need = rt->tag;
    if (r->method != MGMT_GET && rt->handler != api_connections && need == API_MANAGEMENT)
        need = API_ADMIN;
    if (need == API_ADMIN && !mgmt_is_admin(r)) {
        mgmt_reply_error(r, 401, "not_authorised", "Not administrator user");
        return;
    }
    if (need == API_MONITOR && !mgmt_is_monitor(r)) {
        mgmt_reply_error(r, 401, "not_authorised", "Not monitor user");
        return;
    }
    if (need == API_POLICYMAKER && !mgmt_is_admin(r) &&
        !(auth_user_has_tag(r->user, "policymaker") &&
          (api_path_vhost(r) == NULL || auth_perm_find(r->user, api_path_vhost(r))))) {
        mgmt_reply_error(r, 401, "not_authorised", "User not authorised to access object");
        return;
    }
    rt->handler(r);
}

void
mgmt_req_clear(struct mgmt_req *r)
{
    for (size_t i = 0; i < r->n_segs; i++)
        free(r->segs[i]);
    r->n_segs = 0;
    free(r->location);
    r->location = NULL;
    json_decref(r->query);
    r->query = NULL;
    if (r->user != NULL)
        auth_user_unref(r->user);
    r->user = NULL;
}
