/* Administration: the one place every change of users, vhosts, permissions, limits, policies
 * and parameters goes through, whoever asks (the configuration's defaults at the first
 * start, load_definitions, and later the HTTP API, warrenctl and a cluster's log).
 *
 * Each change is one self-contained record: the whole new state of one object, as the JSON
 * entry RabbitMQ's definitions use for it (a user: name, password_hash, hashing_algorithm,
 * tags, limits). Applying a record validates it, changes memory (the user table of
 * warren/auth.h, the vhost registry of warren/vhost.h) and, unless it is being read back at
 * start, writes it under its key (warren/store.h: 'U', 'V', 'P', 'R', 'Y', 'Z', 'G') in the
 * durable layer's batch of the loop turn. Applying the same record twice is applying it once,
 * which is what a replicated log needs. A change is confirmed (done called without error)
 * only once its batch is written and synced.
 *
 * Every function returns ADMIN_OK, or another result with a text for the caller (an HTTP
 * handler's reason, a log line) in err, nothing changed, and done not called. With ADMIN_OK,
 * done (when not NULL) is called from the event loop once the change is durable
 * (ADMIN_OK), or with the store's error (ADMIN_FAILED); without a durable layer (unit tests)
 * it is called before the function returns.
 *
 * In a cluster (admin_set_cluster) a change is not applied where it is asked for: it is
 * checked as far as that needs no state, then submitted to the cluster's metadata group as
 * one command (replicate.c says its format), which every node applies in log order through
 * the same code as alone. The function then returns ADMIN_OK, and done says how it ended
 * once this node applied it and stored it: ADMIN_OK, or the apply's result and text (a
 * permission for a user that no node has: ADMIN_NOT_FOUND, as alone), or ADMIN_UNAVAILABLE
 * when the cluster could not take it or lost track of it (no leader, no answer within
 * ADMIN_CLUSTER_WAIT_MS).
 *
 * Permissions take effect at once: the network layer caches checks per channel under
 * auth_db_generation(), which every change bumps. Deleting a user closes its connections;
 * deleting a vhost closes its connections (320 CONNECTION_FORCED, RabbitMQ's texts), then
 * deletes its queues (their stored messages too), exchanges, permissions, policies and
 * parameters. */
#ifndef WARREN_ADMIN_H
#define WARREN_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "warren/auth.h"

struct auth_db;
struct conf;
struct durable;
struct net_server;
struct store;
struct vhost_registry;

struct admin;

/* What the administration layer borrows for its whole life. */
struct admin_env {
    struct event_base *base; /* for a cluster's timeouts; NULL: never clustered */
    struct auth_db *auth;
    struct vhost_registry *vhosts;
    struct durable *durable; /* where changes are written; NULL: nowhere */
    struct store *store;     /* read by admin_recover; NULL: nothing stored */
    const struct conf *conf; /* loopback_users, the defaults, load_definitions */
};

enum admin_result {
    ADMIN_OK = 0,
    ADMIN_NOT_FOUND,   /* no such user, vhost, permission... (HTTP 404) */
    ADMIN_INVALID,     /* a bad value, a missing field (HTTP 400) */
    ADMIN_NOMEM,       /* out of memory (HTTP 500; logged) */
    ADMIN_FAILED,      /* done only: the store could not write the change (HTTP 500) */
    ADMIN_UNAVAILABLE, /* the cluster cannot take the change now, or lost it (HTTP 503) */
};

/* How a change ended: r ADMIN_OK with err NULL, or another result with its text. */
typedef void (*admin_done_fn)(void *arg, enum admin_result r, const char *err);

/* How long a clustered change waits for its outcome before done says ADMIN_UNAVAILABLE
 * ("may or may not have been made"). */
#define ADMIN_CLUSTER_WAIT_MS 10000

/* NULL on ENOMEM. */
struct admin *admin_new(const struct admin_env *env);
void admin_free(struct admin *a);
/* The server whose connections are closed when their user or vhost is deleted, and whose
 * connection.start names the cluster as the global parameter cluster_name says, from now on
 * (NULL: none). */
void admin_set_net(struct admin *a, struct net_server *net);

struct cluster;
/* From now on (c not NULL), changes go through c's metadata group (see above), and the
 * metadata commands of kind CLUSTER_META_ADMIN apply here; a first start's defaults are
 * submitted (see admin_recover). Call once, after cluster_open, before the loop runs (NULL:
 * alone, nothing changes). admin_free then comes after cluster_free, which answers the
 * changes in flight. */
void admin_set_cluster(struct admin *a, struct cluster *c);

/* At start, before durable_recover: reads every stored record back (vhosts first), and on
 * the first start (no record says it happened) creates the configuration's default_vhost,
 * default_user (default_pass, default_user_tags.*) and its default_permissions.* on it, as
 * RabbitMQ does when its database is new, unless load_definitions is set (RabbitMQ then
 * leaves the defaults out too: call admin_definitions_load once durable_recover has attached
 * the durable layer, so that the definitions' exchanges and queues are stored). When the
 * configuration names a cluster, the defaults wait for admin_set_cluster, which submits them
 * (replicate.c), and the records stored up to the last metadata log index applied are not
 * applied again when the log is replayed. Returns 0, or -1 with the reason in err (a record
 * that does not parse or apply, a store error). */
int admin_recover(struct admin *a, char *err, size_t errlen);

/* ---- users ---- */

/* A user as PUT /api/users/{name} gives it: password (clear, hashed here with SHA-256 and a
 * fresh salt), or password_hash (base64, "" for none) with its algorithm, or neither (no
 * password); tags replace the user's. Limits stay. */
struct admin_user {
    const char *name;
    const char *password;      /* NULL: password_hash says */
    const char *password_hash; /* NULL with password NULL: no password */
    enum auth_hash_alg hashing_algorithm;
    const char *const *tags;
    size_t n_tags;
};
enum admin_result admin_user_put(struct admin *a, const struct admin_user *u, admin_done_fn done,
                                 void *arg, char *err, size_t errlen);
enum admin_result admin_user_delete(struct admin *a, const char *name, admin_done_fn done,
                                    void *arg, char *err, size_t errlen);
enum admin_result admin_user_set_tags(struct admin *a, const char *name, const char *const *tags,
                                      size_t n_tags, admin_done_fn done, void *arg, char *err,
                                      size_t errlen);
/* password NULL: clear_password (the user can then only log in without one). */
enum admin_result admin_user_set_password(struct admin *a, const char *name, const char *password,
                                          admin_done_fn done, void *arg, char *err, size_t errlen);
/* limit is "max-connections" or "max-channels"; value -1 clears it. */
enum admin_result admin_user_set_limit(struct admin *a, const char *name, const char *limit,
                                       int64_t value, admin_done_fn done, void *arg, char *err,
                                       size_t errlen);

/* ---- vhosts ---- */

/* Adds a vhost, or replaces the metadata of an existing one (description, tags,
 * default_queue_type: each NULL for none). */
struct admin_vhost {
    const char *name;
    const char *description;
    const char *const *tags;
    size_t n_tags;
    const char *default_queue_type; /* classic, quorum or stream, as RabbitMQ accepts */
};
enum admin_result admin_vhost_put(struct admin *a, const struct admin_vhost *v, admin_done_fn done,
                                  void *arg, char *err, size_t errlen);
enum admin_result admin_vhost_delete(struct admin *a, const char *name, admin_done_fn done,
                                     void *arg, char *err, size_t errlen);
/* limit is "max-connections" or "max-queues"; value -1 clears it. */
enum admin_result admin_vhost_set_limit(struct admin *a, const char *name, const char *limit,
                                        int64_t value, admin_done_fn done, void *arg, char *err,
                                        size_t errlen);

/* ---- permissions ---- */

enum admin_result admin_perm_set(struct admin *a, const char *user, const char *vhost,
                                 const char *configure, const char *write, const char *read,
                                 admin_done_fn done, void *arg, char *err, size_t errlen);
enum admin_result admin_perm_clear(struct admin *a, const char *user, const char *vhost,
                                   admin_done_fn done, void *arg, char *err, size_t errlen);
enum admin_result admin_topic_perm_set(struct admin *a, const char *user, const char *vhost,
                                       const char *exchange, const char *write, const char *read,
                                       admin_done_fn done, void *arg, char *err, size_t errlen);
/* exchange NULL: every exchange's. */
enum admin_result admin_topic_perm_clear(struct admin *a, const char *user, const char *vhost,
                                         const char *exchange, admin_done_fn done, void *arg,
                                         char *err, size_t errlen);

/* ---- records as JSON (definitions entries) ---- */

/* Applies one record of a kind (the definitions' section names: "users", "vhosts",
 * "permissions", "topic_permissions", "policies", "parameters", "global_parameters"),
 * stored unless store is false. version is the definitions' rabbit_version (it decides the
 * hashing algorithm of users exported without one: MD5 before 3.6.0), or NULL. */
enum admin_result admin_apply(struct admin *a, const char *kind, json_t *entry, const char *version,
                              bool store, char *err, size_t errlen);
/* Registers done to run once everything applied so far is durable (see above). 0, or -1 on
 * ENOMEM (done is not called). */
int admin_sync(struct admin *a, admin_done_fn done, void *arg);

/* Listings, as RabbitMQ's definitions and HTTP API show them: a new JSON array (the caller
 * owns it), NULL on ENOMEM. */
json_t *admin_users_json(struct admin *a);
json_t *admin_vhosts_json(struct admin *a);
json_t *admin_permissions_json(struct admin *a);
json_t *admin_topic_permissions_json(struct admin *a);
/* "policies", "parameters" or "global_parameters": what was stored. */
json_t *admin_stored_json(struct admin *a, const char *kind);
/* One stored record of kind by its names (parameters: vhost, component, name; global
 * parameters: name), borrowed; NULL when there is none. */
json_t *admin_stored_get(struct admin *a, const char *kind, const char *const *names, size_t n);
/* Applies and stores one record of kind (entry borrowed), as admin_apply with done
 * registered. */
enum admin_result admin_record_put(struct admin *a, const char *kind, json_t *entry,
                                   admin_done_fn done, void *arg, char *err, size_t errlen);
/* Deletes a stored record of kind ("parameters" or "global_parameters") by its names as
 * above. ADMIN_NOT_FOUND when there is none. */
enum admin_result admin_stored_delete(struct admin *a, const char *kind, const char *const *names,
                                      size_t n, admin_done_fn done, void *arg, char *err,
                                      size_t errlen);
/* The global parameter cluster_name's value when it is a string (set by PUT
 * /api/cluster-name), else NULL: borrowed until the next change. */
const char *admin_cluster_name(struct admin *a);

/* ---- policies and operator policies (policies.c; applied as warren/policy.h says) ---- */

/* Sets policy (op false) or operator policy (op true) name in vhost from body, as PUT
 * /api/policies/{vhost}/{name} takes it: pattern, definition, priority (default 0), apply-to
 * (default "all"). ADMIN_NOT_FOUND without that vhost; ADMIN_INVALID with RabbitMQ's text
 * ("Validation failed\n\n<<\"x\">> is not a valid message TTL\n"). */
enum admin_result admin_policy_put(struct admin *a, bool op, const char *vhost, const char *name,
                                   json_t *body, admin_done_fn done, void *arg, char *err,
                                   size_t errlen);
/* ADMIN_NOT_FOUND when there is no such vhost or policy. */
enum admin_result admin_policy_delete(struct admin *a, bool op, const char *vhost, const char *name,
                                      admin_done_fn done, void *arg, char *err, size_t errlen);
/* The policies (or operator policies) of vhost (NULL: every vhost's) as the HTTP API lists
 * them: [{vhost, name, pattern, apply-to, definition, priority}], lowest priority first. A
 * new array; NULL on ENOMEM. */
json_t *admin_policies_json(struct admin *a, bool op, const char *vhost);
/* One of them as above; JSON null when there is none (NULL on ENOMEM). */
json_t *admin_policy_json(struct admin *a, bool op, const char *vhost, const char *name);
struct queue;
/* The definition in force on q (rabbitmqctl's effective_policy_definition): its policy's
 * merged with its operator policy's (rabbit_policy:merge_operator_definitions). A new
 * object ({} with neither); NULL on ENOMEM. */
json_t *admin_queue_policy_json(struct admin *a, const struct queue *q);

/* ---- definitions (definitions.c) ---- */

/* Imports a definitions document as RabbitMQ does (rabbit_definitions.erl): users, vhosts,
 * permissions, topic permissions, policies, parameters and global parameters as records
 * (policies and operator policies apply; other parameters are stored and logged as not
 * applied, but vhost limits), then exchanges, queues and
 * bindings created as a declare would (existing ones are kept). Entries apply in that order,
 * as in RabbitMQ; the first bad one stops the import (what came before it stays) with its
 * section and position in err ("users[2]: ..."). */
enum admin_result admin_definitions_import(struct admin *a, json_t *defs, char *err, size_t errlen);
/* Imports defs as admin_definitions_import does, then done as for any change: in a cluster,
 * on every node through its log (a user's password hashed first, here), the import's error
 * coming back to done (POST /api/definitions). */
enum admin_result admin_definitions_put(struct admin *a, json_t *defs, admin_done_fn done,
                                        void *arg, char *err, size_t errlen);
/* Everything as a definitions document in RabbitMQ 3.10's format (rabbitmqctl
 * export_definitions): users with their hashes (a default user's pending password is hashed
 * first), vhosts, permissions, topic permissions, parameters (vhost limits among them),
 * global parameters, policies, and the queues, exchanges and bindings (but exclusive queues,
 * the default, amq.* and internal exchanges). A new object (the caller owns it); NULL on
 * ENOMEM or a hashing failure (logged). */
json_t *admin_definitions_export(struct admin *a);

#define ADMIN_ARGS_MAX (64u << 10) /* bytes of one encoded arguments table */
/* The "arguments" object of a JSON entry (definitions, HTTP bodies) as a field table's body
 * in buf (ADMIN_ARGS_MAX bytes), as RabbitMQ turns JSON into AMQP. 0, or -1 with err set. */
int admin_json_args(json_t *e, uint8_t *buf, struct wire_table *t, char *err, size_t errlen);
/* A boolean field: true/false, or the strings "true"/"false" (HTTP-made files). */
bool admin_json_bool(json_t *e, const char *field);
/* Reads and imports a definitions file. err names the file, and the line and column of a
 * JSON error. When the configuration names a cluster, the file is only read here: its
 * import goes through the cluster's log once admin_set_cluster is called (submitted until
 * the log has it; an import that fails then is logged). */
enum admin_result admin_definitions_load(struct admin *a, const char *path, char *err,
                                         size_t errlen);

#endif
