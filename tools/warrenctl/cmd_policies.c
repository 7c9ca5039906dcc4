/* warrenctl's policy commands, rabbitmqctl's: set_policy, clear_policy, list_policies and
 * their operator-policy twins, over /api/policies and /api/operator-policies. The broker
 * validates; its reason, RabbitMQ's "Validation failed" text, is printed as rabbitmqctl
 * prints it (the API escapes <, > and & in it as RabbitMQ's does: unescaped here). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* "policies/" or "operator-policies/". */
static const char *
ctl_pol_prefix(bool op)
{
    return op ? "operator-policies/" : "policies/";
}

/* Prints the broker's refusal of a change: its reason unescaped, exit 69. */
static int
ctl_pol_refused(struct ctl_reply *r)
{
    json_t *j = ctl_reply_json(r);
    const char *reason = json_string_value(json_object_get(j, "reason"));
    int rc = CTL_EX_UNAVAILABLE;
    if (reason == NULL) {
        rc = ctl_error_reply(r);
    } else {
        char *text = strdup(reason), *w = text;
        static const char *const ent[][2] = {{"&lt;", "<"}, {"&gt;", ">"}, {"&amp;", "&"}};
        for (const char *s = reason; text != NULL && *s != '\0';) {
            size_t k = 0;
            while (k < 3 && strncmp(s, ent[k][0], strlen(ent[k][0])) != 0)
                k++;
            if (k < 3) {
                *w++ = ent[k][1][0];
                s += strlen(ent[k][0]);
            } else {
                *w++ = *s++;
            }
        }
        if (text != NULL)
            *w = '\0';
        ctl_error(rc, "%s", text != NULL ? text : reason);
        free(text);
    }
    json_decref(j);
    ctl_reply_free(r);
    return rc;
}

static int
ctl_pol_set(struct ctl *c, bool op, char **argv)
{
    const char *name = argv[0], *pattern = argv[1], *definition = argv[2];
    const char *prio = c->priority != NULL ? c->priority : "0";
    char *end;
    long long priority = strtoll(prio, &end, 10);
    if (end == prio || *end != '\0') {
        /* rabbitmqctl's option parser refuses it before the banner */
        char why[300];
        snprintf(why, sizeof(why), "Invalid options for this command:\n--priority : %s", prio);
        return ctl_usage_error(c->cmd, why, 3, argv);
    }
    ctl_banner(c,
               "Setting %s \"%s\" for pattern \"%s\" to \"%s\" with priority \"%s\" for vhost "
               "\"%s\" ...",
               op ? "operator policy override" : "policy", name, pattern, definition, prio,
               c->vhost);
    json_t *def = json_loads(definition, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
    if (def == NULL)
        return ctl_error(CTL_EX_UNAVAILABLE, "JSON decoding error. Reason: badarg");
    json_t *body =
        json_pack("{s:s, s:o, s:I, s:s}", "pattern", pattern, "definition", def, "priority",
                  (json_int_t)priority, "apply-to", c->apply_to != NULL ? c->apply_to : "all");
    char path[1024];
    struct ctl_reply r;
    int rc = ctl_path(path, sizeof(path), ctl_pol_prefix(op), c->vhost, name);
    if (rc == 0)
        rc = ctl_http_json(c, "PUT", path, body, &r);
    json_decref(body);
    if (rc < 0)
        return CTL_EX_UNAVAILABLE;
    if (r.status == 404) {
        ctl_reply_free(&r);
        return ctl_no_vhost_65(c->vhost);
    }
    if (r.status >= 200 && r.status < 300) {
        ctl_reply_free(&r);
        return CTL_OK;
    }
    return ctl_pol_refused(&r);
}

static int
ctl_pol_clear(struct ctl *c, bool op, const char *name)
{
    ctl_banner(c, "Clearing %s \"%s\" on vhost \"%s\" ...", op ? "operator policy" : "policy", name,
               c->vhost);
    char path[1024];
    struct ctl_reply r;
    if (ctl_path(path, sizeof(path), ctl_pol_prefix(op), c->vhost, name) < 0)
        return CTL_EX_USAGE;
    if (ctl_http(c, "DELETE", path, NULL, 0, NULL, &r) < 0)
        return CTL_EX_UNAVAILABLE;
    if (r.status == 404) {
        ctl_reply_free(&r);
        return ctl_error(CTL_EX_UNAVAILABLE, "Parameter does not exist");
    }
    return ctl_status_result(&r);
}

static int
ctl_pol_list(struct ctl *c, bool op)
{
    static const char *const cols[] = {"vhost",    "name",       "pattern",
                                       "apply-to", "definition", "priority"};
    ctl_banner(c, "Listing %s for vhost \"%s\" ...", op ? "operator policy overrides" : "policies",
               c->vhost);
    char path[1024];
    json_t *rows, *row;
    size_t i;
    if (ctl_path(path, sizeof(path), ctl_pol_prefix(op), c->vhost, NULL) < 0)
        return CTL_EX_USAGE;
    int rc = ctl_get_json(c, path, &rows);
    if (rc == 404)
        return ctl_no_vhost_65(c->vhost);
    if (rc != 0)
        return -rc;
    /* rabbitmqctl prints a definition as its JSON, keys sorted; the broker's order (lowest
     * priority first) is rabbitmqctl's. */
    json_array_foreach(rows, i, row)
    {
        char *def = json_dumps(json_object_get(row, "definition"), JSON_COMPACT | JSON_SORT_KEYS);
        if (def == NULL) {
            json_decref(rows);
            return ctl_error(CTL_EX_SOFTWARE, "out of memory");
        }
        json_object_set_new(row, "definition", json_string(def));
        free(def);
    }
    ctl_out_table(c, cols, 6, rows);
    json_decref(rows);
    return CTL_OK;
}

int
ctl_cmd_set_policy(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    return ctl_pol_set(c, false, argv);
}

int
ctl_cmd_clear_policy(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    return ctl_pol_clear(c, false, argv[0]);
}

int
ctl_cmd_list_policies(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return ctl_pol_list(c, false);
}

int
ctl_cmd_set_operator_policy(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    return ctl_pol_set(c, true, argv);
}

int
ctl_cmd_clear_operator_policy(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    return ctl_pol_clear(c, true, argv[0]);
}

int
ctl_cmd_list_operator_policies(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return ctl_pol_list(c, true);
}
