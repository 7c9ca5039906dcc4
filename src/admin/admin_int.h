/* Inside src/admin/: the administration layer's state and the helpers admin.c shares with
 * recover.c (reading records back, the first start's defaults) and definitions.c. */
#ifndef WARREN_ADMIN_INT_H
#define WARREN_ADMIN_INT_H

#include <stdarg.h>

#include "warren/admin.h"
#include "warren/store.h"

struct queue;
struct vhost;

/* A user record whose password is the configuration's default_pass, not hashed yet because
 * no one has logged in since the first start (users.c keeps OpenSSL out until then). */
#define ADMIN_PENDING_FIELD "warren_password_from_config"

struct admin {
    struct admin_env env;   /* borrows everything in it */
    struct net_server *net; /* borrows; NULL: no connections to close */
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
/* The user table's hashed hook: stores the user whose pending password was hashed. */
void admin_on_hashed(void *arg, struct auth_user *u);

#endif
