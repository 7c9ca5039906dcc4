/* The administration HTTP API: RabbitMQ's management paths and JSON (/api/users,
 * /api/vhosts, /api/permissions, /api/definitions...), served by libevent's evhttp on
 * management.tcp.port with HTTP basic auth against Warren's users and RabbitMQ's tag rules,
 * and on the Unix socket <data_dir>/warren-admin.sock (mode 0600), where the broker's own
 * user is trusted as an administrator without a password (warrenctl's local path).
 *
 * Every change goes through warren/admin.h and is answered once it is durable. Requests are
 * bounded (header and body sizes, a deadline per request, a cap on connections and on the
 * bytes of requests being received) so that a hostile client gets a status or a closed
 * socket, never the event loop it shares with AMQP. This is the first slice of the full
 * management API (issue 13): src/mgmt/http.c is the transport, src/mgmt/api.c the routes. */
#ifndef WARREN_MGMT_H
#define WARREN_MGMT_H

struct admin;
struct auth_db;
struct cluster;
struct conf;
struct event_base;
struct net_server;
struct store;
struct vhost_registry;
struct mgmt;

/* What the API borrows for its whole life. */
struct mgmt_env {
    struct event_base *base;
    const struct conf *conf; /* management.*, data_dir, loopback_users */
    struct admin *admin;
    struct auth_db *auth;
    struct vhost_registry *vhosts;
    struct net_server *net;  /* connections and alarms; NULL: none (the fuzzer) */
    struct store *store;     /* its write histograms for /metrics; NULL: none */
    struct cluster *cluster; /* the cluster's nodes for /api/nodes; NULL: not clustered */
};

/* NULL on ENOMEM (logged). */
struct mgmt *mgmt_new(const struct mgmt_env *env);
/* Binds management.tcp.ip:management.tcp.port (unless the port is 0) and the Unix socket
 * (a stale one is removed first). Returns 0, or -1 (logged with the address and reason). */
int mgmt_listen(struct mgmt *m);
/* Stops serving, answers nothing more, unlinks the Unix socket. NULL is fine. */
void mgmt_free(struct mgmt *m);

#endif
