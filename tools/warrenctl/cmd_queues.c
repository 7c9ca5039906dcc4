/* warrenctl's queue commands, rabbitmqctl's: list_queues over GET /api/queues/{vhost} (the
 * default columns name and messages, or any of rabbitmqctl 3.10's info keys), purge_queue
 * (DELETE .../contents) and delete_queue (DELETE with if-empty / if-unused).
 *
 * Info keys for figures Warren does not keep (a queue process's pid and memory, RAM and disk
 * counters, mirrors) print empty, as rabbitmqctl prints a key a classic queue does not
 * have. Beyond rabbitmqctl 3.10, which lists policy only, operator_policy and
 * effective_policy_definition (the policy's definition merged with the operator policy's)
 * show what policies do to a queue. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "ctl.h"

static void
ctl_queues_banner(const struct ctl *c)
{
    ctl_banner(c, "Timeout: %d.0 seconds ...\nListing queues for vhost %s ...", c->timeout_s,
               c->vhost);
}

/* Keys the API has no figure for: "" (what rabbitmqctl prints for a key without a value). */
static const char *const ctl_queue_absent[] = {
    "pid",
    "owner_pid",
    "exclusive_consumer_pid",
    "exclusive_consumer_tag",
    "messages_ready_ram",
    "messages_unacknowledged_ram",
    "messages_ram",
    "messages_persistent",
    "message_bytes",
    "message_bytes_ready",
    "message_bytes_unacknowledged",
    "message_bytes_ram",
    "message_bytes_persistent",
    "head_message_timestamp",
    "disk_reads",
    "disk_writes",
    "consumer_utilisation",
    "consumer_capacity",
    "memory",
    "slave_pids",
    "synchronised_slave_pids",
    "leader",
    "members",
    "online",
    "policy",
};

/* arg: the vhost's consumers (a JSON array) when exclusive_consumer_* was asked for, else
 * NULL. */
static void
ctl_fix_queue(json_t *row, void *arg)
{
    const char *name = json_string_value(json_object_get(row, "name"));
    const char *type = json_string_value(json_object_get(row, "type"));
    const json_t *node = json_object_get(row, "node");
    size_t i;
    json_t *e;
    if (type != NULL && strcmp(type, "quorum") == 0) {
        /* rabbitmqctl leaves exclusive empty for quorum queues, which cannot be; a single
         * node (the API names no leader then) leads them and is their one member */
        json_object_del(row, "exclusive");
        if (json_is_string(node) && json_object_get(row, "leader") == NULL) {
            json_object_set(row, "leader", (json_t *)node);
            json_object_set_new(row, "members", json_pack("[O]", node));
            json_object_set_new(row, "online", json_pack("[O]", node));
        }
    }
    json_array_foreach((json_t *)arg, i, e)
    {
        const char *q = json_string_value(json_object_get(json_object_get(e, "queue"), "name"));
        if (name != NULL && q != NULL && strcmp(q, name) == 0 &&
            json_is_true(json_object_get(e, "exclusive"))) {
            json_object_set(row, "exclusive_consumer_pid",
                            json_object_get(json_object_get(e, "channel_details"), "name"));
            json_object_set(row, "exclusive_consumer_tag", json_object_get(e, "consumer_tag"));
        }
    }
    for (i = 0; i < sizeof(ctl_queue_absent) / sizeof(ctl_queue_absent[0]); i++) {
        const json_t *v = json_object_get(row, ctl_queue_absent[i]);
        if (v == NULL || json_is_null(v))
            json_object_set_new(row, ctl_queue_absent[i], json_string(""));
    }
}

int
ctl_cmd_list_queues(struct ctl *c, int argc, char **argv)
{
    static const char *const keys[] = {
        "name",
        "durable",
        "auto_delete",
        "arguments",
        "policy",
        "pid",
        "owner_pid",
        "exclusive",
        "exclusive_consumer_pid",
        "exclusive_consumer_tag",
        "messages_ready",
        "messages_unacknowledged",
        "messages",
        "messages_ready_ram",
        "messages_unacknowledged_ram",
        "messages_ram",
        "messages_persistent",
        "message_bytes",
        "message_bytes_ready",
        "message_bytes_unacknowledged",
        "message_bytes_ram",
        "message_bytes_persistent",
        "head_message_timestamp",
        "disk_reads",
        "disk_writes",
        "consumers",
        "consumer_utilisation",
        "consumer_capacity",
        "memory",
        "slave_pids",
        "synchronised_slave_pids",
        "state",
        "type",
        "leader",
        "members",
        "online",
        /* Warren's */
        "messages_dlx",
        "message_bytes_dlx",
        "operator_policy",
        "effective_policy_definition",
    };
    static const char *const dflt[] = {"name", "messages"};
    static const struct ctl_list_spec s = {
        keys, sizeof(keys) / sizeof(keys[0]), dflt, 2, ctl_queues_banner, ctl_fix_queue, "name",
        NULL};
    char path[1024];
    json_t *consumers = NULL;
    int rc;
    bool want_consumers = argc == 0 && c->all_columns;
    for (int i = 0; i < argc; i++)
        want_consumers |= strncmp(argv[i], "exclusive_consumer_", 19) == 0;
    if (want_consumers) {
        if (ctl_path(path, sizeof(path), "consumers/", c->vhost, NULL) < 0)
            return CTL_EX_USAGE;
        rc = ctl_get_json(c, path, &consumers);
        if (rc < 0)
            return -rc;
    }
    if (ctl_path(path, sizeof(path), "queues/", c->vhost, NULL) < 0)
        rc = CTL_EX_USAGE;
    else
        rc = ctl_list(c, argc, argv, path, &s, consumers);
    json_decref(consumers);
    return rc;
}

int
ctl_cmd_purge_queue(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    char path[1024];
    struct ctl_reply r;
    ctl_banner(c, "Purging queue '%s' in vhost '%s' ...", argv[0], c->vhost);
    if (ctl_path(path, sizeof(path), "queues/", c->vhost, argv[0]) < 0 ||
        strlen(path) + sizeof("/contents") > sizeof(path))
        return CTL_EX_USAGE;
    strcat(path, "/contents");
    if (ctl_http(c, "DELETE", path, NULL, 0, NULL, &r) < 0)
        return CTL_EX_UNAVAILABLE;
    if (r.status == 404) { /* the queue or its vhost */
        ctl_reply_free(&r);
        return ctl_error(CTL_EX_UNAVAILABLE, "not_found");
    }
    return ctl_status_result(&r);
}

/* The API's refusal of a conditional delete, in rabbitmqctl's words (exit 64, as its). */
static int
ctl_delete_refused(struct ctl_reply *r)
{
    json_t *j = ctl_reply_json(r);
    const char *reason = json_string_value(json_object_get(j, "reason"));
    int rc;
    if (reason != NULL && strstr(reason, "not empty") != NULL)
        rc = ctl_error(CTL_EX_USAGE, "Queue is not empty");
    else if (reason != NULL && strstr(reason, "in use") != NULL)
        rc = ctl_error(CTL_EX_USAGE, "Queue is in use");
    else
        rc = ctl_error_reply(r);
    json_decref(j);
    ctl_reply_free(r);
    return rc;
}

int
ctl_cmd_delete_queue(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    char path[1100];
    struct ctl_reply r;
    json_t *q;
    ctl_banner(c, "Deleting queue '%s' on vhost '%s'%s%s%s ...", argv[0], c->vhost,
               c->if_empty ? " if queue is empty" : "", c->if_empty && c->if_unused ? " and" : "",
               c->if_unused ? " if queue is unused" : "");
    if (ctl_path(path, sizeof(path) - 40, "queues/", c->vhost, argv[0]) < 0)
        return CTL_EX_USAGE;
    /* the ready messages it had, for the report (rabbitmqctl's come from the delete) */
    int rc = ctl_get_json(c, path, &q);
    if (rc == 404)
        return ctl_error(CTL_EX_USAGE, "Queue not found");
    if (rc != 0)
        return -rc;
    json_int_t ready = json_integer_value(json_object_get(q, "messages_ready"));
    json_decref(q);
    if (c->if_empty || c->if_unused)
        snprintf(path + strlen(path), 40, "?if-empty=%s&if-unused=%s",
                 c->if_empty ? "true" : "false", c->if_unused ? "true" : "false");
    if (ctl_http(c, "DELETE", path, NULL, 0, NULL, &r) < 0)
        return CTL_EX_UNAVAILABLE;
    if (r.status == 404) { /* deleted meanwhile */
        ctl_reply_free(&r);
        return ctl_error(CTL_EX_USAGE, "Queue not found");
    }
    if (r.status == 400)
        return ctl_delete_refused(&r);
    /* the result, even with -q or -s, as rabbitmqctl */
    if ((rc = ctl_status_result(&r)) == CTL_OK)
        printf(c->formatter == CTL_FMT_JSON
                   ? "{\"message\":\"Queue was successfully deleted with %" JSON_INTEGER_FORMAT
                     " ready messages\"}\n"
                   : "Queue was successfully deleted with %" JSON_INTEGER_FORMAT
                     " ready messages\n",
               ready);
    return rc;
}
