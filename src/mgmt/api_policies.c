/* The policy routes of the HTTP API, with RabbitMQ 3.10's JSON, status codes and errors
 * (rabbit_mgmt_wm_policies.erl, rabbit_mgmt_wm_policy.erl and their operator-policies
 * twins): GET /api/policies[/{vhost}] lists, lowest priority first; GET, PUT and DELETE
 * /api/policies/{vhost}/{name} read, set ({pattern, definition, priority, apply-to}: 201
 * made, 204 replaced) and clear one. The same under /api/operator-policies. Who may do what
 * is the route table's (api.c). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "mgmt_int.h"
#include "warren/admin.h"

/* RabbitMQ's reasons go through rabbit_mgmt_format:escape_html_tags: <, > and & escaped. */
static void
api_policy_bad_request(struct mgmt_req *r, const char *reason)
{
    size_t n = 0;
    char *esc = malloc(strlen(reason) * 5 + 1);
    if (esc == NULL) {
        mgmt_nomem(r);
        return;
    }
    for (const char *s = reason; *s != '\0'; s++) {
        const char *rep = *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : *s == '&' ? "&amp;" : NULL;
        if (rep != NULL) {
            memcpy(esc + n, rep, strlen(rep));
            n += strlen(rep);
        } else {
            esc[n++] = *s;
        }
    }
    esc[n] = '\0';
    mgmt_bad_request(r, esc);
    free(esc);
}

/* GET of a list: every visible vhost's, or one vhost's (404 when it does not exist). */
static void
api_policies_list(struct mgmt_req *r, bool op)
{
    const char *vhost = r->n_segs > 1 ? r->segs[1] : NULL;
    if (vhost != NULL && (mgmt_vhost_find(r, vhost) == NULL || !mgmt_vhost_visible(r, vhost))) {
        mgmt_not_found(r);
        return;
    }
    json_t *arr = admin_policies_json(r->env->admin, op, vhost);
    /* A management user sees its own vhosts' only (rabbit_mgmt_util:filter_vhost). */
    size_t i = 0;
    while (arr != NULL && i < json_array_size(arr)) {
        const char *v = json_string_value(json_object_get(json_array_get(arr, i), "vhost"));
        if (mgmt_vhost_visible(r, v))
            i++;
        else
            json_array_remove(arr, i);
    }
    static const char *const sorts[] = {"priority", NULL}; /* rabbit_mgmt_wm_policies */
    mgmt_list_reply(r, arr, sorts, false);
}

void
mgmt_api_policies(struct mgmt_req *r)
{
    bool op = strcmp(r->segs[0], "operator-policies") == 0;
    if (r->n_segs < 3) {
        api_policies_list(r, op);
        return;
    }
    const char *vhost = r->segs[1], *name = r->segs[2];
    bool vhost_exists = mgmt_vhost_find(r, vhost) != NULL;
    json_t *cur = vhost_exists ? admin_policy_json(r->env->admin, op, vhost, name) : json_null();
    if (cur == NULL) {
        mgmt_nomem(r);
        return;
    }
    bool exists = !json_is_null(cur);
    char err[1024] = "";
    if (r->method == MGMT_GET || r->method == MGMT_DELETE) {
        if (!exists) {
            json_decref(cur);
            mgmt_not_found(r);
        } else if (r->method == MGMT_GET) {
            r->reply(r, 200, cur);
        } else {
            json_decref(cur);
            r->ok_status = 204;
            mgmt_changed(r,
                         admin_policy_delete(r->env->admin, op, vhost, name, mgmt_on_durable, r,
                                             err, sizeof(err)),
                         err);
        }
        return;
    }
    json_decref(cur);
    if (!vhost_exists) {
        mgmt_reply_error(r, 404, "not_found", "vhost_not_found");
        return;
    }
    json_t *body = mgmt_body(r);
    if (body == NULL)
        return;
    static const char *const required[] = {"pattern", "definition"};
    char missing[64];
    if (mgmt_keys_missing(body, required, 2, missing, sizeof(missing))) {
        mgmt_bad_request(r, missing);
    } else {
        r->ok_status = exists ? 204 : 201;
        enum admin_result res = admin_policy_put(r->env->admin, op, vhost, name, body,
                                                 mgmt_on_durable, r, err, sizeof(err));
        if (res == ADMIN_INVALID)
            api_policy_bad_request(r, err);
        else
            mgmt_changed(r, res, err);
    }
    json_decref(body);
}
