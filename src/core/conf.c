/* Configuration: defaults, the rabbitmq.conf-style file and the command-line flags.
 *
 * One table, conf_keys[], names every key with its type, its place in struct conf, its
 * default, its bounds and a line of help. The defaults are applied by parsing the table's
 * default strings with the same code that parses the file, and --help prints the table, so
 * a key cannot have a default, a parser or a help line without the others (redis
 * static_configs[], nginx ngx_command_t).
 *
 * The file is rabbitmq.conf's format: `key = value` lines, `#` comments, blank lines,
 * whitespace around tokens ignored. Unknown keys and bad values stop startup with
 * "FILE:LINE: reason" (haproxy "parsing [file:line]"). A later line for the same key wins,
 * as in RabbitMQ. Two families of keys take a name:
 *   listeners.tcp.<name> = [host:]port   the first one in a file replaces the default
 *                                        listener; the same <name> again replaces its line
 *   listeners.ssl.<name> = [host:]port   the same for TLS listeners (none by default);
 *                                        listeners.tcp = none and listeners.ssl = none
 *                                        clear a family
 *   loopback_users.<name> = true|false   adds or removes <name>; loopback_users = none
 *                                        clears the list (default: guest only)
 *   default_user_tags.<tag> = true|false the first one in a file replaces the default list
 *                                        (administrator); then adds or removes a tag
 * and numbered lists take a number: `ssl_options.versions.1 = tlsv1.3` (struct conf_list).
 * The node's name is not a key (RabbitMQ's is not either): --nodename or $WARREN_NODENAME. */
#include "config.h"

#include "warren/conf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONF_PROG "warren-server"
#define CONF_LISTENER_NAME_MAX 64 /* bytes, NUL included, of a listeners.tcp.<name> name */
#define CONF_DEFAULT_PORT 5672
#define CONF_DIST_PORT_OFFSET 20000 /* RabbitMQ's: distribution port = AMQP port + 20000 */

enum conf_type {
    CONF_UINT = 0,  /* decimal integer min..max */
    CONF_SIZE,      /* bytes: 0 (no limit) or min..max; KB, MB or GB suffix (x1024) allowed */
    CONF_STR,       /* string of min..max bytes */
    CONF_LEVEL,     /* a log.level name */
    CONF_LISTENER,  /* listeners.tcp.<name> = [host:]port */
    CONF_LOOPBACK,  /* loopback_users.<name> = true|false, loopback_users = none */
    CONF_BYTES64,   /* bytes, any size (KB, MB or GB suffix allowed); stored as uint64_t */
    CONF_RATIO,     /* a decimal number min..max, stored as double */
    CONF_INFO_UNIT, /* bytes in RabbitMQ's information units (50MB, 2GiB); stored as uint64_t */
    CONF_TAGS,      /* default_user_tags.<tag> = true|false */
    CONF_MAX,       /* an integer min..max, or infinity (stored as CONF_INFINITY) */
    CONF_HASHING,   /* rabbit_password_hashing_sha256 or _sha512, stored as a string */
    CONF_BOOL,      /* true or false */
    CONF_ENUM,      /* one of the names conf_choices[] lists for the field; stored as an enum */
    CONF_LIST,      /* <key>.<N> = value, a struct conf_list; values from conf_choices[] when it
                     * lists the field, else any; the default is the values, space-separated */
    CONF_PATH,      /* a file name; not set (NULL) by default */
    CONF_U64,       /* decimal integer of at least min, any size; stored as uint64_t */
    CONF_ADDR,      /* a numeric IPv4 or IPv6 address, or "" (every interface); a string */
};

/* One configuration key. A key ending in ".<name>" is a family: any non-empty <name>
 * matches, and its default is written "name = value". */
struct conf_key {
    const char *key;
    enum conf_type type;
    size_t field; /* offset in struct conf; unused by the named families */
    const char *def;
    uint32_t min, max;
    const char *help;
};

#define CONF_F(f) offsetof(struct conf, f)

/* The names a CONF_ENUM or CONF_LIST key accepts, and for an enum, the value each stands for. */
static const struct {
    size_t field;
    const char *name;
    unsigned value;
} conf_choices[] = {
    {CONF_F(ssl_verify), "verify_none", CONF_VERIFY_NONE},
    {CONF_F(ssl_verify), "verify_peer", CONF_VERIFY_PEER},
    {CONF_F(ssl_versions), "tlsv1.3", 0},
    {CONF_F(ssl_versions), "tlsv1.2", 0},
    {CONF_F(ssl_versions), "tlsv1.1", 0},
    {CONF_F(ssl_versions), "tlsv1", 0},
    {CONF_F(auth_mechanisms), "PLAIN", 0},
    {CONF_F(auth_mechanisms), "AMQPLAIN", 0},
    {CONF_F(auth_mechanisms), "EXTERNAL", 0},
    {CONF_F(ssl_cert_login_from), "distinguished_name", CONF_CERT_LOGIN_DN},
    {CONF_F(ssl_cert_login_from), "common_name", CONF_CERT_LOGIN_CN},
    {CONF_F(ssl_cert_login_from), "subject_alternative_name", CONF_CERT_LOGIN_SAN},
    {CONF_F(ssl_cert_login_from), "subject_alt_name", CONF_CERT_LOGIN_SAN}, /* RabbitMQ's alias */
    {CONF_F(ssl_cert_login_san_type), "dns", CONF_SAN_DNS},
    {CONF_F(ssl_cert_login_san_type), "ip", CONF_SAN_IP},
    {CONF_F(ssl_cert_login_san_type), "email", CONF_SAN_EMAIL},
    {CONF_F(ssl_cert_login_san_type), "uri", CONF_SAN_URI},
    {CONF_F(ssl_cert_login_san_type), "other_name", CONF_SAN_OTHER_NAME},
    {CONF_F(log_file_format), "plaintext", LOG_FORMAT_PLAIN},
    {CONF_F(log_file_format), "json", LOG_FORMAT_JSON},
    {CONF_F(log_console_format), "plaintext", LOG_FORMAT_PLAIN},
    {CONF_F(log_console_format), "json", LOG_FORMAT_JSON},
    {CONF_F(peer_discovery_backend), "classic_config", CONF_PEER_DISCOVERY_CLASSIC},
    /* RabbitMQ's module name for the same backend */
    {CONF_F(peer_discovery_backend), "rabbit_peer_discovery_classic_config",
     CONF_PEER_DISCOVERY_CLASSIC},
};
#define CONF_NCHOICES (sizeof(conf_choices) / sizeof(conf_choices[0]))

static const struct conf_key conf_keys[] = {
    /* key, type, field, default, min, max, help */
    {"listeners.tcp.<name>", CONF_LISTENER, CONF_F(listeners), "default = 5672", 1, 65535,
     "[host:]port to accept AMQP connections on; no host: every interface"},
    {"listeners.ssl.<name>", CONF_LISTENER, CONF_F(ssl_listeners), NULL, 1, 65535,
     "[host:]port to accept AMQP over TLS on (amqps, usually 5671); none by default"},
    {"ssl_options.certfile", CONF_PATH, CONF_F(ssl_certfile), NULL, 1, 4095,
     "the TLS listeners' certificate (PEM), its chain after it"},
    {"ssl_options.keyfile", CONF_PATH, CONF_F(ssl_keyfile), NULL, 1, 4095,
     "the private key of ssl_options.certfile (PEM)"},
    {"ssl_options.cacertfile", CONF_PATH, CONF_F(ssl_cacertfile), NULL, 1, 4095,
     "CA certificates (PEM) that client certificates are checked against"},
    {"ssl_options.password", CONF_PATH, CONF_F(ssl_password), NULL, 1, 1023,
     "passphrase of an encrypted ssl_options.keyfile"},
    {"ssl_options.verify", CONF_ENUM, CONF_F(ssl_verify), "verify_none", 0, 0,
     "verify_peer: ask clients for a certificate and check it; verify_none: do not"},
    {"ssl_options.fail_if_no_peer_cert", CONF_BOOL, CONF_F(ssl_fail_if_no_peer_cert), "false", 0, 0,
     "true (with verify_peer): refuse clients that present no certificate"},
    {"ssl_options.versions.<N>", CONF_LIST, CONF_F(ssl_versions), "tlsv1.3 tlsv1.2", 1, 0,
     "TLS versions accepted: tlsv1.3, tlsv1.2, tlsv1.1, tlsv1"},
    {"ssl_options.ciphers.<N>", CONF_LIST, CONF_F(ssl_ciphers), "", 0, 0,
     "cipher suites accepted, OpenSSL names, in order; none: OpenSSL's defaults"},
    {"ssl_options.depth", CONF_UINT, CONF_F(ssl_depth), "10", 0, 100,
     "intermediate CA certificates allowed in a client's chain"},
    {"ssl_options.honor_cipher_order", CONF_BOOL, CONF_F(ssl_honor_cipher_order), "false", 0, 0,
     "true: the server's cipher order wins over the client's"},
    {"auth_mechanisms.<N>", CONF_LIST, CONF_F(auth_mechanisms), "PLAIN AMQPLAIN", 1, 0,
     "SASL mechanisms offered: PLAIN, AMQPLAIN, EXTERNAL (TLS client certificates)"},
    {"ssl_cert_login_from", CONF_ENUM, CONF_F(ssl_cert_login_from), "distinguished_name", 0, 0,
     "EXTERNAL's user name: distinguished_name, common_name or subject_alternative_name"},
    {"ssl_cert_login_san_type", CONF_ENUM, CONF_F(ssl_cert_login_san_type), "dns", 0, 0,
     "subject_alternative_name's type: dns, ip, email, uri or other_name"},
    {"ssl_cert_login_san_index", CONF_UINT, CONF_F(ssl_cert_login_san_index), "0", 0, 1000,
     "which of the certificate's names of that type, from 0"},
    {"default_user", CONF_STR, CONF_F(default_user), "guest", 1, 255,
     "user the broker creates for clients to log in as"},
    {"default_pass", CONF_STR, CONF_F(default_pass), "guest", 1, 255, "password of default_user"},
    {"default_vhost", CONF_STR, CONF_F(default_vhost), "/", 1, 255,
     "virtual host the broker creates"},
    {"loopback_users.<name>", CONF_LOOPBACK, 0, "guest = true", 1, 255,
     "true: user <name> may log in only from a loopback address"},
    {"default_user_tags.<tag>", CONF_TAGS, 0, "administrator = true", 1, 255,
     "true: default_user gets tag <tag> on the first start"},
    {"default_permissions.configure", CONF_STR, CONF_F(default_permissions_configure), ".*", 0,
     4095, "configure pattern of default_user on default_vhost, set on the first start"},
    {"default_permissions.write", CONF_STR, CONF_F(default_permissions_write), ".*", 0, 4095,
     "write pattern of default_user on default_vhost, set on the first start"},
    {"default_permissions.read", CONF_STR, CONF_F(default_permissions_read), ".*", 0, 4095,
     "read pattern of default_user on default_vhost, set on the first start"},
    {"password_hashing_module", CONF_HASHING, CONF_F(password_hashing_module),
     "rabbit_password_hashing_sha256", 0, 0,
     "how passwords set here are hashed: rabbit_password_hashing_sha256 or _sha512"},
    {"load_definitions", CONF_STR, CONF_F(load_definitions), "", 0, 4095,
     "RabbitMQ definitions file (JSON) imported at each start; set: no default user/vhost"},
    {"connection_max", CONF_MAX, CONF_F(connection_max), "infinity", 0, UINT32_MAX - 1,
     "connections open at once; past it the listeners stop accepting until one closes"},
    {"heartbeat", CONF_UINT, CONF_F(heartbeat), "60", 0, 65535,
     "heartbeat interval offered, in seconds; 0 disables heartbeats"},
    {"collect_statistics_interval", CONF_UINT, CONF_F(collect_statistics_interval), "5000", 100,
     INT32_MAX, "milliseconds between two samples of the message rates (management API)"},
    {"frame_max", CONF_SIZE, CONF_F(frame_max), "131072", 4096, INT32_MAX,
     "largest frame offered, in bytes; 0 means no limit"},
    {"channel_max", CONF_UINT, CONF_F(channel_max), "2047", 0, 65535,
     "most channels per connection offered; 0 means 65535"},
    {"max_message_size", CONF_UINT, CONF_F(max_message_size), "134217728", 1, 536870912,
     "largest message body accepted, in bytes (RabbitMQ's default and ceiling)"},
    {"vm_memory_high_watermark.relative", CONF_RATIO, CONF_F(vm_memory_high_watermark_relative),
     "0.4", 0, 1, "fraction of physical memory that messages may take before publishers block"},
    {"vm_memory_high_watermark.absolute", CONF_INFO_UNIT, CONF_F(vm_memory_high_watermark_absolute),
     "0", 0, 0, "bytes messages may take before publishers block (2GB, 2GiB ok); 0: .relative"},
    {"disk_free_limit.absolute", CONF_INFO_UNIT, CONF_F(disk_free_limit_absolute), "50000000", 0, 0,
     "free bytes on data_dir's disk below which publishers block; 50MB, 2GiB forms ok"},
    {"disk_free_limit.relative", CONF_RATIO, CONF_F(disk_free_limit_relative), "0", 0, 1000,
     "the same limit as a multiple of physical memory; 0: not set (a given .absolute wins)"},
    {"handshake_timeout", CONF_UINT, CONF_F(handshake_timeout), "10000", 1, INT32_MAX,
     "milliseconds a client has to finish the AMQP handshake"},
    {"consumer_timeout", CONF_U64, CONF_F(consumer_timeout), "1800000", 0, 0,
     "milliseconds a delivery may stay unacknowledged before its channel is closed; 0: never"},
    {"dead_letter_worker_publisher_confirm_timeout", CONF_U64,
     CONF_F(dead_letter_worker_publisher_confirm_timeout), "180000", 1, 0,
     "milliseconds between two tries of dead letters kept by an at-least-once queue"},
    {"ssl_handshake_timeout", CONF_UINT, CONF_F(ssl_handshake_timeout), "5000", 1, INT32_MAX,
     "milliseconds a client has to finish the TLS handshake, before the AMQP one"},
    {"management.tcp.port", CONF_UINT, CONF_F(management_tcp_port), "15672", 0, 65535,
     "port of the HTTP administration API; 0: no TCP listener (the Unix socket stays)"},
    {"management.tcp.request_timeout", CONF_UINT, CONF_F(management_request_timeout), "30000", 100,
     INT32_MAX, "milliseconds an HTTP API client has to send a whole request"},
    {"management.tcp.idle_timeout", CONF_UINT, CONF_F(management_idle_timeout), "30000", 100,
     INT32_MAX, "milliseconds an HTTP API connection may stay silent before it is closed"},
    {"management.ssl.port", CONF_UINT, CONF_F(management_ssl_port), "0", 0, 65535,
     "port of the HTTP API over TLS (HTTPS), on management.tcp.ip; 0: none"},
    {"management.ssl.certfile", CONF_PATH, CONF_F(management_ssl_certfile), NULL, 1, 4095,
     "the HTTPS listener's certificate (PEM), its chain after it"},
    {"management.ssl.keyfile", CONF_PATH, CONF_F(management_ssl_keyfile), NULL, 1, 4095,
     "the private key of management.ssl.certfile (PEM)"},
    {"management.ssl.password", CONF_PATH, CONF_F(management_ssl_password), NULL, 1, 1023,
     "passphrase of an encrypted management.ssl.keyfile"},
    {"management.tcp.ip", CONF_STR, CONF_F(management_tcp_ip), "", 0, 63,
     "numeric address of the HTTP API's listener; empty: every interface"},
    {"prometheus.tcp.port", CONF_UINT, CONF_F(prometheus_tcp_port), "15692", 0, 65535,
     "port of the Prometheus metrics (/metrics, no authentication); 0: none"},
    {"prometheus.tcp.ip", CONF_STR, CONF_F(prometheus_tcp_ip), "", 0, 63,
     "numeric address of the Prometheus listener; empty: every interface"},
    {"log.level", CONF_LEVEL, CONF_F(log_level), "info", 0, 0,
     "debug, info, warning, error, critical or none"},
    {"log.dir", CONF_STR, CONF_F(log_dir), ".", 1, 4095, "directory of a relative log.file"},
    {"log.file", CONF_STR, CONF_F(log_file), "false", 1, 4095,
     "file to log to (under log.dir unless absolute); false: none"},
    {"log.file.level", CONF_LEVEL, CONF_F(log_file_level), NULL, 0, 0,
     "least severe messages written to the file; not set: log.level"},
    {"log.file.formatter", CONF_ENUM, CONF_F(log_file_format), "plaintext", 0, 0,
     "plaintext, or json: one JSON object per line (time, level, msg)"},
    {"log.file.rotation.size", CONF_U64, CONF_F(log_file_rotation_size), "0", 0, 0,
     "bytes past which the file is rotated (to <file>.0, .1...); 0: never"},
    {"log.file.rotation.count", CONF_UINT, CONF_F(log_file_rotation_count), "0", 0, 1000,
     "rotated files kept, <file>.0 the newest; 0: the file is emptied instead"},
    {"log.console", CONF_BOOL, CONF_F(log_console), "true", 0, 0,
     "log to stderr (the journal under systemd); not set: only when log.file is false"},
    {"log.console.level", CONF_LEVEL, CONF_F(log_console_level), NULL, 0, 0,
     "least severe messages written to stderr; not set: log.level"},
    {"log.console.formatter", CONF_ENUM, CONF_F(log_console_format), "plaintext", 0, 0,
     "plaintext, or json: one JSON object per line (time, level, msg)"},
    {"data_dir", CONF_STR, CONF_F(data_dir), "./var", 1, 4095,
     "directory of the message store (not a RabbitMQ key)"},
    {"store.block_cache_size", CONF_BYTES64, CONF_F(store_block_cache_size), "32MB", 0, 0,
     "bytes of RocksDB's block cache (index and filter blocks in it); 0: none"},
    {"store.write_buffer_size", CONF_SIZE, CONF_F(store_write_buffer_size), "16MB", 65536,
     1073741824, "bytes of one RocksDB memtable; 0: RocksDB's default, 64MB"},
    {"store.max_write_buffers", CONF_UINT, CONF_F(store_max_write_buffers), "2", 2, 64,
     "RocksDB memtables, full ones included, before writes wait for a flush"},
    {"store.queue_window", CONF_BYTES64, CONF_F(store_queue_window), "8MB", 65536, 0,
     "message bytes a durable queue keeps in memory; the rest wait in the store"},
    {"cluster_name", CONF_STR, CONF_F(cluster_name), "", 0, 255,
     "the cluster's name; empty: the default, warren@ and the host's full name"},
    {"cluster_formation.peer_discovery_backend", CONF_ENUM, CONF_F(peer_discovery_backend),
     "classic_config", 0, 0, "how nodes find each other: classic_config, the nodes listed"},
    {"cluster_formation.classic_config.nodes.<N>", CONF_LIST, CONF_F(cluster_nodes), "", 0, 0,
     "name@host[:port] of a cluster node; :port: its cluster port if not this node's"},
    {"distribution.listener.port_range.min", CONF_UINT, CONF_F(distribution_port_min), "0", 0,
     65535, "port of the cluster listener; 0: the first AMQP port + 20000 (25672)"},
    {"distribution.listener.port_range.max", CONF_UINT, CONF_F(distribution_port_max), "0", 0,
     65535, "0, or at least .min (Warren listens on .min only)"},
    {"distribution.listener.interface", CONF_ADDR, CONF_F(distribution_interface), "", 0, 0,
     "numeric address of the cluster listener; empty: every interface"},
    {"distribution.ssl_options.certfile", CONF_PATH, CONF_F(distribution_ssl_certfile), NULL, 1,
     4095, "this node's certificate (PEM) between the nodes: set, their traffic is TLS"},
    {"distribution.ssl_options.keyfile", CONF_PATH, CONF_F(distribution_ssl_keyfile), NULL, 1, 4095,
     "the private key of distribution.ssl_options.certfile (PEM)"},
    {"distribution.ssl_options.cacertfile", CONF_PATH, CONF_F(distribution_ssl_cacertfile), NULL, 1,
     4095, "CA certificates (PEM) the other nodes' certificates are checked against"},
    {"distribution.ssl_options.password", CONF_PATH, CONF_F(distribution_ssl_password), NULL, 1,
     1023, "passphrase of an encrypted distribution.ssl_options.keyfile"},
};

#define CONF_NKEYS (sizeof(conf_keys) / sizeof(conf_keys[0]))

/* State of one parse: where we are, for messages, and the listener names seen so far. */
struct conf_parse {
    const char *path; /* NULL: the built-in defaults */
    unsigned line;
    char *err;
    size_t errlen;
    bool seen[CONF_NKEYS]; /* this source named a listener, list item or tag of that family */
    /* parallel to listeners and ssl_listeners */
    char listener_names[2][CONF_MAX_LISTENERS][CONF_LISTENER_NAME_MAX];
};

/* Formats "PATH:LINE: message" into ps->err. Returns -1. */
static int conf_fail(struct conf_parse *ps, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
conf_fail(struct conf_parse *ps, const char *fmt, ...)
{
    if (ps->errlen == 0)
        return -1;
    int n = snprintf(ps->err, ps->errlen, "%s:%u: ", ps->path ? ps->path : "(defaults)", ps->line);
    if (n < 0 || (size_t)n >= ps->errlen)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* strdup that reports ENOMEM through ps. Returns the copy, or NULL after conf_fail(). */
static char *
conf_strdup(struct conf_parse *ps, const char *s)
{
    char *copy = strdup(s);
    if (copy == NULL)
        conf_fail(ps, "out of memory");
    return copy;
}

/* Parses a decimal integer with no sign, no spaces and no overflow. Returns 0 or -1. */
static int
conf_parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (*s == '\0')
        return -1;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Parses a byte count with an optional KB, MB or GB suffix (any case; multiples of 1024,
 * as RabbitMQ's bytesize). Returns 0 or -1. */
static int
conf_parse_size(const char *s, uint64_t *out)
{
    char digits[32];
    size_t n = strlen(s);
    uint64_t mult = 1;
    if (n >= 2 && (s[n - 1] == 'b' || s[n - 1] == 'B')) {
        switch (s[n - 2]) {
        case 'k':
        case 'K':
            mult = 1024;
            break;
        case 'm':
        case 'M':
            mult = 1024 * 1024;
            break;
        case 'g':
        case 'G':
            mult = 1024 * 1024 * 1024;
            break;
        default:
            return -1;
        }
        n -= 2;
    }
    if (n == 0 || n >= sizeof(digits))
        return -1;
    memcpy(digits, s, n);
    digits[n] = '\0';
    uint64_t v;
    if (conf_parse_u64(digits, &v) < 0 || v > UINT64_MAX / mult)
        return -1;
    *out = v * mult;
    return 0;
}

/* Parses a byte count in RabbitMQ's information units, the syntax of its disk and memory
 * limits: digits, then optionally k, M, G, T or P (either case) for powers of 1000, or the
 * same followed by i for powers of 1024, then an optional B. 50MB is 50000000, 2GiB is
 * 2147483648, 512k is 512000 (RabbitMQ 3.13 and later; older versions read a bare k, M or G
 * as powers of 1024). Returns 0 or -1. */
static int
conf_parse_info_unit(const char *s, uint64_t *out)
{
    static const char prefixes[] = "kmgtp";
    char digits[32];
    size_t n = strspn(s, "0123456789");
    uint64_t v, mult = 1;
    if (n == 0 || n >= sizeof(digits))
        return -1;
    memcpy(digits, s, n);
    digits[n] = '\0';
    if (conf_parse_u64(digits, &v) < 0)
        return -1;
    const char *u = s + n;
    if (*u != '\0') {
        const char *p = strchr(prefixes, tolower((unsigned char)*u));
        if (p == NULL)
            return -1;
        bool binary = u[1] == 'i' || u[1] == 'I';
        u += binary ? 2 : 1;
        if (*u == 'b' || *u == 'B')
            u++;
        if (*u != '\0')
            return -1;
        for (const char *q = prefixes; q <= p; q++)
            mult *= binary ? 1024 : 1000;
    }
    if (v > UINT64_MAX / mult)
        return -1;
    *out = v * mult;
    return 0;
}

/* Parses a numeric IPv4 or IPv6 address, optionally in brackets, into host (without the
 * brackets). Returns 0 or -1. */
static int
conf_parse_host(const char *s, size_t n, char host[64])
{
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        s++;
        n -= 2;
    }
    if (n == 0 || n >= 64)
        return -1;
    memcpy(host, s, n);
    host[n] = '\0';
    struct in6_addr a6;
    struct in_addr a4;
    if (inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1)
        return 0;
    return -1;
}

/* Parses "port", "host:port", "[v6]:port" or "v6:port" (the port follows the last colon,
 * as rabbitmq.conf reads "::1:5672"). Returns 0 or -1. */
static int
conf_parse_listener(const char *s, struct conf_listener *out)
{
    uint64_t port;
    const char *colon = strrchr(s, ':');
    memset(out, 0, sizeof(*out));
    if (colon == NULL) {
        if (conf_parse_u64(s, &port) < 0)
            return -1;
    } else {
        if (conf_parse_u64(colon + 1, &port) < 0)
            return -1;
        if (conf_parse_host(s, (size_t)(colon - s), out->host) < 0)
            return -1;
    }
    if (port < 1 || port > 65535)
        return -1;
    out->port = (uint16_t)port;
    return 0;
}

#define CONF_NODE_NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
#define CONF_NODE_HOST_CHARS CONF_NODE_NAME_CHARS "."

/* Writes the reason of conf_node_parse's failure into err. Returns -1. */
static int conf_node_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
conf_node_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

int
conf_node_parse(const char *s, bool with_port, struct conf_node *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (strlen(s) > CONF_NODE_MAX)
        return conf_node_fail(err, errlen, "longer than %d bytes", CONF_NODE_MAX);
    const char *at = strchr(s, '@');
    if (at == NULL)
        return conf_node_fail(err, errlen, "no '@' between the name and the host");
    size_t n = (size_t)(at - s);
    if (n == 0)
        return conf_node_fail(err, errlen, "empty name before '@'");
    if (strspn(s, CONF_NODE_NAME_CHARS) != n)
        return conf_node_fail(err, errlen, "the name may hold only A-Z, a-z, 0-9, '_' and '-'");
    memcpy(out->name, s, n);

    const char *h = at + 1, *rest;
    if (*h == '[') { /* [IPv6] */
        const char *close = strchr(h, ']');
        struct in6_addr a6;
        if (close == NULL)
            return conf_node_fail(err, errlen, "no ']' after '['");
        n = (size_t)(close - h - 1);
        memcpy(out->host, h + 1, n);
        if (inet_pton(AF_INET6, out->host, &a6) != 1)
            return conf_node_fail(err, errlen, "'%s' is not an IPv6 address", out->host);
        rest = close + 1;
    } else {
        n = strspn(h, CONF_NODE_HOST_CHARS);
        if (n == 0 && (h[0] == '\0' || h[0] == ':'))
            return conf_node_fail(err, errlen, "empty host after '@'");
        memcpy(out->host, h, n);
        rest = h + n;
    }
    if (*rest == ':' && with_port) {
        uint64_t port;
        if (conf_parse_u64(rest + 1, &port) < 0 || port < 1 || port > 65535)
            return conf_node_fail(err, errlen, "the port after ':' is not an integer 1..65535");
        out->port = (uint16_t)port;
    } else if (*rest != '\0') {
        return conf_node_fail(err, errlen,
                              "the host may hold only A-Z, a-z, 0-9, '.' and '-' (or be an "
                              "IPv6 address in brackets)%s",
                              with_port ? ", then :port" : "");
    }
    return 0;
}

/* The listeners of family k (tcp or ssl): the array, its count and its names in ps. */
static struct conf_listener *
conf_listener_set(struct conf *c, struct conf_parse *ps, const struct conf_key *k, unsigned **n,
                  char (**names)[CONF_LISTENER_NAME_MAX])
{
    bool ssl = k->field == CONF_F(ssl_listeners);
    *n = ssl ? &c->n_ssl_listeners : &c->n_listeners;
    *names = ps->listener_names[ssl];
    return ssl ? c->ssl_listeners : c->listeners;
}

/* listeners.tcp.<name> = value (or listeners.ssl.<name>). The first listener named by a
 * source replaces the listeners it started with; the same name again replaces that name's
 * listener. name NULL: the bare family key, whose only value is none (no listeners). */
static int
conf_set_listener(struct conf *c, struct conf_parse *ps, const struct conf_key *k, const char *name,
                  const char *value)
{
    unsigned *n;
    char(*names)[CONF_LISTENER_NAME_MAX];
    struct conf_listener *set = conf_listener_set(c, ps, k, &n, &names);
    size_t plen = strlen(k->key) - strlen(".<name>");
    bool *seen = &ps->seen[k - conf_keys];
    if (name == NULL) {
        if (strcmp(value, "none") != 0)
            return conf_fail(ps, "bad value '%s' for %.*s: expected none", value, (int)plen,
                             k->key);
        *n = 0;
        *seen = true;
        return 0;
    }
    struct conf_listener l;
    if (conf_parse_listener(value, &l) < 0)
        return conf_fail(ps,
                         "bad value '%s' for %.*s.%s: expected [host:]port with a "
                         "numeric IPv4 or IPv6 host and a port %u..%u, e.g. 5672, "
                         "127.0.0.1:5672 or [::1]:5672",
                         value, (int)plen, k->key, name, (unsigned)k->min, (unsigned)k->max);
    if (strlen(name) >= CONF_LISTENER_NAME_MAX)
        return conf_fail(ps, "listener name '%s' is longer than %d bytes", name,
                         CONF_LISTENER_NAME_MAX - 1);
    if (!*seen) {
        *n = 0;
        *seen = true;
    }
    unsigned i;
    for (i = 0; i < *n; i++)
        if (strcmp(names[i], name) == 0)
            break;
    if (i == CONF_MAX_LISTENERS)
        return conf_fail(ps, "too many listeners (at most %d)", CONF_MAX_LISTENERS);
    if (i == *n) {
        (*n)++;
        strcpy(names[i], name);
    }
    set[i] = l;
    return 0;
}

static void
conf_list_clear(struct conf_list *list)
{
    for (unsigned i = 0; i < list->n; i++)
        free(list->items[i]);
    memset(list, 0, sizeof(*list));
}

bool
conf_list_has(const struct conf_list *list, const char *value)
{
    for (unsigned i = 0; i < list->n; i++)
        if (strcmp(list->items[i], value) == 0)
            return true;
    return false;
}

/* Whether field has rows in conf_choices[]; if so and name is one of them, *value is its. */
static bool
conf_choice_find(size_t field, const char *name, bool *known, unsigned *value)
{
    bool restricted = false;
    *known = false;
    for (size_t i = 0; i < CONF_NCHOICES; i++) {
        if (conf_choices[i].field != field)
            continue;
        restricted = true;
        if (strcmp(conf_choices[i].name, name) == 0) {
            *known = true;
            *value = conf_choices[i].value;
        }
    }
    return restricted;
}

/* Writes the names field accepts, ", "-separated, into buf. */
static const char *
conf_choice_names(size_t field, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < CONF_NCHOICES && n < cap; i++)
        if (conf_choices[i].field == field)
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", conf_choices[i].name);
    return buf;
}

/* <key>.<N> = value: sets item N of the list (N a decimal number), keeping the items in the
 * order of their N. The first item a source names replaces the list it started with. */
static int
conf_set_list_item(struct conf *c, struct conf_parse *ps, const struct conf_key *k,
                   const char *name, const char *value)
{
    struct conf_list *list = (struct conf_list *)(void *)((char *)c + k->field);
    size_t plen = strlen(k->key) - strlen(".<N>");
    uint64_t index;
    bool known;
    unsigned ignored;
    char names[256];
    if (name == NULL || conf_parse_u64(name, &index) < 0)
        return conf_fail(ps, "bad key %.*s.%s: expected a number after '%.*s.'", (int)plen, k->key,
                         name != NULL ? name : "", (int)plen, k->key);
    if (conf_choice_find(k->field, value, &known, &ignored) && !known)
        return conf_fail(ps, "bad value '%s' for %.*s.%s: expected %s", value, (int)plen, k->key,
                         name, conf_choice_names(k->field, names, sizeof(names)));
    if (k->field == CONF_F(cluster_nodes)) { /* the one list of node names */
        struct conf_node node;
        if (conf_node_parse(value, true, &node, names, sizeof(names)) < 0)
            return conf_fail(ps, "bad value '%s' for %.*s.%s: expected name@host[:port]: %s", value,
                             (int)plen, k->key, name, names);
    }
    if (!ps->seen[k - conf_keys]) {
        conf_list_clear(list);
        ps->seen[k - conf_keys] = true;
    }
    char *copy = conf_strdup(ps, value);
    if (copy == NULL)
        return -1;
    unsigned i = 0;
    while (i < list->n && list->index[i] < index)
        i++;
    if (i < list->n && list->index[i] == index) {
        free(list->items[i]);
        list->items[i] = copy;
        return 0;
    }
    if (list->n == CONF_MAX_LIST) {
        free(copy);
        return conf_fail(ps, "too many items in %.*s (at most %d)", (int)plen, k->key,
                         CONF_MAX_LIST);
    }
    memmove(&list->items[i + 1], &list->items[i], (list->n - i) * sizeof(list->items[0]));
    memmove(&list->index[i + 1], &list->index[i], (list->n - i) * sizeof(list->index[0]));
    list->items[i] = copy;
    list->index[i] = index;
    list->n++;
    return 0;
}

/* A list's default: its space-separated values become items 1, 2, ... */
static int
conf_set_list_default(struct conf *c, struct conf_parse *ps, const struct conf_key *k)
{
    char buf[256], num[16];
    snprintf(buf, sizeof(buf), "%s", k->def);
    unsigned n = 0;
    for (char *save = NULL, *v = strtok_r(buf, " ", &save); v != NULL;
         v = strtok_r(NULL, " ", &save)) {
        snprintf(num, sizeof(num), "%u", ++n);
        if (conf_set_list_item(c, ps, k, num, v) < 0)
            return -1;
    }
    return 0;
}

/* Adds name to, or removes it from, a list of at most max names (loopback_users,
 * default_user_tags). Returns 0 or -1. */
static int
conf_set_listed(char **list, unsigned *n, unsigned max, struct conf_parse *ps, const char *family,
                const char *name, bool on)
{
    unsigned i;
    for (i = 0; i < *n; i++)
        if (strcmp(list[i], name) == 0)
            break;
    if (on && i == *n) {
        if (i == max)
            return conf_fail(ps, "too many %s (at most %u)", family, max);
        char *copy = conf_strdup(ps, name);
        if (copy == NULL)
            return -1;
        list[(*n)++] = copy;
    } else if (!on && i < *n) {
        free(list[i]);
        list[i] = list[--*n];
        list[*n] = NULL;
    }
    return 0;
}

static void
conf_clear_listed(char **list, unsigned *n)
{
    for (unsigned i = 0; i < *n; i++) {
        free(list[i]);
        list[i] = NULL;
    }
    *n = 0;
}

/* Sets key k (name: the <name> of a family, or NULL for the bare family key) to value.
 * Returns 0, or -1 after conf_fail(). */
static int
conf_set(struct conf *c, struct conf_parse *ps, const struct conf_key *k, const char *name,
         const char *value)
{
    char *field = (char *)c + k->field;
    uint64_t v;

    switch (k->type) {
    case CONF_UINT:
        if (conf_parse_u64(value, &v) < 0 || v < k->min || v > k->max)
            return conf_fail(ps, "bad value '%s' for %s: expected an integer %u..%u", value, k->key,
                             (unsigned)k->min, (unsigned)k->max);
        *(uint32_t *)(void *)field = (uint32_t)v;
        return 0;
    case CONF_U64:
        if (conf_parse_u64(value, &v) < 0 || v < k->min)
            return conf_fail(ps, "bad value '%s' for %s: expected an integer of at least %u", value,
                             k->key, (unsigned)k->min);
        *(uint64_t *)(void *)field = v;
        return 0;
    case CONF_HASHING:
        if (strcmp(value, "rabbit_password_hashing_sha256") != 0 &&
            strcmp(value, "rabbit_password_hashing_sha512") != 0)
            return conf_fail(ps,
                             "bad value '%s' for %s: expected rabbit_password_hashing_sha256 or "
                             "rabbit_password_hashing_sha512",
                             value, k->key);
        {
            char *copy = conf_strdup(ps, value);
            if (copy == NULL)
                return -1;
            char **slot = (char **)(void *)field;
            free(*slot);
            *slot = copy;
        }
        return 0;
    case CONF_MAX:
        if (strcmp(value, "infinity") == 0) {
            *(uint32_t *)(void *)field = CONF_INFINITY;
            return 0;
        }
        if (conf_parse_u64(value, &v) < 0 || v < k->min || v > k->max)
            return conf_fail(ps, "bad value '%s' for %s: expected infinity or an integer %u..%u",
                             value, k->key, (unsigned)k->min, (unsigned)k->max);
        *(uint32_t *)(void *)field = (uint32_t)v;
        return 0;
    case CONF_SIZE:
        if (conf_parse_size(value, &v) < 0 || (v != 0 && (v < k->min || v > k->max)))
            return conf_fail(ps,
                             "bad value '%s' for %s: expected 0 or a size in bytes %u..%u "
                             "(KB, MB and GB suffixes allowed)",
                             value, k->key, (unsigned)k->min, (unsigned)k->max);
        *(uint32_t *)(void *)field = (uint32_t)v;
        return 0;
    case CONF_BYTES64:
        if (conf_parse_size(value, &v) < 0)
            return conf_fail(ps,
                             "bad value '%s' for %s: expected a size in bytes (KB, MB and GB "
                             "suffixes allowed)",
                             value, k->key);
        if (v < k->min)
            return conf_fail(ps, "bad value '%s' for %s: at least %u bytes", value, k->key, k->min);
        *(uint64_t *)(void *)field = v;
        return 0;
    case CONF_INFO_UNIT:
        if (conf_parse_info_unit(value, &v) < 0)
            return conf_fail(ps,
                             "bad value '%s' for %s: expected a size in bytes, optionally with "
                             "a unit: kB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB "
                             "(powers of 1024)",
                             value, k->key);
        *(uint64_t *)(void *)field = v;
        return 0;
    case CONF_RATIO: {
        char *end;
        double d = strtod(value, &end);
        if (end == value || *end != '\0' || !(d >= k->min && d <= k->max))
            return conf_fail(ps, "bad value '%s' for %s: expected a number %u..%u, e.g. %s", value,
                             k->key, (unsigned)k->min, (unsigned)k->max,
                             k->max > 1 ? "1.5" : "0.4");
        *(double *)(void *)field = d;
        return 0;
    }
    case CONF_STR: {
        size_t len = strlen(value);
        if (len < k->min || len > k->max)
            return conf_fail(ps, "bad value '%s' for %s: expected %u..%u characters", value, k->key,
                             (unsigned)k->min, (unsigned)k->max);
        char *copy = conf_strdup(ps, value);
        if (copy == NULL)
            return -1;
        char **slot = (char **)(void *)field;
        free(*slot);
        *slot = copy;
        return 0;
    }
    case CONF_LEVEL:
        if (log_level_parse(value, (enum log_level *)(void *)field) < 0)
            return conf_fail(ps,
                             "bad value '%s' for %s: expected debug, info, warning, error, "
                             "critical or none",
                             value, k->key);
        return 0;
    case CONF_PATH: {
        size_t len = strlen(value);
        if (len > k->max)
            return conf_fail(ps, "bad value for %s: longer than %u characters", k->key,
                             (unsigned)k->max);
        char *copy = conf_strdup(ps, value);
        if (copy == NULL)
            return -1;
        char **slot = (char **)(void *)field;
        free(*slot);
        *slot = copy;
        return 0;
    }
    case CONF_BOOL:
        if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0)
            return conf_fail(ps, "bad value '%s' for %s: expected true or false", value, k->key);
        *(bool *)(void *)field = strcmp(value, "true") == 0;
        return 0;
    case CONF_ADDR: {
        char host[64] = ""; /* kept without an IPv6 address's brackets */
        if (*value != '\0' && conf_parse_host(value, strlen(value), host) < 0)
            return conf_fail(ps, "bad value '%s' for %s: expected a numeric IPv4 or IPv6 address",
                             value, k->key);
        char *copy = conf_strdup(ps, host);
        if (copy == NULL)
            return -1;
        char **slot = (char **)(void *)field;
        free(*slot);
        *slot = copy;
        return 0;
    }
    case CONF_ENUM: {
        bool known;
        unsigned e;
        char names[256];
        conf_choice_find(k->field, value, &known, &e);
        if (!known)
            return conf_fail(ps, "bad value '%s' for %s: expected %s", value, k->key,
                             conf_choice_names(k->field, names, sizeof(names)));
        *(unsigned *)(void *)field = e;
        return 0;
    }
    case CONF_LIST:
        return conf_set_list_item(c, ps, k, name, value);
    case CONF_LISTENER:
        return conf_set_listener(c, ps, k, name, value);
    case CONF_LOOPBACK:
        if (name == NULL) {
            if (strcmp(value, "none") != 0)
                return conf_fail(ps, "bad value '%s' for loopback_users: expected none", value);
            conf_clear_listed(c->loopback_users, &c->n_loopback_users);
            return 0;
        }
        /* fall through */
    case CONF_TAGS: {
        bool tags = k->type == CONF_TAGS;
        const char *family = tags ? "default_user_tags" : "loopback_users";
        if (strlen(name) > k->max)
            return conf_fail(ps, "name in %s.%.40s... is longer than %u bytes", family, name,
                             (unsigned)k->max);
        if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0)
            return conf_fail(ps, "bad value '%s' for %s.%s: expected true or false", value, family,
                             name);
        /* As in RabbitMQ, a file's tags replace the default list rather than add to it. */
        if (tags && ps->path != NULL && !ps->seen[k - conf_keys]) {
            conf_clear_listed(c->default_user_tags, &c->n_default_user_tags);
            ps->seen[k - conf_keys] = true;
        }
        return conf_set_listed(tags ? c->default_user_tags : c->loopback_users,
                               tags ? &c->n_default_user_tags : &c->n_loopback_users,
                               tags ? CONF_MAX_USER_TAGS : CONF_MAX_LOOPBACK_USERS, ps, family,
                               name, strcmp(value, "true") == 0);
    }
    }
    return conf_fail(ps, "internal error: key %s has no type", k->key);
}

/* Length of the fixed part of a family key ("listeners.tcp." for "listeners.tcp.<name>"),
 * or 0 for a plain key. */
static size_t
conf_key_prefix_len(const struct conf_key *k)
{
    const char *lt = strchr(k->key, '<');
    return lt ? (size_t)(lt - k->key) : 0;
}

/* conf_each's value of one listener: [host:]port, an IPv6 host in brackets. */
static void
conf_listener_str(const struct conf_listener *l, char *buf, size_t cap)
{
    if (l->host[0] == '\0')
        snprintf(buf, cap, "%u", (unsigned)l->port);
    else
        snprintf(buf, cap, strchr(l->host, ':') != NULL ? "[%s]:%u" : "%s:%u", l->host,
                 (unsigned)l->port);
}

/* conf_each for one family key k: each member as "<prefix><name> = value". */
static int
conf_each_family(const struct conf *c, const struct conf_key *k,
                 int (*fn)(void *arg, const char *key, const char *value), void *arg)
{
    const char *field = (const char *)c + k->field;
    size_t plen = conf_key_prefix_len(k);
    char key[192], val[160];
    int rc = 0;
    switch (k->type) {
    case CONF_LISTENER: {
        const struct conf_listener *l = (const struct conf_listener *)(const void *)field;
        unsigned n = k->field == CONF_F(listeners) ? c->n_listeners : c->n_ssl_listeners;
        for (unsigned i = 0; i < n && rc == 0; i++) {
            snprintf(key, sizeof(key), "%.*s%u", (int)plen, k->key, i + 1);
            conf_listener_str(&l[i], val, sizeof(val));
            rc = fn(arg, key, val);
        }
        return rc;
    }
    case CONF_LIST: {
        const struct conf_list *l = (const struct conf_list *)(const void *)field;
        for (unsigned i = 0; i < l->n && rc == 0; i++) {
            snprintf(key, sizeof(key), "%.*s%llu", (int)plen, k->key,
                     (unsigned long long)l->index[i]);
            rc = fn(arg, key, l->items[i]);
        }
        return rc;
    }
    case CONF_LOOPBACK:
        if (c->n_loopback_users == 0)
            return fn(arg, "loopback_users", "none");
        /* fall through */
    case CONF_TAGS: {
        bool tags = k->type == CONF_TAGS;
        char *const *names = tags ? c->default_user_tags : c->loopback_users;
        unsigned n = tags ? c->n_default_user_tags : c->n_loopback_users;
        for (unsigned i = 0; i < n && rc == 0; i++) {
            snprintf(key, sizeof(key), "%.*s%s", (int)plen, k->key, names[i]);
            rc = fn(arg, key, "true");
        }
        return rc;
    }
    default:
        return 0;
    }
}

int
conf_each(const struct conf *c, int (*fn)(void *arg, const char *key, const char *value), void *arg)
{
    struct log_options lo; /* the outputs' levels as resolved, when not set themselves */
    conf_log_options(c, &lo);
    for (size_t i = 0; i < CONF_NKEYS; i++) {
        const struct conf_key *k = &conf_keys[i];
        const char *field = (const char *)c + k->field;
        if (k->field == CONF_F(log_file_level))
            field = (const char *)&lo.file_level;
        else if (k->field == CONF_F(log_console_level))
            field = (const char *)&lo.console_level;
        else if (k->field == CONF_F(log_console))
            field = (const char *)&lo.console;
        const char *v = NULL;
        char buf[64];
        int rc;
        if (conf_key_prefix_len(k) > 0) {
            if ((rc = conf_each_family(c, k, fn, arg)) != 0)
                return rc;
            continue;
        }
        switch (k->type) {
        case CONF_UINT:
        case CONF_SIZE:
            snprintf(buf, sizeof(buf), "%u", *(const uint32_t *)(const void *)field);
            break;
        case CONF_MAX: {
            uint32_t u = *(const uint32_t *)(const void *)field;
            if (u == CONF_INFINITY)
                snprintf(buf, sizeof(buf), "infinity");
            else
                snprintf(buf, sizeof(buf), "%u", u);
            break;
        }
        case CONF_U64:
        case CONF_BYTES64:
        case CONF_INFO_UNIT:
            snprintf(buf, sizeof(buf), "%llu",
                     (unsigned long long)*(const uint64_t *)(const void *)field);
            break;
        case CONF_RATIO:
            snprintf(buf, sizeof(buf), "%g", *(const double *)(const void *)field);
            break;
        case CONF_STR:
        case CONF_PATH:
        case CONF_HASHING:
        case CONF_ADDR:
            v = *(char *const *)(const void *)field;
            if (v == NULL)
                continue;
            break;
        case CONF_LEVEL:
            v = log_level_name(*(const enum log_level *)(const void *)field);
            break;
        case CONF_BOOL:
            v = *(const bool *)(const void *)field ? "true" : "false";
            break;
        case CONF_ENUM:
            v = "";
            for (size_t j = 0; j < CONF_NCHOICES; j++)
                if (conf_choices[j].field == k->field &&
                    conf_choices[j].value == *(const unsigned *)(const void *)field) {
                    v = conf_choices[j].name;
                    break;
                }
            break;
        default: /* the families, above */
            continue;
        }
        size_t klen = strlen(k->key);
        bool secret = (klen >= 4 && strcmp(k->key + klen - 4, "pass") == 0) ||
                      (klen >= 8 && strcmp(k->key + klen - 8, "password") == 0);
        if ((rc = fn(arg, k->key, secret ? "********" : v != NULL ? v : buf)) != 0)
            return rc;
    }
    return 0;
}

/* Finds the table row for key. For a family, *name points at the <name> part of key, or
 * is NULL for the bare family key ("loopback_users"). Returns NULL for an unknown key. */
static const struct conf_key *
conf_key_find(const char *key, const char **name)
{
    *name = NULL;
    for (size_t i = 0; i < CONF_NKEYS; i++) {
        const struct conf_key *k = &conf_keys[i];
        size_t plen = conf_key_prefix_len(k);
        if (plen == 0) {
            if (strcmp(key, k->key) == 0)
                return k;
            continue;
        }
        if (strncmp(key, k->key, plen) == 0 && key[plen] != '\0') {
            *name = key + plen;
            return k;
        }
        /* The bare family key: loopback_users = none, listeners.tcp = none. */
        if ((k->type == CONF_LOOPBACK || k->type == CONF_LISTENER) && strlen(key) == plen - 1 &&
            strncmp(key, k->key, plen - 1) == 0)
            return k;
    }
    return NULL;
}

/* Splits "name = value" (a family's default) and sets it. */
static int
conf_set_default_named(struct conf *c, struct conf_parse *ps, const struct conf_key *k)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", k->def);
    char *eq = strstr(buf, " = ");
    if (eq == NULL)
        return conf_fail(ps, "internal error: default of %s is not 'name = value'", k->key);
    *eq = '\0';
    return conf_set(c, ps, k, buf, eq + 3);
}

/* This host's short name (up to the first '.'), as RabbitMQ's default node name has it;
 * localhost when gethostname fails. */
static void
conf_short_host(char *buf, size_t cap)
{
    if (gethostname(buf, cap) < 0 || buf[0] == '\0')
        snprintf(buf, cap, "localhost");
    buf[cap - 1] = '\0'; /* gethostname does not terminate a truncated name */
    buf[strcspn(buf, ".")] = '\0';
}

void
conf_init_defaults(struct conf *c)
{
    char err[256];
    struct conf_parse ps = {.path = NULL, .err = err, .errlen = sizeof(err)};

    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < CONF_NKEYS; i++) {
        const struct conf_key *k = &conf_keys[i];
        if (k->def == NULL)
            continue; /* not set unless configured */
        int rc = k->type == CONF_LIST     ? conf_set_list_default(c, &ps, k)
                 : conf_key_prefix_len(k) ? conf_set_default_named(c, &ps, k)
                                          : conf_set(c, &ps, k, NULL, k->def);
        if (rc < 0) {
            /* Only ENOMEM or a broken table get here, before the server has started. */
            fprintf(stderr, CONF_PROG ": %s\n", err);
            abort();
        }
    }
    char host[256], name[sizeof("warren@") + sizeof(host)];
    conf_short_host(host, sizeof(host));
    snprintf(name, sizeof(name), "warren@%s", host);
    c->nodename = strdup(name);
    if (c->nodename == NULL) {
        fprintf(stderr, CONF_PROG ": out of memory\n");
        abort();
    }
}

void
conf_free(struct conf *c)
{
    free(c->default_user);
    free(c->default_pass);
    free(c->default_vhost);
    free(c->data_dir);
    free(c->log_dir);
    free(c->log_file);
    free(c->config_path);
    free(c->default_permissions_configure);
    free(c->default_permissions_write);
    free(c->default_permissions_read);
    free(c->load_definitions);
    free(c->management_tcp_ip);
    free(c->prometheus_tcp_ip);
    free(c->management_ssl_certfile);
    free(c->management_ssl_keyfile);
    free(c->management_ssl_password);
    free(c->password_hashing_module);
    conf_clear_listed(c->loopback_users, &c->n_loopback_users);
    conf_clear_listed(c->default_user_tags, &c->n_default_user_tags);
    free(c->ssl_certfile);
    free(c->ssl_keyfile);
    free(c->ssl_cacertfile);
    free(c->ssl_password);
    conf_list_clear(&c->ssl_versions);
    conf_list_clear(&c->ssl_ciphers);
    conf_list_clear(&c->auth_mechanisms);
    free(c->cluster_name);
    conf_list_clear(&c->cluster_nodes);
    free(c->distribution_interface);
    free(c->distribution_ssl_certfile);
    free(c->distribution_ssl_keyfile);
    free(c->distribution_ssl_cacertfile);
    free(c->distribution_ssl_password);
    free(c->nodename);
    memset(c, 0, sizeof(*c));
}

bool
conf_is_loopback_user(const struct conf *c, const char *user)
{
    for (unsigned i = 0; i < c->n_loopback_users; i++)
        if (strcmp(c->loopback_users[i], user) == 0)
            return true;
    return false;
}

void
conf_log_options(const struct conf *c, struct log_options *o)
{
    bool file = strcmp(c->log_file, "false") != 0;
    *o = (struct log_options){
        .console_level = c->log_console_level_set ? c->log_console_level : c->log_level,
        .console_format = c->log_console_format,
        .file = file ? c->log_file : NULL,
        .dir = c->log_dir,
        .file_level = c->log_file_level_set ? c->log_file_level : c->log_level,
        .file_format = c->log_file_format,
        .rotation_size = c->log_file_rotation_size,
        .rotation_count = c->log_file_rotation_count,
    };
    if (c->log_console_set)
        o->console = c->log_console;
    else if (c->log_console_level_set)
        o->console = c->log_console_level != LOG_NONE;
    else
        o->console = !file;
}

uint64_t
conf_disk_free_limit(const struct conf *c, uint64_t phys_mem)
{
    if (c->disk_free_limit_relative <= 0 || c->disk_free_limit_absolute_set)
        return c->disk_free_limit_absolute;
    double limit = c->disk_free_limit_relative * (double)phys_mem + 0.5;
    return limit < 18446744073709551615.0 ? (uint64_t)limit : UINT64_MAX;
}

uint16_t
conf_distribution_port(const struct conf *c)
{
    if (c->distribution_port_min != 0)
        return (uint16_t)c->distribution_port_min;
    uint32_t amqp = c->n_listeners > 0 ? c->listeners[0].port : CONF_DEFAULT_PORT;
    uint32_t port = amqp + CONF_DIST_PORT_OFFSET;
    return port <= 65535 ? (uint16_t)port : 0;
}

static bool
conf_is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\f' || ch == '\v';
}

/* Trims whitespace at both ends of s in place and returns the trimmed start. */
static char *
conf_trim(char *s)
{
    while (conf_is_space(*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && conf_is_space(s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Parses one line: blank, a comment, or `key = value`. A '#' after whitespace starts a
 * trailing comment; a '#' inside a value (a password) is kept. Returns 0 or -1. */
static int
conf_parse_line(struct conf *c, struct conf_parse *ps, char *line)
{
    char *s = conf_trim(line);
    if (*s == '\0' || *s == '#')
        return 0;

    for (char *h = s + 1; *h != '\0'; h++) {
        if (*h == '#' && conf_is_space(h[-1])) {
            *h = '\0';
            break;
        }
    }
    char *eq = strchr(s, '=');
    if (eq == NULL)
        return conf_fail(ps, "missing '=' in '%.80s': expected 'key = value'", conf_trim(s));
    *eq = '\0';
    char *key = conf_trim(s);
    char *value = conf_trim(eq + 1);
    if (*key == '\0')
        return conf_fail(ps, "missing key before '='");

    const char *name;
    const struct conf_key *k = conf_key_find(key, &name);
    if (k == NULL)
        return conf_fail(ps, "unknown key '%.80s'", key);
    if (*value == '\0')
        return conf_fail(ps, "missing value for %s", key);
    if (conf_set(c, ps, k, name, value) < 0)
        return -1;
    /* Keys whose absence means something else: RabbitMQ uses disk_free_limit.relative only
     * when .absolute is not configured, and derives the log outputs from the keys given. */
    if (k->field == CONF_F(disk_free_limit_absolute))
        c->disk_free_limit_absolute_set = true;
    else if (k->field == CONF_F(log_file_level))
        c->log_file_level_set = true;
    else if (k->field == CONF_F(log_console_level))
        c->log_console_level_set = true;
    else if (k->field == CONF_F(log_console))
        c->log_console_set = true;
    return 0;
}

int
conf_load_file(struct conf *c, const char *path, char *err, size_t errlen)
{
    struct conf_parse ps = {.path = path, .err = err, .errlen = errlen};
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }

    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while ((n = getline(&line, &cap, f)) >= 0) {
        ps.line++;
        if (memchr(line, '\0', (size_t)n) != NULL) {
            rc = conf_fail(&ps, "NUL byte in line");
            break;
        }
        if (conf_parse_line(c, &ps, line) < 0) {
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
        rc = -1;
    }
    free(line);
    fclose(f);
    return rc;
}

/* The command line: conf_option_help[] follows conf_options[] entry for entry. */
static const struct option conf_options[] = {
    {"config", required_argument, NULL, 'c'},
    {"port", required_argument, NULL, 'p'},
    {"bind", required_argument, NULL, 'b'},
    {"data-dir", required_argument, NULL, 'd'},
    {"log-level", required_argument, NULL, 'l'},
    {"management-port", required_argument, NULL, 'm'},
    {"prometheus-port", required_argument, NULL, 'P'},
    {"nodename", required_argument, NULL, 'n'},
    {"check-config", no_argument, NULL, 't'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

static const struct {
    const char *usage, *help;
} conf_option_help[] = {
    {"    --config FILE", "read settings from FILE (rabbitmq.conf syntax, keys below)"},
    {"    --port N", "listen on port N: every --bind address, else every configured host"},
    {"    --bind ADDR", "listen on the numeric IPv4 or IPv6 address ADDR (repeatable)"},
    {"    --data-dir DIR", "keep the message store in DIR (data_dir)"},
    {"    --log-level LEVEL", "debug, info, warning, error, critical or none (log.level)"},
    {"    --management-port N", "serve the HTTP API on port N; 0: not over TCP"},
    {"    --prometheus-port N",
     "serve Prometheus metrics on port N; 0: not on a port of their own"},
    {"    --nodename NAME",
     "this node's name, name@host; default: $WARREN_NODENAME, else warren@<host>"},
    {"    --check-config", "check the configuration, print \"configuration OK\" and exit"},
    {"-h, --help", "print this help and exit"},
    {"-V, --version", "print the version and exit"},
};

static void
conf_usage(FILE *out)
{
    fprintf(out, "Usage: " CONF_PROG " [OPTION]...\n"
                 "An AMQP 0-9-1 message broker for RabbitMQ clients.\n"
                 "Flags override the configuration file, whatever their order.\n\n"
                 "Options:\n");
    for (size_t i = 0; i < sizeof(conf_option_help) / sizeof(conf_option_help[0]); i++)
        fprintf(out, "  %-24s %s\n", conf_option_help[i].usage, conf_option_help[i].help);
    fprintf(out, "\nConfiguration keys, shown with their defaults:\n");
    for (size_t i = 0; i < CONF_NKEYS; i++) {
        const struct conf_key *k = &conf_keys[i];
        size_t plen = conf_key_prefix_len(k);
        char line[128];
        if (k->def == NULL)
            snprintf(line, sizeof(line), "%s", k->key);
        else if (k->type == CONF_LIST)
            snprintf(line, sizeof(line), "%s = %s", k->key, *k->def ? k->def : "(none)");
        else if (plen)
            snprintf(line, sizeof(line), "%.*s%s", (int)plen, k->key, k->def);
        else
            snprintf(line, sizeof(line), "%s = %s", k->key, k->def);
        fprintf(out, "  %-30s %s\n", line, k->help);
    }
    fprintf(out, "\nSee warren-server(8) and warren.conf(5).\n");
}

/* Writes a usage error to stderr. Returns CONF_EXIT_ERR. */
static enum conf_outcome conf_usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static enum conf_outcome
conf_usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs(CONF_PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry '" CONF_PROG " --help' for more information.\n", stderr);
    return CONF_EXIT_ERR;
}

/* Sets c->nodename from value, which came from source (--nodename or WARREN_NODENAME):
 * name@host, or a bare name to which "@<short host name>" is added, as RabbitMQ completes
 * RABBITMQ_NODENAME. Returns 0, or -1 after writing why to stderr. */
static int
conf_set_nodename(struct conf *c, const char *source, const char *value)
{
    char host[256], name[CONF_NODE_MAX + 2], why[160];
    struct conf_node node;
    if (strchr(value, '@') == NULL) {
        conf_short_host(host, sizeof(host));
        snprintf(name, sizeof(name), "%s@%s", value, host);
    } else {
        snprintf(name, sizeof(name), "%s", value);
    }
    if (conf_node_parse(name, false, &node, why, sizeof(why)) < 0) {
        fprintf(stderr, CONF_PROG ": bad value '%s' for %s: expected name@host: %s\n", value,
                source, why);
        return -1;
    }
    char *copy = strdup(name);
    if (copy == NULL) {
        fprintf(stderr, CONF_PROG ": out of memory\n");
        return -1;
    }
    free(c->nodename);
    c->nodename = copy;
    return 0;
}

/* What the cluster keys mean together, once the file and the flags are applied: .max not
 * below the port listened on, and a port to listen on when other nodes are listed (the AMQP
 * port + 20000 may pass 65535). Returns 0, or -1 after writing why to stderr. */
static int
conf_check_cluster(const struct conf *c)
{
    const char *src = c->config_path != NULL ? c->config_path : CONF_PROG;
    uint16_t port = conf_distribution_port(c);
    if (port == 0 && c->cluster_nodes.n > 0) {
        fprintf(stderr,
                "%s: the cluster port, AMQP port %u + %d, is above 65535: set "
                "distribution.listener.port_range.min\n",
                src, (unsigned)c->listeners[0].port, CONF_DIST_PORT_OFFSET);
        return -1;
    }
    if (c->distribution_port_max != 0 && port != 0 && c->distribution_port_max < port) {
        fprintf(stderr,
                "%s: distribution.listener.port_range.max = %u is below the cluster port %u "
                "(port_range.min, else the AMQP port + %d)\n",
                src, (unsigned)c->distribution_port_max, (unsigned)port, CONF_DIST_PORT_OFFSET);
        return -1;
    }
    return 0;
}

/* Drops listeners that repeat an earlier host and port (--port can make them equal). */
static void
conf_dedupe_listeners(struct conf *c)
{
    unsigned n = 0;
    for (unsigned i = 0; i < c->n_listeners; i++) {
        unsigned j;
        for (j = 0; j < n; j++)
            if (c->listeners[j].port == c->listeners[i].port &&
                strcmp(c->listeners[j].host, c->listeners[i].host) == 0)
                break;
        if (j == n)
            c->listeners[n++] = c->listeners[i];
    }
    c->n_listeners = n;
}

enum conf_outcome
conf_from_cmdline(struct conf *c, int argc, char **argv)
{
    const char *config = NULL, *data_dir = NULL, *nodename = NULL;
    char binds[CONF_MAX_LISTENERS][64];
    unsigned n_binds = 0;
    long port = -1, mgmt_port = -1, prom_port = -1;
    bool have_level = false, check = false, help = false, version = false;
    enum log_level level = LOG_INFO;
    uint64_t v;
    int opt;

    optind = 0; /* glibc: restart scanning, so tests may call this more than once */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":hV", conf_options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 'p':
            if (conf_parse_u64(optarg, &v) < 0 || v < 1 || v > 65535)
                return conf_usage_error("bad value '%s' for --port: expected an integer 1..65535",
                                        optarg);
            port = (long)v;
            break;
        case 'b':
            if (n_binds == CONF_MAX_LISTENERS)
                return conf_usage_error("too many --bind addresses (at most %d)",
                                        CONF_MAX_LISTENERS);
            if (conf_parse_host(optarg, strlen(optarg), binds[n_binds]) < 0)
                return conf_usage_error(
                    "bad value '%s' for --bind: expected a numeric IPv4 or IPv6 address", optarg);
            n_binds++;
            break;
        case 'm':
            if (conf_parse_u64(optarg, &v) < 0 || v > 65535)
                return conf_usage_error(
                    "bad value '%s' for --management-port: expected an integer 0..65535", optarg);
            mgmt_port = (long)v;
            break;
        case 'P':
            if (conf_parse_u64(optarg, &v) < 0 || v > 65535)
                return conf_usage_error(
                    "bad value '%s' for --prometheus-port: expected an integer 0..65535", optarg);
            prom_port = (long)v;
            break;
        case 'n':
            nodename = optarg;
            break;
        case 'd':
            if (*optarg == '\0')
                return conf_usage_error("bad value '' for --data-dir: expected a directory");
            data_dir = optarg;
            break;
        case 'l':
            if (log_level_parse(optarg, &level) < 0)
                return conf_usage_error("bad value '%s' for --log-level: expected debug, info, "
                                        "warning, error, critical or none",
                                        optarg);
            have_level = true;
            break;
        case 't':
            check = true;
            break;
        case 'h':
            help = true;
            break;
        case 'V':
            version = true;
            break;
        case ':':
            return conf_usage_error("option '%s' needs an argument", argv[optind - 1]);
        default:
            if (optopt != 0)
                return conf_usage_error("unknown option '-%c'", optopt);
            return conf_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return conf_usage_error("unexpected argument '%s'", argv[optind]);

    conf_init_defaults(c);
    if (help) {
        conf_usage(stdout);
        return CONF_EXIT_OK;
    }
    if (version) {
        printf(CONF_PROG " " PACKAGE_VERSION "\n");
        return CONF_EXIT_OK;
    }

    if (config != NULL) {
        char err[512];
        c->config_path = strdup(config);
        if (c->config_path == NULL) {
            fprintf(stderr, CONF_PROG ": out of memory\n");
            goto fail;
        }
        if (conf_load_file(c, config, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s\n", err);
            goto fail;
        }
    }

    if (n_binds > 0) {
        uint16_t p = port > 0             ? (uint16_t)port
                     : c->n_listeners > 0 ? c->listeners[0].port
                                          : CONF_DEFAULT_PORT;
        for (unsigned i = 0; i < n_binds; i++) {
            strcpy(c->listeners[i].host, binds[i]);
            c->listeners[i].port = p;
        }
        c->n_listeners = n_binds;
    } else if (port > 0) {
        if (c->n_listeners == 0) {
            c->listeners[0].host[0] = '\0';
            c->n_listeners = 1;
        }
        for (unsigned i = 0; i < c->n_listeners; i++)
            c->listeners[i].port = (uint16_t)port;
    }
    conf_dedupe_listeners(c);

    if (data_dir != NULL) {
        char *copy = strdup(data_dir);
        if (copy == NULL) {
            fprintf(stderr, CONF_PROG ": out of memory\n");
            goto fail;
        }
        free(c->data_dir);
        c->data_dir = copy;
    }
    if (have_level)
        c->log_level = level;
    if (mgmt_port >= 0)
        c->management_tcp_port = (uint32_t)mgmt_port;
    if (prom_port >= 0)
        c->prometheus_tcp_port = (uint32_t)prom_port;
    const char *env_name = getenv("WARREN_NODENAME");
    if (nodename != NULL) {
        if (conf_set_nodename(c, "--nodename", nodename) < 0)
            goto fail;
    } else if (env_name != NULL && *env_name != '\0') {
        if (conf_set_nodename(c, "WARREN_NODENAME", env_name) < 0)
            goto fail;
    }
    if (conf_check_cluster(c) < 0)
        goto fail;

    if (check) {
        printf("configuration OK\n");
        return CONF_EXIT_OK;
    }
    return CONF_RUN;

fail:
    conf_free(c);
    return CONF_EXIT_ERR;
}
