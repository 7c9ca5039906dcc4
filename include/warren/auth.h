/* Authentication and authorisation: the user table, users' permissions, and the SASL-style
 * mechanisms AMQP clients use in connection.start-ok. PLAIN ("\0user\0password") and
 * AMQPLAIN (a field table with LOGIN and PASSWORD, kombu/Celery/py-amqp's default) are
 * implemented directly: both are a few lines of parsing, and Cyrus SASL would bring neither
 * AMQPLAIN nor a smaller attack surface.
 *
 * Users are kept as RabbitMQ's internal backend keeps them: a name, tags (any strings:
 * administrator, monitoring, policymaker, management, impersonator...), a password hash in one
 * of RabbitMQ's formats (base64 of a 4-byte salt followed by H(salt || password), H being
 * SHA-256, SHA-512 or MD5, named by hashing_algorithm) or no password at all, limits, and per
 * vhost the configure / write / read patterns and topic patterns (perms.c).
 *
 * This table is memory only: what is durable, and the one entry point of every
 * administrative change, is warren/admin.h, which calls the setters below. */
#ifndef WARREN_AUTH_H
#define WARREN_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "warren/wire.h"

struct auth_user; /* name, tags, password hash, limits, permissions; refcounted */
struct auth_db;   /* owns one reference to each of its users */

/* RabbitMQ's password hashing modules. */
enum auth_hash_alg {
    AUTH_HASH_SHA256 = 0, /* rabbit_password_hashing_sha256, the default */
    AUTH_HASH_SHA512,     /* rabbit_password_hashing_sha512 */
    AUTH_HASH_MD5,        /* rabbit_password_hashing_md5 (read only: never chosen for new) */
};
#define AUTH_SALT_LEN 4
#define AUTH_HASH_MAX (AUTH_SALT_LEN + 64)
/* The module name, "rabbit_password_hashing_sha256". */
const char *auth_hash_alg_name(enum auth_hash_alg alg);
/* Parses a module name. 0, or -1 for an unknown one. */
int auth_hash_alg_parse(const char *name, enum auth_hash_alg *alg);

/* A limit that is not set (RabbitMQ's -1, "no limit"). */
#define AUTH_NO_LIMIT (-1)

struct auth_db *auth_db_new(void);
void auth_db_free(struct auth_db *db);

/* The algorithm of passwords set from now on (password_hashing_module); SHA-256 by default,
 * as RabbitMQ's. */
void auth_db_set_hash_alg(struct auth_db *db, enum auth_hash_alg alg);
/* Adds or replaces user name with password (hashed with the table's algorithm and a fresh
 * salt, once logins have started: see users.c) and no tags. Returns 0, or -1 on ENOMEM or an
 * OpenSSL failure (logged). */
int auth_user_add(struct auth_db *db, const char *name, const char *password, bool loopback_only);
/* Adds or replaces user name with a stored hash: b64 is RabbitMQ's password_hash (base64 of
 * salt || digest; "" for a user without a password, who can only log in with a mechanism that
 * takes no password). Tags and limits are kept when the user exists. Returns 0, or -1 with
 * err set ("password_hash for user 'u' is not base64 of a 4-byte salt and a SHA-256 digest",
 * or "out of memory"). */
int auth_user_put_hash(struct auth_db *db, const char *name, const char *b64,
                       enum auth_hash_alg alg, bool loopback_only, char *err, size_t errlen);
/* Replaces the user's tags with tags[0..n) (copied). 0, or -1 on ENOMEM (logged). */
int auth_user_set_tags(struct auth_user *u, const char *const *tags, size_t n);
/* Sets the user's password (the table's algorithm, fresh salt); NULL clears it (no password
 * logins).
 * 0, or -1 (logged). */
int auth_user_set_password(struct auth_db *db, struct auth_user *u, const char *password);
/* Removes the user from the table: it no longer logs in and has no permissions; holders of a
 * reference keep a valid object until they drop it. */
void auth_user_delete(struct auth_db *db, struct auth_user *u);

/* The user named name[0..len), or NULL. Borrowed from the table. */
struct auth_user *auth_user_find(const struct auth_db *db, const void *name, size_t len);
struct auth_user *auth_user_get(const struct auth_db *db, const char *name);
/* Calls fn for each user (any order); fn must not add or delete users. */
void auth_user_foreach(const struct auth_db *db, void (*fn)(void *arg, struct auth_user *u),
                       void *arg);

const char *auth_user_name(const struct auth_user *u);
size_t auth_user_tag_count(const struct auth_user *u);
const char *auth_user_tag(const struct auth_user *u, size_t i);
bool auth_user_has_tag(const struct auth_user *u, const char *tag);
enum auth_hash_alg auth_user_hash_alg(const struct auth_user *u);
/* Writes the password hash as RabbitMQ exports it (base64, "" when the user has none) into
 * buf (AUTH_HASH_B64_MAX bytes). Returns false when the password is not hashed yet (set
 * before the first login: see users.c). */
#define AUTH_HASH_B64_MAX (4 * ((AUTH_HASH_MAX + 2) / 3) + 1)
bool auth_user_hash_b64(const struct auth_user *u, char *buf);
/* Whether the user's password is still waiting for the first login to be hashed. */
bool auth_user_password_pending(const struct auth_user *u);

/* Per-user limits (rabbitmqctl set_user_limits): max-connections, max-channels. */
struct auth_user_limits {
    int64_t max_connections; /* AUTH_NO_LIMIT or >= 0 */
    int64_t max_channels;
};
struct auth_user_limits *auth_user_limits(struct auth_user *u);
/* Live counts, kept by the network layer for the limits. */
uint32_t *auth_user_conn_count(struct auth_user *u);
uint32_t *auth_user_chan_count(struct auth_user *u);

/* References: a connection holds one on its user for its whole life. */
struct auth_user *auth_user_ref(struct auth_user *u);
void auth_user_unref(struct auth_user *u);
/* Whether the user was deleted from its table (its connections are being closed). */
bool auth_user_deleted(const struct auth_user *u);

/* Starts hashing now, as the first login would (fetches the digests, hashes the pending
 * passwords): an administrative change of a password hashes it at once. 0, or -1 (logged). */
int auth_db_hash_now(struct auth_db *db);
/* Hashes password with the table's algorithm (*alg) and a fresh salt, as RabbitMQ's
 * password_hash (base64) into b64 (AUTH_HASH_B64_MAX bytes): what a cluster's log carries,
 * so that every node stores the same hash. 0, or -1 on ENOMEM or an OpenSSL failure
 * (logged). */
int auth_password_hash(struct auth_db *db, const char *password, char *b64,
                       enum auth_hash_alg *alg);
/* Called for each user whose password the first login hashed (see users.c), so that what is
 * stored can be updated; NULL: nobody. */
void auth_db_set_hashed_hook(struct auth_db *db, void (*fn)(void *arg, struct auth_user *u),
                             void *arg);

/* Permissions (perms.c). RabbitMQ's patterns are PCRE regular expressions matched anywhere
 * in a resource's name unless anchored; "" stands for "^$" (as RabbitMQ rewrites it), which
 * no resource name matches. */
enum auth_perm_kind {
    AUTH_CONFIGURE = 0,
    AUTH_WRITE,
    AUTH_READ,
};

/* Sets u's permissions on vhost (replacing any). Returns 0, or -1 with err set to the
 * compile error, as RabbitMQ words an invalid pattern, or ENOMEM. */
int auth_perm_set(struct auth_db *db, struct auth_user *u, const char *vhost, const char *configure,
                  const char *write, const char *read, char *err, size_t errlen);
/* Removes u's permissions on vhost. Returns whether there were some. */
bool auth_perm_clear(struct auth_db *db, struct auth_user *u, const char *vhost);
/* Removes every user's permissions and topic permissions on vhost (a vhost deleted). */
void auth_perm_clear_vhost(struct auth_db *db, const char *vhost);

struct auth_perm; /* one user's patterns on one vhost */
/* u's permissions on vhost, or NULL when it has none (no access to the vhost). */
const struct auth_perm *auth_perm_find(const struct auth_user *u, const char *vhost);
/* The pattern of one kind, as set. */
const char *auth_perm_pattern(const struct auth_perm *p, enum auth_perm_kind kind);
/* Whether p's pattern of that kind matches name[0..len). */
bool auth_perm_allows(const struct auth_perm *p, enum auth_perm_kind kind, const void *name,
                      size_t len);
/* Calls fn for each of u's permissions (vhost, the permission). */
void auth_perm_foreach(const struct auth_user *u,
                       void (*fn)(void *arg, const char *vhost, const struct auth_perm *p),
                       void *arg);

/* Topic permissions: write and read patterns on the routing keys of one topic exchange,
 * where {username}, {vhost} and {client_id} are replaced before matching. An AMQP 0-9-1
 * client has no client id (RabbitMQ's comes from MQTT): client_id NULL leaves
 * "{client_id}" as it is written, as RabbitMQ leaves a variable it has no value for. */
int auth_topic_perm_set(struct auth_db *db, struct auth_user *u, const char *vhost,
                        const char *exchange, const char *write, const char *read, char *err,
                        size_t errlen);
/* Removes u's topic permissions on vhost for exchange, or for every exchange when exchange is
 * NULL. Returns whether there were some. */
bool auth_topic_perm_clear(struct auth_db *db, struct auth_user *u, const char *vhost,
                           const char *exchange);
/* Whether u has topic permissions on exchange in vhost: if not, every routing key is allowed. */
bool auth_topic_perm_exists(const struct auth_user *u, const char *vhost, const void *exchange,
                            size_t exchange_len);
/* Whether u may write (publish) or read (bind) routing_key on exchange in vhost. Allowed
 * when u has no topic permission for that exchange, as in RabbitMQ. */
bool auth_topic_allows(const struct auth_user *u, const char *vhost, const void *exchange,
                       size_t exchange_len, enum auth_perm_kind kind, const void *routing_key,
                       size_t rk_len, const char *client_id);
/* Calls fn for each of u's topic permissions. */
void auth_topic_perm_foreach(const struct auth_user *u,
                             void (*fn)(void *arg, const char *vhost, const char *exchange,
                                        const char *write, const char *read),
                             void *arg);

/* Bumped by every change of a user or a permission: a cached check made under an older
 * generation must be made again. */
uint64_t auth_db_generation(const struct auth_db *db);

enum auth_result {
    AUTH_OK = 0,
    AUTH_REFUSED,       /* unknown user, wrong password, or loopback-only user from afar */
    AUTH_BAD_MECHANISM, /* mechanism not offered */
    AUTH_MALFORMED,     /* the response does not parse for its mechanism */
};

/* The mechanisms auth_login checks, space-separated: "PLAIN AMQPLAIN" (which of them are
 * offered is auth_mechanisms.N's choice, in src/net/conn.c). */
extern const char auth_mechanisms[];

/* Checks a start-ok. On AUTH_OK *user borrows from db (take a reference to keep it).
 * Otherwise why holds the detail for the log, in RabbitMQ's words (rabbit_reader.erl,
 * rabbit_auth_backend_internal.erl), with peer bytes escaped and passwords never quoted:
 *   AUTH_REFUSED        "PLAIN login refused: user 'guest' - invalid credentials"
 *                       "PLAIN login refused: user 'guest' can only connect via localhost"
 *   AUTH_BAD_MECHANISM  "unknown authentication mechanism 'FOO'"
 *   AUTH_MALFORMED      "AMQPLAIN auth info is missing LOGIN or PASSWORD field", ...
 * What the client gets is built by the caller, as RabbitMQ does it:
 *   AUTH_REFUSED: 403 ACCESS_REFUSED. If the client's capabilities table has
 *     authentication_failure_close = true (pika, py-amqp, the Java client), send
 *     connection.close(403, "ACCESS_REFUSED - " AUTH_REFUSAL_FMT, class 0, method 0), then
 *     close; otherwise send nothing.
 *   AUTH_BAD_MECHANISM (503 COMMAND_INVALID) and AUTH_MALFORMED (502 SYNTAX_ERROR): send
 *     nothing.
 *   Either way RabbitMQ closes the socket 3 s after the start-ok (SILENT_CLOSE_DELAY, so
 *   that a client guessing passwords waits for each guess).
 * Passwords are compared in constant time; an unknown user costs the same hash as a known
 * one. Blank passwords are refused, as RabbitMQ's internal backend does, and so is any
 * password of a user who has none. */
enum auth_result auth_login(struct auth_db *db, struct wire_str mechanism, struct wire_str response,
                            bool peer_is_loopback, const struct auth_user **user, char *why,
                            size_t whylen);

/* SASL EXTERNAL (rabbitmq_auth_mechanism_ssl): name was taken from the client's verified
 * certificate; the user must exist (its password is not checked), and a loopback-only user
 * must come from loopback. AUTH_OK with *user borrowing from db, or AUTH_REFUSED with why set
 * as for auth_login ("EXTERNAL login refused: user 'CN=x' - invalid credentials"). */
enum auth_result auth_login_external(struct auth_db *db, const char *name, bool peer_is_loopback,
                                     const struct auth_user **user, char *why, size_t whylen);

/* connection.update-secret: whether secret is u's password now, checked as a login checks
 * it (constant time, blank refused). AUTH_OK, or AUTH_REFUSED with why set for the log. */
enum auth_result auth_check_secret(struct auth_db *db, const struct auth_user *u,
                                   struct wire_str secret, char *why, size_t whylen);

/* The reply text after "ACCESS_REFUSED - " for AUTH_REFUSED (rabbit_reader.erl auth_fail);
 * the argument is the mechanism (%.*s, use WIRE_STR_ARG). The detail stays in the log. */
#define AUTH_REFUSAL_FMT                                                                           \
    "Login was refused using authentication mechanism %.*s. For details see the broker logfile."

#endif
