/* Authentication: the user table and the SASL-style mechanisms AMQP clients use in
 * connection.start-ok. PLAIN ("\0user\0password") and AMQPLAIN (a field table with LOGIN and
 * PASSWORD, kombu/Celery/py-amqp's default) are implemented directly: both are a few lines of
 * parsing, and Cyrus SASL would bring neither AMQPLAIN nor a smaller attack surface.
 * Passwords are stored as RabbitMQ does: a 4-byte random salt and SHA-256(salt || password). */
#ifndef WARREN_AUTH_H
#define WARREN_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "warren/wire.h"

struct auth_user; /* name, salted hash, loopback_only */
struct auth_db;   /* owns its users */

struct auth_db *auth_db_new(void);
void auth_db_free(struct auth_db *db);
/* Adds or replaces a user. Returns 0, or -1 on ENOMEM or an OpenSSL failure (logged). */
int auth_user_add(struct auth_db *db, const char *name, const char *password, bool loopback_only);
const char *auth_user_name(const struct auth_user *u);

enum auth_result {
    AUTH_OK = 0,
    AUTH_REFUSED,       /* unknown user, wrong password, or loopback-only user from afar */
    AUTH_BAD_MECHANISM, /* mechanism not offered */
    AUTH_MALFORMED,     /* the response does not parse for its mechanism */
};

/* The mechanisms auth_login checks, space-separated: "PLAIN AMQPLAIN" (which of them are
 * offered is auth_mechanisms.N's choice, in src/net/conn.c). */
extern const char auth_mechanisms[];

/* Checks a start-ok. On AUTH_OK *user borrows from db. Otherwise why holds the detail for
 * the log, in RabbitMQ's words (rabbit_reader.erl, rabbit_auth_backend_internal.erl), with
 * peer bytes escaped and passwords never quoted:
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
 * one. Blank passwords are refused, as RabbitMQ's internal backend does. */
enum auth_result auth_login(struct auth_db *db, struct wire_str mechanism, struct wire_str response,
                            bool peer_is_loopback, const struct auth_user **user, char *why,
                            size_t whylen);

/* SASL EXTERNAL (rabbitmq_auth_mechanism_ssl): name was taken from the client's verified
 * certificate; the user must exist (its password is not checked), and a loopback-only user
 * must come from loopback. AUTH_OK with *user borrowing from db, or AUTH_REFUSED with why set
 * as for auth_login ("EXTERNAL login refused: user 'CN=x' - invalid credentials"). */
enum auth_result auth_login_external(struct auth_db *db, const char *name, bool peer_is_loopback,
                                     const struct auth_user **user, char *why, size_t whylen);

/* The reply text after "ACCESS_REFUSED - " for AUTH_REFUSED (rabbit_reader.erl auth_fail);
 * the argument is the mechanism (%.*s, use WIRE_STR_ARG). The detail stays in the log. */
#define AUTH_REFUSAL_FMT                                                                           \
    "Login was refused using authentication mechanism %.*s. For details see the broker logfile."

#endif
