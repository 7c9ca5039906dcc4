/* The administration layer at start: the stored records read back (vhosts before what refers
 * to them), the configuration's defaults when the database has no user, vhost or permission
 * (RabbitMQ's test for a new database): made here alone, submitted to the cluster's log in a
 * cluster (replicate.c). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "admin_int.h"
#include "warren/conf.h"
#include "warren/log.h"
#include "warren/store.h"

/* The default vhost's description, as RabbitMQ gives it. */
#define ADMIN_DEFAULT_VHOST_DESCRIPTION "Default virtual host"

struct admin_recover_ctx {
    struct admin *a;
    const char *kind;
    uint64_t count;
    char *err;
    size_t errlen;
};

static int
admin_recover_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct admin_recover_ctx *x = arg;
    char sample[96], why[256];
    json_error_t je;
    json_t *o = json_loadb(val, vlen, JSON_REJECT_DUPLICATES, &je);
    if (o == NULL) {
        snprintf(x->err, x->errlen, "corrupt %s record in the store (key %s): %s: not starting",
                 x->kind, log_escape(sample, sizeof(sample), key, klen), je.text);
        return 1;
    }
    enum admin_result r = admin_apply(x->a, x->kind, o, NULL, false, why, sizeof(why));
    json_decref(o);
    if (r != ADMIN_OK) {
        snprintf(x->err, x->errlen, "stored %s record (key %s) does not apply: %s: not starting",
                 x->kind, log_escape(sample, sizeof(sample), key, klen), why);
        return 1;
    }
    x->count++;
    return 0;
}

json_t *
admin_seed_records(const struct admin *a)
{
    const struct conf *c = a->env.conf;
    json_t *tags = json_array();
    for (unsigned i = 0; tags != NULL && i < c->n_default_user_tags; i++)
        if (json_array_append_new(tags, json_string(c->default_user_tags[i])) < 0) {
            json_decref(tags);
            tags = NULL;
        }
    /* The user's password is the configuration's, hashed at the first login (each node its
     * own salt then): the record holds no hash, so every node that makes it makes the same. */
    return json_pack("[{s:s, s:{s:s, s:[]}}, {s:s, s:o, s:b}, {s:s, s:s, s:s, s:s, s:s}]", "name",
                     c->default_vhost, "metadata", "description", ADMIN_DEFAULT_VHOST_DESCRIPTION,
                     "tags", "name", c->default_user, "tags", tags, ADMIN_PENDING_FIELD, 1, "user",
                     c->default_user, "vhost", c->default_vhost, "configure",
                     c->default_permissions_configure, "write", c->default_permissions_write,
                     "read", c->default_permissions_read);
}

int
admin_seed_apply(struct admin *a, json_t *records, char *err, size_t errlen)
{
    static const char *const kinds[] = {"vhosts", "users", "permissions"};
    const struct conf *c = a->env.conf;
    char why[256];
    const char *what = "out of memory";
    enum admin_result r = ADMIN_NOMEM;
    for (size_t i = 0; records != NULL && i < 3; i++) {
        json_t *e = json_array_get(records, i);
        if ((r = admin_apply(a, kinds[i], e, NULL, true, why, sizeof(why))) != ADMIN_OK)
            break;
    }
    if (r != ADMIN_OK && r != ADMIN_NOMEM)
        what = why;
    if (r != ADMIN_OK) {
        snprintf(err, errlen, "cannot create the default user and vhost: %s", what);
        return -1;
    }
    log_msg(LOG_INFO,
            "new database: created vhost '%s' and user '%s' with permissions '%s' '%s' '%s' on it",
            c->default_vhost, c->default_user, c->default_permissions_configure,
            c->default_permissions_write, c->default_permissions_read);
    return 0;
}

/* The first start's vhost, user and permissions, from the configuration. */
static int
admin_seed(struct admin *a, char *err, size_t errlen)
{
    json_t *records = admin_seed_records(a);
    int rc = admin_seed_apply(a, records, err, errlen);
    json_decref(records);
    return rc;
}

int
admin_recover(struct admin *a, char *err, size_t errlen)
{
    static const struct {
        enum store_key_tag tag;
        const char *kind;
    } order[] = {
        {STORE_TAG_VHOST, "vhosts"},
        {STORE_TAG_USER, "users"},
        {STORE_TAG_PERMISSION, "permissions"},
        {STORE_TAG_TOPIC_PERMISSION, "topic_permissions"},
        {STORE_TAG_POLICY, "policies"},
        {STORE_TAG_PARAMETER, "parameters"},
        {STORE_TAG_GLOBAL_PARAMETER, "global_parameters"},
    };
    uint64_t access_records = 0; /* users, vhosts and permissions */
    for (size_t i = 0; a->env.store != NULL && i < sizeof(order) / sizeof(order[0]); i++) {
        struct admin_recover_ctx x = {a, order[i].kind, 0, err, errlen};
        uint8_t tag = (uint8_t)order[i].tag;
        if (store_iter_prefix(a->env.store, &tag, 1, admin_recover_one, &x, err, errlen) != 0)
            return -1;
        if (i < 3)
            access_records += x.count;
    }
    const char *defs = a->env.conf->load_definitions;
    bool have_defs = defs != NULL && *defs != '\0';
    if (access_records == 0 && !have_defs) {
        /* In a cluster the defaults go through its log (admin_set_cluster): made here, they
         * would be made again by every node's first start, even one joining long after. */
        if (a->env.conf->cluster_nodes.n > 0 ? admin_boot_seed(a, err, errlen) < 0
                                             : admin_seed(a, err, errlen) < 0)
            return -1;
    }
    return 0;
}
