/* Inside src/admin/: the administration layer's state and the helpers admin.c shares with
 * recover.c (reading records back, the first start's defaults) and definitions.c. */
#ifndef WARREN_ADMIN_INT_H
#define WARREN_ADMIN_INT_H

#include <stdarg.h>

#include "warren/admin.h"
#include "warren/policy.h"
#include "warren/store.h"

struct queue;
struct vhost;

/* A user record whose password is the configuration's default_pass, not hashed yet because
 * no one has logged in since the first start (users.c keeps OpenSSL out until then). */
#define ADMIN_PENDING_FIELD "warren_password_from_config"

struct admin_pending;
struct event;

struct admin {
    struct admin_env env;        /* borrows everything in it */
    struct net_server *net;      /* borrows; NULL: no connections to close */
    enum auth_hash_alg hash_alg; /* of the passwords set from now on */
    /* Clustering (replicate.c). */
    struct cluster *cluster;       /* borrows; NULL: alone */
    bool applying;                 /* a metadata command is being applied: change, don't submit */
    struct admin_boot *boot[2];    /* owns: the defaults, load_definitions, to submit */
    struct admin_pending *pending; /* owns: changes submitted, waiting for their outcome */
    char apply_err[1024];          /* the last apply's error text, for the done after it */
    /* 'D' being applied: the node that submitted it, home of the queues it makes (NULL: this
     * one) */
    const char *import_home;
    /* Policies, parameters (operator policies among them) and global parameters as stored:
     * JSON objects keyed by their names joined with 0x1f, the vhost first (admin_stored_key).
     * Policies apply (policies.c); of the parameters, operator policies and vhost limits. */
    json_t *stored[3];
};

/* Formats err and returns r. */
enum admin_result admin_fail(char *err, size_t errlen, enum admin_result r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Registers done after the changes made (admin_sync). ADMIN_OK or ADMIN_NOMEM. */
enum admin_result admin_done(struct admin *a, admin_done_fn done, void *arg, char *err,
                             size_t errlen);
/* A name field of obj (1..255 bytes, no NUL), or NULL with err saying what is wrong. */
const char *admin_get_name(json_t *obj, const char *field, const char *what, char *err,
                           size_t errlen);
/* The user's and vhost's records, built from memory: new references, NULL on ENOMEM. */
json_t *admin_user_json(struct auth_user *u);
json_t *admin_vhost_json(const struct vhost *v);
struct vhost *admin_vhost_get(struct admin *a, const char *name);
/* Writes obj (compact JSON) under tag and names in the loop turn's batch (nothing without a
 * durable layer). ADMIN_OK or ADMIN_NOMEM. */
enum admin_result admin_write(struct admin *a, enum store_key_tag tag, const char *const *names,
                              size_t n, const json_t *obj, char *err, size_t errlen);
/* Deletes the record under tag and names. */
void admin_erase(struct admin *a, enum store_key_tag tag, const char *const *names, size_t n);
/* The in-memory key of a stored record (a->stored): its names joined by 0x1f. */
void admin_stored_key(char *buf, size_t cap, const char *const *names, size_t n);
/* Applies a policy record (op false: the definitions' policy entry) or an operator policy's
 * (op true: a parameter of component "operator_policy"), validated as RabbitMQ does (err then
 * holds its "Validation failed" text), stored unless store is false (policies.c). */
enum admin_result admin_policy_apply(struct admin *a, bool op, json_t *e, bool store, char *err,
                                     size_t errlen);
/* A policy's value (pattern, definition, priority, apply-to) checked as RabbitMQ 3.10 checks
 * it (policy_check.c): op for an operator policy's keys, extra for a runtime parameter's
 * value (then unknown terms and a missing priority are errors too). Returns true with *re,
 * *d, *apply_to and *priority filled (the caller owns re and what d owns), or false with
 * RabbitMQ's text in b ("Validation failed\n\n" and one line per error). name is the
 * policy's, for the texts. */
struct admin_buf;
bool admin_policy_check(json_t *val, bool op, bool extra, const char *name, struct admin_buf *b,
                        pcre2_code **re, struct policy_def *d, enum policy_apply_to *apply_to,
                        double *priority);

/* Text built in a caller's buffer (erl_term.c). */
struct admin_buf {
    char *p;
    size_t cap, len; /* len may pass cap: the text is then cut, still NUL-terminated */
};
void admin_buf_add(struct admin_buf *b, const char *s, size_t n);
void admin_buf_str(struct admin_buf *b, const char *s);
void admin_buf_printf(struct admin_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A string as Erlang prints a binary with ~p: <<"text">> when every byte is printable in
 * Latin-1 (bytes 160-255 then print as the Latin-1 characters they are), else <<1,2,3>>. */
void admin_erl_binary(struct admin_buf *b, const char *s, size_t len);
/* Writes v (NULL: undefined) as Erlang's ~p prints the term RabbitMQ decodes from it. */
void admin_erl_term(struct admin_buf *b, json_t *v);
/* The keys of o in Erlang's map order (bytewise), in a new array of *n (the caller frees
 * it); NULL when there are none or on ENOMEM (*n is then 0 too). */
const char **admin_sorted_keys(json_t *o, size_t *n);

/* Whether a change is to be submitted to the cluster rather than made here: clustered, and
 * not already applying a committed command (replicate.c). */
bool admin_replicated(const struct admin *a);
/* Submits the change op with its arguments (a JSON array, owned: freed here) as a metadata
 * command (replicate.c says the ops), done to be called once this node applied it. ADMIN_OK,
 * or ADMIN_NOMEM / ADMIN_INVALID (too large) / ADMIN_UNAVAILABLE with err set. */
enum admin_result admin_submit(struct admin *a, char op, json_t *args, admin_done_fn done,
                               void *arg, char *err, size_t errlen);
/* The first start's vhost, user and permission records, from the configuration, as a new
 * array [vhost, user, permission]; NULL on ENOMEM (recover.c). */
json_t *admin_seed_records(const struct admin *a);
/* Applies them (stored) and logs it. 0, or -1 with err set (recover.c). */
int admin_seed_apply(struct admin *a, json_t *records, char *err, size_t errlen);
/* A first start in a cluster: its defaults are to be submitted by admin_set_cluster. 0, or
 * -1 on ENOMEM with err set. */
int admin_boot_seed(struct admin *a, char *err, size_t errlen);
/* load_definitions' document defs (owned) read from path, to be submitted likewise. */
void admin_boot_defs(struct admin *a, json_t *defs, const char *path);
/* Replaces the password of each user entry of users (a definitions list; NULL: none) by its
 * hash. 0, or -1 (logged). */
int admin_prehash_users(struct admin *a, json_t *users);
/* Frees what clustering holds: the changes still waiting are answered ADMIN_UNAVAILABLE. */
void admin_cluster_free(struct admin *a);

/* The user table's hashed hook: stores the user whose pending password was hashed. */
void admin_on_hashed(void *arg, struct auth_user *u);

#endif
