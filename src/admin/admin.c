/* The administration layer (see warren/admin.h): records in, memory and store changed.
 *
 * Every change, whoever makes it, becomes one JSON record of a kind and goes through
 * admin_apply(): validated, applied to the user table or the vhost registry, and written
 * whole under its key. The C functions an HTTP handler calls (admin_user_put...) build the
 * record and apply it; admin_recover applies the stored ones without writing them again. The
 * record written is built back from memory after the change, so what is stored is always the
 * object's whole state, in one form, whatever form the input took (tags as a list or a comma
 * string, limits or not). */
#include "config.h"

#include "warren/admin.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_int.h"
#include "warren/conf.h"
#include "warren/durable.h"
#include "warren/log.h"
#include "warren/net.h"
#include "warren/store.h"
#include "warren/vhost.h"

static const char *const admin_stored_kinds[] = {"policies", "parameters", "global_parameters"};

struct admin *
admin_new(const struct admin_env *env)
{
    struct admin *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    a->env = *env;
    a->hash_alg = AUTH_HASH_SHA256;
    if (env->conf->password_hashing_module != NULL)
        auth_hash_alg_parse(env->conf->password_hashing_module, &a->hash_alg);
    auth_db_set_hash_alg(env->auth, a->hash_alg);
    for (int i = 0; i < 3; i++)
        if ((a->stored[i] = json_object()) == NULL) {
            admin_free(a);
            return NULL;
        }
    auth_db_set_hashed_hook(env->auth, admin_on_hashed, a);
    return a;
}

void
admin_free(struct admin *a)
{
    if (a == NULL)
        return;
    auth_db_set_hashed_hook(a->env.auth, NULL, NULL);
    admin_cluster_free(a);
    for (int i = 0; i < 3; i++)
        json_decref(a->stored[i]);
    free(a);
}

/* Gives the server the cluster name connection.start sends: the global parameter
 * cluster_name as it is now (set, changed or deleted), else its default. */
static void
admin_cluster_name_apply(struct admin *a)
{
    if (a->net != NULL)
        net_server_set_cluster_name(a->net, admin_cluster_name(a)); /* ENOMEM logged there */
}

void
admin_set_net(struct admin *a, struct net_server *net)
{
    a->net = net;
    admin_cluster_name_apply(a);
}

enum admin_result
admin_fail(char *err, size_t errlen, enum admin_result r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return r;
}

/* ---- writing records ---- */

enum admin_result
admin_write(struct admin *a, enum store_key_tag tag, const char *const *names, size_t n,
            const json_t *obj, char *err, size_t errlen)
{
    if (a->env.durable == NULL)
        return ADMIN_OK;
    char *text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
    if (text == NULL)
        return admin_fail(err, errlen, ADMIN_NOMEM, "out of memory");
    uint8_t key[STORE_KEY_NAMES_MAX];
    size_t klen = store_key_names(key, tag, names, n);
    durable_record_put(a->env.durable, key, klen, text, strlen(text));
    free(text);
    return ADMIN_OK;
}

void
admin_erase(struct admin *a, enum store_key_tag tag, const char *const *names, size_t n)
{
    uint8_t key[STORE_KEY_NAMES_MAX];
    size_t klen = store_key_names(key, tag, names, n);
    durable_record_delete(a->env.durable, key, klen);
}

static void
admin_erase_prefix(struct admin *a, enum store_key_tag tag, const char *name)
{
    uint8_t key[STORE_KEY_NAMES_MAX];
    size_t klen = store_key_names(key, tag, &name, 1);
    durable_record_delete_prefix(a->env.durable, key, klen);
}

/* A done waiting for the durable layer's barrier. */
struct admin_sync_wait {
    admin_done_fn done;
    void *arg;
};

static void
admin_on_synced(void *arg, const char *err)
{
    struct admin_sync_wait w = *(struct admin_sync_wait *)arg;
    free(arg);
    w.done(w.arg, err != NULL ? ADMIN_FAILED : ADMIN_OK, err);
}

int
admin_sync(struct admin *a, admin_done_fn done, void *arg)
{
    if (done == NULL)
        return 0;
    if (a->env.durable == NULL) {
        done(arg, ADMIN_OK, NULL);
        return 0;
    }
    struct admin_sync_wait *w = malloc(sizeof(*w));
    if (w == NULL)
        return -1;
    *w = (struct admin_sync_wait){done, arg};
    if (durable_barrier(a->env.durable, true, admin_on_synced, w) < 0) {
        free(w);
        return -1;
    }
    return 0;
}

/* ---- reading fields ---- */

/* A name field: a string of 1..255 bytes (store keys hold names up to STORE_NAME_MAX). */
const char *
admin_get_name(json_t *obj, const char *field, const char *what, char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, field);
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    if (s == NULL) {
        snprintf(err, errlen, "%s: '%s' is missing or not a string", what, field);
        return NULL;
    }
    size_t len = json_string_length(v);
    if (len == 0 || len > STORE_NAME_MAX || strlen(s) != len) {
        snprintf(err, errlen, "%s: '%s' must be 1 to %d bytes without NUL", what, field,
                 STORE_NAME_MAX);
        return NULL;
    }
    return s;
}

/* An optional string field: NULL when absent or null; *bad when present and not a string. */
static const char *
admin_get_opt_string(json_t *obj, const char *field, bool *bad)
{
    json_t *v = json_object_get(obj, field);
    if (v == NULL || json_is_null(v))
        return NULL;
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
        *bad = true;
        return NULL;
    }
    return json_string_value(v);
}

/* Tags as a list of strings, or as RabbitMQ's older comma-separated string ("a,b", "").
 * Fills *out with pointers into v or into buf (copies of the comma string's parts). Returns
 * the count, or -1 when v is neither form or has more than max tags. */
#define ADMIN_TAGS_MAX 64
static int
admin_get_tags(json_t *v, const char **out, size_t max, char *buf, size_t buflen)
{
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_array(v)) {
        size_t i;
        json_t *t;
        if (json_array_size(v) > max)
            return -1;
        json_array_foreach(v, i, t)
        {
            if (!json_is_string(t))
                return -1;
            out[i] = json_string_value(t);
        }
        return (int)json_array_size(v);
    }
    if (!json_is_string(v) || json_string_length(v) >= buflen)
        return -1;
    memcpy(buf, json_string_value(v), json_string_length(v) + 1);
    size_t n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        size_t len = strlen(tok);
        while (len > 0 && tok[len - 1] == ' ')
            tok[--len] = '\0';
        if (len == 0)
            continue;
        if (n == max)
            return -1;
        out[n++] = tok;
    }
    return (int)n;
}

/* A limit value: an integer, or a string of one (the HTTP API sends both). -1 is no limit. */
static int
admin_get_limit(json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
    } else if (json_is_string(v)) {
        char *end;
        long long x = strtoll(json_string_value(v), &end, 10);
        if (end == json_string_value(v) || *end != '\0')
            return -1;
        *out = x;
    } else {
        return -1;
    }
    if (*out < 0)
        *out = -1;
    return 0;
}

static json_t *
admin_tags_json(const char *const *tags, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < n; i++)
        if (json_array_append_new(arr, json_string(tags[i])) < 0) {
            json_decref(arr);
            return NULL;
        }
    return arr;
}

/* {"max-connections": N, ...} for the limits that are set. */
static json_t *
admin_limits_json(const char *k1, int64_t v1, const char *k2, int64_t v2)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    if ((v1 >= 0 && json_object_set_new(o, k1, json_integer(v1)) < 0) ||
        (v2 >= 0 && json_object_set_new(o, k2, json_integer(v2)) < 0)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---- users ---- */

json_t *
admin_user_json(struct auth_user *u)
{
    char b64[AUTH_HASH_B64_MAX];
    bool hashed = auth_user_hash_b64(u, b64);
    const char *tags[ADMIN_TAGS_MAX];
    size_t n = auth_user_tag_count(u);
    for (size_t i = 0; i < n && i < ADMIN_TAGS_MAX; i++)
        tags[i] = auth_user_tag(u, i);
    const struct auth_user_limits *l = auth_user_limits(u);
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:o?, s:o?}", "name", auth_user_name(u), "password_hash",
        hashed ? b64 : "", "hashing_algorithm", auth_hash_alg_name(auth_user_hash_alg(u)), "tags",
        admin_tags_json(tags, n < ADMIN_TAGS_MAX ? n : ADMIN_TAGS_MAX), "limits",
        admin_limits_json("max-connections", l->max_connections, "max-channels", l->max_channels));
    if (o != NULL && !hashed && json_object_set_new(o, ADMIN_PENDING_FIELD, json_true()) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static enum admin_result
admin_store_user(struct admin *a, struct auth_user *u, char *err, size_t errlen)
{
    json_t *o = admin_user_json(u);
    if (o == NULL)
        return admin_fail(err, errlen, ADMIN_NOMEM, "out of memory");
    const char *name = auth_user_name(u);
    enum admin_result r = admin_write(a, STORE_TAG_USER, &name, 1, o, err, errlen);
    json_decref(o);
    return r;
}

void
admin_on_hashed(void *arg, struct auth_user *u)
{
    struct admin *a = arg;
    char err[128];
    if (admin_store_user(a, u, err, sizeof(err)) != ADMIN_OK)
        log_msg(LOG_ERROR, "cannot store the hashed password of user '%s': %s", auth_user_name(u),
                err);
}

/* The hashing algorithm of a user entry: hashing_algorithm when given, else what RabbitMQ
 * assumes for the definitions' version (MD5 before 3.6.0, SHA-256 since). */
static int
admin_user_alg(json_t *entry, const char *version, enum auth_hash_alg *alg)
{
    json_t *v = json_object_get(entry, "hashing_algorithm");
    if (v != NULL && !json_is_null(v))
        return json_is_string(v) ? auth_hash_alg_parse(json_string_value(v), alg) : -1;
    *alg = AUTH_HASH_SHA256;
    if (version != NULL &&
        (strncmp(version, "2.", 2) == 0 || (strncmp(version, "3.", 2) == 0 && version[2] >= '0' &&
                                            version[2] <= '5' && version[3] == '.')))
        *alg = AUTH_HASH_MD5;
    return 0;
}

static enum admin_result
admin_apply_user(struct admin *a, json_t *e, const char *version, bool store, char *err,
                 size_t errlen)
{
    struct auth_db *db = a->env.auth;
    const char *name = admin_get_name(e, "name", "user", err, errlen);
    if (name == NULL)
        return ADMIN_INVALID;
    bool bad = false;
    const char *hash = admin_get_opt_string(e, "password_hash", &bad);
    const char *password = admin_get_opt_string(e, "password", &bad);
    bool pending = json_is_true(json_object_get(e, ADMIN_PENDING_FIELD));
    enum auth_hash_alg alg;
    if (bad)
        return admin_fail(err, errlen, ADMIN_INVALID,
                          "user '%s': password or password_hash is not a string", name);
    if (admin_user_alg(e, version, &alg) < 0)
        return admin_fail(err, errlen, ADMIN_INVALID, "user '%s': unknown hashing_algorithm", name);
    const char *tags[ADMIN_TAGS_MAX];
    char tagbuf[1024];
    int n_tags =
        admin_get_tags(json_object_get(e, "tags"), tags, ADMIN_TAGS_MAX, tagbuf, sizeof(tagbuf));
    if (n_tags < 0)
        return admin_fail(err, errlen, ADMIN_INVALID,
                          "user '%s': tags must be a list of strings or a comma-separated string",
                          name);
    struct auth_user_limits limits = {AUTH_NO_LIMIT, AUTH_NO_LIMIT};
    json_t *jl = json_object_get(e, "limits");
    if (jl != NULL && !json_is_object(jl) && !(json_is_array(jl) && json_array_size(jl) == 0))
        return admin_fail(err, errlen, ADMIN_INVALID, "user '%s': limits is not an object", name);
    json_t *mc = json_object_get(jl, "max-connections"), *mch = json_object_get(jl, "max-channels");
    if ((mc != NULL && admin_get_limit(mc, &limits.max_connections) < 0) ||
        (mch != NULL && admin_get_limit(mch, &limits.max_channels) < 0))
        return admin_fail(err, errlen, ADMIN_INVALID, "user '%s': a limit is not an integer", name);

    bool loopback = conf_is_loopback_user(a->env.conf, name);
    bool existed = auth_user_get(db, name) != NULL;
    if (pending) {
        /* Read back at start: the password is still the configuration's. */
        if (auth_user_add(db, name, a->env.conf->default_pass, loopback) < 0)
            return admin_fail(err, errlen, ADMIN_NOMEM, "out of memory");
    } else if (password != NULL) {
        if (auth_db_hash_now(db) < 0 || auth_user_add(db, name, password, loopback) < 0)
            return admin_fail(err, errlen, ADMIN_NOMEM, "cannot hash the password (see the log)");
    } else if (auth_user_put_hash(db, name, hash != NULL ? hash : "", alg, loopback, err, errlen) <
               0) {
        return ADMIN_INVALID;
    }
    struct auth_user *u = auth_user_get(db, name);
    if (auth_user_set_tags(u, tags, (size_t)n_tags) < 0) {
        if (!existed)
            auth_user_delete(db, u);
        return admin_fail(err, errlen, ADMIN_NOMEM, "out of memory");
    }
    if (jl != NULL)
        *auth_user_limits(u) = limits;
    return store ? admin_store_user(a, u, err, errlen) : ADMIN_OK;
}

/* ---- vhosts ---- */

json_t *
admin_vhost_json(const struct vhost *v)
{
    const struct vhost_meta *m = &v->meta;
    json_t *meta =
        json_pack("{s:s, s:o?}", "description", m->description != NULL ? m->description : "",
                  "tags", admin_tags_json((const char *const *)m->tags, m->n_tags));
    if (meta != NULL && m->default_queue_type != NULL &&
        json_object_set_new(meta, "default_queue_type", json_string(m->default_queue_type)) < 0) {
        json_decref(meta);
        return NULL;
    }
    return json_pack(
        "{s:s, s:o?, s:o?}", "name", v->name, "metadata", meta, "limits",
        admin_limits_json("max-connections", m->max_connections, "max-queues", m->max_queues));
}

static enum admin_result
admin_store_vhost(struct admin *a, const struct vhost *v, char *err, size_t errlen)
{
    json_t *o = admin_vhost_json(v);
    if (o == NULL)
        return admin_fail(err, errlen, ADMIN_NOMEM, "out of memory");
    const char *name = v->name;
    enum admin_result r = admin_write(a, STORE_TAG_VHOST, &name, 1, o, err, errlen);
    json_decref(o);
    return r;
}

struct vhost *
admin_vhost_get(struct admin *a, const char *name)
{
    return vhost_find(a->env.vhosts, (struct wire_str){(const uint8_t *)name, strlen(name)});
}

/* Sets one vhost limit named key. */
static enum admin_result
admin_vhost_limit(struct vhost *v, int64_t *mc, int64_t *mq, const char *key, json_t *val,
                  char *err, size_t errlen)
{
    int64_t *dst = strcmp(key, "max-connections") == 0 ? mc
                   : strcmp(key, "max-queues") == 0    ? mq
                                                       : NULL;
    if (dst == NULL)
        return admin_fail(err, errlen, ADMIN_INVALID,
                          "vhost '%s': unknown limit '%s' (max-connections, max-queues)", v->name,
                          key);
    if (admin_get_limit(val, dst) < 0)
        return admin_fail(err, errlen, ADMIN_INVALID, "vhost '%s': limit '%s' is not an integer",
                          v->name, key);
    return ADMIN_OK;
}

/* Sets the vhost limits of obj: {"max-connections": N, "max-queues": N}, or the list of
 * [name, value] pairs RabbitMQ 3.10 exports. Those present replace, unless replace_all, when
 * the absent ones are cleared. */
static enum admin_result
admin_vhost_limits(struct vhost *v, json_t *obj, bool replace_all, char *err, size_t errlen)
{
    int64_t mc = replace_all ? -1 : v->meta.max_connections;
    int64_t mq = replace_all ? -1 : v->meta.max_queues;
    enum admin_result r = ADMIN_OK;
    const char *key;
    json_t *val;
    size_t i;
    if (json_is_object(obj)) {
        json_object_foreach(obj, key, val)
        {
            if ((r = admin_vhost_limit(v, &mc, &mq, key, val, err, errlen)) != ADMIN_OK)
                return r;
        }
    } else if (json_is_array(obj)) {
        json_array_foreach(obj, i, val)
        {
            json_t *k = json_array_get(val, 0);
            if (!json_is_array(val) || json_array_size(val) != 2 || !json_is_string(k))
                return admin_fail(err, errlen, ADMIN_INVALID,
                                  "vhost '%s': limits must be an object or [name, value] pairs",
                                  v->name);
            r = admin_vhost_limit(v, &mc, &mq, json_string_value(k), json_array_get(val, 1), err,
                                  errlen);
            if (r != ADMIN_OK)
                return r;
        }
    } else if (obj != NULL && !json_is_null(obj)) {
        return admin_fail(err, errlen, ADMIN_INVALID,
                          "vhost '%s': limits must be an object or [name, value] pairs", v->name);
    }
    v->meta.max_connections = mc;
    v->meta.max_queues = mq;
    return ADMIN_OK;
}

static enum admin_result
admin_apply_vhost(struct admin *a, json_t *e, bool store, char *err, size_t errlen)
{
    const char *name = admin_get_name(e, "name", "vhost", err, errlen);
    if (name == NULL)
        return ADMIN_INVALID;
    /* RabbitMQ exports the metadata under "metadata"; its HTTP API takes it at the top. */
    json_t *meta = json_object_get(e, "metadata");
    json_t *src = json_is_object(meta) ? meta : e;
    bool bad = false;
    const char *desc = admin_get_opt_string(src, "description", &bad);
    const char *dqt = admin_get_opt_string(src, "default_queue_type", &bad);
    if (bad)
        return admin_fail(err, errlen, ADMIN_INVALID,
                          "vhost '%s': description or default_queue_type is not a string", name);
    if (dqt != NULL && strcmp(dqt, "classic") != 0 && strcmp(dqt, "quorum") != 0 &&
        strcmp(dqt, "stream") != 0 && strcmp(dqt, "undefined") != 0)
        return admin_fail(err, errlen, ADMIN_INVALID,
                          "vhost '%s': default_queue_type must be classic, quorum or stream", name);
    const char *tags[ADMIN_TAGS_MAX];
    char tagbuf[1024];
    int n_tags =
        admin_get_tags(json_object_get(src, "tags"), tags, ADMIN_TAGS_MAX, tagbuf, sizeof(tagbuf));
    if (n_tags < 0)
        return admin_fail(err, errlen, ADMIN_INVALID,
                          "vhost '%s': tags must be a list of strings or a comma-separated string",
                          name);
    bool existed = admin_vhost_get(a, name) != NULL;
    struct vhost *v = vhost_add(a->env.vhosts, name);
    if (v == NULL)
        return admin_fail(err, errlen, ADMIN_NOMEM, "out of memory");
    json_t *limits = json_object_get(e, "limits");
    enum admin_result r = ADMIN_OK;
    if (limits != NULL)
        r = admin_vhost_limits(v, limits, true, err, errlen);
    if (r == ADMIN_OK &&
        vhost_meta_set(v, desc, tags, (size_t)n_tags,
                       dqt != NULL && strcmp(dqt, "undefined") != 0 ? dqt : NULL) < 0)
        r = admin_fail(err, errlen, ADMIN_NOMEM, "out of memory");
    if (r != ADMIN_OK) {
        if (!existed)
            vhost_delete(a->env.vhosts, v);
        return r;
    }
    return store ? admin_store_vhost(a, v, err, errlen) : ADMIN_OK;
}

/* ---- permissions ---- */

/* The user and vhost an entry names, both existing. */
static enum admin_result
admin_user_vhost(struct admin *a, json_t *e, const char *what, struct auth_user **u,
                 const char **user, const char **vhost, char *err, size_t errlen)
{
    if ((*user = admin_get_name(e, "user", what, err, errlen)) == NULL ||
        (*vhost = admin_get_name(e, "vhost", what, err, errlen)) == NULL)
        return ADMIN_INVALID;
    if ((*u = auth_user_get(a->env.auth, *user)) == NULL)
        return admin_fail(err, errlen, ADMIN_NOT_FOUND, "%s: no user '%s'", what, *user);
    if (admin_vhost_get(a, *vhost) == NULL)
        return admin_fail(err, errlen, ADMIN_NOT_FOUND, "%s: no vhost '%s'", what, *vhost);
    return ADMIN_OK;
}

static enum admin_result
admin_apply_permission(struct admin *a, json_t *e, bool store, char *err, size_t errlen)
{
    struct auth_user *u;
    const char *user, *vhost;
    enum admin_result r = admin_user_vhost(a, e, "permission", &u, &user, &vhost, err, errlen);
    if (r != ADMIN_OK)
        return r;
    bool bad = false;
    const char *conf = admin_get_opt_string(e, "configure", &bad);
    const char *write = admin_get_opt_string(e, "write", &bad);
    const char *read = admin_get_opt_string(e, "read", &bad);
    if (bad || conf == NULL || write == NULL || read == NULL)
        return admin_fail(err, errlen, ADMIN_INVALID,
                          "permission of user '%s' on vhost '%s': configure, write and read must "
                          "be strings",
                          user, vhost);
    if (auth_perm_set(a->env.auth, u, vhost, conf, write, read, err, errlen) < 0)
        return ADMIN_INVALID;
    if (!store)
        return ADMIN_OK;
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "user", user, "vhost", vhost, "configure",
                          conf, "write", write, "read", read);
    if (o == NULL)
        return admin_fail(err, errlen, ADMIN_NOMEM, "out of memory");
    const char *names[2] = {vhost, user};
    r = admin_write(a, STORE_TAG_PERMISSION, names, 2, o, err, errlen);
    json_decref(o);
    return r;
}

static enum admin_result
admin_apply_topic_permission(struct admin *a, json_t *e, bool store, char *err, size_t errlen)
{
    struct auth_user *u;
    const char *user, *vhost, *exchange;
    enum admin_result r =
        admin_user_vhost(a, e, "topic permission", &u, &user, &vhost, err, errlen);
    if (r != ADMIN_OK)
        return r;
    if ((exchange = admin_get_name(e, "exchange", "topic permission", err, errlen)) == NULL)
        return ADMIN_INVALID;
    bool bad = false;
    const char *write = admin_get_opt_string(e, "write", &bad);
    const char *read = admin_get_opt_string(e, "read", &bad);
    if (bad || write == NULL || read == NULL)
        return admin_fail(err, errlen, ADMIN_INVALID,
                          "topic permission of user '%s' on vhost '%s': write and read must be "
                          "strings",
                          user, vhost);
    if (auth_topic_perm_set(a->env.auth, u, vhost, exchange, write, read, err, errlen) < 0)
        return ADMIN_INVALID;
    if (!store)
        return ADMIN_OK;
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "user", user, "vhost", vhost, "exchange",
                          exchange, "write", write, "read", read);
    if (o == NULL)
        return admin_fail(err, errlen, ADMIN_NOMEM, "out of memory");
    const char *names[3] = {vhost, user, exchange};
    r = admin_write(a, STORE_TAG_TOPIC_PERMISSION, names, 3, o, err, errlen);
    json_decref(o);
    return r;
}

/* ---- policies (policies.c) and parameters (stored, not applied but vhost limits) ---- */

void
admin_stored_key(char *buf, size_t cap, const char *const *names, size_t n)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? "\x1f" : "", names[i]);
}

static enum admin_result
admin_apply_stored(struct admin *a, int kind, json_t *e, bool store, char *err, size_t errlen)
{
    static const char *const what[] = {"policy", "parameter", "global parameter"};
    static const enum store_key_tag tags[] = {STORE_TAG_POLICY, STORE_TAG_PARAMETER,
                                              STORE_TAG_GLOBAL_PARAMETER};
    const char *names[3];
    size_t n = 0;
    if (kind != 2) {
        if ((names[n++] = admin_get_name(e, "vhost", what[kind], err, errlen)) == NULL)
            return ADMIN_INVALID;
        if (admin_vhost_get(a, names[0]) == NULL)
            return admin_fail(err, errlen, ADMIN_NOT_FOUND, "%s: no vhost '%s'", what[kind],
                              names[0]);
    }
    if (kind == 1 && (names[n++] = admin_get_name(e, "component", what[kind], err, errlen)) == NULL)
        return ADMIN_INVALID;
    if ((names[n++] = admin_get_name(e, "name", what[kind], err, errlen)) == NULL)
        return ADMIN_INVALID;

    /* Operator policies are parameters in RabbitMQ (component "operator_policy"). */
    if (kind == 0 || (kind == 1 && strcmp(names[1], "operator_policy") == 0))
        return admin_policy_apply(a, kind == 1, e, store, err, errlen);
    /* Vhost limits are a parameter in RabbitMQ's definitions: they apply here. */
    if (kind == 1 && strcmp(names[1], "vhost-limits") == 0) {
        struct vhost *v = admin_vhost_get(a, names[0]);
        enum admin_result r = admin_vhost_limits(v, json_object_get(e, "value"), true, err, errlen);
        if (r != ADMIN_OK || !store)
            return r;
        return admin_store_vhost(a, v, err, errlen);
    }
    char key[3 * (STORE_NAME_MAX + 1)];
    admin_stored_key(key, sizeof(key), names, n);
    if (json_object_set(a->stored[kind], key, e) < 0)
        return admin_fail(err, errlen, ADMIN_NOMEM, "out of memory");
    bool cluster_name = kind == 2 && strcmp(names[0], "cluster_name") == 0;
    if (cluster_name) /* applied: admin_cluster_name, and new connections' connection.start */
        admin_cluster_name_apply(a);
    if (!store)
        return ADMIN_OK;
    if (cluster_name)
        return admin_write(a, tags[kind], names, n, e, err, errlen);
    log_msg(LOG_WARNING,
            "%s '%s'%s%s%s stored but not applied: Warren does not implement runtime "
            "parameters yet",
            what[kind], names[n - 1], kind != 2 ? " in vhost '" : "", kind != 2 ? names[0] : "",
            kind != 2 ? "'" : "");
    return admin_write(a, tags[kind], names, n, e, err, errlen);
}

enum admin_result
admin_apply(struct admin *a, const char *kind, json_t *entry, const char *version, bool store,
            char *err, size_t errlen)
{
    if (!json_is_object(entry))
        return admin_fail(err, errlen, ADMIN_INVALID, "not a JSON object");
    if (strcmp(kind, "users") == 0)
        return admin_apply_user(a, entry, version, store, err, errlen);
    if (strcmp(kind, "vhosts") == 0)
        return admin_apply_vhost(a, entry, store, err, errlen);
    if (strcmp(kind, "permissions") == 0)
        return admin_apply_permission(a, entry, store, err, errlen);
    if (strcmp(kind, "topic_permissions") == 0)
        return admin_apply_topic_permission(a, entry, store, err, errlen);
    for (int i = 0; i < 3; i++)
        if (strcmp(kind, admin_stored_kinds[i]) == 0)
            return admin_apply_stored(a, i, entry, store, err, errlen);
    return admin_fail(err, errlen, ADMIN_INVALID, "unknown kind of record '%s'", kind);
}

/* The index of kind in admin_stored_kinds, or -1. */
static int
admin_stored_kind(const char *kind)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(kind, admin_stored_kinds[i]) == 0)
            return i;
    return -1;
}

json_t *
admin_stored_get(struct admin *a, const char *kind, const char *const *names, size_t n)
{
    int k = admin_stored_kind(kind);
    char key[3 * (STORE_NAME_MAX + 1)];
    if (k < 0 || n > 3)
        return NULL;
    admin_stored_key(key, sizeof(key), names, n);
    return json_object_get(a->stored[k], key);
}

enum admin_result
admin_stored_delete(struct admin *a, const char *kind, const char *const *names, size_t n,
                    admin_done_fn done, void *arg, char *err, size_t errlen)
{
    static const enum store_key_tag tags[] = {STORE_TAG_POLICY, STORE_TAG_PARAMETER,
                                              STORE_TAG_GLOBAL_PARAMETER};
    int k = admin_stored_kind(kind);
    char key[3 * (STORE_NAME_MAX + 1)];
    if (k < 0 || n > 3)
        return admin_fail(err, errlen, ADMIN_NOT_FOUND, "no such record");
    if (admin_replicated(a)) {
        json_t *x = json_pack("[s]", kind);
        for (size_t i = 0; x != NULL && i < n; i++)
            if (json_array_append_new(x, json_string(names[i])) < 0) {
                json_decref(x);
                x = NULL;
            }
        return admin_submit(a, 's', x, done, arg, err, errlen);
    }
    admin_stored_key(key, sizeof(key), names, n);
    if (json_object_del(a->stored[k], key) < 0)
        return admin_fail(err, errlen, ADMIN_NOT_FOUND, "no such record");
    if (k == 2 && n == 1 && strcmp(names[0], "cluster_name") == 0)
        admin_cluster_name_apply(a); /* the default again */
    admin_erase(a, tags[k], names, n);
    log_msg(LOG_INFO, "cleared %s '%s'", kind, names[n - 1]);
    return admin_done(a, done, arg, err, errlen);
}

const char *
admin_cluster_name(struct admin *a)
{
    return json_string_value(json_object_get(
        json_object_get(a->stored[admin_stored_kind("global_parameters")], "cluster_name"),
        "value"));
}

/* Applies entry (owned: freed here) and registers done, or submits it in a cluster. */
static enum admin_result
admin_change(struct admin *a, const char *kind, json_t *entry, admin_done_fn done, void *arg,
             char *err, size_t errlen)
{
    if (entry == NULL)
        return admin_fail(err, errlen, ADMIN_INVALID, "out of memory, or a name that is not UTF-8");
    if (admin_replicated(a)) {
        /* a user's password hashed here: every node then stores the same hash */
        json_t *users = strcmp(kind, "users") == 0 ? json_pack("[O]", entry) : NULL;
        if (strcmp(kind, "users") == 0 && (users == NULL || admin_prehash_users(a, users) < 0)) {
            json_decref(users);
            json_decref(entry);
            return admin_fail(err, errlen, ADMIN_NOMEM, "cannot hash the password (see the log)");
        }
        json_decref(users);
        return admin_submit(a, 'R', json_pack("[s, o]", kind, entry), done, arg, err, errlen);
    }
    enum admin_result r = admin_apply(a, kind, entry, NULL, true, err, errlen);
    json_decref(entry);
    return r == ADMIN_OK ? admin_done(a, done, arg, err, errlen) : r;
}

enum admin_result
admin_record_put(struct admin *a, const char *kind, json_t *entry, admin_done_fn done, void *arg,
                 char *err, size_t errlen)
{
    return admin_change(a, kind, json_deep_copy(entry), done, arg, err, errlen);
}

enum admin_result
admin_done(struct admin *a, admin_done_fn done, void *arg, char *err, size_t errlen)
{
    if (admin_sync(a, done, arg) < 0)
        return admin_fail(err, errlen, ADMIN_NOMEM,
                          "out of memory (the change is made but may not be stored yet)");
    return ADMIN_OK;
}

/* ---- the C API ---- */

enum admin_result
admin_user_put(struct admin *a, const struct admin_user *u, admin_done_fn done, void *arg,
               char *err, size_t errlen)
{
    json_t *e = json_pack("{s:s, s:o?, s:s?, s:s?}", "name", u->name, "tags",
                          admin_tags_json(u->tags, u->n_tags), "password", u->password,
                          "password_hash", u->password_hash);
    if (e != NULL && u->password == NULL &&
        json_object_set_new(e, "hashing_algorithm",
                            json_string(auth_hash_alg_name(u->hashing_algorithm))) < 0) {
        json_decref(e);
        e = NULL;
    }
    return admin_change(a, "users", e, done, arg, err, errlen);
}

static struct auth_user *
admin_user_lookup(struct admin *a, const char *name, char *err, size_t errlen)
{
    struct auth_user *u = auth_user_get(a->env.auth, name);
    if (u == NULL)
        snprintf(err, errlen, "no user '%s'", name);
    return u;
}

static void
admin_erase_user_perm(void *arg, const char *vhost, const struct auth_perm *p)
{
    void **x = arg;
    const char *names[2] = {vhost, auth_user_name(x[1])};
    admin_erase(x[0], STORE_TAG_PERMISSION, names, 2);
}

static void
admin_erase_user_topic(void *arg, const char *vhost, const char *exchange, const char *write,
                       const char *read)
{
    void **x = arg;
    const char *names[3] = {vhost, auth_user_name(x[1]), exchange};
    admin_erase(x[0], STORE_TAG_TOPIC_PERMISSION, names, 3);
}

enum admin_result
admin_user_delete(struct admin *a, const char *name, admin_done_fn done, void *arg, char *err,
                  size_t errlen)
{
    if (admin_replicated(a))
        return admin_submit(a, 'u', json_pack("[s]", name), done, arg, err, errlen);
    struct auth_user *u = admin_user_lookup(a, name, err, errlen);
    if (u == NULL)
        return ADMIN_NOT_FOUND;
    void *x[2] = {a, u};
    auth_perm_foreach(u, admin_erase_user_perm, x);
    auth_topic_perm_foreach(u, admin_erase_user_topic, x);
    admin_erase(a, STORE_TAG_USER, &name, 1);
    char text[STORE_NAME_MAX + 32];
    snprintf(text, sizeof(text), "user '%s' is deleted", name);
    if (a->net != NULL)
        net_server_close_user(a->net, u, text);
    auth_user_delete(a->env.auth, u);
    log_msg(LOG_INFO, "deleted user '%s'", name);
    return admin_done(a, done, arg, err, errlen);
}

enum admin_result
admin_user_set_tags(struct admin *a, const char *name, const char *const *tags, size_t n_tags,
                    admin_done_fn done, void *arg, char *err, size_t errlen)
{
    if (admin_replicated(a))
        return admin_submit(a, 't', json_pack("[s, o]", name, admin_tags_json(tags, n_tags)), done,
                            arg, err, errlen);
    struct auth_user *u = admin_user_lookup(a, name, err, errlen);
    if (u == NULL)
        return ADMIN_NOT_FOUND;
    if (auth_user_set_tags(u, tags, n_tags) < 0)
        return admin_fail(err, errlen, ADMIN_NOMEM, "out of memory");
    enum admin_result r = admin_store_user(a, u, err, errlen);
    return r == ADMIN_OK ? admin_done(a, done, arg, err, errlen) : r;
}

enum admin_result
admin_user_set_password(struct admin *a, const char *name, const char *password, admin_done_fn done,
                        void *arg, char *err, size_t errlen)
{
    if (admin_replicated(a)) {
        char b64[AUTH_HASH_B64_MAX] = "";
        enum auth_hash_alg alg = a->hash_alg;
        if (password != NULL && auth_password_hash(a->env.auth, password, b64, &alg) < 0)
            return admin_fail(err, errlen, ADMIN_NOMEM, "cannot hash the password (see the log)");
        return admin_submit(a, 'w', json_pack("[s, s, s]", name, b64, auth_hash_alg_name(alg)),
                            done, arg, err, errlen);
    }
    struct auth_user *u = admin_user_lookup(a, name, err, errlen);
    if (u == NULL)
        return ADMIN_NOT_FOUND;
    if ((password != NULL && auth_db_hash_now(a->env.auth) < 0) ||
        auth_user_set_password(a->env.auth, u, password) < 0)
        return admin_fail(err, errlen, ADMIN_NOMEM, "cannot hash the password (see the log)");
    enum admin_result r = admin_store_user(a, u, err, errlen);
    return r == ADMIN_OK ? admin_done(a, done, arg, err, errlen) : r;
}

static enum admin_result
admin_bad_user_limit(const char *limit, char *err, size_t errlen)
{
    return admin_fail(err, errlen, ADMIN_INVALID,
                      "unknown user limit '%s' (max-connections, max-channels)", limit);
}

enum admin_result
admin_user_set_limit(struct admin *a, const char *name, const char *limit, int64_t value,
                     admin_done_fn done, void *arg, char *err, size_t errlen)
{
    bool known = strcmp(limit, "max-connections") == 0 || strcmp(limit, "max-channels") == 0;
    if (admin_replicated(a)) /* the name is checked before the user, that needs state */
        return known ? admin_submit(a, 'l', json_pack("[s, s, I]", name, limit, (json_int_t)value),
                                    done, arg, err, errlen)
                     : admin_bad_user_limit(limit, err, errlen);
    struct auth_user *u = admin_user_lookup(a, name, err, errlen);
    if (u == NULL)
        return ADMIN_NOT_FOUND;
    if (!known)
        return admin_bad_user_limit(limit, err, errlen);
    struct auth_user_limits *l = auth_user_limits(u);
    int64_t *dst = strcmp(limit, "max-connections") == 0 ? &l->max_connections : &l->max_channels;
    *dst = value < 0 ? AUTH_NO_LIMIT : value;
    enum admin_result r = admin_store_user(a, u, err, errlen);
    return r == ADMIN_OK ? admin_done(a, done, arg, err, errlen) : r;
}

enum admin_result
admin_vhost_put(struct admin *a, const struct admin_vhost *v, admin_done_fn done, void *arg,
                char *err, size_t errlen)
{
    json_t *e =
        json_pack("{s:s, s:s?, s:o?, s:s?}", "name", v->name, "description", v->description, "tags",
                  admin_tags_json(v->tags, v->n_tags), "default_queue_type", v->default_queue_type);
    bool existed = admin_vhost_get(a, v->name) != NULL;
    if (admin_replicated(a)) /* the apply logs the addition */
        return admin_change(a, "vhosts", e, done, arg, err, errlen);
    enum admin_result r = admin_change(a, "vhosts", e, done, arg, err, errlen);
    if (r == ADMIN_OK && !existed)
        log_msg(LOG_INFO, "added vhost '%s'", v->name);
    return r;
}

enum admin_result
admin_vhost_delete(struct admin *a, const char *name, admin_done_fn done, void *arg, char *err,
                   size_t errlen)
{
    if (admin_replicated(a))
        return admin_submit(a, 'd', json_pack("[s]", name), done, arg, err, errlen);
    struct vhost *v = admin_vhost_get(a, name);
    if (v == NULL)
        return admin_fail(err, errlen, ADMIN_NOT_FOUND, "no vhost '%s'", name);
    char text[STORE_NAME_MAX + 32];
    snprintf(text, sizeof(text), "vhost '%s' is deleted", name);
    if (a->net != NULL)
        net_server_close_vhost(a->net, v, text);
    auth_perm_clear_vhost(a->env.auth, name);
    static const enum store_key_tag per_vhost[] = {STORE_TAG_PERMISSION, STORE_TAG_TOPIC_PERMISSION,
                                                   STORE_TAG_POLICY, STORE_TAG_PARAMETER};
    for (size_t i = 0; i < sizeof(per_vhost) / sizeof(per_vhost[0]); i++)
        admin_erase_prefix(a, per_vhost[i], name);
    for (int k = 0; k < 2; k++) {
        /* Its policies and parameters: their in-memory keys start with its name. */
        const char *key;
        json_t *val;
        void *tmp;
        size_t nl = strlen(name);
        json_object_foreach_safe(a->stored[k], tmp, key, val)
        {
            if (strncmp(key, name, nl) == 0 && key[nl] == '\x1f')
                json_object_del(a->stored[k], key);
        }
    }
    admin_erase(a, STORE_TAG_VHOST, &name, 1);
    log_msg(LOG_INFO, "deleting vhost '%s'", name);
    vhost_delete(a->env.vhosts, v);
    return admin_done(a, done, arg, err, errlen);
}

enum admin_result
admin_vhost_set_limit(struct admin *a, const char *name, const char *limit, int64_t value,
                      admin_done_fn done, void *arg, char *err, size_t errlen)
{
    if (admin_replicated(a)) {
        if (strcmp(limit, "max-connections") != 0 && strcmp(limit, "max-queues") != 0)
            return admin_fail(err, errlen, ADMIN_INVALID,
                              "vhost '%s': unknown limit '%s' (max-connections, max-queues)", name,
                              limit);
        return admin_submit(a, 'm', json_pack("[s, s, I]", name, limit, (json_int_t)value), done,
                            arg, err, errlen);
    }
    struct vhost *v = admin_vhost_get(a, name);
    if (v == NULL)
        return admin_fail(err, errlen, ADMIN_NOT_FOUND, "no vhost '%s'", name);
    json_t *obj = json_pack("{s:I}", limit, (json_int_t)value);
    if (obj == NULL)
        return admin_fail(err, errlen, ADMIN_NOMEM, "out of memory");
    enum admin_result r = admin_vhost_limits(v, obj, false, err, errlen);
    json_decref(obj);
    if (r == ADMIN_OK)
        r = admin_store_vhost(a, v, err, errlen);
    return r == ADMIN_OK ? admin_done(a, done, arg, err, errlen) : r;
}

enum admin_result
admin_perm_set(struct admin *a, const char *user, const char *vhost, const char *configure,
               const char *write, const char *read, admin_done_fn done, void *arg, char *err,
               size_t errlen)
{
    json_t *e = json_pack("{s:s, s:s, s:s, s:s, s:s}", "user", user, "vhost", vhost, "configure",
                          configure, "write", write, "read", read);
    return admin_change(a, "permissions", e, done, arg, err, errlen);
}

enum admin_result
admin_perm_clear(struct admin *a, const char *user, const char *vhost, admin_done_fn done,
                 void *arg, char *err, size_t errlen)
{
    if (admin_replicated(a))
        return admin_submit(a, 'c', json_pack("[s, s]", user, vhost), done, arg, err, errlen);
    struct auth_user *u = admin_user_lookup(a, user, err, errlen);
    if (u == NULL)
        return ADMIN_NOT_FOUND;
    if (!auth_perm_clear(a->env.auth, u, vhost))
        return admin_fail(err, errlen, ADMIN_NOT_FOUND, "no permissions of user '%s' on vhost '%s'",
                          user, vhost);
    const char *names[2] = {vhost, user};
    admin_erase(a, STORE_TAG_PERMISSION, names, 2);
    return admin_done(a, done, arg, err, errlen);
}

enum admin_result
admin_topic_perm_set(struct admin *a, const char *user, const char *vhost, const char *exchange,
                     const char *write, const char *read, admin_done_fn done, void *arg, char *err,
                     size_t errlen)
{
    json_t *e = json_pack("{s:s, s:s, s:s, s:s, s:s}", "user", user, "vhost", vhost, "exchange",
                          exchange, "write", write, "read", read);
    return admin_change(a, "topic_permissions", e, done, arg, err, errlen);
}

enum admin_result
admin_topic_perm_clear(struct admin *a, const char *user, const char *vhost, const char *exchange,
                       admin_done_fn done, void *arg, char *err, size_t errlen)
{
    if (admin_replicated(a))
        return admin_submit(a, 'x', json_pack("[s, s, s?]", user, vhost, exchange), done, arg, err,
                            errlen);
    struct auth_user *u = admin_user_lookup(a, user, err, errlen);
    if (u == NULL)
        return ADMIN_NOT_FOUND;
    if (!auth_topic_perm_clear(a->env.auth, u, vhost, exchange))
        return admin_fail(err, errlen, ADMIN_NOT_FOUND,
                          "no topic permissions of user '%s' on vhost '%s'", user, vhost);
    if (exchange != NULL) {
        const char *names[3] = {vhost, user, exchange};
        admin_erase(a, STORE_TAG_TOPIC_PERMISSION, names, 3);
    } else {
        uint8_t key[STORE_KEY_NAMES_MAX];
        const char *names[2] = {vhost, user};
        size_t klen = store_key_names(key, STORE_TAG_TOPIC_PERMISSION, names, 2);
        durable_record_delete_prefix(a->env.durable, key, klen);
    }
    return admin_done(a, done, arg, err, errlen);
}

/* ---- listings ---- */

static void
admin_list_user(void *arg, struct auth_user *u)
{
    json_t **arr = arg;
    if (*arr != NULL && json_array_append_new(*arr, admin_user_json(u)) < 0) {
        json_decref(*arr);
        *arr = NULL;
    }
}

json_t *
admin_users_json(struct admin *a)
{
    json_t *arr = json_array();
    if (arr != NULL)
        auth_user_foreach(a->env.auth, admin_list_user, &arr);
    return arr;
}

json_t *
admin_vhosts_json(struct admin *a)
{
    json_t *arr = json_array();
    for (struct vhost *v = a->env.vhosts->head; arr != NULL && v != NULL; v = v->next)
        if (json_array_append_new(arr, admin_vhost_json(v)) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    return arr;
}

struct admin_list {
    json_t *arr;
    const struct auth_user *u;
};

static void
admin_list_perm(void *arg, const char *vhost, const struct auth_perm *p)
{
    struct admin_list *l = arg;
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:s}", "user", auth_user_name(l->u), "vhost", vhost,
                  "configure", auth_perm_pattern(p, AUTH_CONFIGURE), "write",
                  auth_perm_pattern(p, AUTH_WRITE), "read", auth_perm_pattern(p, AUTH_READ));
    if (l->arr != NULL && json_array_append_new(l->arr, o) < 0) {
        json_decref(l->arr);
        l->arr = NULL;
    }
}

static void
admin_list_user_perms(void *arg, struct auth_user *u)
{
    struct admin_list *l = arg;
    l->u = u;
    auth_perm_foreach(u, admin_list_perm, l);
}

json_t *
admin_permissions_json(struct admin *a)
{
    struct admin_list l = {json_array(), NULL};
    if (l.arr != NULL)
        auth_user_foreach(a->env.auth, admin_list_user_perms, &l);
    return l.arr;
}

static void
admin_list_topic(void *arg, const char *vhost, const char *exchange, const char *write,
                 const char *read)
{
    struct admin_list *l = arg;
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "user", auth_user_name(l->u), "vhost", vhost,
                          "exchange", exchange, "write", write, "read", read);
    if (l->arr != NULL && json_array_append_new(l->arr, o) < 0) {
        json_decref(l->arr);
        l->arr = NULL;
    }
}

static void
admin_list_user_topics(void *arg, struct auth_user *u)
{
    struct admin_list *l = arg;
    l->u = u;
    auth_topic_perm_foreach(u, admin_list_topic, l);
}

json_t *
admin_topic_permissions_json(struct admin *a)
{
    struct admin_list l = {json_array(), NULL};
    if (l.arr != NULL)
        auth_user_foreach(a->env.auth, admin_list_user_topics, &l);
    return l.arr;
}

json_t *
admin_stored_json(struct admin *a, const char *kind)
{
    for (int i = 0; i < 3; i++) {
        if (strcmp(kind, admin_stored_kinds[i]) != 0)
            continue;
        json_t *arr = json_array();
        const char *key;
        json_t *val;
        json_object_foreach(a->stored[i], key, val)
        {
            if (arr != NULL && json_array_append(arr, val) < 0) {
                json_decref(arr);
                arr = NULL;
            }
        }
        return arr;
    }
    return NULL;
}
