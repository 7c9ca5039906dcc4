/* Between the HTTP transport (http.c) and the routes (api.c): one request, decoded, and the
 * way its answer goes back. api.c never sees evhttp, so that the fuzzer drives the routes
 * with any body and no socket. */
#ifndef WARREN_MGMT_INT_H
#define WARREN_MGMT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "warren/admin.h"
#include "warren/mgmt.h"
#include "warren/stats.h"

#define MGMT_SEGS_MAX 8 /* path segments after /api; longer paths are 404 */

#define API_RABBITMQ_VERSION "3.10.8" /* what tools that check a version are told */

enum mgmt_method {
    MGMT_GET = 1,
    MGMT_PUT = 2,
    MGMT_POST = 4,
    MGMT_DELETE = 8,
};

struct evbuffer;
/* A reply written over several loop turns, so that a long one (a Prometheus scrape, a list of
 * 100,000 queues) never holds the loop: the transport calls step on each turn, sharing a
 * budget of time among the replies under way, until it returns a status, then sends that
 * status with out as the body, then calls free. */
struct mgmt_stepped {
    /* Adds the next part of the body to out, for about budget_us. Returns 0 while there is
     * more, else the reply's status (out then holds the whole body). */
    int (*step)(struct mgmt_stepped *s, struct evbuffer *out, unsigned budget_us);
    void (*free)(struct mgmt_stepped *s);
};
/* Writes {"error": error, "reason": reason} into out, emptied first, for a step to answer;
 * returns status, or 500 on ENOMEM (out then empty). */
int mgmt_stepped_error(struct evbuffer *out, int status, const char *error, const char *reason);

struct mgmt_req;
/* Sends status with body (taken; NULL: no body), then frees r. Called exactly once per
 * request, possibly from a later loop turn (a change answered once durable). */
typedef void (*mgmt_reply_fn)(struct mgmt_req *r, int status, json_t *body);

struct mgmt_req {
    const struct mgmt_env *env;
    enum mgmt_method method;
    char *segs[MGMT_SEGS_MAX]; /* owns each: decoded path segments after "/api" */
    size_t n_segs;
    const char *body; /* borrows, NUL-terminated (a NUL inside is refused as bad JSON) */
    size_t body_len;
    const char *reason;     /* borrows: the X-Reason header, or NULL */
    json_t *query;          /* owns: the query string's parameters, name -> string; or NULL */
    struct auth_user *user; /* owns a reference; NULL: the Unix socket's administrator */
    int ok_status;          /* what a change answers once durable: 201 or 204 */
    unsigned allow;         /* a 405's Allow header: enum mgmt_method bits */
    char *location;         /* owns: the reply's Location header (a created binding), or NULL */
    mgmt_reply_fn reply;
    /* Answers r with s (taken; its body JSON) instead of reply: the transport runs the steps,
     * sends the body, then frees s and r. s may keep r until it is freed. */
    void (*stepped)(struct mgmt_req *r, struct mgmt_stepped *s);
    void *transport; /* the transport's, for reply */
};

/* Answers r: finds its route, checks the user's tags, runs the handler. r->reply is called
 * once, now or once a change is durable. */
void mgmt_api_dispatch(struct mgmt_req *r);

/* Replies {"error": error, "reason": reason} with status. */
void mgmt_reply_error(struct mgmt_req *r, int status, const char *error, const char *reason);

/* The replies and checks the routes share (api.c), for the routes in other files
 * (api_policies.c). */
void mgmt_not_found(struct mgmt_req *r);                       /* 404 Object Not Found */
void mgmt_bad_request(struct mgmt_req *r, const char *reason); /* 400 bad_request */
void mgmt_nomem(struct mgmt_req *r);                           /* 500 out of memory */
/* Replies 200 with body, or 500 when building it failed (body NULL). */
void mgmt_reply_json(struct mgmt_req *r, json_t *body);
/* Appends v to out as compact JSON text, as replies are written. 0, or -1 on ENOMEM. */
int mgmt_json_write(const json_t *v, struct evbuffer *out);
bool mgmt_is_admin(const struct mgmt_req *r);
/* Whether the user sees every vhost and connection: administrator or monitoring. */
bool mgmt_is_monitor(const struct mgmt_req *r);
/* Whether the user may see vhost (RabbitMQ: monitoring sees all, others their own). */
bool mgmt_vhost_visible(const struct mgmt_req *r, const char *vhost);
/* The done callback of a change (an admin.h function's): replies r->ok_status, or the
 * error as mgmt_changed does (500 for the store's, 503 when the cluster could not take it). */
void mgmt_on_durable(void *arg, enum admin_result res, const char *err);
/* Answers a change's result: nothing now on ADMIN_OK (done will), else its error. */
void mgmt_changed(struct mgmt_req *r, enum admin_result res, const char *err);
/* The request body as a JSON object ({} when empty), or NULL after replying 400. */
json_t *mgmt_body(struct mgmt_req *r);
/* The same, its strings allowed to hold "\u0000" (a payload): a reader of one of them uses
 * its json_string_length. */
json_t *mgmt_body_nul(struct mgmt_req *r);
/* rabbit_mgmt_util:with_decode: whether body lacks any of the n keys, listed into out as
 * RabbitMQ lists them: [{key_missing,write},{key_missing,read}]. */
bool mgmt_keys_missing(json_t *body, const char *const *keys, size_t n, char *out, size_t cap);
/* The vhost named name (a C string), or NULL. */
struct vhost *mgmt_vhost_find(const struct mgmt_req *r, const char *name);

/* A field table as JSON (RabbitMQ's amqp_table to JSON): integers, strings, booleans,
 * nested tables; bytes as strings. A new object; NULL on ENOMEM. */
json_t *mgmt_table_json(const uint8_t *p, uint32_t len, int depth);
/* This node's name, as configured (conf's nodename: --nodename, $WARREN_NODENAME, else
 * warren@<short host name>, RabbitMQ's default form). Borrows env's conf. */
const char *mgmt_node_name(const struct mgmt_env *env);

/* A list route's reply as RabbitMQ's (api_list_json.c): sorted by r's sort (dotted keys), then
 * sorts (NULL-terminated; NULL: vhost, name), reversed with sort_reverse, filtered by name
 * and paged when page is given and the route is pageable (RabbitMQ pages queues, exchanges,
 * vhosts, connections, channels; it ignores page on the others), with the columns asked for;
 * 400 with RabbitMQ's texts for bad paging parameters. Takes items (a JSON array; NULL: out
 * of memory, answered 500). Answered over several loop turns when long (r->stepped). */
void mgmt_list_reply(struct mgmt_req *r, json_t *items, const char *const *sorts, bool pageable);
/* Items made over several loop turns (a walk of every binding), for mgmt_list_reply_produced. */
struct mgmt_list_producer {
    /* Appends the next items to arr until the clock (mgmt_now_us) passes until: 1 once every
     * item is in, 0 when there are more, -1 on ENOMEM. */
    int (*step)(struct mgmt_list_producer *p, json_t *arr, uint64_t until);
    void (*free)(struct mgmt_list_producer *p);
};
/* mgmt_list_reply over items (taken) and what p (taken; NULL: none) adds to them. */
void mgmt_list_reply_produced(struct mgmt_req *r, json_t *items, struct mgmt_list_producer *p,
                              const char *const *sorts, bool pageable);

/* A walk over one table (queues or exchanges) of every vhost, or of one, resumed on each loop
 * turn (walk.c): it holds names and a cursor, never a pointer to what may be deleted between
 * turns. Set table, only and seen_by, the rest zero, before the first step. */
enum mgmt_walk_table {
    MGMT_WALK_QUEUES,    /* v->queues: struct queue by_name */
    MGMT_WALK_EXCHANGES, /* v->exchanges: struct exch by_name */
};
struct mgmt_walk {
    enum mgmt_walk_table table;
    const char *only; /* borrows: walk this vhost alone; NULL: every vhost, in name order */
    const struct mgmt_req *seen_by; /* borrows: only the vhosts its user may see; NULL: all */
    char *vhost;      /* owns: the vhost being walked; NULL: the walk has not started */
    size_t cursor;    /* hmap_scan's, in its table */
    size_t n_buckets; /* its table's size when the walk stopped */
};
struct hmap_entry;
struct vhost;
struct vhost_registry;
typedef void (*mgmt_walk_fn)(void *arg, const struct vhost *v, const struct hmap_entry *e);
/* Hands fn (which must not create or delete anything) the entries w has not met yet, until
 * all are met (returns 1; w is cleared for another walk) or the clock (mgmt_now_us) passes
 * until (0: the next call goes on from there); -1 on ENOMEM (w cleared). */
int mgmt_walk_step(struct mgmt_walk *w, const struct vhost_registry *reg, uint64_t until,
                   mgmt_walk_fn fn, void *arg);
/* Frees what w holds and rewinds it; its table and only stay. */
void mgmt_walk_clear(struct mgmt_walk *w);
/* The monotonic clock in microseconds. */
uint64_t mgmt_now_us(void);

/* A list of objects whose JSON costs (queues), in a table of each vhost: what
 * mgmt_list_reply_objs needs of them. */
struct mgmt_list_src {
    enum mgmt_walk_table table;
    /* The object of an entry of the table, and the one named name in v (NULL: none). */
    const void *(*of_entry)(const struct hmap_entry *e);
    const void *(*find)(const struct vhost *v, const char *name);
    const char *(*name)(const void *obj);
    json_t *(*entry)(struct mgmt_req *r, const void *obj); /* new; NULL on ENOMEM */
    /* The numeric fields of entry that a list may be sorted by without building it: the
     * field's index for a sort key, or -1; and an object's value of that field. */
    int (*number_field)(const char *key);
    double (*number)(const void *obj, int field);
};
/* mgmt_list_reply over src's objects in the vhost named only (NULL: every vhost r may see),
 * answered over several loop turns (r->stepped): the objects are walked for their names (and
 * the value sorted by), the names sorted, then the page's objects looked up again by name and
 * written, in steps of a few milliseconds, so that 100,000 queues never hold the loop. An
 * object deleted in between is left out; the reply mixes moments, as RabbitMQ's does. */
void mgmt_list_reply_objs(struct mgmt_req *r, const struct mgmt_list_src *src, const char *only);

/* GET /api/queues[/{vhost}[/{name}]], PUT /api/queues/{vhost}/{name}, DELETE
 * /api/queues/{vhost}/{name}[/contents] (api_queues.c). */
void mgmt_api_queues(struct mgmt_req *r);

struct net_decl_err;
struct auth_perm;
struct vhost;
/* Answers a failed AMQP method (net.h) as RabbitMQ's direct_request does: access refused 401
 * "Access refused.", not found 404, anything else 400 with the AMQP text; in a cluster, a
 * change it did not make (NET_DECL_UNAVAILABLE) 503 service_unavailable, as admin changes. */
void mgmt_decl_failed(struct mgmt_req *r, const struct net_decl_err *err);
/* net.h's net_topo_done_fn for a change of r (arg) in a cluster: 201 for a PUT that created
 * its object or a POST, 204 for other PUTs and DELETEs, else mgmt_decl_failed's answer (r's
 * Location dropped). r stays valid until then: the transport frees it with its reply. */
void mgmt_on_topology(void *arg, const struct net_decl_err *err, bool created, uint64_t count);
/* The permissions r's user has in v, and its name in *user (the Unix socket's administrator:
 * NULL, allowed everything). */
const struct auth_perm *mgmt_user_perm(const struct mgmt_req *r, const struct vhost *v,
                                       const char **user);
/* A declaring PUT's body (mgmt_body) with its "arguments" as an AMQP table in *args, encoded
 * into *buf (malloc'd, ADMIN_ARGS_MAX bytes). The caller frees *buf and decrefs the body,
 * which is NULL once an error (bad JSON, bad arguments, ENOMEM) was answered. */
json_t *mgmt_declare_body(struct mgmt_req *r, uint8_t **buf, struct wire_table *args);
/* Whether the query parameter key is "true" (if-unused, if-empty). */
bool mgmt_query_true(const struct mgmt_req *r, const char *key);

/* GET, PUT, DELETE /api/exchanges[/{vhost}[/{name}[/bindings/source|destination]]]
 * (api_exchanges.c). */
void mgmt_api_exchanges(struct mgmt_req *r);
/* A binding's properties_key as rabbit_mgmt_format:pack_binding_props writes it, into out
 * (cap bytes): "~" for an empty key without arguments, else the key quoted as a URL query value
 * ("~" as %7E), then "~" and a hash of the arguments if there are some (Warren's hash: FNV-1a
 * of the encoded table, base64url; RabbitMQ's is erlang:phash2 of its term). */
void mgmt_props_key(char *out, size_t cap, struct wire_str rk, struct wire_table args);
/* The Location of a created binding as RabbitMQ sends it: its path relative to the POST's
 * (rabbit_web_dispatch_util:relativise), i.e. the destination segment as the request spelt
 * it, then the properties key quoted once more as a path segment ("~" kept). A new string;
 * NULL on ENOMEM. */
char *mgmt_bind_location(const char *dest_seg, const char *props_key);
/* GET /api/bindings[/{vhost}[/e/{source}/q|e/{dest}[/{props}]]] and
 * /api/queues/{vhost}/{name}/bindings (api_exchanges.c). */
void mgmt_api_bindings(struct mgmt_req *r);

/* The policy routes (api_policies.c): /api/policies[/{vhost}[/{name}]] and the same under
 * /api/operator-policies. */
void mgmt_api_policies(struct mgmt_req *r);

/* The runtime parameter routes (api_params.c): /api/parameters[/{component}[/{vhost}[/{name}]]],
 * /api/global-parameters[/{name}], /api/cluster-name. */
void mgmt_api_parameters(struct mgmt_req *r);
void mgmt_api_global_parameters(struct mgmt_req *r);
void mgmt_api_cluster_name(struct mgmt_req *r);
/* The cluster's name as /api/overview and /api/cluster-name show it: the global parameter
 * cluster_name, or while it is not set the default connection.start shows too
 * (net_default_cluster_name). */
void mgmt_cluster_name(const struct mgmt_env *env, char *buf, size_t cap);

/* Which message_stats fields an object shows when it has any (RabbitMQ's per object). */
enum mgmt_stats_kind {
    MGMT_STATS_QUEUE,    /* publish, deliver*, get*, ack, redeliver */
    MGMT_STATS_EXCHANGE, /* publish_in, publish_out */
    MGMT_STATS_CHANNEL,  /* all but publish_in/out: channels, vhosts, the overview */
};
/* o's message_stats as RabbitMQ shows them: each field with its X_details {"rate"}, and
 * deliver_get. NULL when o never counted anything (RabbitMQ then shows no message_stats) or
 * on ENOMEM. */
json_t *mgmt_message_stats(const struct stats_obj *o, enum mgmt_stats_kind kind);

/* GET /api/channels, /api/vhosts/{vhost}/channels, /api/connections/{name}/channels,
 * /api/consumers[/{vhost}] (api_stats.c). */
void mgmt_api_channels(struct mgmt_req *r);
void mgmt_api_consumers(struct mgmt_req *r);

/* POST /api/exchanges/{vhost}/{name}/publish and /api/queues/{vhost}/{name}/get
 * (api_messages.c). */
void mgmt_api_exchange_publish(struct mgmt_req *r);
void mgmt_api_queue_get(struct mgmt_req *r);
/* A get's ackmode: 0 ack_requeue_true, 1 ack_requeue_false, 2 reject_requeue_true, 3
 * reject_requeue_false; -1 for anything else (NULL too). */
int mgmt_ackmode_parse(const char *s);
/* An integer given as a JSON integer or a decimal string ("5", as rabbitmqadmin sends
 * them), into *out. 0, or -1 when v is neither. */
int mgmt_json_int(json_t *v, int64_t *out);

/* The members of replicated queues' groups (api_replicas.c): POST
 * /api/queues/quorum/{vhost}/{name}/replicas/add, DELETE .../replicas/delete; POST
 * /api/queues/quorum/replicas/on/{node}/grow, DELETE .../shrink. */
void mgmt_api_replicas_one(struct mgmt_req *r);
void mgmt_api_replicas_sweep(struct mgmt_req *r);

/* GET /api/nodes[/{name}], /api/health/checks/..., /api/healthchecks/node[/{name}]
 * (api_health.c). */
void mgmt_api_nodes(struct mgmt_req *r);
void mgmt_api_health(struct mgmt_req *r);
/* This node as /api/nodes shows it, as JSON text (malloc'ed; NULL on ENOMEM), for the other
 * nodes of the cluster (cluster_set_node_info). arg: the struct mgmt_env. */
char *mgmt_node_info(void *arg);
/* The listeners as /api/overview lists them: {node, protocol, ip_address, port} for amqp,
 * amqp/ssl, http, https and http/prometheus. A new array; NULL on ENOMEM. */
json_t *mgmt_listeners(const struct mgmt_req *r);

/* /api/warren/log-level (GET, PUT), /api/warren/rotate-logs (POST),
 * /api/warren/environment (GET): api_node_ctl.c. */
void mgmt_api_log_level(struct mgmt_req *r);
void mgmt_api_rotate_logs(struct mgmt_req *r);
void mgmt_api_environment(struct mgmt_req *r);

struct evhttp_request;
struct evbuffer;
/* The web dashboard (ui.c): whether req is a GET or HEAD of a path outside /api, which
 * mgmt_ui_answer answers. */
bool mgmt_ui_wants(struct evhttp_request *req);
/* Sets req's reply headers and puts the file's bytes in buf (none for HEAD); returns the
 * status to send: 200, 304 (the If-None-Match tag is current), 404, or 500 on ENOMEM. */
int mgmt_ui_answer(struct evhttp_request *req, struct evbuffer *buf);

/* GET /metrics, /metrics/per-object, /metrics/detailed?query (prometheus.c). Starts a scrape:
 * returns 200 with *job set, or 404 for another path, 400 for a query that does not parse,
 * 500 on ENOMEM (logged), with *job NULL. The connections and channels it shows are copied
 * now; the job's steps walk the queues and write the text (status 200, or 500 on ENOMEM,
 * logged, with no body to send). */
int mgmt_prom_start(const struct mgmt_env *env, const char *path, const char *query,
                    struct mgmt_stepped **job);

/* Users, vhosts, permissions and limits (api_access.c): /api/users[/{name}[/permissions|
 * /topic-permissions]], /api/user-limits..., /api/vhosts[/{name}[/permissions|
 * /topic-permissions]], /api/vhost-limits..., /api/permissions..., /api/topic-permissions... */
void mgmt_api_users_list(struct mgmt_req *r);
void mgmt_api_user(struct mgmt_req *r);
void mgmt_api_user_perms(struct mgmt_req *r);
void mgmt_api_user_limits(struct mgmt_req *r);
void mgmt_api_vhost_limits(struct mgmt_req *r);
void mgmt_api_vhosts_list(struct mgmt_req *r);
void mgmt_api_vhost_one(struct mgmt_req *r);
void mgmt_api_vhost_perms(struct mgmt_req *r);
void mgmt_api_perms_list(struct mgmt_req *r);
void mgmt_api_perm(struct mgmt_req *r);
/* Keeps the entries of arr (taken) whose field key equals value (and, when key2 is not NULL,
 * whose key2 equals value2). A new array, NULL on ENOMEM. */
json_t *mgmt_filter(json_t *arr, const char *key, const char *value, const char *key2,
                    const char *value2);
/* admin_users_json as the API shows users (passwords hashed, Warren's own fields left out). */
json_t *mgmt_users_json(struct mgmt_req *r);

/* GET and POST /api/definitions[/{vhost}] (api_definitions.c). */
void mgmt_api_definitions(struct mgmt_req *r);

/* Frees what r owns (segments, user reference), not r. */
void mgmt_req_clear(struct mgmt_req *r);

#endif
