/* warrenctl list_queues, rabbitmqctl's, over GET /api/queues/{vhost}: the default columns
 * name and messages, or those asked for among the ones the API gives. Beyond rabbitmqctl
 * 3.10, which lists policy only, operator_policy and effective_policy_definition (the
 * policy's definition merged with the operator policy's) show what policies do to a queue. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "ctl.h"

int
ctl_cmd_list_queues(struct ctl *c, int argc, char **argv)
{
    static const char *const keys[] = {
        "name",
        "durable",
        "auto_delete",
        "exclusive",
        "arguments",
        "type",
        "state",
        "messages",
        "messages_ready",
        "messages_unacknowledged",
        "consumers",
        "policy",
        "operator_policy",
        "effective_policy_definition",
    };
    static const char *const dflt[] = {"name", "messages"};
    int rc = ctl_check_columns(c->cmd, keys, sizeof(keys) / sizeof(keys[0]), argc, argv);
    if (rc != 0)
        return rc;
    ctl_banner(c, "Timeout: %d.0 seconds ...\nListing queues for vhost %s ...", c->timeout_s,
               c->vhost);
    char path[1024];
    json_t *rows, *row;
    size_t i;
    if (ctl_path(path, sizeof(path), "queues/", c->vhost, NULL) < 0)
        return CTL_EX_USAGE;
    rc = ctl_get_json(c, path, &rows);
    if (rc == 404)
        return CTL_OK; /* rabbitmqctl lists nothing for a vhost that does not exist */
    if (rc != 0)
        return -rc;
    json_array_foreach(rows, i, row)
    {
        /* rabbitmqctl leaves exclusive empty for quorum queues, which cannot be */
        const char *type = json_string_value(json_object_get(row, "type"));
        if (type != NULL && strcmp(type, "quorum") == 0)
            json_object_del(row, "exclusive");
    }
    if ((rc = ctl_rows_sort(rows, "name", NULL)) == 0)
        ctl_out_table(c, argc > 0 ? (const char *const *)argv : dflt, argc > 0 ? (size_t)argc : 2,
                      rows);
    json_decref(rows);
    return rc;
}
