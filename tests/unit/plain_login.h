/* PLAIN logins for the authentication tests (check_auth, check_admin): the start-ok response
 * a client sends, checked by auth_login as a connection's would be. */
#ifndef WARREN_TESTS_PLAIN_LOGIN_H
#define WARREN_TESTS_PLAIN_LOGIN_H

#include <stdbool.h>

#include "warren/auth.h"

/* Logs in to db with PLAIN as name/password (each under 250 bytes), from loopback or not. */
enum auth_result plain_login(struct auth_db *db, const char *name, const char *password,
                             bool loopback, const struct auth_user **user);

#endif
