/* warrenctl's cluster commands, shaped like rabbitmqctl 3.10's:
 *   cluster_status   the cluster as the node asked sees it (GET /api/overview and /api/nodes):
 *                    its name, nodes, the running ones, this node's version, listeners and
 *                    alarms. Warren has no feature flags and no RAM nodes: those sections are
 *                    empty.
 *   forget_cluster_node <node>
 *                    removes a stopped node from the cluster (DELETE /api/nodes/{node}, a
 *                    Warren route: rabbitmqctl runs it over Erlang distribution). No
 *                    --offline: the node asked must run.
 *   rebalance <all|quorum|classic>
 *                    rabbitmq-queues' rebalance: the replicated (quorum) queues' leaders spread
 *                    over the running nodes (POST /api/rebalance/queues); then, once the
 *                    leaders stop moving (at most 10 s), how many each node leads, as
 *                    rabbitmq-queues prints it. Classic queues do not move. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

/* The JSON report rabbitmqctl cluster_status --formatter json prints, from the API's
 * overview and nodes. A new object; NULL on ENOMEM. */
static json_t *
ctl_cluster_report(const json_t *ov, const json_t *nodes)
{
    const char *self = json_string_value(json_object_get(ov, "node"));
    json_t *out = json_pack("{s:[], s:O?, s:[], s:[], s:{}, s:{}, s:{}, s:[], s:[], s:{}}",
                            "alarms", "cluster_name", json_object_get(ov, "cluster_name"),
                            "disk_nodes", "feature_flags", "listeners", "maintenance_status",
                            "partitions", "ram_nodes", "running_nodes", "versions");
    if (out == NULL || self == NULL)
        return out;
    size_t i;
    json_t *n, *l;
    json_array_foreach(nodes, i, n)
    {
        const char *name = json_string_value(json_object_get(n, "name"));
        if (name == NULL)
            continue;
        json_array_append_new(json_object_get(out, "disk_nodes"), json_string(name));
        if (json_is_true(json_object_get(n, "running")))
            json_array_append_new(json_object_get(out, "running_nodes"), json_string(name));
        json_object_set_new(json_object_get(out, "maintenance_status"), name,
                            json_string("not under maintenance"));
        if (json_is_true(json_object_get(n, "mem_alarm")))
            json_array_append_new(json_object_get(out, "alarms"),
                                  json_pack("{s:s, s:s}", "node", name, "resource", "memory"));
        if (json_is_true(json_object_get(n, "disk_free_alarm")))
            json_array_append_new(json_object_get(out, "alarms"),
                                  json_pack("{s:s, s:s}", "node", name, "resource", "disk"));
    }
    json_object_set_new(json_object_get(out, "versions"), self,
                        json_pack("{s:O?, s:O?, s:s}", "rabbitmq_name",
                                  json_object_get(ov, "product_name"), "rabbitmq_version",
                                  json_object_get(ov, "product_version"), "erlang_version",
                                  "none"));
    json_t *ls = json_array();
    json_array_foreach(json_object_get(ov, "listeners"), i, l)
    {
        const char *ip = json_string_value(json_object_get(l, "ip_address"));
        const char *proto = json_string_value(json_object_get(l, "protocol"));
        char iface[80];
        snprintf(iface, sizeof(iface), strchr(ip != NULL ? ip : "", ':') ? "[%s]" : "%s",
                 ip != NULL ? ip : "");
        json_array_append_new(ls,
                              json_pack("{s:s, s:s, s:O?, s:s?, s:s}", "interface", iface, "node",
                                        self, "port", json_object_get(l, "port"), "protocol", proto,
                                        "purpose", ctl_listener_purpose(proto)));
    }
    json_object_set_new(json_object_get(out, "listeners"), self, ls);
    return out;
}

/* A JSON string's value, "" for anything else. */
static const char *
ctl_str(const json_t *v)
{
    const char *s = json_string_value(v);
    return s != NULL ? s : "";
}

static void
ctl_cluster_print_names(const char *title, const json_t *names)
{
    size_t i;
    json_t *n;
    printf("%s\n\n", title);
    if (json_array_size(names) == 0)
        puts("(none)");
    json_array_foreach(names, i, n) puts(ctl_str(n));
    putchar('\n');
}

int
ctl_cmd_cluster_status(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    json_t *ov = NULL, *nodes = NULL;
    int rc = ctl_get_json(c, "overview", &ov);
    if (rc == 0)
        rc = ctl_get_json(c, "nodes", &nodes);
    if (rc != 0 || !json_is_object(ov) || !json_is_array(nodes)) {
        json_decref(ov);
        json_decref(nodes);
        return rc < 0 ? -rc : ctl_error(CTL_EX_UNAVAILABLE, "the broker has no /api/nodes");
    }
    json_t *out = ctl_cluster_report(ov, nodes);
    const char *self = json_string_value(json_object_get(ov, "node"));
    if (out == NULL)
        rc = ctl_error(CTL_EX_SOFTWARE, "out of memory");
    else if (c->formatter == CTL_FMT_JSON) {
        char *s = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
        if (s != NULL)
            puts(s);
        free(s);
    } else {
        size_t i;
        json_t *v;
        const char *k;
        ctl_banner(c, "Cluster status of node %s ...", self != NULL ? self : "");
        printf("Basics\n\nCluster name: %s\n\n", ctl_str(json_object_get(out, "cluster_name")));
        ctl_cluster_print_names("Disk Nodes", json_object_get(out, "disk_nodes"));
        ctl_cluster_print_names("Running Nodes", json_object_get(out, "running_nodes"));
        puts("Versions\n");
        json_object_foreach(json_object_get(out, "versions"), k, v)
            printf("%s: %s %s\n", k, ctl_str(json_object_get(v, "rabbitmq_name")),
                   ctl_str(json_object_get(v, "rabbitmq_version")));
        puts("\nMaintenance status\n");
        json_object_foreach(json_object_get(out, "maintenance_status"), k, v)
            printf("Node: %s, status: %s\n", k, ctl_str(v));
        puts("\nAlarms\n");
        if (json_array_size(json_object_get(out, "alarms")) == 0)
            puts("(none)");
        json_array_foreach(json_object_get(out, "alarms"), i, v)
            printf("%s alarm on node %s\n",
                   strcmp(ctl_str(json_object_get(v, "resource")), "disk") == 0 ? "Free disk space"
                                                                                : "Memory",
                   ctl_str(json_object_get(v, "node")));
        puts("\nNetwork Partitions\n\n(none)\n\nListeners\n");
        json_array_foreach(json_object_get(json_object_get(out, "listeners"), self), i, v)
        {
            printf("Node: %s, interface: %s, port: ", self,
                   ctl_str(json_object_get(v, "interface")));
            ctl_out_value(stdout, json_object_get(v, "port"));
            printf(", protocol: %s, purpose: %s\n", ctl_str(json_object_get(v, "protocol")),
                   ctl_str(json_object_get(v, "purpose")));
        }
        puts("\nFeature flags\n\n(none)");
    }
    json_decref(out);
    json_decref(ov);
    json_decref(nodes);
    return rc;
}

int
ctl_cmd_forget_cluster_node(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    char path[1024];
    struct ctl_reply r;
    if (ctl_path(path, sizeof(path), "nodes/", argv[0], NULL) < 0)
        return CTL_EX_USAGE;
    ctl_banner(c, "Removing node %s from the cluster", argv[0]);
    if (ctl_http(c, "DELETE", path, NULL, 0, NULL, &r) < 0)
        return CTL_EX_UNAVAILABLE;
    int rc = ctl_status_result(&r);
    return rc == CTL_OK ? ctl_out_ok(c) : rc;
}

/* {node name: quorum queues it leads} from GET /api/queues, into *out. 0, or an exit code. */
static int
ctl_leader_counts(const struct ctl *c, json_t **out)
{
    json_t *queues;
    int rc = ctl_get_json(c, "queues", &queues);
    if (rc < 0)
        return -rc;
    if (rc > 0)
        return ctl_error(CTL_EX_UNAVAILABLE, "GET /api/queues answered %d", rc);
    *out = json_object();
    size_t i;
    json_t *q;
    json_array_foreach(queues, i, q)
    {
        const char *type = json_string_value(json_object_get(q, "type"));
        const char *leader = json_string_value(json_object_get(q, "leader"));
        if (type == NULL || strcmp(type, "quorum") != 0 || leader == NULL || *out == NULL)
            continue;
        json_int_t n = json_integer_value(json_object_get(*out, leader));
        json_object_set_new(*out, leader, json_integer(n + 1));
    }
    json_decref(queues);
    return *out != NULL ? CTL_OK : ctl_error(CTL_EX_SOFTWARE, "out of memory");
}

int
ctl_cmd_rebalance(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    if (strcmp(argv[0], "all") != 0 && strcmp(argv[0], "quorum") != 0 &&
        strcmp(argv[0], "classic") != 0)
        return ctl_usage_error(c->cmd, "the queue type must be all, quorum or classic", argc, argv);
    ctl_banner(c, "Re-balancing leaders of %s queues...",
               strcmp(argv[0], "all") == 0 ? "replicated" : argv[0]);
    struct ctl_reply r;
    if (strcmp(argv[0], "classic") != 0) {
        if (ctl_http(c, "POST", "rebalance/queues", NULL, 0, NULL, &r) < 0)
            return CTL_EX_UNAVAILABLE;
        int rc = ctl_status_result(&r);
        if (rc != CTL_OK)
            return rc;
    }
    /* The hand-overs are elections: the counts settle within a second or so. */
    json_t *counts = NULL, *last = NULL;
    for (int tries = 0; tries < 20; tries++) {
        int rc = ctl_leader_counts(c, &counts);
        if (rc != CTL_OK) {
            json_decref(last);
            return rc;
        }
        bool settled = last != NULL && json_equal(last, counts);
        json_decref(last);
        last = counts;
        if (settled)
            break;
        struct timespec pause = {0, 500 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    json_t *rows = json_array();
    const char *node;
    json_t *n;
    json_object_foreach(last, node, n)
    {
        json_array_append_new(
            rows, json_pack("{s:s, s:O}", "Node name", node, "Number of quorum queues", n));
    }
    json_decref(last);
    int rc = ctl_rows_sort(rows, "Node name", NULL);
    static const char *const cols[] = {"Node name", "Number of quorum queues"};
    if (rc == CTL_OK)
        ctl_out_table(c, cols, 2, rows);
    json_decref(rows);
    return rc;
}
