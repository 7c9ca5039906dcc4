/* warrenctl's commands about the running broker rather than its objects, rabbitmqctl's:
 * ping and await_startup (does the broker answer?), node_health_check (deprecated in
 * RabbitMQ, still scripted: alarms, and every vhost's queues and the channels listed),
 * report (status, the configuration and every list, vhost by vhost), environment (the
 * effective configuration, GET /api/warren/environment), set_log_level / log_level
 * (/api/warren/log-level) and rotate_logs (POST /api/warren/rotate-logs: the log file
 * reopened, as SIGUSR1 does; rabbitmqctl 3.10's does nothing any more). The /api/warren/
 * paths are Warren's: rabbitmqctl reaches these over Erlang distribution. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

int
ctl_cmd_ping(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    char node[256];
    if (c->host != NULL)
        ctl_banner(c,
                   "Will ping %s port %s. This only checks that the broker answers its HTTP "
                   "API. Timeout: %d000 ms.",
                   c->host, c->port, c->timeout_s);
    else
        ctl_banner(c,
                   "Will ping %s. This only checks that the broker answers its HTTP API. "
                   "Timeout: %d000 ms.",
                   c->socket_path, c->timeout_s);
    int rc = ctl_node_name(c, node, sizeof(node));
    if (rc != 0)
        return rc;
    if (c->formatter == CTL_FMT_JSON)
        puts("{\"message\":\"Ping succeeded\"}");
    else
        puts("Ping succeeded");
    return CTL_OK;
}

/* Seconds since an arbitrary start, for deadlines. */
static double
ctl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
ctl_cmd_await_startup(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    /* rabbitmqctl's default: 300 s for the whole wait; --timeout bounds it */
    double deadline = ctl_now() + (c->timeout_set ? c->timeout_s : 300);
    struct ctl probe = *c;
    probe.quiet_connect = true; /* "not there yet" is what we wait through */
    for (;;) {
        struct ctl_reply r;
        bool last = ctl_now() >= deadline;
        if (ctl_http(last ? c : &probe, "GET", "overview", NULL, 0, NULL, &r) == 0) {
            int status = r.status;
            ctl_reply_free(&r);
            if (status == 200)
                return CTL_OK;
        }
        if (last)
            return ctl_error(CTL_EX_UNAVAILABLE, "the broker did not start within %d seconds",
                             c->timeout_set ? c->timeout_s : 300);
        struct timespec ts = {.tv_nsec = 100 * 1000 * 1000};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
}

int
ctl_cmd_node_health_check(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    char node[256], path[1024];
    struct ctl_reply r;
    json_t *vhosts, *v, *j;
    size_t i;
    ctl_banner(c, "This command is DEPRECATED and will be removed in a future version.\n"
                  "It performs intrusive, opinionated health checks and requires a fully booted "
                  "node.\n"
                  "Use one of the options covered in "
                  "https://www.rabbitmq.com/monitoring.html#health-checks instead.");
    int rc = ctl_node_name(c, node, sizeof(node));
    if (rc != 0)
        return rc;
    ctl_banner(c, "Timeout: %d seconds ...\nChecking health of node %s ...",
               c->timeout_set ? c->timeout_s : 70, node);
    if (ctl_http(c, "GET", "health/checks/alarms", NULL, 0, NULL, &r) < 0)
        return CTL_EX_UNAVAILABLE;
    if (r.status == 503) {
        j = ctl_reply_json(&r);
        char *alarms = json_dumps(json_object_get(j, "alarms"), JSON_COMPACT);
        fflush(stdout);
        fprintf(stderr, "Error: health check failed. Message: %s: %s\n",
                json_string_value(json_object_get(j, "reason")) != NULL
                    ? json_string_value(json_object_get(j, "reason"))
                    : "resource alarm(s) in effect",
                alarms != NULL ? alarms : "[]");
        free(alarms);
        json_decref(j);
        ctl_reply_free(&r);
        return CTL_EX_SOFTWARE;
    }
    if ((rc = ctl_status_result(&r)) != 0)
        return rc;
    /* rabbitmqctl's check also lists every vhost's queues and the channels */
    if ((rc = ctl_get_json(c, "vhosts", &vhosts)) != 0)
        return rc < 0 ? -rc : ctl_error(CTL_EX_UNAVAILABLE, "the broker has no /api/vhosts");
    json_array_foreach(vhosts, i, v)
    {
        const char *name = json_string_value(json_object_get(v, "name"));
        if (name == NULL || ctl_path(path, sizeof(path), "queues/", name, NULL) < 0)
            continue;
        if ((rc = ctl_get_json(c, path, &j)) == 0)
            json_decref(j);
        else if (rc < 0)
            break;
        rc = 0; /* a vhost deleted meanwhile */
    }
    json_decref(vhosts);
    if (rc == 0 && (rc = ctl_get_json(c, "channels", &j)) == 0)
        json_decref(j);
    if (rc != 0)
        return rc < 0 ? -rc : ctl_error(CTL_EX_UNAVAILABLE, "the broker has no /api/channels");
    puts("Health check passed");
    return CTL_OK;
}

/* GET /api/warren/environment into *env. 0 or an exit code (printed). */
static int
ctl_get_environment(const struct ctl *c, json_t **env)
{
    int rc = ctl_get_json(c, "warren/environment", env);
    if (rc > 0)
        return ctl_error(CTL_EX_UNAVAILABLE, "the broker has no /api/warren/environment (HTTP %d)",
                         rc);
    return -rc;
}

int
ctl_cmd_environment(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    char node[256];
    json_t *env, *v;
    const char *k;
    int rc = ctl_node_name(c, node, sizeof(node));
    if (rc == 0)
        rc = ctl_get_environment(c, &env);
    if (rc != 0)
        return rc;
    if (c->formatter == CTL_FMT_JSON) {
        char *s = json_dumps(env, JSON_COMPACT);
        if (s != NULL)
            puts(s);
        free(s);
    } else {
        ctl_banner(c, "Application environment of node %s ...", node);
        json_object_foreach(env, k, v) printf("%s = %s\n", k, json_string_value(v));
    }
    json_decref(env);
    return CTL_OK;
}

int
ctl_cmd_set_log_level(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    static const char *const levels[] = {"debug", "info", "warning", "error", "critical", "none"};
    struct ctl_reply r;
    size_t i = 0;
    while (i < 6 && strcmp(levels[i], argv[0]) != 0)
        i++;
    if (i == 6) /* rabbitmqctl checks before its banner */
        return ctl_error(CTL_EX_UNAVAILABLE,
                         "level %s is not supported. Try one of debug, info, warning, error, "
                         "critical, none",
                         argv[0]);
    json_t *body = json_pack("{s:s}", "level", argv[0]);
    ctl_banner(c, "Setting log level to \"%s\" ...", argv[0]);
    int rc = body != NULL ? ctl_http_json(c, "PUT", "warren/log-level", body, &r) : -1;
    json_decref(body);
    return rc < 0 ? CTL_EX_UNAVAILABLE : ctl_status_result(&r);
}

int
ctl_cmd_log_level(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    json_t *j;
    int rc = ctl_get_json(c, "warren/log-level", &j);
    if (rc > 0)
        return ctl_error(CTL_EX_UNAVAILABLE, "the broker has no /api/warren/log-level (HTTP %d)",
                         rc);
    if (rc < 0)
        return -rc;
    const char *level = json_string_value(json_object_get(j, "level"));
    if (c->formatter == CTL_FMT_JSON)
        printf("{\"level\":\"%s\"}\n", level != NULL ? level : "");
    else
        puts(level != NULL ? level : "");
    json_decref(j);
    return CTL_OK;
}

int
ctl_cmd_rotate_logs(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    struct ctl_reply r;
    char node[256];
    int rc = ctl_node_name(c, node, sizeof(node));
    if (rc != 0)
        return rc;
    ctl_banner(c, "Rotating logs for node %s ...", node);
    if (ctl_http(c, "POST", "warren/rotate-logs", NULL, 0, NULL, &r) < 0)
        return CTL_EX_UNAVAILABLE;
    return ctl_status_result(&r);
}

/* One of report's sections: a blank line, then cmd as run from the command line with no
 * arguments (lists: every column, c->all_columns). Returns its exit code. */
static int
ctl_report_section(struct ctl *c, int (*cmd)(struct ctl *, int, char **))
{
    putchar('\n');
    fflush(stdout);
    return cmd(c, 0, NULL);
}

int
ctl_cmd_report(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    static int (*const node_sections[])(struct ctl *, int, char **) = {
        ctl_cmd_environment, ctl_cmd_list_connections, ctl_cmd_list_channels};
    static int (*const vhost_sections[])(struct ctl *, int, char **) = {
        ctl_cmd_list_queues, ctl_cmd_list_exchanges, ctl_cmd_list_bindings,
        ctl_cmd_list_permissions, ctl_cmd_list_policies};
    char node[256];
    json_t *vhosts, *v;
    size_t i;
    int rc = ctl_node_name(c, node, sizeof(node));
    if (rc == 0 && (rc = ctl_get_json(c, "vhosts", &vhosts)) != 0)
        rc = rc < 0 ? -rc : ctl_error(CTL_EX_UNAVAILABLE, "the broker has no /api/vhosts");
    if (rc != 0)
        return rc;
    if (ctl_rows_sort(vhosts, "name", NULL) != 0) {
        json_decref(vhosts);
        return CTL_EX_SOFTWARE;
    }
    ctl_banner(c, "Reporting server status of node %s ...\n", node);
    c->all_columns = true;
    rc = ctl_cmd_status(c, 0, NULL);
    for (i = 0; rc == 0 && i < sizeof(node_sections) / sizeof(node_sections[0]); i++)
        rc = ctl_report_section(c, node_sections[i]);
    json_array_foreach(vhosts, i, v)
    {
        const char *name = json_string_value(json_object_get(v, "name"));
        c->vhost = name != NULL ? name : "";
        for (size_t k = 0; rc == 0 && k < sizeof(vhost_sections) / sizeof(vhost_sections[0]); k++)
            rc = ctl_report_section(c, vhost_sections[k]);
    }
    c->vhost = "/"; /* name is vhosts', about to be freed */
    json_decref(vhosts);
    return rc;
}
