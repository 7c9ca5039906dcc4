/* The node and its health as RabbitMQ 3.10's HTTP API shows them (rabbit_mgmt_wm_node(s).erl,
 * rabbit_mgmt_wm_health_check_*.erl, rabbit_mgmt_wm_healthchecks.erl):
 *   GET /api/nodes, /api/nodes/{name}                   the cluster's nodes (404: not one)
 *   DELETE /api/nodes/{name}                            Warren's: forgets a stopped node
 *                                                       (warrenctl forget_cluster_node;
 *                                                       RabbitMQ's HTTP API has no route for
 *                                                       it, rabbitmqctl runs it over Erlang
 *                                                       distribution); administrator only
 *   GET /api/health/checks/alarms, /local-alarms        503 while the memory or disk alarm is on
 *   GET /api/health/checks/port-listener/{port}         503 when nothing listens there
 *   GET /api/health/checks/protocol-listener/{proto}    amqp, amqp/ssl, http, https,
 *                                                       http/prometheus (with the aliases
 *                                                       RabbitMQ takes for them)
 *   GET /api/health/checks/virtual-hosts                always ok: Warren's vhosts never stop
 *   GET /api/health/checks/node-is-quorum-critical      503 while stopping this node would
 *                                                       leave a Raft group without a majority
 *   GET /api/healthchecks/node[/{name}]                 the pre-3.8 check: the alarms
 * A check answers 200 {"status":"ok"} or 503 {"status":"failed","reason":...} in RabbitMQ's
 * words. The node's figures are read when asked (/proc, statvfs, getrlimit): nothing is kept
 * or sampled for them. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "mgmt_int.h"
#include "warren/cluster.h"
#include "warren/conf.h"
#include "warren/exchange.h"
#include "warren/net.h"
#include "warren/queue.h"
#include "warren/vhost.h"

/* Appends {node, protocol, ip_address, port} to arr. */
static void
api_listener_add(json_t *arr, const char *node, const char *protocol, const char *ip, uint32_t port)
{
    json_array_append_new(arr,
                          json_pack("{s:s, s:s, s:s, s:I}", "node", node, "protocol", protocol,
                                    "ip_address", ip[0] ? ip : "::", "port", (json_int_t)port));
}

json_t *
mgmt_listeners(const struct mgmt_req *r)
{
    const char *node = mgmt_node_name(r->env);
    const struct conf *c = r->env->conf;
    json_t *arr = json_array();
    if (arr == NULL)
        return NULL;
    for (unsigned i = 0; i < c->n_listeners; i++)
        api_listener_add(arr, node, "amqp", c->listeners[i].host, c->listeners[i].port);
    for (unsigned i = 0; i < c->n_ssl_listeners; i++)
        api_listener_add(arr, node, "amqp/ssl", c->ssl_listeners[i].host, c->ssl_listeners[i].port);
    const char *ip = c->management_tcp_ip != NULL ? c->management_tcp_ip : "";
    if (c->management_tcp_port != 0)
        api_listener_add(arr, node, "http", ip, c->management_tcp_port);
    if (c->management_ssl_port != 0)
        api_listener_add(arr, node, "https", ip, c->management_ssl_port);
    /* rabbitmq_prometheus's listener, as RabbitMQ names its protocol */
    if (c->prometheus_tcp_port != 0)
        api_listener_add(arr, node, "http/prometheus",
                         c->prometheus_tcp_ip != NULL ? c->prometheus_tcp_ip : "",
                         c->prometheus_tcp_port);
    /* A clustered node's cluster listener (RabbitMQ's distribution listener) */
    if (r->env->cluster != NULL)
        api_listener_add(arr, node, "clustering", c->distribution_interface,
                         conf_distribution_port(c));
    if (json_array_size(arr) != (size_t)c->n_listeners + c->n_ssl_listeners +
                                    (c->management_tcp_port != 0) + (c->management_ssl_port != 0) +
                                    (c->prometheus_tcp_port != 0) + (r->env->cluster != NULL)) {
        json_decref(arr); /* an append failed: ENOMEM */
        return NULL;
    }
    return arr;
}

/* The alarms on, as rabbit_alarm:format_as_maps lists them; NULL when none (or ENOMEM). */
static json_t *
api_alarms(const struct mgmt_req *r)
{
    bool mem = false, disk = false;
    if (r->env->net != NULL)
        net_server_alarms(r->env->net, &mem, &disk);
    if (!mem && !disk)
        return NULL;
    const char *node = mgmt_node_name(r->env);
    json_t *alarms = json_array();
    if (mem)
        json_array_append_new(alarms, json_pack("{s:s, s:s}", "node", node, "resource", "memory"));
    if (disk)
        json_array_append_new(alarms, json_pack("{s:s, s:s}", "node", node, "resource", "disk"));
    return alarms;
}

/* Replies 503 {"status":"failed","reason":reason} and the fields of extra (taken; NULL:
 * none). */
static void
api_check_failed(struct mgmt_req *r, const char *reason, json_t *extra)
{
    json_t *body = json_pack("{s:s, s:s}", "status", "failed", "reason", reason);
    if (body != NULL && extra != NULL)
        json_object_update(body, extra);
    json_decref(extra);
    if (body == NULL)
        mgmt_nomem(r);
    else
        r->reply(r, 503, body);
}

static void
api_check_ok(struct mgmt_req *r, json_t *extra)
{
    json_t *body = json_pack("{s:s}", "status", "ok");
    if (body != NULL && extra != NULL)
        json_object_update(body, extra);
    json_decref(extra);
    mgmt_reply_json(r, body);
}

/* GET /api/health/checks/alarms and /local-alarms: one node, so the same alarms. */
static void
api_check_alarms(struct mgmt_req *r)
{
    json_t *alarms = api_alarms(r);
    if (alarms == NULL)
        api_check_ok(r, NULL);
    else if (strcmp(r->segs[2], "local-alarms") == 0)
        api_check_failed(r, "There are alarms in effect on the node",
                         json_pack("{s:o}", "alarms", alarms));
    else
        api_check_failed(r, "There are alarms in effect in the cluster",
                         json_pack("{s:o}", "alarms", alarms));
}

/* GET /api/health/checks/port-listener/{port}: 400 "Invalid port" for a segment that is not
 * one; the failure lists the ports listened on. */
static void
api_check_port(struct mgmt_req *r)
{
    char *end;
    long port = strtol(r->segs[3], &end, 10);
    if (r->segs[3][0] == '\0' || *end != '\0' || port < 0 || port > 65535) {
        mgmt_bad_request(r, "Invalid port");
        return;
    }
    json_t *ls = mgmt_listeners(r);
    json_t *ports = json_array();
    if (ls == NULL || ports == NULL) {
        json_decref(ls);
        json_decref(ports);
        mgmt_nomem(r);
        return;
    }
    bool found = false;
    size_t i;
    json_t *l;
    json_array_foreach(ls, i, l)
    {
        json_int_t p = json_integer_value(json_object_get(l, "port"));
        found = found || p == port;
        json_array_append_new(ports, json_integer(p));
    }
    json_decref(ls);
    if (found) {
        json_decref(ports);
        api_check_ok(r, json_pack("{s:I}", "port", (json_int_t)port));
    } else {
        api_check_failed(r, "No active listener",
                         json_pack("{s:I, s:o}", "missing", (json_int_t)port, "ports", ports));
    }
}

/* The protocol a check names, as RabbitMQ reads the aliases of the ones Warren serves
 * (lowercased; the others are kept as they are, and fail). */
static const char *
api_protocol_name(const char *seg, char *buf, size_t cap)
{
    static const struct {
        const char *alias, *name;
    } aliases[] = {
        {"amqp091", "amqp"},       {"amqp0.9.1", "amqp"}, {"amqp0-9-1", "amqp"},
        {"amqp0_9_1", "amqp"},     {"amqps", "amqp/ssl"}, {"http1", "http"},
        {"http1.1", "http"},       {"http_api", "http"},  {"management", "http"},
        {"management_ui", "http"}, {"ui", "http"},
    };
    size_t n = 0;
    for (; seg[n] != '\0' && n + 1 < cap; n++)
        buf[n] = (char)(seg[n] >= 'A' && seg[n] <= 'Z' ? seg[n] - 'A' + 'a' : seg[n]);
    buf[n] = '\0';
    for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
        if (strcmp(buf, aliases[i].alias) == 0)
            return aliases[i].name;
    return buf;
}

/* GET /api/health/checks/protocol-listener/{protocol}: the failure lists the protocols
 * listened on, each once. */
static void
api_check_protocol(struct mgmt_req *r)
{
    char buf[256];
    const char *proto = api_protocol_name(r->segs[3], buf, sizeof(buf));
    json_t *ls = mgmt_listeners(r);
    json_t *protos = json_array();
    if (ls == NULL || protos == NULL) {
        json_decref(ls);
        json_decref(protos);
        mgmt_nomem(r);
        return;
    }
    bool found = false;
    size_t i, j;
    json_t *l, *p;
    json_array_foreach(ls, i, l)
    {
        json_t *name = json_object_get(l, "protocol");
        found = found || strcmp(json_string_value(name), proto) == 0;
        bool seen = false;
        json_array_foreach(protos, j, p) seen = seen || json_equal(p, name);
        if (!seen)
            json_array_append(protos, name);
    }
    json_decref(ls);
    if (found) {
        json_decref(protos);
        api_check_ok(r, json_pack("{s:s}", "protocol", proto));
    } else {
        api_check_failed(r, "No active listener",
                         json_pack("{s:s, s:o}", "missing", proto, "protocols", protos));
    }
}

/* GET /api/healthchecks/node[/{name}]: RabbitMQ's older check, failing on an alarm with the
 * Erlang term it prints. */
static void
api_healthchecks_node(struct mgmt_req *r)
{
    const char *node = mgmt_node_name(r->env);
    if (r->n_segs == 3 && strcmp(r->segs[2], node) != 0) {
        mgmt_not_found(r);
        return;
    }
    bool mem = false, disk = false;
    if (r->env->net != NULL)
        net_server_alarms(r->env->net, &mem, &disk);
    if (!mem && !disk) {
        api_check_ok(r, NULL);
        return;
    }
    char alarms[700], reason[800];
    snprintf(alarms, sizeof(alarms), "%s%s%s%s%s%s%s", mem ? "{resource_limit,memory," : "",
             mem ? node : "", mem ? "}" : "", mem && disk ? "," : "",
             disk ? "{resource_limit,disk," : "", disk ? node : "", disk ? "}" : "");
    snprintf(reason, sizeof(reason), "resource alarm(s) in effect:[%s]", alarms);
    api_check_failed(r, reason, NULL);
}

/* Whether stopping this node would leave q's group (this node one of its members) without a
 * majority of its members online. */
static bool
api_queue_quorum_critical(const struct queue *q)
{
    struct cluster_replica_view v;
    if (q->group_id == 0 || !net_quorum_view(q, &v))
        return false;
    unsigned online = 0;
    for (unsigned i = 0; i < v.n_members; i++)
        online += v.online[i];
    return online - 1 < v.n_members / 2 + 1;
}

/* GET /api/health/checks/node-is-quorum-critical: fails while stopping this node would leave
 * a Raft group without a majority of its members running: a replicated queue's (listed, as
 * RabbitMQ lists its quorum queues), or the cluster's metadata group. */
static void
api_check_quorum_critical(struct mgmt_req *r)
{
    if (r->env->cluster == NULL) {
        api_check_ok(r, json_pack("{s:s}", "reason", "single node cluster"));
        return;
    }
    json_t *queues = json_array();
    for (struct vhost *vh = r->env->vhosts->head; queues != NULL && vh != NULL; vh = vh->next) {
        struct hmap_iter it;
        struct hmap_entry *he;
        hmap_iter_init(&it, &vh->queues);
        while (queues != NULL && (he = hmap_iter_next(&it)) != NULL) {
            const struct queue *q = hmap_container_of(he, struct queue, by_name);
            char readable[600];
            snprintf(readable, sizeof(readable), "queue '%s' in vhost '%s'", q->name, vh->name);
            if (api_queue_quorum_critical(q) &&
                json_array_append_new(queues, json_pack("{s:s, s:s, s:s, s:s}", "readable_name",
                                                        readable, "name", q->name, "virtual_host",
                                                        vh->name, "type", "quorum")) < 0) {
                json_decref(queues);
                queues = NULL;
            }
        }
    }
    if (queues == NULL)
        mgmt_nomem(r);
    else if (json_array_size(queues) > 0)
        api_check_failed(r,
                         "There are quorum queues that would lose their quorum if the target "
                         "node is shut down",
                         json_pack("{s:o}", "queues", queues));
    else if (cluster_node_is_quorum_critical(r->env->cluster))
        api_check_failed(r,
                         "The cluster's metadata would lose its quorum if the target node is "
                         "shut down",
                         json_pack("{s:o}", "queues", queues));
    else {
        json_decref(queues);
        api_check_ok(r, NULL);
    }
}

void
mgmt_api_health(struct mgmt_req *r)
{
    if (strcmp(r->segs[0], "healthchecks") == 0)
        api_healthchecks_node(r);
    else if (r->n_segs == 4 && strcmp(r->segs[2], "port-listener") == 0)
        api_check_port(r);
    else if (r->n_segs == 4 && strcmp(r->segs[2], "protocol-listener") == 0)
        api_check_protocol(r);
    else if (r->n_segs == 3 && strcmp(r->segs[2], "virtual-hosts") == 0)
        api_check_ok(r, NULL);
    else if (r->n_segs == 3 && strcmp(r->segs[2], "node-is-quorum-critical") == 0)
        api_check_quorum_critical(r);
    else if (r->n_segs == 3 &&
             (strcmp(r->segs[2], "alarms") == 0 || strcmp(r->segs[2], "local-alarms") == 0))
        api_check_alarms(r);
    else
        mgmt_not_found(r);
}

/* ---- the node ---- */

/* Open file descriptors (entries of /proc/self/fd but the directory's own); -1 if unknown. */
static long
api_fds_used(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    long n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;
}

/* Resident memory in bytes, and the process's threads; 0 if unknown. */
static void
api_proc_status(uint64_t *rss, uint64_t *threads)
{
    *rss = 0;
    *threads = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return;
    char line[256];
    unsigned long long v;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "VmRSS: %llu kB", &v) == 1)
            *rss = (uint64_t)v * 1024;
        else if (sscanf(line, "Threads: %llu", &v) == 1)
            *threads = v;
    }
    fclose(f);
}

/* Milliseconds since the process started (/proc/self/stat's start time against
 * CLOCK_BOOTTIME, the clock it counts on); 0 if unknown. */
static uint64_t
api_uptime_ms(void)
{
    FILE *f = fopen("/proc/self/stat", "r");
    if (f == NULL)
        return 0;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields after the command name, which may hold spaces and parentheses itself. */
    char *p = strrchr(buf, ')');
    unsigned long long start = 0;
    if (p == NULL || sscanf(p + 2,
                            "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
                            "%*d %*d %llu",
                            &start) != 1)
        return 0;
    struct timespec now;
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0 || clock_gettime(CLOCK_BOOTTIME, &now) < 0)
        return 0;
    uint64_t now_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
    uint64_t start_ms = (uint64_t)start * 1000 / (uint64_t)hz;
    return now_ms > start_ms ? now_ms - start_ms : 0;
}

static void
api_count_socket(void *arg, const struct net_conn_info *ci)
{
    (void)ci;
    (*(uint64_t *)arg)++;
}

/* The node as /api/nodes shows it. A new object; NULL on ENOMEM. */
static json_t *
api_node_json(const struct mgmt_env *env)
{
    const char *node = mgmt_node_name(env);
    char pid[32];
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    bool mem_alarm = false, disk_alarm = false;
    uint64_t mem_limit = 0, disk_limit = 0, sockets = 0, rss, threads;
    if (env->net != NULL) {
        net_server_alarms(env->net, &mem_alarm, &disk_alarm);
        mem_limit = net_server_memory_limit(env->net);
        disk_limit = net_server_disk_limit(env->net);
        net_server_conn_foreach(env->net, api_count_socket, &sockets);
    }
    api_proc_status(&rss, &threads);
    struct statvfs st;
    const char *dir = env->conf->data_dir;
    uint64_t disk_free =
        dir != NULL && statvfs(dir, &st) == 0 ? (uint64_t)st.f_bavail * st.f_frsize : 0;
    struct rlimit fl = {0, 0}, pl = {0, 0};
    getrlimit(RLIMIT_NOFILE, &fl);
    getrlimit(RLIMIT_NPROC, &pl);
    long fds = api_fds_used();
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    json_t *types = json_array();
    for (int t = EXCH_DIRECT; types != NULL && t <= EXCH_HEADERS; t++) {
        char desc[64];
        snprintf(desc, sizeof(desc), "AMQP %s exchange, as per the AMQP specification",
                 exch_type_name((enum exch_type)t));
        json_array_append_new(types, json_pack("{s:s, s:s, s:b}", "name",
                                               exch_type_name((enum exch_type)t), "description",
                                               desc, "enabled", 1));
    }
    /* RabbitMQ's names; the Erlang-only ones (processes, run queue) get Warren's nearest:
     * its threads, and no run queue. */
    return json_pack(
        "{s:s, s:s, s:b, s:s, s:I, s:I, s:b, s:I, s:I, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
        "s:i, s:i, s:[], s:o?, s:s, s:s, s:[], s:i, s:b}",
        "name", node, "type", "disc", "running", 1, "os_pid", pid, "mem_used", (json_int_t)rss,
        "mem_limit", (json_int_t)mem_limit, "mem_alarm", mem_alarm, "disk_free",
        (json_int_t)disk_free, "disk_free_limit", (json_int_t)disk_limit, "disk_free_alarm",
        disk_alarm, "fd_used", (json_int_t)(fds > 0 ? fds : 0), "fd_total",
        (json_int_t)(fl.rlim_cur == RLIM_INFINITY ? 1048576 : fl.rlim_cur), "sockets_used",
        (json_int_t)sockets, "sockets_total",
        (json_int_t)(fl.rlim_cur == RLIM_INFINITY ? 1048576 : fl.rlim_cur), "proc_used",
        (json_int_t)threads, "proc_total",
        (json_int_t)(pl.rlim_cur == RLIM_INFINITY ? 1048576 : pl.rlim_cur), "uptime",
        (json_int_t)api_uptime_ms(), "processors", (int)(cpus > 0 ? cpus : 1), "run_queue", 0,
        "partitions", "exchange_types", types, "rates_mode", "basic", "mem_calculation_strategy",
        "rss", "cluster_links", "net_ticktime", 60, "being_drained", 0);
}

/* Another node of the cluster: while it runs, the figures it last sent (mgmt_node_info);
 * otherwise, or before its first ones came, its name, type and running, as RabbitMQ shows a
 * node that is down. A new object; NULL on ENOMEM. */
static json_t *
api_peer_node_json(const struct cluster_node_view *v)
{
    json_t *o = v->running && v->info != NULL ? json_loads(v->info, 0, NULL) : NULL;
    if (json_is_object(o) && json_object_set_new(o, "name", json_string(v->name)) == 0 &&
        json_object_set_new(o, "running", json_true()) == 0)
        return o;
    json_decref(o);
    return json_pack("{s:s, s:s, s:b}", "name", v->name, "type", "disc", "running", v->running);
}

char *
mgmt_node_info(void *arg)
{
    const struct mgmt_env *env = arg;
    json_t *o = api_node_json(env);
    char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

/* cluster_forget's answer to DELETE /api/nodes/{name}: 204, or the refusal in words close
 * to rabbitmqctl's (rabbit_mnesia's "The node selected is not in the cluster."). */
static void
api_node_forgotten(void *arg, enum cluster_change outcome)
{
    struct mgmt_req *r = arg;
    char text[CLUSTER_NODE_NAME_MAX + 200];
    const char *name = r->segs[1];
    switch (outcome) {
    case CLUSTER_CHANGE_DONE:
        r->reply(r, 204, NULL);
        return;
    case CLUSTER_CHANGE_NOT_MEMBER:
        mgmt_reply_error(r, 404, "not_found", "The node selected is not in the cluster.");
        return;
    case CLUSTER_CHANGE_SELF:
        snprintf(text, sizeof(text),
                 "Node %s cannot forget itself: stop it, then forget it from another node", name);
        mgmt_bad_request(r, text);
        return;
    case CLUSTER_CHANGE_RUNNING:
        snprintf(text, sizeof(text),
                 "Failed to remove node %s: it is running. Stop it before forgetting it", name);
        mgmt_reply_error(r, 409, "conflict", text);
        return;
    case CLUSTER_CHANGE_BUSY:
        mgmt_reply_error(r, 409, "conflict",
                         "Another change of the cluster's members is under way: try again");
        return;
    case CLUSTER_CHANGE_NO_LEADER:
        mgmt_reply_error(r, 503, "unavailable",
                         "The cluster has no leader now (is a majority of its nodes running?)");
        return;
    case CLUSTER_CHANGE_UNKNOWN:
        snprintf(text, sizeof(text),
                 "No answer from the cluster's leader in time: node %s may or may not be removed",
                 name);
        mgmt_reply_error(r, 503, "unavailable", text);
        return;
    case CLUSTER_CHANGE_FAILED:
        break;
    }
    mgmt_reply_error(r, 500, "internal_server_error", "The cluster could not take the change");
}

/* DELETE /api/nodes/{name}. */
static void
api_node_forget(struct mgmt_req *r)
{
    if (!mgmt_is_admin(r)) {
        mgmt_reply_error(r, 401, "not_authorised", "Not administrator user");
        return;
    }
    if (r->env->cluster == NULL) { /* alone: the one node is this one */
        api_node_forgotten(r, strcmp(r->segs[1], mgmt_node_name(r->env)) == 0
                                  ? CLUSTER_CHANGE_SELF
                                  : CLUSTER_CHANGE_NOT_MEMBER);
        return;
    }
    if (cluster_forget(r->env->cluster, r->segs[1], api_node_forgotten, r) < 0)
        mgmt_reply_error(r, errno == ENOMEM ? 500 : 503,
                         errno == ENOMEM ? "internal_server_error" : "unavailable",
                         errno == ENOMEM ? "out of memory" : "The node is shutting down");
}

void
mgmt_api_nodes(struct mgmt_req *r)
{
    if (r->method == MGMT_DELETE) {
        api_node_forget(r);
        return;
    }
    const char *node = mgmt_node_name(r->env);
    struct cluster_node_view views[CLUSTER_MAX_NODES];
    unsigned n =
        r->env->cluster != NULL ? cluster_nodes(r->env->cluster, views, CLUSTER_MAX_NODES) : 0;
    if (n > CLUSTER_MAX_NODES)
        n = CLUSTER_MAX_NODES;
    if (r->n_segs == 2) {
        if (strcmp(r->segs[1], node) == 0) {
            mgmt_reply_json(r, api_node_json(r->env));
            return;
        }
        for (unsigned i = 0; i < n; i++)
            if (!views[i].self && strcmp(r->segs[1], views[i].name) == 0) {
                mgmt_reply_json(r, api_peer_node_json(&views[i]));
                return;
            }
        mgmt_not_found(r);
        return;
    }
    /* The cluster's nodes in the configuration's order; alone, this node. */
    json_t *list = json_array();
    for (unsigned i = 0; list != NULL && i < (n > 0 ? n : 1); i++) {
        json_t *o = n == 0 || views[i].self ? api_node_json(r->env) : api_peer_node_json(&views[i]);
        if (json_array_append_new(list, o) < 0) {
            json_decref(list);
            list = NULL;
        }
    }
    mgmt_list_reply(r, list, NULL, false);
}
