/* warrenctl's shared declarations: the options every command sees, the HTTP exchange with
 * the broker's administration API (http.c), the rabbitmqctl-shaped output (out.c) and the
 * command table (main.c) whose handlers live in cmd_users.c, cmd_vhosts.c, cmd_queues.c,
 * cmd_lists.c, cmd_policies.c, cmd_node.c, cmd_cluster.c, cmd_members.c and cmd_runtime.c.
 *
 * Exit codes are rabbitmqctl's, which are sysexits.h's: 64 a usage error (and delete_queue's
 * refusals), 65 bad input data (a failed authentication, a missing vhost for delete_vhost),
 * 67 a missing user, 69 the broker refused or could not be reached, 70 a user that already
 * exists or a failed node_health_check. */
#ifndef WARRENCTL_CTL_H
#define WARRENCTL_CTL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

enum ctl_exit {
    CTL_OK = 0,
    CTL_EX_USAGE = 64,
    CTL_EX_DATAERR = 65,
    CTL_EX_NOUSER = 67,
    CTL_EX_UNAVAILABLE = 69,
    CTL_EX_SOFTWARE = 70,
};

enum ctl_formatter {
    CTL_FMT_TABLE = 0, /* rabbitmqctl's default: tab-separated columns */
    CTL_FMT_JSON,
    CTL_FMT_CSV,
};

struct ctl_cmd;

/* Where the broker is and how to print. Strings borrow argv, the environment or port_buf,
 * except socket_path, which the struct owns. */
struct ctl {
    /* Transport: the Unix socket (no password) unless host is set, then TCP + basic auth,
     * over TLS with tls (--tls), verified against cacert (--cacert; NULL: the system's). */
    char *socket_path;
    const char *host, *port, *username, *password;
    char port_buf[8]; /* port, when it comes from the configuration */
    bool tls;
    const char *cacert;
    int timeout_s;      /* per connect/read/write; rabbitmqctl's --timeout */
    bool timeout_set;   /* --timeout given: await_startup's and node_health_check's bound */
    bool quiet_connect; /* await_startup's probes: ctl_http prints no failure to connect */
    bool all_columns;   /* report: lists print every column they know */
    bool quiet, silent, no_headers;
    enum ctl_formatter formatter;
    const char *vhost;         /* -p; "/" by default */
    const struct ctl_cmd *cmd; /* the command being run, for its usage errors */
    /* add_vhost's options; NULL when not given */
    const char *description, *tags, *default_queue_type;
    /* set_policy's and set_operator_policy's; NULL when not given */
    const char *priority, *apply_to;
    bool if_empty, if_unused; /* delete_queue's */
    /* close_all_connections': --global, --per-connection-delay (ms), --limit (0: none) */
    bool global;
    long per_connection_delay_ms, limit;
    /* grow's --vhost-pattern and --queue-pattern (NULL when not given: ".*"); grow's and
     * shrink's --errors-only */
    const char *vhost_pattern, *queue_pattern;
    bool errors_only;
};

/* One HTTP reply. body is NUL-terminated (for printing and for jansson) and owned. */
struct ctl_reply {
    int status;
    char *body;
    size_t len;
};

/* One request on a connection of its own. path is already percent-encoded; body (may be NULL) is
 * sent as application/json; extra_header (may be NULL) is one "Name: value" line without CRLF.
 * Credentials go only over TCP (the Unix socket's peer is trusted). Returns 0 with *r filled
 * (caller frees r->body with ctl_reply_free), or -1 after printing why the broker could not
 * be reached or its reply was not HTTP. */
int ctl_http(const struct ctl *c, const char *method, const char *path, const char *body,
             size_t body_len, const char *extra_header, struct ctl_reply *r);
void ctl_reply_free(struct ctl_reply *r);

/* Appends s percent-encoded as one path segment ("/" is %2F) to out (outlen bytes, NUL
 * included). Returns 0, or -1 when it does not fit. */
int ctl_path_escape(char *out, size_t outlen, const char *s);

/* The JSON of a reply, or NULL (the caller prints the error) when the body is not JSON. */
json_t *ctl_reply_json(const struct ctl_reply *r);

/* ctl_http with a JSON body (may be NULL), dumped compact. Same returns. */
int ctl_http_json(const struct ctl *c, const char *method, const char *path, json_t *body,
                  struct ctl_reply *r);
/* Writes prefix, then a and b (each may be NULL) percent-encoded and joined by "/", into out.
 * Returns 0, or -1 after printing that a name is too long. */
int ctl_path(char *out, size_t outlen, const char *prefix, const char *a, const char *b);
/* Frees r's body; returns CTL_OK for a 2xx status, else 69 after ctl_error_reply(). */
int ctl_status_result(struct ctl_reply *r);
/* Replaces the limits of owner under kind ("vhost-limits/" or "user-limits/") by the JSON
 * object in text, whose keys must be among keys[] and values integers (-1: no limit):
 * limits it leaves out are deleted, as rabbitmqctl's set_*_limits replaces the definition.
 * Returns CTL_OK or an exit code after printing rabbitmqctl's error. */
int ctl_limits_set(struct ctl *c, const char *kind, const char *owner, const char *text,
                   const char *const *keys, size_t nkeys);

/* GETs prefix + name: returns 0 when it exists, 404 when not (nothing printed), else an exit
 * code (printed). */
int ctl_exists(const struct ctl *c, const char *prefix, const char *name);
/* "Virtual host 'v' does not exist" on stderr without "Error:", exit 65: what rabbitmqctl's
 * delete_vhost, list_permissions, set_vhost_limits and the policy commands print. */
int ctl_no_vhost_65(const char *vhost);

/* Prints "Error:\n<msg>\n" to stderr, rabbitmqctl's shape, and returns rc. */
int ctl_error(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An unexpected reply: prints the server's "reason" (or the status) and returns 69. */
int ctl_error_reply(const struct ctl_reply *r);
/* Prints the banner line ("Listing users ...") unless -q, -s or another --formatter than
 * table (rabbitmqctl prints none before JSON or CSV). */
void ctl_banner(const struct ctl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The broker's node name (warren@host) from /api/overview into buf. Returns 0, or an exit
 * code after printing why the broker did not answer. */
int ctl_node_name(const struct ctl *c, char *buf, size_t cap);
/* What rabbitmqctl prints for a command that succeeded with nothing to report: under
 * --formatter json (even with -q or -s) {"node":"<node>","result":"ok"} (its DefaultOutput),
 * under the others nothing. Returns the exit code. */
int ctl_out_ok(const struct ctl *c);

/* GETs path and returns its JSON in *out (caller decrefs). Returns 0, or the HTTP status
 * when it is not 200 (*out NULL, nothing printed, so that the caller can name a 404), or
 * -CTL_EX_* after printing the error. */
int ctl_get_json(const struct ctl *c, const char *path, json_t **out);

/* A list: rows is a JSON array of objects; cols the keys to print, in order. Prints the
 * banner (already done by the caller), the header and one line per row in the chosen
 * formatter. A missing key prints as an empty field. */
void ctl_out_table(const struct ctl *c, const char *const *cols, size_t ncols, json_t *rows);
/* Sorts rows (a JSON array of objects) by the string at key1, then key2 (may be NULL). The
 * API gives them in hash order (and rabbitmqctl in Mnesia's): sorted, the output is the same
 * from run to run, for scripts and diffs. Returns 0, or 70 after printing. */
int ctl_rows_sort(json_t *rows, const char *key1, const char *key2);
/* Writes v as rabbitmqctl prints a value in a table: strings bare, lists of strings as
 * [a, b], objects as Erlang proplists [{"k",v}]. */
void ctl_out_value(FILE *f, const json_t *v);

/* A list command: the info keys it accepts and prints by default, its banner (NULL: none),
 * what turns an API row into rabbitmqctl's keys (NULL: nothing; arg is ctl_list's), and the
 * keys its rows are sorted by (sort2 may be NULL). */
struct ctl_list_spec {
    const char *const *keys;
    size_t nkeys;
    const char *const *dflt;
    size_t ndflt;
    void (*banner)(const struct ctl *c);
    void (*fix)(json_t *row, void *arg);
    const char *sort1, *sort2;
};

/* Checks the columns asked for (argv), prints the banner, GETs path and prints its rows as
 * s says (every column of s->keys when none is asked for and c->all_columns). A 404 (a vhost that
 * does not exist) lists nothing, as rabbitmqctl. Returns the exit code. */
int ctl_list(struct ctl *c, int argc, char **argv, const char *path, const struct ctl_list_spec *s,
             void *arg);

/* A command: args are the positional arguments after the command name. */
struct ctl_cmd {
    const char *name;
    int min_args, max_args; /* max -1: any number */
    int (*run)(struct ctl *c, int argc, char **argv);
    const char *usage; /* the arguments, for "Usage" and help */
    const char *summary;
};

/* Prints rabbitmqctl's argument-validation error for cmd and returns 64. */
int ctl_usage_error(const struct ctl_cmd *cmd, const char *why, int argc, char **argv);

/* Checks that every positional argument names one of the allowed columns. Returns 0, or 64
 * after printing "Info key(s) x are not supported". */
int ctl_check_columns(const struct ctl_cmd *cmd, const char *const *allowed, size_t nallowed,
                      int argc, char **argv);

/* The commands (the table in main.c): each prints its banner, makes its requests, prints its
 * result or rabbitmqctl's error, and returns the exit code (enum ctl_exit). */
int ctl_cmd_add_user(struct ctl *c, int argc, char **argv);
int ctl_cmd_delete_user(struct ctl *c, int argc, char **argv);
int ctl_cmd_change_password(struct ctl *c, int argc, char **argv);
int ctl_cmd_clear_password(struct ctl *c, int argc, char **argv);
int ctl_cmd_authenticate_user(struct ctl *c, int argc, char **argv);
int ctl_cmd_set_user_tags(struct ctl *c, int argc, char **argv);
int ctl_cmd_list_users(struct ctl *c, int argc, char **argv);
int ctl_cmd_set_user_limits(struct ctl *c, int argc, char **argv);

int ctl_cmd_add_vhost(struct ctl *c, int argc, char **argv);
int ctl_cmd_delete_vhost(struct ctl *c, int argc, char **argv);
int ctl_cmd_list_vhosts(struct ctl *c, int argc, char **argv);
int ctl_cmd_set_vhost_limits(struct ctl *c, int argc, char **argv);
int ctl_cmd_set_permissions(struct ctl *c, int argc, char **argv);
int ctl_cmd_clear_permissions(struct ctl *c, int argc, char **argv);
int ctl_cmd_list_permissions(struct ctl *c, int argc, char **argv);
int ctl_cmd_list_user_permissions(struct ctl *c, int argc, char **argv);
int ctl_cmd_set_topic_permissions(struct ctl *c, int argc, char **argv);
int ctl_cmd_clear_topic_permissions(struct ctl *c, int argc, char **argv);
int ctl_cmd_list_topic_permissions(struct ctl *c, int argc, char **argv);

int ctl_cmd_list_queues(struct ctl *c, int argc, char **argv);
int ctl_cmd_purge_queue(struct ctl *c, int argc, char **argv);
int ctl_cmd_delete_queue(struct ctl *c, int argc, char **argv);
int ctl_cmd_list_exchanges(struct ctl *c, int argc, char **argv);
int ctl_cmd_list_bindings(struct ctl *c, int argc, char **argv);
int ctl_cmd_list_channels(struct ctl *c, int argc, char **argv);
int ctl_cmd_list_consumers(struct ctl *c, int argc, char **argv);

int ctl_cmd_set_policy(struct ctl *c, int argc, char **argv);
int ctl_cmd_clear_policy(struct ctl *c, int argc, char **argv);
int ctl_cmd_list_policies(struct ctl *c, int argc, char **argv);
int ctl_cmd_set_operator_policy(struct ctl *c, int argc, char **argv);
int ctl_cmd_clear_operator_policy(struct ctl *c, int argc, char **argv);
int ctl_cmd_list_operator_policies(struct ctl *c, int argc, char **argv);

int ctl_cmd_export_definitions(struct ctl *c, int argc, char **argv);
int ctl_cmd_import_definitions(struct ctl *c, int argc, char **argv);
int ctl_cmd_status(struct ctl *c, int argc, char **argv);
int ctl_cmd_cluster_status(struct ctl *c, int argc, char **argv);
int ctl_cmd_forget_cluster_node(struct ctl *c, int argc, char **argv);
int ctl_cmd_rebalance(struct ctl *c, int argc, char **argv);
int ctl_cmd_add_member(struct ctl *c, int argc, char **argv);
int ctl_cmd_delete_member(struct ctl *c, int argc, char **argv);
int ctl_cmd_grow(struct ctl *c, int argc, char **argv);
int ctl_cmd_shrink(struct ctl *c, int argc, char **argv);
/* What a listener of the API's protocol name is for, in rabbitmqctl's words ("" unknown). */
const char *ctl_listener_purpose(const char *protocol);
int ctl_cmd_list_connections(struct ctl *c, int argc, char **argv);
int ctl_cmd_close_connection(struct ctl *c, int argc, char **argv);
int ctl_cmd_close_all_connections(struct ctl *c, int argc, char **argv);

int ctl_cmd_ping(struct ctl *c, int argc, char **argv);
int ctl_cmd_await_startup(struct ctl *c, int argc, char **argv);
int ctl_cmd_node_health_check(struct ctl *c, int argc, char **argv);
int ctl_cmd_environment(struct ctl *c, int argc, char **argv);
int ctl_cmd_set_log_level(struct ctl *c, int argc, char **argv);
int ctl_cmd_log_level(struct ctl *c, int argc, char **argv);
int ctl_cmd_rotate_logs(struct ctl *c, int argc, char **argv);
int ctl_cmd_report(struct ctl *c, int argc, char **argv);

#endif
