/* Policies and operator policies as records (warren/admin.h): validated as RabbitMQ 3.10
 * validates them, then handed to the broker (warren/policy.h), which applies them, and kept
 * as JSON for listings and exports.
 *
 * A policy's record is the definitions' entry {vhost, name, pattern, apply-to, priority,
 * definition}. An operator policy is, as in RabbitMQ, a runtime parameter of component
 * "operator_policy" whose value is {pattern, apply-to, priority, definition}: the
 * definitions carry them under "parameters". RabbitMQ 3.10 exports an operator policy's
 * definition as a list of [key, value] pairs, which it cannot import back; both forms are
 * read here, and the object form, which every version imports, is written.
 *
 * Validation is policy_check.c's. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_int.h"
#include "warren/log.h"
#include "warren/policy.h"
#include "warren/queue.h"
#include "warren/store.h"
#include "warren/vhost.h"

/* ---- records ---- */

/* The names a policy's record is stored and keyed under (vhost, name), or an operator
 * policy's, a parameter's (vhost, "operator_policy", name), into names. Returns their
 * count. */
static size_t
admin_pol_names(const char *names[3], bool op, const char *vhost, const char *name)
{
    names[0] = vhost;
    names[1] = op ? "operator_policy" : name;
    names[2] = name;
    return op ? 3 : 2;
}

/* The in-memory key of a policy or operator policy, as admin.c keys stored records. */
static void
admin_pol_key_of(char *key, size_t cap, bool op, const char *vhost, const char *name)
{
    const char *names[3];
    admin_stored_key(key, cap, names, admin_pol_names(names, op, vhost, name));
}

/* A definition as RabbitMQ keeps it, a map: an object with its keys in Erlang's order
 * (bytewise), so that listings and effective definitions print as RabbitMQ's do. RabbitMQ
 * 3.10's export of operator policies writes [[key, value]...]: read as the same object. A
 * new reference; def itself when it is neither form (for validation to name it). */
static json_t *
admin_pol_def_object(json_t *def)
{
    json_t *o = json_object(), *pair;
    size_t i, n = 0;
    if (o == NULL || !(json_is_object(def) || (json_is_array(def) && json_array_size(def) > 0)))
        goto as_is;
    json_array_foreach(def, i, pair)
    {
        json_t *k = json_array_get(pair, 0);
        if (json_array_size(pair) != 2 || !json_is_string(k))
            goto as_is;
        json_object_set(o, json_string_value(k), json_array_get(pair, 1));
    }
    json_t *src = json_is_object(def) ? def : o;
    const char **keys = admin_sorted_keys(src, &n);
    json_t *sorted = json_object();
    if (sorted == NULL || (n > 0 && keys == NULL)) {
        free(keys);
        json_decref(sorted);
        goto as_is;
    }
    for (i = 0; i < n; i++)
        json_object_set(sorted, keys[i], json_object_get(src, keys[i]));
    free(keys);
    json_decref(o);
    return sorted;
as_is:
    json_decref(o);
    return json_incref(def);
}

/* The value of a policy's record e (op: an operator policy's) with its definition as
 * RabbitMQ keeps it, checked (policy_check.c): ADMIN_OK with *copy (a new reference) and the
 * check's outputs (see admin_policy_check), else ADMIN_INVALID or ADMIN_NOMEM with err set.
 * Needs no state: a cluster's node checks a policy before submitting it. */
static enum admin_result
admin_pol_checked(bool op, json_t *e, const char *name, json_t **copy, pcre2_code **re,
                  struct policy_def *d, enum policy_apply_to *apply_to, double *priority, char *err,
                  size_t errlen)
{
    json_t *val = op ? json_object_get(e, "value") : e;
    if (!json_is_object(val))
        return admin_fail(err, errlen, ADMIN_INVALID, "Validation failed\n\n%s not a list\n", name);
    json_t *def = admin_pol_def_object(json_object_get(val, "definition"));
    *copy = json_deep_copy(val);
    if (*copy == NULL || (def != NULL && json_object_set(*copy, "definition", def) < 0)) {
        json_decref(def);
        json_decref(*copy);
        return admin_fail(err, errlen, ADMIN_NOMEM, "out of memory");
    }
    json_decref(def);
    struct admin_buf b = {err, errlen, 0};
    if (!admin_policy_check(*copy, op, op, name, &b, re, d, apply_to, priority)) {
        json_decref(*copy);
        return ADMIN_INVALID;
    }
    return ADMIN_OK;
}

enum admin_result
admin_policy_apply(struct admin *a, bool op, json_t *e, bool store, char *err, size_t errlen)
{
    const char *what = op ? "operator policy" : "policy";
    const char *vhost = admin_get_name(e, "vhost", what, err, errlen);
    const char *name = vhost != NULL ? admin_get_name(e, "name", what, err, errlen) : NULL;
    if (name == NULL)
        return ADMIN_INVALID;
    struct vhost *v = admin_vhost_get(a, vhost);
    if (v == NULL)
        return admin_fail(err, errlen, ADMIN_NOT_FOUND, "%s: no vhost '%s'", what, vhost);
    json_t *copy;
    pcre2_code *re;
    struct policy_def d;
    enum policy_apply_to apply_to;
    double priority;
    enum admin_result cr =
        admin_pol_checked(op, e, name, &copy, &re, &d, &apply_to, &priority, err, errlen);
    if (cr != ADMIN_OK)
        return cr;
    static const char *const apply_names[] = {"all", "queues", "exchanges"};
    json_t *prio = json_object_get(copy, "priority");
    json_t *value =
        json_pack("{s:O, s:O, s:s, s:o}", "pattern", json_object_get(copy, "pattern"), "definition",
                  json_object_get(copy, "definition"), "apply-to", apply_names[apply_to],
                  "priority", prio != NULL ? json_incref(prio) : json_integer(0));
    json_decref(copy);
    json_t *rec = value == NULL ? NULL
                  : op          ? json_pack("{s:s, s:s, s:s, s:o}", "vhost", vhost, "component",
                                            "operator_policy", "name", name, "value", value)
                                : json_incref(value);
    if (rec != NULL && !op &&
        (json_object_set_new(rec, "vhost", json_string(vhost)) < 0 ||
         json_object_set_new(rec, "name", json_string(name)) < 0)) {
        json_decref(rec);
        rec = NULL;
    }
    if (!op)
        json_decref(value);
    char key[3 * (STORE_NAME_MAX + 1)];
    admin_pol_key_of(key, sizeof(key), op, vhost, name);
    json_t *stored = a->stored[op ? 1 : 0];
    json_t *old = json_incref(json_object_get(stored, key));
    if (rec == NULL || json_object_set(stored, key, rec) < 0) {
        pcre2_code_free(re);
        policy_def_free(&d);
        json_decref(rec);
        json_decref(old);
        return admin_fail(err, errlen, ADMIN_NOMEM, "out of memory");
    }
    if (policy_set(v, op ? POLICY_OPERATOR : POLICY_USER, name, re, apply_to, priority, &d) < 0) {
        /* The broker kept what it had: so does the listing (replacing a key's value or
         * deleting it allocates nothing). */
        if (old != NULL)
            json_object_set(stored, key, old);
        else
            json_object_del(stored, key);
        json_decref(old);
        json_decref(rec);
        return admin_fail(err, errlen, ADMIN_NOMEM, "out of memory");
    }
    json_decref(old);
    enum admin_result r = ADMIN_OK;
    if (store) {
        const char *names[3];
        size_t n = admin_pol_names(names, op, vhost, name);
        r = admin_write(a, op ? STORE_TAG_PARAMETER : STORE_TAG_POLICY, names, n, rec, err, errlen);
        log_msg(LOG_INFO, "set %s '%s' in vhost '%s'", what, name, vhost);
    }
    json_decref(rec);
    return r;
}

enum admin_result
admin_policy_put(struct admin *a, bool op, const char *vhost, const char *name, json_t *body,
                 admin_done_fn done, void *arg, char *err, size_t errlen)
{
    if (!admin_replicated(a) && admin_vhost_get(a, vhost) == NULL)
        return admin_fail(err, errlen, ADMIN_NOT_FOUND, "no vhost '%s'", vhost);
    /* rabbit_policy:set's defaults: priority 0, apply-to all */
    json_t *prio = json_object_get(body, "priority"), *at = json_object_get(body, "apply-to");
    json_t *val = json_pack("{s:O?, s:O?, s:o, s:o}", "pattern", json_object_get(body, "pattern"),
                            "definition", json_object_get(body, "definition"), "priority",
                            prio != NULL ? json_incref(prio) : json_integer(0), "apply-to",
                            at != NULL ? json_incref(at) : json_string("all"));
    json_t *e = val == NULL ? NULL
                : op ? json_pack("{s:s, s:s, s:o}", "vhost", vhost, "name", name, "value", val)
                     : val;
    if (e != NULL && !op &&
        (json_object_set_new(e, "vhost", json_string(vhost)) < 0 ||
         json_object_set_new(e, "name", json_string(name)) < 0)) {
        json_decref(e);
        e = NULL;
    }
    if (e == NULL)
        return admin_fail(err, errlen, ADMIN_NOMEM, "out of memory, or a name that is not UTF-8");
    if (admin_replicated(a)) {
        /* Checked here first, so that an invalid policy gets its text without the cluster;
         * the apply finds the vhost, or not, on every node. */
        json_t *copy;
        pcre2_code *re;
        struct policy_def d;
        enum policy_apply_to apply_to;
        double priority;
        enum admin_result cr =
            admin_pol_checked(op, e, name, &copy, &re, &d, &apply_to, &priority, err, errlen);
        json_decref(e);
        if (cr != ADMIN_OK)
            return cr;
        json_decref(copy);
        pcre2_code_free(re);
        policy_def_free(&d);
        return admin_submit(a, 'p', json_pack("[b, s, s, O]", op, vhost, name, body), done, arg,
                            err, errlen);
    }
    enum admin_result r = admin_policy_apply(a, op, e, true, err, errlen);
    json_decref(e);
    return r == ADMIN_OK ? admin_done(a, done, arg, err, errlen) : r;
}

enum admin_result
admin_policy_delete(struct admin *a, bool op, const char *vhost, const char *name,
                    admin_done_fn done, void *arg, char *err, size_t errlen)
{
    if (admin_replicated(a))
        return admin_submit(a, 'q', json_pack("[b, s, s]", op, vhost, name), done, arg, err,
                            errlen);
    struct vhost *v = admin_vhost_get(a, vhost);
    if (v == NULL)
        return admin_fail(err, errlen, ADMIN_NOT_FOUND, "no vhost '%s'", vhost);
    if (!policy_clear(v, op ? POLICY_OPERATOR : POLICY_USER, name))
        return admin_fail(err, errlen, ADMIN_NOT_FOUND, "no %s '%s' in vhost '%s'",
                          op ? "operator policy" : "policy", name, vhost);
    char key[3 * (STORE_NAME_MAX + 1)];
    admin_pol_key_of(key, sizeof(key), op, vhost, name);
    json_object_del(a->stored[op ? 1 : 0], key);
    const char *names[3];
    size_t n = admin_pol_names(names, op, vhost, name);
    admin_erase(a, op ? STORE_TAG_PARAMETER : STORE_TAG_POLICY, names, n);
    log_msg(LOG_INFO, "cleared %s '%s' in vhost '%s'", op ? "operator policy" : "policy", name,
            vhost);
    return admin_done(a, done, arg, err, errlen);
}

/* A policy as the HTTP API shows it: {vhost, name, pattern, apply-to, definition, priority}
 * from its record. A new reference; NULL on ENOMEM. */
static json_t *
admin_pol_entry(bool op, json_t *rec)
{
    json_t *val = op ? json_object_get(rec, "value") : rec;
    return json_pack("{s:O, s:O, s:O, s:O, s:O, s:O}", "vhost", json_object_get(rec, "vhost"),
                     "name", json_object_get(rec, "name"), "pattern",
                     json_object_get(val, "pattern"), "apply-to", json_object_get(val, "apply-to"),
                     "definition", json_object_get(val, "definition"), "priority",
                     json_object_get(val, "priority"));
}

/* RabbitMQ lists policies by priority, lowest first (rabbit_policy:sort_by_priority); equal
 * priorities by name here (see warren/policy.h). */
static int
admin_pol_cmp(const void *pa, const void *pb)
{
    json_t *a = *(json_t *const *)pa, *b = *(json_t *const *)pb;
    double x = json_number_value(json_object_get(a, "priority"));
    double y = json_number_value(json_object_get(b, "priority"));
    if (x != y)
        return x < y ? -1 : 1;
    int c = strcmp(json_string_value(json_object_get(a, "vhost")),
                   json_string_value(json_object_get(b, "vhost")));
    return c != 0 ? c
                  : strcmp(json_string_value(json_object_get(a, "name")),
                           json_string_value(json_object_get(b, "name")));
}

json_t *
admin_policies_json(struct admin *a, bool op, const char *vhost)
{
    const char *key;
    json_t *rec;
    size_t n = 0, cap = json_object_size(a->stored[op ? 1 : 0]);
    json_t **rows = calloc(cap > 0 ? cap : 1, sizeof(*rows));
    json_t *arr = rows != NULL ? json_array() : NULL;
    bool ok = arr != NULL;
    json_object_foreach(a->stored[op ? 1 : 0], key, rec)
    {
        const char *vh = json_string_value(json_object_get(rec, "vhost"));
        if (!ok || (vhost != NULL && strcmp(vh, vhost) != 0) ||
            (op &&
             strcmp(json_string_value(json_object_get(rec, "component")), "operator_policy") != 0))
            continue;
        if ((rows[n] = admin_pol_entry(op, rec)) == NULL)
            ok = false;
        else
            n++;
    }
    qsort(rows, n, sizeof(*rows), admin_pol_cmp);
    for (size_t i = 0; i < n; i++)
        if (ok && json_array_append_new(arr, rows[i]) < 0)
            ok = false;
        else if (!ok)
            json_decref(rows[i]);
    free(rows);
    if (!ok) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

json_t *
admin_policy_json(struct admin *a, bool op, const char *vhost, const char *name)
{
    char key[3 * (STORE_NAME_MAX + 1)];
    admin_pol_key_of(key, sizeof(key), op, vhost, name);
    json_t *rec = json_object_get(a->stored[op ? 1 : 0], key);
    return rec != NULL ? admin_pol_entry(op, rec) : json_null();
}

json_t *
admin_queue_policy_json(struct admin *a, const struct queue *q)
{
    const char *vhost = q->vhost->name;
    json_t *defs[2] = {NULL, NULL};
    const char *names[2] = {q->settings.policy, q->settings.operator_policy};
    for (int k = 0; k < 2; k++) {
        char key[3 * (STORE_NAME_MAX + 1)];
        if (names[k] == NULL)
            continue;
        admin_pol_key_of(key, sizeof(key), k == 1, vhost, names[k]);
        json_t *rec = json_object_get(a->stored[k], key);
        defs[k] = json_object_get(k == 1 ? json_object_get(rec, "value") : rec, "definition");
    }
    /* rabbit_policy:merge_operator_definitions: the keys of both; where both have one, the
     * lower for the numeric limits (the only keys operator policies hold), else the policy's
     * for what both may hold. */
    json_t *out = defs[0] != NULL ? json_deep_copy(defs[0]) : json_object();
    const char *key;
    json_t *ov;
    json_object_foreach(defs[1], key, ov)
    {
        json_t *pv = json_object_get(out, key);
        if (out != NULL && (pv == NULL || (json_is_number(pv) && json_is_number(ov) &&
                                           json_number_value(ov) < json_number_value(pv))))
            json_object_set(out, key, ov);
    }
    return out;
}
