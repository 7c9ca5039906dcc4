/* The runtime parameter routes of the HTTP API, as RabbitMQ 3.10 answers them
 * (rabbit_mgmt_wm_parameters.erl, _parameter.erl, _global_parameters.erl,
 * _global_parameter.erl, _cluster_name.erl):
 *   GET /api/parameters[/{component}[/{vhost}]], GET/PUT/DELETE
 *   /api/parameters/{component}/{vhost}/{name}: the parameters kept (imported from
 *   definitions), vhost limits (component "vhost-limits", name "limits") and operator
 *   policies (component "operator_policy"). Warren has no other component (no federation,
 *   no shovel), so a PUT of another answers as RabbitMQ does for a plugin not enabled: 400
 *   "Validation failed\n\ncomponent X not found\n".
 *   GET /api/global-parameters, GET/PUT/DELETE /api/global-parameters/{name}: kept and
 *   exported; cluster_name is the one that applies.
 *   GET/PUT /api/cluster-name: {"name"}, the global parameter cluster_name (the node's name
 *   while it is not set).
 * Who may do what is the route table's (api.c). */
#include "config.h"

#include <string.h>

#include "mgmt_int.h"
#include "warren/admin.h"
#include "warren/net.h"

/* The vhost limits of every visible vhost as parameters: {value, vhost, component, name}. A
 * new array; NULL on ENOMEM. */
static json_t *
api_limit_params(struct mgmt_req *r)
{
    json_t *vhosts = admin_vhosts_json(r->env->admin), *arr = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(vhosts, i, v)
    {
        json_t *lim = json_object_get(v, "limits");
        const char *name = json_string_value(json_object_get(v, "name"));
        if (arr == NULL || !json_is_object(lim) || json_object_size(lim) == 0 || name == NULL)
            continue;
        if (json_array_append_new(arr,
                                  json_pack("{s:O, s:s, s:s, s:s}", "value", lim, "vhost", name,
                                            "component", "vhost-limits", "name", "limits")) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    json_decref(vhosts);
    return arr;
}

/* The parameters r may see: of component and vhost when they are not NULL. A new array;
 * NULL on ENOMEM. */
static json_t *
api_params(struct mgmt_req *r, const char *component, const char *vhost)
{
    json_t *arr = admin_stored_json(r->env->admin, "parameters");
    json_t *lim = api_limit_params(r);
    if (arr == NULL || lim == NULL || json_array_extend(arr, lim) < 0) {
        json_decref(arr);
        json_decref(lim);
        return NULL;
    }
    json_decref(lim);
    size_t i = 0;
    while (i < json_array_size(arr)) {
        json_t *e = json_array_get(arr, i);
        const char *c = json_string_value(json_object_get(e, "component"));
        const char *v = json_string_value(json_object_get(e, "vhost"));
        if (c != NULL && v != NULL && mgmt_vhost_visible(r, v) &&
            (component == NULL || strcmp(c, component) == 0) &&
            (vhost == NULL || strcmp(v, vhost) == 0))
            i++;
        else
            json_array_remove(arr, i);
    }
    return arr;
}

/* PUT of a parameter: the components Warren has. */
static void
api_param_put(struct mgmt_req *r, const char *component, const char *vhost, const char *name,
              bool exists)
{
    json_t *body = mgmt_body(r);
    if (body == NULL)
        return;
    static const char *const required[] = {"value"};
    char missing[64], err[1024] = "";
    json_t *value = json_object_get(body, "value");
    r->ok_status = exists ? 204 : 201;
    if (mgmt_keys_missing(body, required, 1, missing, sizeof(missing))) {
        mgmt_bad_request(r, missing);
    } else if (strcmp(component, "operator_policy") == 0) {
        enum admin_result res = admin_policy_put(r->env->admin, true, vhost, name, value,
                                                 mgmt_on_durable, r, err, sizeof(err));
        if (res == ADMIN_INVALID)
            mgmt_bad_request(r, err);
        else
            mgmt_changed(r, res, err);
    } else if (strcmp(component, "vhost-limits") == 0 && json_is_null(value)) {
        /* null would clear them (a definitions file may say so): a PUT sets, DELETE clears */
        mgmt_bad_request(r, "Validation failed\n\nlimits not a list null\n");
    } else if (strcmp(component, "vhost-limits") == 0 && strcmp(name, "limits") == 0) {
        json_t *rec = json_pack("{s:s, s:s, s:s, s:O}", "vhost", vhost, "component", component,
                                "name", name, "value", value);
        mgmt_changed(r,
                     admin_record_put(r->env->admin, "parameters", rec, mgmt_on_durable, r, err,
                                      sizeof(err)),
                     err);
        json_decref(rec);
    } else if (strcmp(component, "vhost-limits") == 0) {
        mgmt_bad_request(r, "Validation failed\n\nvhost-limits are named limits\n");
    } else {
        snprintf(err, sizeof(err), "Validation failed\n\ncomponent %s not found\n", component);
        mgmt_bad_request(r, err);
    }
    json_decref(body);
}

/* DELETE of an existing parameter. */
static void
api_param_delete(struct mgmt_req *r, const char *component, const char *vhost, const char *name)
{
    char err[1024] = "";
    enum admin_result res;
    r->ok_status = 204;
    if (strcmp(component, "operator_policy") == 0) {
        res = admin_policy_delete(r->env->admin, true, vhost, name, mgmt_on_durable, r, err,
                                  sizeof(err));
    } else if (strcmp(component, "vhost-limits") == 0) {
        json_t *rec = json_pack("{s:s, s:s, s:s, s:{}}", "vhost", vhost, "component", component,
                                "name", name, "value");
        res = admin_record_put(r->env->admin, "parameters", rec, mgmt_on_durable, r, err,
                               sizeof(err));
        json_decref(rec);
    } else {
        const char *names[] = {vhost, component, name};
        res = admin_stored_delete(r->env->admin, "parameters", names, 3, mgmt_on_durable, r, err,
                                  sizeof(err));
    }
    mgmt_changed(r, res, err);
}

void
mgmt_api_parameters(struct mgmt_req *r)
{
    const char *component = r->n_segs > 1 ? r->segs[1] : NULL;
    const char *vhost = r->n_segs > 2 ? r->segs[2] : NULL;
    if (vhost != NULL && mgmt_vhost_find(r, vhost) == NULL) {
        if (r->method == MGMT_PUT)
            mgmt_reply_error(r, 404, "not_found", "vhost_not_found");
        else
            mgmt_not_found(r);
        return;
    }
    json_t *arr = api_params(r, component, vhost);
    if (r->n_segs < 4) {
        static const char *const sorts[] = {"vhost", "component", "name", NULL};
        mgmt_list_reply(r, arr, sorts, false);
        return;
    }
    if (arr == NULL) {
        mgmt_nomem(r);
        return;
    }
    const char *name = r->segs[3];
    json_t *cur = NULL;
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "name")), name) == 0)
            cur = e;
    }
    if (r->method == MGMT_PUT)
        api_param_put(r, component, vhost, name, cur != NULL);
    else if (cur == NULL)
        mgmt_not_found(r);
    else if (r->method == MGMT_GET)
        r->reply(r, 200, json_incref(cur));
    else
        api_param_delete(r, component, vhost, name);
    json_decref(arr);
}

void
mgmt_api_global_parameters(struct mgmt_req *r)
{
    struct admin *a = r->env->admin;
    if (r->n_segs == 1) {
        static const char *const sorts[] = {"name", NULL};
        mgmt_list_reply(r, admin_stored_json(a, "global_parameters"), sorts, false);
        return;
    }
    const char *name = r->segs[1];
    json_t *cur = admin_stored_get(a, "global_parameters", &name, 1);
    char err[1024] = "";
    if (r->method == MGMT_GET) {
        if (cur == NULL)
            mgmt_not_found(r);
        else
            r->reply(r, 200, json_incref(cur));
        return;
    }
    r->ok_status = cur != NULL ? 204 : 201;
    if (r->method == MGMT_DELETE) {
        r->ok_status = 204;
        if (cur == NULL)
            mgmt_not_found(r);
        else
            mgmt_changed(r,
                         admin_stored_delete(a, "global_parameters", &name, 1, mgmt_on_durable, r,
                                             err, sizeof(err)),
                         err);
        return;
    }
    json_t *body = mgmt_body(r);
    if (body == NULL)
        return;
    static const char *const required[] = {"value"};
    char missing[64];
    if (mgmt_keys_missing(body, required, 1, missing, sizeof(missing))) {
        mgmt_bad_request(r, missing);
    } else {
        /* The path names it, whatever name the body gives (as RabbitMQ). */
        json_t *rec =
            json_pack("{s:s, s:O}", "name", name, "value", json_object_get(body, "value"));
        mgmt_changed(
            r, admin_record_put(a, "global_parameters", rec, mgmt_on_durable, r, err, sizeof(err)),
            err);
        json_decref(rec);
    }
    json_decref(body);
}

void
mgmt_cluster_name(const struct mgmt_env *env, char *buf, size_t cap)
{
    const char *name = admin_cluster_name(env->admin);
    if (name != NULL)
        snprintf(buf, cap, "%s", name);
    else
        net_default_cluster_name(env->conf, buf, cap);
}

void
mgmt_api_cluster_name(struct mgmt_req *r)
{
    if (r->method == MGMT_GET) {
        char name[300];
        mgmt_cluster_name(r->env, name, sizeof(name));
        mgmt_reply_json(r, json_pack("{s:s}", "name", name));
        return;
    }
    json_t *body = mgmt_body(r);
    if (body == NULL)
        return;
    static const char *const required[] = {"name"};
    char missing[64], err[1024] = "";
    json_t *name = json_object_get(body, "name");
    if (mgmt_keys_missing(body, required, 1, missing, sizeof(missing))) {
        mgmt_bad_request(r, missing);
    } else if (!json_is_string(name) || json_string_length(name) == 0) {
        mgmt_bad_request(r, "the cluster name must be a non-empty string");
    } else {
        r->ok_status = 204; /* RabbitMQ: 204 whether it was set before or not */
        json_t *rec = json_pack("{s:s, s:O}", "name", "cluster_name", "value", name);
        mgmt_changed(r,
                     admin_record_put(r->env->admin, "global_parameters", rec, mgmt_on_durable, r,
                                      err, sizeof(err)),
                     err);
        json_decref(rec);
    }
    json_decref(body);
}
