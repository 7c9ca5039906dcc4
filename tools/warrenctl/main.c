/* warrenctl: the broker's administration tool, shaped like rabbitmqctl (same command names,
 * arguments, output and exit codes), speaking the administration HTTP API (RabbitMQ's
 * management paths). Locally it finds the broker as warren-server does (--config FILE and
 * --data-dir DIR, the same defaults) and talks over <data_dir>/warren-admin.sock, which only
 * the broker's user can open, without a password; with --host it talks HTTP to
 * management.tcp.port (--port, else the configuration's) with basic auth (--username,
 * --password or WARRENCTL_PASSWORD).
 *
 * Options may come before or after the command, as rabbitmqctl takes them. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "warren/conf.h"
#include "warren/log.h"

#define CTL_SOCKET_NAME "warren-admin.sock"

/* Whether rabbitmqctl 3.10 reports the command's success (ctl_out_ok: {"node":...,
 * "result":"ok"} under --formatter json, nothing under the others). */
static bool
ctl_reports_ok(const char *name)
{
    static const char *const names[] = {
        "delete_user",      "set_user_tags",   "add_vhost",         "delete_vhost",
        "set_vhost_limits", "set_permissions", "clear_permissions", "purge_queue",
        "set_policy",       "clear_policy",    "await_startup",     "set_log_level",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

static const struct ctl_cmd ctl_cmds[] = {
    {"add_user", 1, 2, ctl_cmd_add_user, "<username> <password>",
     "Creates a user; the password is read from stdin when not given"},
    {"delete_user", 1, 1, ctl_cmd_delete_user, "<username>", "Removes a user"},
    {"change_password", 2, 2, ctl_cmd_change_password, "<username> <password>",
     "Changes a user's password"},
    {"clear_password", 1, 1, ctl_cmd_clear_password, "<username>",
     "Clears a user's password: it can no longer log in with one"},
    {"authenticate_user", 2, 2, ctl_cmd_authenticate_user, "<username> <password>",
     "Checks a user's password; exits non-zero when it is wrong"},
    {"set_user_tags", 1, -1, ctl_cmd_set_user_tags, "<username> <tag> [...]", "Sets a user's tags"},
    {"list_users", 0, 0, ctl_cmd_list_users, "[--no-table-headers]", "Lists users and tags"},
    {"set_user_limits", 2, 2, ctl_cmd_set_user_limits, "<username> <definition>",
     "Sets user limits ({\"max-connections\": N, \"max-channels\": N}; -1: none)"},
    {"add_vhost", 1, 1, ctl_cmd_add_vhost,
     "<vhost> [--description <description> --tags \"<tag1>,<tag2>\" "
     "--default-queue-type <quorum|classic|stream>]",
     "Creates a virtual host"},
    {"delete_vhost", 1, 1, ctl_cmd_delete_vhost, "<vhost>", "Deletes a virtual host"},
    {"list_vhosts", 0, -1, ctl_cmd_list_vhosts, "[--no-table-headers] [<column> ...]",
     "Lists virtual hosts (columns: name description tags default_queue_type tracing)"},
    {"set_vhost_limits", 1, 1, ctl_cmd_set_vhost_limits, "[-p <vhost>] <definition>",
     "Sets virtual host limits ({\"max-connections\": N, \"max-queues\": N}; -1: none)"},
    {"set_permissions", 4, 4, ctl_cmd_set_permissions,
     "[-p <vhost>] <username> <conf> <write> <read>", "Sets user permissions for a vhost"},
    {"clear_permissions", 1, 1, ctl_cmd_clear_permissions, "[-p vhost] <username>",
     "Revokes user permissions for a vhost"},
    {"list_permissions", 0, 0, ctl_cmd_list_permissions, "[--no-table-headers] [-p <vhost>]",
     "Lists user permissions in a virtual host"},
    {"list_user_permissions", 1, 1, ctl_cmd_list_user_permissions,
     "[--no-table-headers] <username>", "Lists permissions of a user across all virtual hosts"},
    {"set_topic_permissions", 4, 4, ctl_cmd_set_topic_permissions,
     "[-p <vhost>] <username> <exchange> <write> <read>",
     "Sets user topic permissions for an exchange"},
    {"clear_topic_permissions", 1, 2, ctl_cmd_clear_topic_permissions,
     "[-p vhost] <username> [<exchange>]", "Clears user topic permissions for a vhost or exchange"},
    {"list_topic_permissions", 0, 0, ctl_cmd_list_topic_permissions,
     "[--no-table-headers] [-p <vhost>]", "Lists topic permissions in a virtual host"},
    {"list_queues", 0, -1, ctl_cmd_list_queues, "[-p <vhost>] [--no-table-headers] [<column> ...]",
     "Lists queues and their properties (columns: name durable auto_delete arguments policy pid "
     "owner_pid exclusive exclusive_consumer_pid exclusive_consumer_tag messages_ready "
     "messages_unacknowledged messages messages_ready_ram messages_unacknowledged_ram "
     "messages_ram messages_persistent message_bytes message_bytes_ready "
     "message_bytes_unacknowledged message_bytes_ram message_bytes_persistent "
     "head_message_timestamp disk_reads disk_writes consumers consumer_utilisation "
     "consumer_capacity memory slave_pids synchronised_slave_pids state type leader members "
     "online messages_dlx message_bytes_dlx operator_policy effective_policy_definition)"},
    {"purge_queue", 1, 1, ctl_cmd_purge_queue, "[-p <vhost>] <queue>", "Purges a queue"},
    {"delete_queue", 1, 1, ctl_cmd_delete_queue,
     "[-p <vhost>] <queue_name> [--if-empty|-e] [--if-unused|-u]", "Deletes a queue"},
    {"list_exchanges", 0, -1, ctl_cmd_list_exchanges,
     "[-p <vhost>] [--no-table-headers] [<column> ...]",
     "Lists exchanges (columns: name type durable auto_delete internal arguments policy)"},
    {"list_bindings", 0, -1, ctl_cmd_list_bindings,
     "[-p <vhost>] [--no-table-headers] [<column> ...]",
     "Lists all bindings on a vhost (columns: source_name source_kind destination_name "
     "destination_kind routing_key arguments)"},
    {"list_channels", 0, -1, ctl_cmd_list_channels, "[--no-table-headers] [<column> ...]",
     "Lists all channels in the node (columns: pid connection name number user vhost "
     "transactional confirm consumer_count messages_unacknowledged messages_uncommitted "
     "acks_uncommitted messages_unconfirmed prefetch_count global_prefetch_count)"},
    {"list_consumers", 0, -1, ctl_cmd_list_consumers,
     "[-p <vhost>] [--no-table-headers] [<column> ...]",
     "Lists all consumers for a vhost (columns: queue_name channel_pid consumer_tag "
     "ack_required prefetch_count active activity_status arguments)"},
    {"set_policy", 3, 3, ctl_cmd_set_policy,
     "[-p <vhost>] [--priority <priority>] [--apply-to <apply-to>] <name> <pattern> "
     "<definition>",
     "Sets or updates a policy"},
    {"clear_policy", 1, 1, ctl_cmd_clear_policy, "[-p <vhost>] <name>", "Clears a policy"},
    {"list_policies", 0, 0, ctl_cmd_list_policies, "[--no-table-headers] [-p <vhost>]",
     "Lists all policies in a virtual host"},
    {"set_operator_policy", 3, 3, ctl_cmd_set_operator_policy,
     "[-p <vhost>] [--priority <priority>] [--apply-to <apply-to>] <name> <pattern> "
     "<definition>",
     "Sets an operator policy that overrides a subset of arguments in user policies"},
    {"clear_operator_policy", 1, 1, ctl_cmd_clear_operator_policy, "[-p <vhost>] <name>",
     "Clears an operator policy"},
    {"list_operator_policies", 0, 0, ctl_cmd_list_operator_policies,
     "[--no-table-headers] [-p <vhost>]", "Lists operator policy overrides for a virtual host"},
    {"export_definitions", 1, 1, ctl_cmd_export_definitions, "<file_path | \"-\">",
     "Exports definitions in JSON"},
    {"import_definitions", 1, 1, ctl_cmd_import_definitions, "<file_path | \"-\">",
     "Imports definitions in JSON"},
    {"status", 0, 0, ctl_cmd_status, "", "Displays the broker's status"},
    {"cluster_status", 0, 0, ctl_cmd_cluster_status, "",
     "Displays all the nodes in the cluster grouped by node type, together with the currently "
     "running nodes"},
    {"forget_cluster_node", 1, 1, ctl_cmd_forget_cluster_node, "<existing_cluster_member_node>",
     "Removes a node from the cluster"},
    {"rebalance", 1, 1, ctl_cmd_rebalance, "<all|quorum|classic>",
     "Rebalances queue leaders across the running nodes (rabbitmq-queues rebalance)"},
    {"add_member", 2, 2, ctl_cmd_add_member, "[--vhost <vhost>] <queue> <node>",
     "Adds a quorum queue member (replica) on the given node (rabbitmq-queues add_member)"},
    {"delete_member", 2, 2, ctl_cmd_delete_member, "[--vhost <vhost>] <queue> <node>",
     "Removes a quorum queue member (replica) on the given node (rabbitmq-queues "
     "delete_member)"},
    {"grow", 2, 2, ctl_cmd_grow,
     "<node> <all | even> [--vhost-pattern <pattern>] [--queue-pattern <pattern>] "
     "[--errors-only]",
     "Grows quorum queue clusters by adding a member (replica) on the specified node for all "
     "matching queues (rabbitmq-queues grow)"},
    {"shrink", 1, 1, ctl_cmd_shrink, "<node> [--errors-only]",
     "Shrinks quorum queue clusters by removing any members (replicas) on the given node "
     "(rabbitmq-queues shrink)"},
    {"list_connections", 0, -1, ctl_cmd_list_connections, "[--no-table-headers] [<column> ...]",
     "Lists AMQP 0-9-1 connections (columns: pid name user vhost state peer_host peer_port "
     "host port ssl protocol channels timeout frame_max auth_mechanism client_properties "
     "connected_at)"},
    {"close_all_connections", 1, 1, ctl_cmd_close_all_connections,
     "[-p <vhost> --limit <limit>] [--global] [--per-connection-delay <delay>] <explanation>",
     "Instructs the broker to close all connections for the specified vhost or entire node"},
    {"ping", 0, 0, ctl_cmd_ping, "",
     "Checks that the broker answers (its HTTP API: the Unix socket, or --host)"},
    {"await_startup", 0, 0, ctl_cmd_await_startup, "[--timeout <seconds>]",
     "Waits for the broker to start and answer (300 seconds unless --timeout)"},
    {"node_health_check", 0, 0, ctl_cmd_node_health_check, "[--timeout <seconds>]",
     "DEPRECATED. Performs intrusive, opinionated health checks (alarms, queues, channels)"},
    {"report", 0, 0, ctl_cmd_report, "",
     "Generate a server status report containing a concatenation of all server status "
     "information for support purposes"},
    {"environment", 0, 0, ctl_cmd_environment, "",
     "Displays the broker's effective configuration (passwords redacted)"},
    {"set_log_level", 1, 1, ctl_cmd_set_log_level, "<log_level>",
     "Sets log level in the running broker (debug, info, warning, error, critical, none)"},
    {"log_level", 0, 0, ctl_cmd_log_level, "", "Displays the running broker's log level"},
    {"rotate_logs", 0, 0, ctl_cmd_rotate_logs, "",
     "Reopens the log file by name (after an external logrotate moved it), as SIGUSR1 does"},
    {"close_connection", 2, 2, ctl_cmd_close_connection, "<connection pid> <explanation>",
     "Closes a connection (its pid or name from list_connections)"},
};
#define CTL_NCMDS (sizeof(ctl_cmds) / sizeof(ctl_cmds[0]))

static const char ctl_global_usage[] =
    "warrenctl [--config <file>] [--data-dir <dir>] [--host <host> [--port <port>] [--tls "
    "[--cacert <file>]] [--username <user>] [--password <password>]] [--quiet] [--silent] "
    "[--timeout <seconds>] "
    "[--formatter <table|json|csv>]";

/* The command list, for --help, help and usage errors. */
static void
ctl_print_usage(FILE *f)
{
    fprintf(f, "\nUsage\n\n%s <command> [<command options>]\n\nAvailable commands:\n\n",
            ctl_global_usage);
    for (size_t i = 0; i < CTL_NCMDS; i++)
        fprintf(f, "   %-25s %s\n", ctl_cmds[i].name, ctl_cmds[i].summary);
    fputs("\nUse 'warrenctl help <command>' to learn more about a specific command\n", f);
}

/* One command's usage line and summary. */
static void
ctl_print_cmd_usage(FILE *f, const struct ctl_cmd *cmd)
{
    fprintf(f, "\nUsage\n\nwarrenctl [--quiet] %s %s\n\n%s\n", cmd->name, cmd->usage, cmd->summary);
}

int
ctl_usage_error(const struct ctl_cmd *cmd, const char *why, int argc, char **argv)
{
    fprintf(stderr, "Error (argument validation): %s\nArguments given:\n\t%s", why, cmd->name);
    for (int i = 0; i < argc; i++)
        fprintf(stderr, " %s", argv[i]);
    fputc('\n', stderr);
    ctl_print_cmd_usage(stderr, cmd);
    return CTL_EX_USAGE;
}

int
ctl_check_columns(const struct ctl_cmd *cmd, const char *const *allowed, size_t nallowed, int argc,
                  char **argv)
{
    for (int i = 0; i < argc; i++) {
        size_t k = 0;
        while (k < nallowed && strcmp(argv[i], allowed[k]) != 0)
            k++;
        if (k == nallowed) {
            char why[256];
            snprintf(why, sizeof(why), "Info key(s) %s are not supported", argv[i]);
            return ctl_usage_error(cmd, why, argc, argv);
        }
    }
    return 0;
}

static const struct option ctl_options[] = {
    {"config", required_argument, NULL, 'c'},
    {"data-dir", required_argument, NULL, 'd'},
    {"host", required_argument, NULL, 'H'},
    {"port", required_argument, NULL, 'P'},
    {"username", required_argument, NULL, 'N'},
    {"password", required_argument, NULL, 'w'},
    {"tls", no_argument, NULL, 'L'},
    {"cacert", required_argument, NULL, 'C'},
    {"vhost", required_argument, NULL, 'p'},
    {"quiet", no_argument, NULL, 'q'},
    {"silent", no_argument, NULL, 's'},
    {"timeout", required_argument, NULL, 't'},
    {"formatter", required_argument, NULL, 'f'},
    {"no-table-headers", no_argument, NULL, 'T'},
    {"description", required_argument, NULL, 'D'},
    {"tags", required_argument, NULL, 'g'},
    {"default-queue-type", required_argument, NULL, 'Q'},
    {"priority", required_argument, NULL, 'R'},
    {"apply-to", required_argument, NULL, 'A'},
    {"if-empty", no_argument, NULL, 'e'},
    {"if-unused", no_argument, NULL, 'u'},
    {"global", no_argument, NULL, 'G'},
    {"per-connection-delay", required_argument, NULL, 'y'},
    {"limit", required_argument, NULL, 'l'},
    {"vhost-pattern", required_argument, NULL, 'v'},
    {"queue-pattern", required_argument, NULL, 'k'},
    {"errors-only", no_argument, NULL, 'E'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* Reads the configuration as warren-server does (defaults, then the --config file, then
 * --data-dir) for where the broker is: c->socket_path, and c->port (management.tcp.port)
 * unless --port gave one. Returns 0, or 64 after printing the file's error. */
static int
ctl_read_conf(struct ctl *c, const char *config, const char *data_dir)
{
    struct conf conf;
    char err[512];
    conf_init_defaults(&conf);
    if (config != NULL && conf_load_file(&conf, config, err, sizeof(err)) < 0) {
        fprintf(stderr, "Error: %s\n", err);
        conf_free(&conf);
        return CTL_EX_USAGE;
    }
    if (c->port == NULL) {
        /* --tls: management.ssl.port, else RabbitMQ's usual HTTPS port */
        unsigned port = !c->tls                         ? conf.management_tcp_port
                        : conf.management_ssl_port != 0 ? conf.management_ssl_port
                                                        : 15671;
        snprintf(c->port_buf, sizeof(c->port_buf), "%u", port);
        c->port = c->port_buf;
    }
    const char *dir = data_dir != NULL ? data_dir : conf.data_dir;
    size_t n = strlen(dir) + sizeof(CTL_SOCKET_NAME) + 1;
    c->socket_path = malloc(n);
    if (c->socket_path != NULL)
        snprintf(c->socket_path, n, "%s/%s", dir, CTL_SOCKET_NAME);
    conf_free(&conf);
    if (c->socket_path == NULL) {
        fputs("Error: out of memory\n", stderr);
        return CTL_EX_SOFTWARE;
    }
    return 0;
}

/* A non-negative integer option (milliseconds, a count). 0 or -1. */
static int
ctl_parse_count(const char *s, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < 0 || v > 86400000)
        return -1;
    *out = v;
    return 0;
}

/* Whether every argument (and the option values that go into requests) is UTF-8: the API's
 * JSON can carry nothing else. */
static bool
ctl_args_utf8(const struct ctl *c, int argc, char **argv)
{
    const char *opts[] = {c->vhost,    c->description,   c->tags,         c->default_queue_type,
                          c->apply_to, c->vhost_pattern, c->queue_pattern};
    const int nopts = (int)(sizeof(opts) / sizeof(opts[0]));
    for (int i = 0; i < argc + nopts; i++) {
        const char *s = i < argc ? argv[i] : opts[i - argc];
        json_t *j = s != NULL ? json_string(s) : NULL;
        if (s != NULL && j == NULL)
            return false;
        json_decref(j);
    }
    return true;
}

int
main(int argc, char **argv)
{
    struct ctl c = {.timeout_s = 60, .vhost = "/", .username = "guest"};
    const char *config = NULL, *data_dir = NULL;
    bool help = false;
    int opt;
    log_set_level(LOG_NONE); /* libwarren's parts (conf, auth) report through us */
    c.password = getenv("WARRENCTL_PASSWORD");
    if (c.password == NULL)
        c.password = "guest"; /* with the default username, as rabbitmqadmin */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":qsp:t:hVeu", ctl_options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 'd':
            data_dir = optarg;
            break;
        case 'H':
            c.host = optarg;
            break;
        case 'P':
            c.port = optarg;
            break;
        case 'N':
            c.username = optarg;
            break;
        case 'w':
            c.password = optarg;
            break;
        case 'L':
            c.tls = true;
            break;
        case 'C':
            c.cacert = optarg;
            c.tls = true;
            break;
        case 'p':
            c.vhost = optarg;
            break;
        case 'q':
            c.quiet = true;
            break;
        case 's':
            c.silent = true;
            break;
        case 'T':
            c.no_headers = true;
            break;
        case 't': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (end == optarg || *end != '\0' || v <= 0 || v > 86400) {
                fprintf(stderr, "Error: bad value '%s' for --timeout: seconds, 1..86400\n", optarg);
                return CTL_EX_USAGE;
            }
            c.timeout_s = (int)v;
            c.timeout_set = true;
            break;
        }
        case 'f':
            if (strcmp(optarg, "table") == 0)
                c.formatter = CTL_FMT_TABLE;
            else if (strcmp(optarg, "json") == 0)
                c.formatter = CTL_FMT_JSON;
            else if (strcmp(optarg, "csv") == 0)
                c.formatter = CTL_FMT_CSV;
            else {
                fprintf(stderr, "Error: unknown formatter '%s': table, json or csv\n", optarg);
                return CTL_EX_USAGE;
            }
            break;
        case 'D':
            c.description = optarg;
            break;
        case 'g':
            c.tags = optarg;
            break;
        case 'Q':
            c.default_queue_type = optarg;
            break;
        case 'R':
            c.priority = optarg;
            break;
        case 'A':
            c.apply_to = optarg;
            break;
        case 'e':
            c.if_empty = true;
            break;
        case 'u':
            c.if_unused = true;
            break;
        case 'G':
            c.global = true;
            break;
        case 'y':
        case 'l':
            if (ctl_parse_count(optarg, opt == 'y' ? &c.per_connection_delay_ms : &c.limit) < 0) {
                fprintf(stderr, "Error: bad value '%s' for --%s: a whole number\n", optarg,
                        opt == 'y' ? "per-connection-delay" : "limit");
                return CTL_EX_USAGE;
            }
            break;
        case 'v':
            c.vhost_pattern = optarg;
            break;
        case 'k':
            c.queue_pattern = optarg;
            break;
        case 'E':
            c.errors_only = true;
            break;
        case 'h':
            help = true;
            break;
        case 'V':
            printf("warrenctl %s\n", PACKAGE_VERSION);
            return 0;
        case ':':
            fprintf(stderr, "Error: option %s needs a value\n", argv[optind - 1]);
            return CTL_EX_USAGE;
        default:
            fprintf(stderr, "Error: invalid option %s\n", argv[optind - 1]);
            ctl_print_usage(stderr);
            return CTL_EX_USAGE;
        }
    }
    if ((c.tls || c.cacert != NULL) && c.host == NULL) {
        fputs("Error: --tls and --cacert go with --host (the local socket is not TLS)\n", stderr);
        return CTL_EX_USAGE;
    }
    int nargs = argc - optind;
    char **args = argv + optind;
    if (help || (nargs > 0 && strcmp(args[0], "help") == 0)) {
        const char *name = help ? (nargs > 0 ? args[0] : NULL) : (nargs > 1 ? args[1] : NULL);
        for (size_t i = 0; name != NULL && i < CTL_NCMDS; i++)
            if (strcmp(ctl_cmds[i].name, name) == 0) {
                ctl_print_cmd_usage(stdout, &ctl_cmds[i]);
                return 0;
            }
        ctl_print_usage(stdout);
        return 0;
    }
    if (nargs == 0) {
        ctl_print_usage(stderr);
        return CTL_EX_USAGE;
    }
    const struct ctl_cmd *cmd = NULL;
    for (size_t i = 0; i < CTL_NCMDS; i++)
        if (strcmp(ctl_cmds[i].name, args[0]) == 0)
            cmd = &ctl_cmds[i];
    if (cmd == NULL) {
        fprintf(stderr, "\nCommand '%s' not found. \n", args[0]);
        ctl_print_usage(stderr);
        return CTL_EX_USAGE;
    }
    c.cmd = cmd;
    nargs--;
    args++;
    if (nargs < cmd->min_args)
        return ctl_usage_error(cmd, "not enough arguments.", nargs, args);
    if (cmd->max_args >= 0 && nargs > cmd->max_args)
        return ctl_usage_error(cmd, "too many arguments.", nargs, args);
    if (!ctl_args_utf8(&c, nargs, args))
        return ctl_usage_error(cmd, "arguments must be UTF-8.", nargs, args);
    int rc = ctl_read_conf(&c, config, data_dir);
    if (rc == 0)
        rc = cmd->run(&c, nargs, args);
    if (rc == CTL_OK && ctl_reports_ok(cmd->name))
        rc = ctl_out_ok(&c);
    free(c.socket_path);
    return rc;
}
