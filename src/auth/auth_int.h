/* Interface between the SASL-style mechanisms (mech_*.c) and the user table (users.c),
 * private to src/auth/. A mechanism only turns a start-ok response into a user name and a
 * password; users.c alone decides whether they log in. */
#ifndef WARREN_AUTH_INT_H
#define WARREN_AUTH_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "warren/auth.h"
#include "warren/wire.h"

/* A user name and password taken from a response: both borrow from the response bytes and
 * may hold any bytes, NUL included. */
struct auth_cred {
    struct wire_str user, pass;
};

/* PLAIN (RFC 4616): "[authzid] NUL user NUL password"; the authzid is ignored. Returns 0, or
 * -1 with why set to a text for the log (the password is never quoted). */
int auth_plain_parse(struct wire_str response, struct auth_cred *cred, char *why, size_t whylen);

/* AMQPLAIN: field-table entries without the 4-byte length prefix, holding LOGIN and
 * PASSWORD as long strings ('S'). Returns 0, or -1 with why set. */
int auth_amqplain_parse(struct wire_str response, struct auth_cred *cred, char *why, size_t whylen);

/* Checks cred against db for a login with mechanism mech (named in why). Returns AUTH_OK
 * with *user borrowing from db, or AUTH_REFUSED with why set as RabbitMQ words it, e.g.
 * "PLAIN login refused: user 'guest' - invalid credentials". Takes about the same time
 * whether or not the user exists. */
enum auth_result auth_db_check(struct auth_db *db, const char *mech, const struct auth_cred *cred,
                               bool peer_is_loopback, const struct auth_user **user, char *why,
                               size_t whylen);

#endif
