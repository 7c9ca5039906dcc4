/* PLAIN logins for the authentication tests: see plain_login.h. */
#include "config.h"

#include "plain_login.h"

#include <stdint.h>
#include <string.h>

enum auth_result
plain_login(struct auth_db *db, const char *name, const char *password, bool loopback,
            const struct auth_user **user)
{
    uint8_t buf[512];
    size_t n = 0, name_len = strlen(name), pass_len = strlen(password);
    buf[n++] = 0; /* no authorization identity */
    memcpy(buf + n, name, name_len);
    n += name_len;
    buf[n++] = 0;
    memcpy(buf + n, password, pass_len);
    n += pass_len;
    char why[256];
    return auth_login(db, WIRE_STR_LIT("PLAIN"), (struct wire_str){buf, (uint32_t)n}, loopback,
                      user, why, sizeof(why));
}
