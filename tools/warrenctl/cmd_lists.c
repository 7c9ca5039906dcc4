/* warrenctl's lists of AMQP objects other than queues: list_exchanges (/api/exchanges/{vhost}),
 * list_bindings (/api/bindings/{vhost}), list_channels (/api/channels) and list_consumers
 * (/api/consumers/{vhost}), with rabbitmqctl 3.10's banners, columns and defaults. The API's
 * rows carry the management plugin's names; each list renames them to rabbitmqctl's info
 * keys (source -> source_name, ...). Warren has no Erlang pids: a channel's pid is its name,
 * as a connection's is in list_connections. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "ctl.h"

int
ctl_list(struct ctl *c, int argc, char **argv, const char *path, const struct ctl_list_spec *s,
         void *arg)
{
    json_t *rows, *row;
    size_t i;
    int rc = ctl_check_columns(c->cmd, s->keys, s->nkeys, argc, argv);
    if (rc != 0)
        return rc;
    if (s->banner != NULL)
        s->banner(c);
    rc = ctl_get_json(c, path, &rows);
    if (rc == 404)
        return CTL_OK; /* rabbitmqctl lists nothing for a vhost that does not exist */
    if (rc != 0)
        return -rc;
    if (!json_is_array(rows)) { /* an odd reply lists nothing, as the other lists */
        json_decref(rows);
        if ((rows = json_array()) == NULL)
            return ctl_error(CTL_EX_SOFTWARE, "out of memory");
    }
    json_array_foreach(rows, i, row)
    {
        if (json_is_object(row) && s->fix != NULL)
            s->fix(row, arg);
    }
    const char *const *cols = argc > 0         ? (const char *const *)argv
                              : c->all_columns ? s->keys
                                               : s->dflt;
    size_t ncols = argc > 0 ? (size_t)argc : c->all_columns ? s->nkeys : s->ndflt;
    if ((rc = ctl_rows_sort(rows, s->sort1, s->sort2)) == 0)
        ctl_out_table(c, cols, ncols, rows);
    json_decref(rows);
    return rc;
}

/* Sets row's key to the string at row[obj][member] (obj NULL: row[member]), else to "". */
static void
ctl_row_copy_str(json_t *row, const char *key, const char *obj, const char *member)
{
    const json_t *from = obj != NULL ? json_object_get(row, obj) : row;
    const json_t *v = json_object_get(from, member);
    json_object_set_new(row, key, json_string(json_is_string(v) ? json_string_value(v) : ""));
}

/* rabbitmqctl prints "" for an object without a policy; the API has null or nothing. */
static void
ctl_fix_policy(json_t *row, void *arg)
{
    (void)arg;
    if (!json_is_string(json_object_get(row, "policy")))
        json_object_set_new(row, "policy", json_string(""));
}

static void
ctl_exchanges_banner(const struct ctl *c)
{
    ctl_banner(c, "Listing exchanges for vhost %s ...", c->vhost);
}

int
ctl_cmd_list_exchanges(struct ctl *c, int argc, char **argv)
{
    static const char *const keys[] = {"name",     "type",      "durable", "auto_delete",
                                       "internal", "arguments", "policy"};
    static const char *const dflt[] = {"name", "type"};
    static const struct ctl_list_spec s = {keys,           7,      dflt, 2, ctl_exchanges_banner,
                                           ctl_fix_policy, "name", NULL};
    char path[1024];
    if (ctl_path(path, sizeof(path), "exchanges/", c->vhost, NULL) < 0)
        return CTL_EX_USAGE;
    return ctl_list(c, argc, argv, path, &s, NULL);
}

static void
ctl_bindings_banner(const struct ctl *c)
{
    ctl_banner(c, "Listing bindings for vhost %s...", c->vhost); /* sic: no space */
}

static void
ctl_fix_binding(json_t *row, void *arg)
{
    (void)arg;
    ctl_row_copy_str(row, "source_name", NULL, "source");
    json_object_set_new(row, "source_kind", json_string("exchange"));
    ctl_row_copy_str(row, "destination_name", NULL, "destination");
    ctl_row_copy_str(row, "destination_kind", NULL, "destination_type");
}

int
ctl_cmd_list_bindings(struct ctl *c, int argc, char **argv)
{
    static const char *const keys[] = {"source_name",      "source_kind", "destination_name",
                                       "destination_kind", "routing_key", "arguments"};
    static const struct ctl_list_spec s = {
        keys, 6, keys, 6, ctl_bindings_banner, ctl_fix_binding, "source_name", "destination_name"};
    char path[1024];
    if (ctl_path(path, sizeof(path), "bindings/", c->vhost, NULL) < 0)
        return CTL_EX_USAGE;
    return ctl_list(c, argc, argv, path, &s, NULL);
}

static void
ctl_channels_banner(const struct ctl *c)
{
    ctl_banner(c, "Listing channels ...");
}

static void
ctl_fix_channel(json_t *row, void *arg)
{
    (void)arg;
    ctl_row_copy_str(row, "pid", NULL, "name");
    ctl_row_copy_str(row, "connection", "connection_details", "name");
}

int
ctl_cmd_list_channels(struct ctl *c, int argc, char **argv)
{
    static const char *const keys[] = {"pid",
                                       "connection",
                                       "name",
                                       "number",
                                       "user",
                                       "vhost",
                                       "transactional",
                                       "confirm",
                                       "consumer_count",
                                       "messages_unacknowledged",
                                       "messages_uncommitted",
                                       "acks_uncommitted",
                                       "messages_unconfirmed",
                                       "prefetch_count",
                                       "global_prefetch_count"};
    static const char *const dflt[] = {"pid", "user", "consumer_count", "messages_unacknowledged"};
    static const struct ctl_list_spec s = {
        keys, 15, dflt, 4, ctl_channels_banner, ctl_fix_channel, "name", NULL};
    return ctl_list(c, argc, argv, "channels", &s, NULL);
}

static void
ctl_consumers_banner(const struct ctl *c)
{
    ctl_banner(c, "Listing consumers in vhost %s ...", c->vhost);
}

static void
ctl_fix_consumer(json_t *row, void *arg)
{
    (void)arg;
    ctl_row_copy_str(row, "queue_name", "queue", "name");
    ctl_row_copy_str(row, "channel_pid", "channel_details", "name");
}

int
ctl_cmd_list_consumers(struct ctl *c, int argc, char **argv)
{
    static const char *const keys[] = {"queue_name",      "channel_pid",    "consumer_tag",
                                       "ack_required",    "prefetch_count", "active",
                                       "activity_status", "arguments"};
    static const char *const dflt[] = {"queue_name",   "channel_pid",    "consumer_tag",
                                       "ack_required", "prefetch_count", "active",
                                       "arguments"};
    static const struct ctl_list_spec s = {
        keys, 8, dflt, 7, ctl_consumers_banner, ctl_fix_consumer, "queue_name", "consumer_tag"};
    char path[1024];
    if (ctl_path(path, sizeof(path), "consumers/", c->vhost, NULL) < 0)
        return CTL_EX_USAGE;
    return ctl_list(c, argc, argv, path, &s, NULL);
}
