/* warrenctl's broker-wide commands: export_definitions and import_definitions
 * (/api/definitions), status (/api/overview, printed in rabbitmqctl status's sections, those
 * Warren has), list_connections, close_connection and close_all_connections
 * (/api/connections). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

#define CTL_EX_CANTCREAT 73 /* sysexits.h: an output file cannot be written */

int
ctl_cmd_export_definitions(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    struct ctl_reply r;
    bool to_stdout = strcmp(argv[0], "-") == 0;
    if (!to_stdout)
        ctl_banner(c, "Exporting definitions in JSON to a file at \"%s\" ...", argv[0]);
    if (ctl_http(c, "GET", "definitions", NULL, 0, NULL, &r) < 0)
        return CTL_EX_UNAVAILABLE;
    if (r.status != 200)
        return ctl_status_result(&r);
    json_t *j = ctl_reply_json(&r);
    bool is_object = json_is_object(j);
    json_decref(j);
    if (!is_object) {
        ctl_reply_free(&r);
        return ctl_error(CTL_EX_UNAVAILABLE, "the broker's definitions are not a JSON object");
    }
    int rc = CTL_OK;
    FILE *f = to_stdout ? stdout : fopen(argv[0], "w");
    if (f == NULL || fwrite(r.body, 1, r.len, f) != r.len || (!to_stdout && fclose(f) != 0) ||
        (to_stdout && fflush(f) != 0))
        rc = ctl_error(CTL_EX_CANTCREAT, "cannot write %s: %s", to_stdout ? "the output" : argv[0],
                       strerror(errno));
    ctl_reply_free(&r);
    return rc;
}

/* Reads all of f into *out (NUL-terminated, caller frees). Returns its length or -1. */
static long
ctl_slurp(FILE *f, char **out)
{
    size_t len = 0, cap = 0;
    char *p = NULL;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 65536;
            char *q = realloc(p, cap);
            if (q == NULL) {
                free(p);
                return -1;
            }
            p = q;
        }
        size_t n = fread(p + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        free(p);
        return -1;
    }
    p[len] = '\0';
    *out = p;
    return (long)len;
}

int
ctl_cmd_import_definitions(struct ctl *c, int argc, char **argv)
{
    bool from_stdin = strcmp(argv[0], "-") == 0;
    FILE *f = from_stdin ? stdin : fopen(argv[0], "r");
    char *body = NULL;
    if (f == NULL) {
        char why[1200];
        if (errno == ENOENT)
            snprintf(why, sizeof(why), "Bad argument: File %s does not exist", argv[0]);
        else
            snprintf(why, sizeof(why), "Bad argument: File %s: %s", argv[0], strerror(errno));
        ctl_usage_error(c->cmd, why, argc, argv);
        return CTL_EX_DATAERR;
    }
    long n = ctl_slurp(f, &body);
    if (!from_stdin)
        fclose(f);
    if (n < 0)
        return ctl_error(CTL_EX_DATAERR, "cannot read %s", argv[0]);
    if (from_stdin)
        ctl_banner(c, "Importing definitions in JSON from standard input ...");
    else
        ctl_banner(c, "Importing definitions in JSON from a file at \"%s\" ...", argv[0]);
    json_error_t jerr;
    json_t *j = json_loadb(body, (size_t)n, 0, &jerr);
    if (j == NULL) {
        free(body);
        return ctl_error(CTL_EX_DATAERR, "%s is not a JSON object: %s, line %d", argv[0], jerr.text,
                         jerr.line);
    }
    if (!json_is_object(j)) {
        json_decref(j);
        free(body);
        return ctl_error(CTL_EX_DATAERR, "%s is not a JSON object", argv[0]);
    }
    json_decref(j);
    struct ctl_reply r;
    int rc = ctl_http(c, "POST", "definitions", body, (size_t)n, NULL, &r);
    free(body);
    return rc < 0 ? CTL_EX_UNAVAILABLE : ctl_status_result(&r);
}

/* rabbitmqctl status's purpose column for a listener's protocol. */
const char *
ctl_listener_purpose(const char *protocol)
{
    static const struct {
        const char *protocol, *purpose;
    } purposes[] = {{"amqp", "AMQP 0-9-1"},
                    {"amqp/ssl", "AMQP 0-9-1 over TLS"},
                    {"http", "HTTP API"},
                    {"https", "HTTP API over TLS"},
                    {"clustering", "inter-node and CLI tool communication"}};
    for (size_t i = 0; protocol != NULL && i < sizeof(purposes) / sizeof(purposes[0]); i++)
        if (strcmp(purposes[i].protocol, protocol) == 0)
            return purposes[i].purpose;
    return "";
}

int
ctl_cmd_status(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    json_t *ov = NULL, *vhosts = NULL, *l;
    size_t i;
    int rc = ctl_get_json(c, "overview", &ov);
    if (rc == 0)
        rc = ctl_get_json(c, "vhosts", &vhosts);
    if (rc != 0 || !json_is_object(ov)) {
        json_decref(ov);
        json_decref(vhosts);
        return rc < 0 ? -rc : ctl_error(CTL_EX_UNAVAILABLE, "the broker has no /api/overview");
    }
    const json_t *totals = json_object_get(ov, "object_totals");
    const char *node = json_string_value(json_object_get(ov, "node"));
    const char *version = json_string_value(json_object_get(ov, "product_version"));
    if (version == NULL)
        version = json_string_value(json_object_get(ov, "rabbitmq_version"));
    json_t *out = json_pack(
        "{s:O?, s:O?, s:s?, s:s?, s:{s:O?, s:O?, s:I}, s:[]}", "pid", json_object_get(ov, "pid"),
        "product_name", json_object_get(ov, "product_name"), "product_version", version, "node",
        node, "totals", "connection_count", json_object_get(totals, "connections"), "queue_count",
        json_object_get(totals, "queues"), "virtual_host_count",
        (json_int_t)json_array_size(vhosts), "listeners");
    if (json_is_null(json_object_get(out, "pid")))
        json_object_del(out, "pid"); /* Warren's overview has none */
    json_t *outl = json_object_get(out, "listeners");
    json_array_foreach(json_object_get(ov, "listeners"), i, l)
    {
        const char *ip = json_string_value(json_object_get(l, "ip_address"));
        const char *proto = json_string_value(json_object_get(l, "protocol"));
        char iface[80];
        snprintf(iface, sizeof(iface), strchr(ip != NULL ? ip : "", ':') ? "[%s]" : "%s",
                 ip != NULL ? ip : "");
        json_array_append_new(outl, json_pack("{s:s, s:O?, s:s?, s:s}", "interface", iface, "port",
                                              json_object_get(l, "port"), "protocol", proto,
                                              "purpose", ctl_listener_purpose(proto)));
    }
    if (c->formatter == CTL_FMT_JSON) {
        char *s = out != NULL ? json_dumps(out, JSON_COMPACT) : NULL;
        if (s != NULL)
            puts(s);
        free(s);
    } else if (out != NULL) {
        const json_t *t = json_object_get(out, "totals");
        ctl_banner(c, "Status of node %s ...", node != NULL ? node : "");
        puts("Runtime\n");
        if (json_object_get(out, "pid") != NULL) {
            fputs("OS PID: ", stdout);
            ctl_out_value(stdout, json_object_get(out, "pid"));
            putchar('\n');
        }
        fputs("Product name: ", stdout);
        ctl_out_value(stdout, json_object_get(out, "product_name"));
        printf("\nProduct version: %s\nNode name: %s\n\nTotals\n\nConnection count: ",
               version != NULL ? version : "", node != NULL ? node : "");
        ctl_out_value(stdout, json_object_get(t, "connection_count"));
        fputs("\nQueue count: ", stdout);
        ctl_out_value(stdout, json_object_get(t, "queue_count"));
        printf("\nVirtual host count: %zu\n\nListeners\n\n", json_array_size(vhosts));
        json_array_foreach(outl, i, l)
        {
            printf("Interface: %s, port: ", json_string_value(json_object_get(l, "interface")));
            ctl_out_value(stdout, json_object_get(l, "port"));
            fputs(", protocol: ", stdout);
            ctl_out_value(stdout, json_object_get(l, "protocol"));
            printf(", purpose: %s\n", json_string_value(json_object_get(l, "purpose")));
        }
    }
    rc = out != NULL ? CTL_OK : ctl_error(CTL_EX_SOFTWARE, "out of memory");
    json_decref(out);
    json_decref(ov);
    json_decref(vhosts);
    return rc;
}

static const char *const ctl_connection_keys[] = {
    "pid",
    "name",
    "user",
    "vhost",
    "state",
    "peer_host",
    "peer_port",
    "host",
    "port",
    "ssl",
    "protocol",
    "channels",
    "timeout",
    "frame_max",
    "channel_max",
    "auth_mechanism",
    "client_properties",
    "connected_at",
    "recv_oct",
    "send_oct",
};

static void
ctl_connections_banner(const struct ctl *c)
{
    ctl_banner(c, "Listing connections ...");
}

/* close_connection takes what pid shows: the API's name when it has no pid. */
static void
ctl_fix_connection(json_t *row, void *arg)
{
    (void)arg;
    if (json_object_get(row, "pid") == NULL)
        json_object_set(row, "pid", json_object_get(row, "name"));
}

int
ctl_cmd_list_connections(struct ctl *c, int argc, char **argv)
{
    static const char *const dflt[] = {"user", "peer_host", "peer_port", "state"};
    static const struct ctl_list_spec s = {ctl_connection_keys,
                                           sizeof(ctl_connection_keys) /
                                               sizeof(ctl_connection_keys[0]),
                                           dflt,
                                           4,
                                           ctl_connections_banner,
                                           ctl_fix_connection,
                                           "name",
                                           NULL};
    return ctl_list(c, argc, argv, "connections", &s, NULL);
}

/* DELETEs /api/connections/{name} with reason in X-Reason (the client sees 320
 * CONNECTION_FORCED - reason). A connection that is gone is not an error, as in rabbitmqctl.
 * Returns the exit code. */
static int
ctl_close_one(const struct ctl *c, const char *name, const char *reason)
{
    char path[1024], header[1100];
    struct ctl_reply r;
    int n = snprintf(header, sizeof(header), "X-Reason: %s", reason);
    for (int k = 0; k < n && header[k] != '\0'; k++)
        if ((unsigned char)header[k] < 0x20)
            header[k] = ' '; /* one header line */
    if (ctl_path(path, sizeof(path), "connections/", name, NULL) < 0)
        return CTL_EX_USAGE;
    if (ctl_http(c, "DELETE", path, NULL, 0, header, &r) < 0)
        return CTL_EX_UNAVAILABLE;
    if (r.status == 404) { /* closed meanwhile */
        ctl_reply_free(&r);
        return CTL_OK;
    }
    return ctl_status_result(&r);
}

/* Finds the connection whose pid or name is id and closes it with the reason. */
int
ctl_cmd_close_connection(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    json_t *conns, *e;
    size_t i;
    const char *name = NULL;
    ctl_banner(c, "Closing connection %s, reason: %s...", argv[0], argv[1]);
    int rc = ctl_get_json(c, "connections", &conns);
    if (rc != 0)
        return rc < 0 ? -rc : ctl_error(CTL_EX_UNAVAILABLE, "the broker has no /api/connections");
    json_array_foreach(conns, i, e)
    {
        const char *pid = json_string_value(json_object_get(e, "pid"));
        const char *n = json_string_value(json_object_get(e, "name"));
        if (n != NULL && (strcmp(n, argv[0]) == 0 || (pid != NULL && strcmp(pid, argv[0]) == 0)))
            name = n;
    }
    if (name != NULL)
        rc = ctl_close_one(c, name, argv[1]);
    json_decref(conns);
    return rc;
}

/* The vhost's connections (all with --global), up to --limit of them (not with --global, as
 * rabbitmqctl), one every --per-connection-delay milliseconds. */
int
ctl_cmd_close_all_connections(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    json_t *conns, *e;
    size_t i;
    long closed = 0;
    char node[256] = "";
    int rc;
    if (c->global) {
        if ((rc = ctl_node_name(c, node, sizeof(node))) != 0)
            return rc;
        ctl_banner(c, "Closing all connections to node %s (across all vhosts), reason: %s...", node,
                   argv[0]);
    } else if (c->limit > 0) {
        ctl_banner(c, "Closing %ld connections in vhost %s, reason: %s...", c->limit, c->vhost,
                   argv[0]);
    } else {
        ctl_banner(c, "Closing all connections in vhost %s, reason: %s...", c->vhost, argv[0]);
    }
    if ((rc = ctl_get_json(c, "connections", &conns)) != 0)
        return rc < 0 ? -rc : ctl_error(CTL_EX_UNAVAILABLE, "the broker has no /api/connections");
    if ((rc = ctl_rows_sort(conns, "name", NULL)) != 0) {
        json_decref(conns);
        return rc;
    }
    json_array_foreach(conns, i, e)
    {
        const char *name = json_string_value(json_object_get(e, "name"));
        const char *vhost = json_string_value(json_object_get(e, "vhost"));
        if (name == NULL || (!c->global && (vhost == NULL || strcmp(vhost, c->vhost) != 0)))
            continue;
        if (!c->global && c->limit > 0 && closed >= c->limit)
            break;
        if (closed > 0 && c->per_connection_delay_ms > 0) {
            struct timespec ts = {.tv_sec = c->per_connection_delay_ms / 1000,
                                  .tv_nsec = (c->per_connection_delay_ms % 1000) * 1000000L};
            while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
        }
        if ((rc = ctl_close_one(c, name, argv[0])) != 0)
            break;
        closed++;
    }
    json_decref(conns);
    if (rc == 0)
        printf("Closed %ld connections\n", closed);
    return rc;
}
