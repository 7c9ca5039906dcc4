/* Server configuration: defaults, the rabbitmq.conf-style file (`key = value`, same key names
 * as RabbitMQ where it has one), and command-line flags that override the file. One table of
 * keys drives parsing, defaults and --help. Errors name the file and line and stop startup. */
#ifndef WARREN_CONF_H
#define WARREN_CONF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "warren/log.h"

#define CONF_MAX_LISTENERS 16
#define CONF_MAX_LOOPBACK_USERS 16
#define CONF_MAX_USER_TAGS 16
#define CONF_INFINITY UINT32_MAX /* a limit set to infinity */
#define CONF_MAX_LIST 16         /* values of one numbered list (ssl_options.versions.N) */
#define CONF_NODE_MAX 255        /* bytes of a node name, name@host[:port], as Erlang's atoms */

/* One address to listen on. host is a numeric IPv4 or IPv6 address; "" means every
 * interface (the server binds 0.0.0.0 and ::, as RabbitMQ does for a bare port). */
struct conf_listener {
    char host[64];
    uint16_t port;
};

/* A numbered list, rabbitmq.conf's `key.N = value` (ssl_options.versions.1 = tlsv1.3): the
 * values in the order of their N. The first line of a list in a file replaces the default
 * list; the same N again replaces its value. Owns the values. */
struct conf_list {
    char *items[CONF_MAX_LIST];
    uint64_t index[CONF_MAX_LIST]; /* the N of each item, ascending */
    unsigned n;
};

/* ssl_options.verify */
enum conf_verify {
    CONF_VERIFY_NONE = 0, /* verify_none: a client certificate is neither asked for nor checked */
    CONF_VERIFY_PEER,     /* verify_peer: asked for, and refused unless it checks out */
};

/* ssl_cert_login_from: where EXTERNAL takes the user name from in the client certificate */
enum conf_cert_login {
    CONF_CERT_LOGIN_DN = 0, /* distinguished_name: the subject, RFC 4514, as RabbitMQ formats it */
    CONF_CERT_LOGIN_CN,     /* common_name: the subject's CNs, joined with "," */
    CONF_CERT_LOGIN_SAN,    /* subject_alternative_name: ssl_cert_login_san_type/_index */
};

/* ssl_cert_login_san_type */
enum conf_san_type {
    CONF_SAN_DNS = 0,
    CONF_SAN_IP,
    CONF_SAN_EMAIL,
    CONF_SAN_URI,
    CONF_SAN_OTHER_NAME,
};

/* cluster_formation.peer_discovery_backend: how a node finds its cluster's other nodes */
enum conf_peer_discovery {
    CONF_PEER_DISCOVERY_CLASSIC = 0, /* classic_config: the nodes listed in the file */
};

/* A node name taken apart: name@host[:port]. port 0: none given (the peer listens on this
 * node's own distribution port, conf_distribution_port()). host keeps an IPv6 address's
 * brackets off. */
struct conf_node {
    char name[CONF_NODE_MAX + 1];
    char host[CONF_NODE_MAX + 1];
    uint16_t port;
};

struct conf {
    struct conf_listener listeners[CONF_MAX_LISTENERS]; /* listeners.tcp.<name> = [host:]port */
    unsigned n_listeners;
    /* listeners.ssl.<name> = [host:]port: AMQP over TLS (amqps); none by default */
    struct conf_listener ssl_listeners[CONF_MAX_LISTENERS];
    unsigned n_ssl_listeners;
    /* ssl_options.*: what the TLS listeners present and ask of clients (src/net/tls.c).
     * The file names are owned, NULL when not set. */
    char *ssl_certfile;               /* the server's certificate (PEM), with its chain after it */
    char *ssl_keyfile;                /* its private key (PEM) */
    char *ssl_cacertfile;             /* CA certificates client certificates are checked against */
    char *ssl_password;               /* owns; the key file's passphrase, NULL: not encrypted */
    enum conf_verify ssl_verify;      /* ssl_options.verify = verify_none */
    bool ssl_fail_if_no_peer_cert;    /* ssl_options.fail_if_no_peer_cert = false */
    struct conf_list ssl_versions;    /* ssl_options.versions.N: tlsv1.3, tlsv1.2 */
    struct conf_list ssl_ciphers;     /* ssl_options.ciphers.N; none: OpenSSL's defaults */
    uint32_t ssl_depth;               /* ssl_options.depth = 10: intermediates allowed */
    bool ssl_honor_cipher_order;      /* ssl_options.honor_cipher_order = false */
    struct conf_list auth_mechanisms; /* auth_mechanisms.N: PLAIN, AMQPLAIN */
    enum conf_cert_login ssl_cert_login_from;   /* ssl_cert_login_from = distinguished_name */
    enum conf_san_type ssl_cert_login_san_type; /* ssl_cert_login_san_type = dns */
    uint32_t ssl_cert_login_san_index;          /* ssl_cert_login_san_index = 0 */
    char *default_user;                         /* owns; default_user = guest */
    char *default_pass;                         /* owns; default_pass = guest */
    char *default_vhost;                        /* owns; default_vhost = / */
    /* loopback_users.<name> = true|false: users allowed to log in from loopback only.
     * Default: guest. Owns the names. */
    char *loopback_users[CONF_MAX_LOOPBACK_USERS];
    unsigned n_loopback_users;
    /* The first start's permissions for default_user on default_vhost (owned):
     * default_permissions.configure|write|read = .* */
    char *default_permissions_configure, *default_permissions_write, *default_permissions_read;
    /* default_user_tags.<tag> = true|false: default_user's tags. Default: administrator. */
    char *default_user_tags[CONF_MAX_USER_TAGS];
    unsigned n_default_user_tags;
    char *load_definitions; /* owns; load_definitions = FILE imported at start; "": none */
    /* password_hashing_module = rabbit_password_hashing_sha256 (or _sha512): how passwords
     * set here are hashed (owned) */
    char *password_hashing_module;
    uint32_t connection_max; /* connection_max = infinity (CONF_INFINITY): RabbitMQ's */
    uint32_t heartbeat;      /* seconds; heartbeat = 60 */
    uint32_t frame_max;      /* bytes; frame_max = 131072 */
    uint32_t channel_max;    /* channel_max = 2047 */
    /* collect_statistics_interval = 5000: ms between two samples of the rates (stats.h) */
    uint32_t collect_statistics_interval;
    /* Memory held by messages and output buffers above which publishers are blocked
     * (connection.blocked): the absolute limit in bytes when non-zero, else the relative one
     * times physical memory. vm_memory_high_watermark.relative = 0.4, .absolute = 0. */
    double vm_memory_high_watermark_relative;
    uint64_t vm_memory_high_watermark_absolute;
    /* Free space on data_dir's filesystem below which publishers are blocked (connection.blocked
     * "low on disk"), see conf_disk_free_limit(). disk_free_limit.absolute = 50000000 (bytes,
     * RabbitMQ's 50MB), disk_free_limit.relative = 0 (not set; else a multiple of physical
     * memory). */
    uint64_t disk_free_limit_absolute;
    double disk_free_limit_relative;
    bool disk_free_limit_absolute_set; /* a file gave .absolute: it wins over .relative */
    uint32_t max_message_size;         /* bytes of body; max_message_size = 134217728 (128 MiB) */
    uint32_t handshake_timeout;        /* milliseconds; handshake_timeout = 10000 */
    uint32_t ssl_handshake_timeout;    /* milliseconds for TLS's; ssl_handshake_timeout = 5000 */
    /* Milliseconds a delivery may stay unacknowledged before its channel is closed, unless its
     * queue says otherwise; consumer_timeout = 1800000 (RabbitMQ's 30 minutes). 0: never, what
     * RabbitMQ's advanced.config says with undefined (its rabbitmq.conf refuses 0). Values of
     * a year and more, which RabbitMQ users set to mean never, fit. */
    uint64_t consumer_timeout;
    /* Milliseconds between two tries of the dead-lettered messages an at-least-once queue
     * keeps because their copy reached no queue: the name and default (180000) of RabbitMQ's
     * advanced.config setting for its dead-letter workers. */
    uint64_t dead_letter_worker_publisher_confirm_timeout;
    uint32_t management_tcp_port; /* management.tcp.port = 15672; 0: no TCP listener */
    char *management_tcp_ip;      /* owns; management.tcp.ip = "" (every interface) */
    /* Milliseconds to receive one HTTP request, and of silence on an HTTP connection:
     * management.tcp.request_timeout = 30000, management.tcp.idle_timeout = 30000 */
    uint32_t management_request_timeout, management_idle_timeout;
    /* management.ssl.port = 0 (none): HTTPS with management.ssl.certfile, .keyfile and
     * .password (owned; NULL: not set); versions and ciphers are ssl_options'. */
    uint32_t management_ssl_port;
    char *management_ssl_certfile, *management_ssl_keyfile, *management_ssl_password;
    /* rabbitmq_prometheus's listener: prometheus.tcp.port = 15692 (0: none), on
     * prometheus.tcp.ip (owned; "" every interface). Same request bounds as the API's. */
    uint32_t prometheus_tcp_port;
    char *prometheus_tcp_ip;
    enum log_level log_level; /* log.level = info */
    /* The outputs, as rabbitmq.conf names them (conf_log_options() resolves them): log.dir
     * = . and log.file = false (owned; false: no file), log.file.level and log.console.level
     * (not set: log.level), log.file.formatter and log.console.formatter = plaintext,
     * log.file.rotation.size = 0 (never), log.file.rotation.count = 0, log.console = true
     * (not set: on unless log.file is set). */
    char *log_dir, *log_file;
    enum log_level log_file_level, log_console_level;
    enum log_format log_file_format, log_console_format;
    uint64_t log_file_rotation_size;
    uint32_t log_file_rotation_count;
    bool log_console;
    bool log_file_level_set, log_console_level_set, log_console_set; /* a file gave them */
    char *data_dir; /* owns; data_dir = ./var (RocksDB lives under it) */
    /* RocksDB's memory: block cache (0: none), one memtable (0: RocksDB's 64 MiB), memtables.
     * store.block_cache_size = 32MB, store.write_buffer_size = 16MB, store.max_write_buffers = 2 */
    uint64_t store_block_cache_size;
    uint32_t store_write_buffer_size;
    uint32_t store_max_write_buffers;
    uint64_t store_queue_window; /* store.queue_window = 8MB: a durable queue's message bytes
                                  * in memory (lazy paging) */
    /* The cluster (issue 14), with RabbitMQ's keys. cluster_name = "" (owned; "": not set,
     * the default name is used). cluster_formation.peer_discovery_backend = classic_config;
     * cluster_formation.classic_config.nodes.N = name@host[:port]: the other nodes (this one
     * may be listed too); none: a node alone. */
    char *cluster_name;
    enum conf_peer_discovery peer_discovery_backend;
    struct conf_list cluster_nodes;
    /* The cluster listener: distribution.listener.port_range.min and .max (0: not set; the
     * node listens on .min, see conf_distribution_port()) and distribution.listener.interface
     * (owned; a numeric address, "": every interface). */
    uint32_t distribution_port_min, distribution_port_max;
    char *distribution_interface;
    /* owned; NULL: not set. With a certificate the nodes' connections are TLS, each node's
     * certificate checked against the CA file (both required then; tls_node_ctx_new). */
    char *distribution_ssl_certfile, *distribution_ssl_keyfile, *distribution_ssl_cacertfile;
    char *distribution_ssl_password;
    /* owns; this node's name, name@host: --nodename, else $WARREN_NODENAME, else
     * warren@<short host name> (RabbitMQ's RABBITMQ_NODENAME and its default rabbit@<host>) */
    char *nodename;
    char *config_path; /* owns; the file loaded, or NULL */
};

enum conf_outcome {
    CONF_RUN = 0,  /* start the server with *c */
    CONF_EXIT_OK,  /* --help, --version or --check-config printed what was asked: exit 0 */
    CONF_EXIT_ERR, /* a bad flag, file or value: the message was written to stderr: exit 1 */
};

/* Fills c with defaults, then reads --config FILE (if given), then applies the other flags
 * (--port N, --bind ADDR (repeatable), --data-dir DIR, --log-level L, --management-port N,
 * --nodename NAME, which wins over $WARREN_NODENAME), which override the file. --bind replaces the
 * listeners from the file: every --bind address gets the --port (or the file's first listener's
 * port). --port alone moves every listener to port N, keeping its host. On CONF_EXIT_ERR nothing
 * needs freeing; otherwise the caller calls conf_free(). */
enum conf_outcome conf_from_cmdline(struct conf *c, int argc, char **argv);

/* Parses one file into c (which holds defaults or earlier values). Returns 0, or -1 after
 * writing "FILE:LINE: reason" to err. */
int conf_load_file(struct conf *c, const char *path, char *err, size_t errlen);

void conf_init_defaults(struct conf *c);
void conf_free(struct conf *c);
bool conf_is_loopback_user(const struct conf *c, const char *user);
/* Whether list holds value (exactly, case included). */
bool conf_list_has(const struct conf_list *list, const char *value);

/* The effective configuration, as rabbitmq.conf lines: calls fn(arg, key, value) for every
 * key in the table's order, a family once per member (listeners.tcp.1, .2 ... for listeners,
 * whose names are not kept; <key>.<N> for lists; default_user_tags.<tag> = true), a
 * string or path that is not set not at all. The values of secrets (default_pass and the
 * *.password keys) are "********"; log.file.level, log.console.level and log.console are
 * what conf_log_options resolves them to. fn's strings live only for the call; a non-zero return
 * stops the walk and is returned. Returns 0 otherwise. */
int conf_each(const struct conf *c, int (*fn)(void *arg, const char *key, const char *value),
              void *arg);

/* The log outputs c configures, as RabbitMQ resolves them: an output's level is log.level
 * unless its own is set; the console is on when log.console = true, or when log.console is
 * not set and either log.console.level is set (to other than none) or there is no log.file.
 * o's strings borrow c's. */
void conf_log_options(const struct conf *c, struct log_options *o);

/* The free disk space limit in bytes, as RabbitMQ resolves disk_free_limit: the relative
 * setting times phys_mem (bytes of physical memory) when it is set and .absolute was not
 * given, else the absolute one. */
uint64_t conf_disk_free_limit(const struct conf *c, uint64_t phys_mem);

/* The port of this node's cluster listener: distribution.listener.port_range.min when set,
 * else the first AMQP listener's port (5672 without one) + 20000, RabbitMQ's rule (5672 ->
 * 25672). 0 when that passes 65535: conf_from_cmdline refuses it when nodes are listed. */
uint16_t conf_distribution_port(const struct conf *c);

/* Takes apart a node name, name@host or, when with_port, name@host[:port]: name of
 * [A-Za-z0-9_-], host a host name or IPv4 address ([A-Za-z0-9.-]) or a bracketed IPv6
 * address, port 1..65535. Returns 0, or -1 after writing the reason into err. */
int conf_node_parse(const char *s, bool with_port, struct conf_node *out, char *err, size_t errlen);

#endif
