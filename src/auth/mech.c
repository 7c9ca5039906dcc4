/* Login dispatch: picks the mechanism named in connection.start-ok, has it extract a user
 * name and password, and checks them against the user table. Mechanism names match
 * exactly, case included, as in RabbitMQ. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "auth_int.h"
#include "warren/auth.h"
#include "warren/log.h"

const char auth_mechanisms[] = "PLAIN AMQPLAIN";

static const struct {
    const char *name;
    int (*parse)(struct wire_str response, struct auth_cred *cred, char *why, size_t whylen);
} auth_mechs[] = {
    {"PLAIN", auth_plain_parse},
    {"AMQPLAIN", auth_amqplain_parse},
};

enum auth_result
auth_check_secret(struct auth_db *db, const struct auth_user *u, struct wire_str secret, char *why,
                  size_t whylen)
{
    const char *name = auth_user_name(u);
    struct auth_cred cred = {{(const uint8_t *)name, (uint32_t)strlen(name)}, secret};
    const struct auth_user *found = NULL;
    /* Loopback-only users are past that check: they logged in. */
    enum auth_result r = auth_db_check(db, "update-secret", &cred, true, &found, why, whylen);
    if (r == AUTH_OK && found != u) {
        /* The name is another user's now: this one was deleted and the name taken again. */
        snprintf(why, whylen, "user '%s' was replaced", name);
        return AUTH_REFUSED;
    }
    return r;
}

enum auth_result
auth_login(struct auth_db *db, struct wire_str mechanism, struct wire_str response,
           bool peer_is_loopback, const struct auth_user **user, char *why, size_t whylen)
{
    if (whylen > 0)
        why[0] = '\0';
    for (size_t i = 0; i < sizeof(auth_mechs) / sizeof(auth_mechs[0]); i++) {
        if (!wire_str_eq(mechanism, auth_mechs[i].name))
            continue;
        struct auth_cred cred;
        if (auth_mechs[i].parse(response, &cred, why, whylen) < 0)
            return AUTH_MALFORMED;
        return auth_db_check(db, auth_mechs[i].name, &cred, peer_is_loopback, user, why, whylen);
    }
    char name[64];
    log_escape(name, sizeof(name), mechanism.ptr, mechanism.len);
    snprintf(why, whylen, "unknown authentication mechanism '%s'", name);
    return AUTH_BAD_MECHANISM;
}
