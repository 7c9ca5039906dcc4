/* warrenctl's quorum queue membership commands, rabbitmq-queues' (3.12+), over the API's
 * replica routes (RabbitMQ's management paths):
 *   add_member <queue> <node>     POST   /api/queues/quorum/{vhost}/{queue}/replicas/add
 *   delete_member <queue> <node>  DELETE /api/queues/quorum/{vhost}/{queue}/replicas/delete
 *                                 both with {"node": node}; 204, else the API's reason
 *   grow <node> <all|even>        POST   /api/queues/quorum/replicas/on/{node}/grow
 *   shrink <node>                 DELETE /api/queues/quorum/replicas/on/{node}/shrink
 *                                 each a JSON array, one {vhost, name, size, result} per queue
 *                                 acted on, printed as rabbitmq-queues' table.
 * A queue that failed in grow or shrink is a row whose result starts with "error", not a failed
 * command: rabbitmq-queues exits 0 then too. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "ctl.h"

/* add_member and delete_member: method on queues/quorum/{vhost}/{argv[0]}/replicas/{action}
 * with {"node": argv[1]}. Returns the exit code, after printing the API's reason on an error. */
static int
ctl_member_change(struct ctl *c, const char *method, const char *action, char **argv)
{
    char path[1100];
    struct ctl_reply r;
    /* room kept for "/replicas/delete" */
    if (ctl_path(path, sizeof(path) - 32, "queues/quorum/", c->vhost, argv[0]) < 0)
        return CTL_EX_USAGE;
    snprintf(path + strlen(path), 32, "/replicas/%s", action);
    json_t *body = json_pack("{s:s}", "node", argv[1]);
    if (body == NULL)
        return ctl_error(CTL_EX_SOFTWARE, "out of memory");
    int rc = ctl_http_json(c, method, path, body, &r);
    json_decref(body);
    if (rc < 0)
        return CTL_EX_UNAVAILABLE;
    rc = ctl_status_result(&r);
    return rc == CTL_OK ? ctl_out_ok(c) : rc;
}

int
ctl_cmd_add_member(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    ctl_banner(c, "Adding a member for queue %s on node %s...", argv[0], argv[1]);
    return ctl_member_change(c, "POST", "add", argv);
}

int
ctl_cmd_delete_member(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    ctl_banner(c, "Removing a replica of queue %s on node %s...", argv[0], argv[1]);
    return ctl_member_change(c, "DELETE", "delete", argv);
}

/* Whether a grow or shrink row reports a failure ("error: <text>"). */
static bool
ctl_member_row_failed(const json_t *row)
{
    const char *res = json_string_value(json_object_get(row, "result"));
    return res != NULL && strncmp(res, "error", 5) == 0;
}

/* grow and shrink: method on queues/quorum/replicas/on/{node}/{action} with body (may be
 * NULL), then the reply's rows (all, or with --errors-only the failed ones) as a table sorted
 * by vhost and queue name, so that runs compare. Returns the exit code. */
static int
ctl_member_batch(struct ctl *c, const char *method, const char *node, const char *action,
                 json_t *body)
{
    char path[1100];
    struct ctl_reply r;
    /* room kept for "/shrink" */
    if (ctl_path(path, sizeof(path) - 16, "queues/quorum/replicas/on/", node, NULL) < 0)
        return CTL_EX_USAGE;
    snprintf(path + strlen(path), 16, "/%s", action);
    if (ctl_http_json(c, method, path, body, &r) < 0)
        return CTL_EX_UNAVAILABLE;
    if (r.status != 200)
        return ctl_status_result(&r);
    json_t *rows = ctl_reply_json(&r);
    ctl_reply_free(&r);
    if (!json_is_array(rows)) {
        json_decref(rows);
        return ctl_error(CTL_EX_UNAVAILABLE, "the broker's reply to %s /api/%s is not a JSON array",
                         method, path);
    }
    for (size_t i = json_array_size(rows); c->errors_only && i-- > 0;)
        if (!ctl_member_row_failed(json_array_get(rows, i)))
            json_array_remove(rows, i);
    int rc = ctl_rows_sort(rows, "vhost", "name");
    static const char *const cols[] = {"vhost", "name", "size", "result"};
    if (rc == CTL_OK)
        ctl_out_table(c, cols, sizeof(cols) / sizeof(cols[0]), rows);
    json_decref(rows);
    return rc;
}

int
ctl_cmd_grow(struct ctl *c, int argc, char **argv)
{
    const char *strategy = argv[1];
    if (strcmp(strategy, "all") != 0 && strcmp(strategy, "even") != 0) {
        char why[256];
        snprintf(why, sizeof(why), "strategy '%s' is not recognised.", strategy);
        return ctl_usage_error(c->cmd, why, argc, argv);
    }
    ctl_banner(c, "Growing %s quorum queues on %s...", strategy, argv[0]);
    json_t *body = json_pack("{s:s, s:s, s:s}", "strategy", strategy, "vhost_pattern",
                             c->vhost_pattern != NULL ? c->vhost_pattern : ".*", "queue_pattern",
                             c->queue_pattern != NULL ? c->queue_pattern : ".*");
    if (body == NULL)
        return ctl_error(CTL_EX_SOFTWARE, "out of memory");
    int rc = ctl_member_batch(c, "POST", argv[0], "grow", body);
    json_decref(body);
    return rc;
}

int
ctl_cmd_shrink(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    ctl_banner(c, "Shrinking quorum queues on %s...", argv[0]);
    return ctl_member_batch(c, "DELETE", argv[0], "shrink", NULL);
}
