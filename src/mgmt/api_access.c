/* Users, vhosts, permissions and limits over the HTTP API, as RabbitMQ 3.10's management
 * plugin has them (rabbit_mgmt_wm_user(s).erl, _vhost(s).erl, _permission(s).erl,
 * _limit(s).erl): listings built from warren/admin.h's JSON, changes through its functions,
 * answered once durable (201 created, 204 updated). Administrator only, but for the vhosts a
 * management user may see and vhost limits, which monitoring users read too. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgmt_int.h"
#include "warren/admin.h"
#include "warren/auth.h"
#include "warren/vhost.h"

/* A string field: NULL when absent; *bad when present and not a string. */
static const char *
api_str(json_t *o, const char *key, bool *bad)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v))
        return NULL;
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
        *bad = true;
        return NULL;
    }
    return json_string_value(v);
}

#define API_TAGS_MAX 32

/* Tags as a list of strings or a comma-separated string (RabbitMQ takes both), into
 * tags[] (pointing into o or buf). Returns the count, or -1 for a bad value. */
static int
api_tags(json_t *o, const char **tags, char *buf, size_t buflen)
{
    json_t *v = json_object_get(o, "tags");
    if (v == NULL || json_is_null(v))
        return 0;
    int n = 0;
    if (json_is_array(v)) {
        size_t i;
        json_t *t;
        json_array_foreach(v, i, t)
        {
            if (!json_is_string(t) || n == API_TAGS_MAX)
                return -1;
            tags[n++] = json_string_value(t);
        }
        return n;
    }
    if (!json_is_string(v) || json_string_length(v) >= buflen)
        return -1;
    memcpy(buf, json_string_value(v), json_string_length(v) + 1);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t != NULL;
         t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        size_t l = strlen(t);
        while (l > 0 && t[l - 1] == ' ')
            t[--l] = '\0';
        if (*t == '\0')
            continue;
        if (n == API_TAGS_MAX)
            return -1;
        tags[n++] = t;
    }
    return n;
}

/* Keeps the entries of arr (taken) whose field key equals value (and, when key2 is not
 * NULL, whose key2 equals value2). Returns a new array, NULL on ENOMEM. */
json_t *
mgmt_filter(json_t *arr, const char *key, const char *value, const char *key2, const char *value2)
{
    json_t *out = json_array();
    size_t i;
    json_t *e;
    if (arr == NULL || out == NULL) {
        json_decref(arr);
        json_decref(out);
        return NULL;
    }
    json_array_foreach(arr, i, e)
    {
        const char *v = json_string_value(json_object_get(e, key));
        const char *v2 = key2 != NULL ? json_string_value(json_object_get(e, key2)) : NULL;
        if (v != NULL && strcmp(v, value) == 0 &&
            (key2 == NULL || (v2 != NULL && strcmp(v2, value2) == 0)))
            json_array_append(out, e);
    }
    json_decref(arr);
    return out;
}

/* ---- users ---- */

/* admin_users_json with every password hashed (one set in the configuration waits for the
 * first login otherwise) and without Warren's own fields. */
json_t *
mgmt_users_json(struct mgmt_req *r)
{
    auth_db_hash_now(r->env->auth);
    json_t *arr = admin_users_json(r->env->admin);
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) json_object_del(e, "warren_password_from_config");
    return arr;
}

void
mgmt_api_users_list(struct mgmt_req *r)
{
    mgmt_list_reply(r, mgmt_users_json(r), NULL, false);
}

void
mgmt_api_user(struct mgmt_req *r)
{
    const char *name = r->segs[1];
    char err[300] = "";
    enum admin_result res;
    bool exists = auth_user_get(r->env->auth, name) != NULL;
    if (r->method == MGMT_GET) {
        json_t *arr = mgmt_filter(mgmt_users_json(r), "name", name, NULL, NULL);
        if (arr == NULL)
            mgmt_nomem(r);
        else if (json_array_size(arr) == 0)
            mgmt_not_found(r);
        else
            r->reply(r, 200, json_incref(json_array_get(arr, 0)));
        json_decref(arr);
        return;
    }
    if (r->method == MGMT_DELETE) {
        if (!exists) {
            mgmt_not_found(r);
            return;
        }
        r->ok_status = 204;
        res = admin_user_delete(r->env->admin, name, mgmt_on_durable, r, err, sizeof(err));
        mgmt_changed(r, res, err);
        return;
    }
    json_t *body = mgmt_body(r);
    if (body == NULL)
        return;
    bool bad = false;
    struct admin_user u = {.name = name};
    const char *tags[API_TAGS_MAX];
    char tagbuf[1024];
    int n_tags = api_tags(body, tags, tagbuf, sizeof(tagbuf));
    if (json_object_get(body, "tags") == NULL) {
        mgmt_bad_request(r, "tags_not_present"); /* RabbitMQ 3.10 requires them */
        goto out;
    }
    u.password = api_str(body, "password", &bad);
    u.password_hash = api_str(body, "password_hash", &bad);
    const char *alg = api_str(body, "hashing_algorithm", &bad);
    if (bad || n_tags < 0) {
        mgmt_bad_request(r, n_tags < 0 ? "tags must be a list of strings or a comma-separated "
                                         "string"
                                       : "password, password_hash and hashing_algorithm must "
                                         "be strings");
        goto out;
    }
    if (u.password != NULL && u.password_hash != NULL) {
        mgmt_bad_request(r, "password and password_hash cannot both be set");
        goto out;
    }
    if (alg != NULL && auth_hash_alg_parse(alg, &u.hashing_algorithm) < 0) {
        mgmt_bad_request(r, "unknown hashing_algorithm");
        goto out;
    }
    u.tags = tags;
    u.n_tags = (size_t)n_tags;
    r->ok_status = exists ? 204 : 201;
    res = admin_user_put(r->env->admin, &u, mgmt_on_durable, r, err, sizeof(err));
    mgmt_changed(r, res, err);
out:
    json_decref(body);
}

/* GET /api/users/{user}/permissions and .../topic-permissions. */
void
mgmt_api_user_perms(struct mgmt_req *r)
{
    if (auth_user_get(r->env->auth, r->segs[1]) == NULL) {
        mgmt_not_found(r);
        return;
    }
    json_t *all = strcmp(r->segs[2], "permissions") == 0
                      ? admin_permissions_json(r->env->admin)
                      : admin_topic_permissions_json(r->env->admin);
    mgmt_reply_json(r, mgmt_filter(all, "user", r->segs[1], NULL, NULL));
}

static json_t *
api_limits_list(json_t *arr, const char *key)
{
    json_t *out = json_array();
    size_t i;
    json_t *e;
    if (arr == NULL || out == NULL) {
        json_decref(arr);
        json_decref(out);
        return NULL;
    }
    json_array_foreach(arr, i, e)
    {
        json_t *l = json_object_get(e, "limits");
        if (json_object_size(l) > 0)
            json_array_append_new(
                out, json_pack("{s:O, s:O}", key, json_object_get(e, "name"), "value", l));
    }
    json_decref(arr);
    return out;
}

/* GET /api/user-limits[/{user}], PUT and DELETE /api/user-limits/{user}/{name} and
 * /api/vhost-limits/{vhost}/{name}. */
void
mgmt_api_user_limits(struct mgmt_req *r)
{
    bool users = strcmp(r->segs[0], "user-limits") == 0;
    if (r->method == MGMT_GET) {
        json_t *arr = mgmt_users_json(r);
        if (r->n_segs > 1) {
            if (auth_user_get(r->env->auth, r->segs[1]) == NULL) {
                json_decref(arr);
                mgmt_not_found(r);
                return;
            }
            arr = mgmt_filter(arr, "name", r->segs[1], NULL, NULL);
        }
        mgmt_reply_json(r, api_limits_list(arr, "user"));
        return;
    }
    int64_t value = -1;
    if (r->method == MGMT_PUT) {
        json_t *body = mgmt_body(r);
        if (body == NULL)
            return;
        json_t *v = json_object_get(body, "value");
        const char *name = r->segs[2];
        bool known = strcmp(name, "max-connections") == 0 ||
                     strcmp(name, users ? "max-channels" : "max-queues") == 0;
        char reason[600];
        if (json_is_integer(v) && known) {
            value = json_integer_value(v);
            reason[0] = '\0';
        } else if (!known) {
            char *val = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            snprintf(reason, sizeof(reason),
                     "Validation failed\n\nUnrecognised terms [{<<\"%.200s\">>,%.200s}] in "
                     "limits\n",
                     name, val != NULL ? val : "undefined");
            free(val);
        } else {
            /* RabbitMQ's words; a string, even "7", is not a number. */
            char *val = json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            snprintf(reason, sizeof(reason),
                     "Validation failed\n\n%s should be a number, actually was %s%.200s%s\n", name,
                     json_is_string(v) ? "<<\"" : "",
                     json_is_string(v) ? json_string_value(v)
                     : val != NULL     ? val
                                       : "undefined",
                     json_is_string(v) ? "\">>" : "");
            free(val);
        }
        json_decref(body);
        if (reason[0] != '\0') {
            mgmt_bad_request(r, reason);
            return;
        }
    } else if (users && auth_user_get(r->env->auth, r->segs[1]) == NULL) {
        mgmt_not_found(r);
        return;
    }
    char err[300] = "";
    r->ok_status = 204;
    enum admin_result res =
        users ? admin_user_set_limit(r->env->admin, r->segs[1], r->segs[2], value, mgmt_on_durable,
                                     r, err, sizeof(err))
              : admin_vhost_set_limit(r->env->admin, r->segs[1], r->segs[2], value, mgmt_on_durable,
                                      r, err, sizeof(err));
    mgmt_changed(r, res, err);
}

/* GET /api/vhost-limits[/{vhost}] (PUT and DELETE share mgmt_api_user_limits). */
void
mgmt_api_vhost_limits(struct mgmt_req *r)
{
    if (r->method != MGMT_GET) {
        if (r->method == MGMT_DELETE && mgmt_vhost_find(r, r->segs[1]) == NULL) {
            mgmt_not_found(r);
            return;
        }
        mgmt_api_user_limits(r);
        return;
    }
    json_t *arr = admin_vhosts_json(r->env->admin);
    if (r->n_segs > 1) {
        if (mgmt_vhost_find(r, r->segs[1]) == NULL) {
            json_decref(arr);
            mgmt_not_found(r);
            return;
        }
        arr = mgmt_filter(arr, "name", r->segs[1], NULL, NULL);
    }
    /* A management user sees its own vhosts' limits only. */
    size_t i = 0;
    while (arr != NULL && i < json_array_size(arr)) {
        const char *name = json_string_value(json_object_get(json_array_get(arr, i), "name"));
        if (name != NULL && mgmt_vhost_visible(r, name))
            i++;
        else
            json_array_remove(arr, i);
    }
    mgmt_reply_json(r, api_limits_list(arr, "vhost"));
}

/* ---- vhosts ---- */

/* A definitions vhost entry as /api/vhosts shows it to r: the metadata also at the top level. */
static json_t *
api_vhost_entry(const struct mgmt_req *r, json_t *e)
{
    json_t *meta = json_object_get(e, "metadata");
    json_t *desc = json_object_get(meta, "description");
    json_t *tags = json_object_get(meta, "tags");
    json_t *dqt = json_object_get(meta, "default_queue_type");
    json_object_set(e, "description", desc != NULL ? desc : json_string(""));
    json_object_set(e, "tags", tags != NULL ? tags : json_array());
    json_object_set_new(e, "default_queue_type",
                        dqt != NULL ? json_incref(dqt) : json_string("undefined"));
    json_object_set_new(e, "tracing", json_false());
    json_object_set_new(e, "cluster_state", json_pack("{s:s}", mgmt_node_name(r->env), "running"));
    json_object_del(e, "limits");
    return e;
}

void
mgmt_api_vhosts_list(struct mgmt_req *r)
{
    json_t *arr = admin_vhosts_json(r->env->admin);
    json_t *out = json_array();
    size_t i;
    json_t *e;
    if (arr == NULL || out == NULL) {
        json_decref(arr);
        json_decref(out);
        mgmt_nomem(r);
        return;
    }
    json_array_foreach(arr, i, e)
    {
        const char *name = json_string_value(json_object_get(e, "name"));
        if (name != NULL && mgmt_vhost_visible(r, name))
            json_array_append(out, api_vhost_entry(r, e));
    }
    json_decref(arr);
    mgmt_list_reply(r, out, NULL, true);
}

void
mgmt_api_vhost_one(struct mgmt_req *r)
{
    const char *name = r->segs[1];
    bool exists = mgmt_vhost_find(r, name) != NULL;
    char err[300] = "";
    enum admin_result res;
    if (r->method == MGMT_GET) {
        if (!exists || !mgmt_vhost_visible(r, name)) {
            mgmt_not_found(r);
            return;
        }
        json_t *arr = mgmt_filter(admin_vhosts_json(r->env->admin), "name", name, NULL, NULL);
        if (arr == NULL || json_array_size(arr) == 0)
            mgmt_nomem(r);
        else
            r->reply(r, 200, json_incref(api_vhost_entry(r, json_array_get(arr, 0))));
        json_decref(arr);
        return;
    }
    if (r->method == MGMT_DELETE) {
        if (!exists) {
            mgmt_not_found(r);
            return;
        }
        r->ok_status = 204;
        res = admin_vhost_delete(r->env->admin, name, mgmt_on_durable, r, err, sizeof(err));
        mgmt_changed(r, res, err);
        return;
    }
    json_t *body = mgmt_body(r);
    if (body == NULL)
        return;
    bool bad = false;
    const char *tags[API_TAGS_MAX];
    char tagbuf[1024];
    int n_tags = api_tags(body, tags, tagbuf, sizeof(tagbuf));
    struct admin_vhost v = {.name = name,
                            .description = api_str(body, "description", &bad),
                            .default_queue_type = api_str(body, "default_queue_type", &bad),
                            .tags = tags,
                            .n_tags = n_tags > 0 ? (size_t)n_tags : 0};
    if (bad || n_tags < 0) {
        mgmt_bad_request(r, "description and default_queue_type must be strings, tags a list "
                            "or a comma-separated string");
    } else {
        r->ok_status = exists ? 204 : 201;
        res = admin_vhost_put(r->env->admin, &v, mgmt_on_durable, r, err, sizeof(err));
        mgmt_changed(r, res, err);
    }
    json_decref(body);
}

/* GET /api/vhosts/{vhost}/permissions and .../topic-permissions. */
void
mgmt_api_vhost_perms(struct mgmt_req *r)
{
    if (mgmt_vhost_find(r, r->segs[1]) == NULL) {
        mgmt_not_found(r);
        return;
    }
    json_t *all = strcmp(r->segs[2], "permissions") == 0
                      ? admin_permissions_json(r->env->admin)
                      : admin_topic_permissions_json(r->env->admin);
    mgmt_reply_json(r, mgmt_filter(all, "vhost", r->segs[1], NULL, NULL));
}

/* ---- permissions ---- */

void
mgmt_api_perms_list(struct mgmt_req *r)
{
    mgmt_list_reply(r,
                    strcmp(r->segs[0], "permissions") == 0
                        ? admin_permissions_json(r->env->admin)
                        : admin_topic_permissions_json(r->env->admin),
                    NULL, false);
}

/* /api/permissions/{vhost}/{user} and /api/topic-permissions/{vhost}/{user}. */
void
mgmt_api_perm(struct mgmt_req *r)
{
    const char *vhost = r->segs[1], *user = r->segs[2];
    bool topic = strcmp(r->segs[0], "topic-permissions") == 0;
    struct auth_user *u = auth_user_get(r->env->auth, user);
    char err[300] = "";
    enum admin_result res;
    json_t *cur = NULL;
    if (u != NULL && mgmt_vhost_find(r, vhost) != NULL)
        cur = mgmt_filter(topic ? admin_topic_permissions_json(r->env->admin)
                                : admin_permissions_json(r->env->admin),
                          "vhost", vhost, "user", user);
    bool exists = json_array_size(cur) > 0;
    if (r->method == MGMT_PUT && topic && exists) {
        /* A topic permission is one per exchange: PUT replaces that exchange's. */
        json_t *body = mgmt_body(r);
        const char *x = body != NULL ? json_string_value(json_object_get(body, "exchange")) : NULL;
        json_t *same = x != NULL ? mgmt_filter(json_incref(cur), "exchange", x, NULL, NULL) : NULL;
        exists = json_array_size(same) > 0;
        json_decref(same);
        json_decref(body);
    }
    if (r->method == MGMT_GET) {
        if (!exists)
            mgmt_not_found(r);
        else
            r->reply(r, 200, topic ? json_incref(cur) : json_incref(json_array_get(cur, 0)));
        json_decref(cur);
        return;
    }
    json_decref(cur);
    if (r->method == MGMT_DELETE) {
        if (!exists) {
            mgmt_not_found(r);
            return;
        }
        r->ok_status = 204;
        res = topic ? admin_topic_perm_clear(r->env->admin, user, vhost, NULL, mgmt_on_durable, r,
                                             err, sizeof(err))
                    : admin_perm_clear(r->env->admin, user, vhost, mgmt_on_durable, r, err,
                                       sizeof(err));
        mgmt_changed(r, res, err);
        return;
    }
    json_t *body = mgmt_body(r);
    if (body == NULL)
        return;
    bool bad = false;
    const char *configure = api_str(body, "configure", &bad);
    const char *write = api_str(body, "write", &bad);
    const char *read = api_str(body, "read", &bad);
    const char *exchange = api_str(body, "exchange", &bad);
    const char *const keys[] = {topic ? "exchange" : "configure", "write", "read"};
    char missing[200];
    if (mgmt_keys_missing(body, keys, 3, missing, sizeof(missing))) {
        mgmt_bad_request(r, missing);
    } else if (bad || (topic ? exchange : configure) == NULL || write == NULL || read == NULL) {
        mgmt_bad_request(r, topic ? "exchange, write and read must be strings"
                                  : "configure, write and read must be strings");
    } else if (u == NULL || mgmt_vhost_find(r, vhost) == NULL) {
        mgmt_bad_request(r, "vhost_or_user_not_found");
    } else {
        r->ok_status = exists ? 204 : 201;
        res = topic ? admin_topic_perm_set(r->env->admin, user, vhost, exchange, write, read,
                                           mgmt_on_durable, r, err, sizeof(err))
                    : admin_perm_set(r->env->admin, user, vhost, configure, write, read,
                                     mgmt_on_durable, r, err, sizeof(err));
        mgmt_changed(r, res, err);
    }
    json_decref(body);
}
