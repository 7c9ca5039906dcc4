/* warrenctl's user commands: add_user, delete_user, change_password, clear_password,
 * authenticate_user, set_user_tags, list_users, set_user_limits, and the limits code that
 * set_vhost_limits shares. Each maps onto /api/users/{name} (a PUT replaces the whole user, so
 * the commands that change one attribute read the user first and send the rest back) and
 * prints what rabbitmqctl prints, with its exit codes. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "warren/auth.h"
#include "warren/wire.h"

/* GETs the user: 0 with *u (caller decrefs), or CTL_EX_NOUSER (nothing printed) when there
 * is none, or another CTL_EX_* after printing the error. */
static int
ctl_user_fetch(const struct ctl *c, const char *name, json_t **u)
{
    char path[1024];
    if (ctl_path(path, sizeof(path), "users/", name, NULL) < 0)
        return CTL_EX_USAGE;
    int rc = ctl_get_json(c, path, u);
    if (rc == 0 && !json_is_object(*u)) {
        json_decref(*u);
        *u = NULL;
        return ctl_error(CTL_EX_UNAVAILABLE, "the broker's reply for user %s is not an object",
                         name);
    }
    return rc == 0 ? 0 : rc == 404 ? CTL_EX_NOUSER : rc < 0 ? -rc : CTL_EX_UNAVAILABLE;
}

/* A user's tags as a JSON array, whether the broker sent a list or a comma-separated string
 * (older formats). Returns a new reference, never NULL unless out of memory. */
static json_t *
ctl_user_tags(const json_t *u)
{
    const json_t *t = json_object_get(u, "tags");
    if (json_is_array(t))
        return json_deep_copy(t);
    json_t *a = json_array();
    if (json_is_string(t) && a != NULL) {
        const char *s = json_string_value(t);
        while (*s != '\0') {
            size_t n = strcspn(s, ",");
            if (n > 0)
                json_array_append_new(a, json_stringn(s, n));
            s += n + (s[n] == ',');
        }
    }
    return a;
}

/* PUTs the user with body's fields (a new reference, consumed). Returns CTL_OK or an exit
 * code after printing the error. */
static int
ctl_user_put(const struct ctl *c, const char *name, json_t *body)
{
    char path[1024];
    struct ctl_reply r;
    if (body == NULL) {
        fputs("Error: out of memory\n", stderr);
        return CTL_EX_SOFTWARE;
    }
    int rc = ctl_path(path, sizeof(path), "users/", name, NULL);
    if (rc == 0)
        rc = ctl_http_json(c, "PUT", path, body, &r);
    json_decref(body);
    return rc < 0 ? CTL_EX_UNAVAILABLE : ctl_status_result(&r);
}

/* rabbitmqctl's words for a missing user when rc says so (CTL_EX_NOUSER). Returns rc. */
static int
ctl_no_user(int rc, const char *name)
{
    if (rc == CTL_EX_NOUSER)
        ctl_error(rc, "User \"%s\" does not exist", name);
    return rc;
}

int
ctl_cmd_add_user(struct ctl *c, int argc, char **argv)
{
    const char *name = argv[0];
    char *line = NULL;
    ctl_banner(c, "Adding user \"%s\" ...", name);
    const char *password = argc > 1 ? argv[1] : NULL;
    if (password == NULL) {
        size_t cap = 0;
        ssize_t n;
        if (isatty(STDIN_FILENO)) {
            fputs("Password: ", stdout);
            fflush(stdout);
        }
        if ((n = getline(&line, &cap, stdin)) > 0) {
            while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                line[--n] = '\0';
            password = line;
        }
        if (password == NULL || *password == '\0') {
            free(line);
            return ctl_error(CTL_EX_DATAERR, "Password is not provided via argument or stdin");
        }
    }
    json_t *u;
    int rc = ctl_user_fetch(c, name, &u);
    if (rc == 0) {
        json_decref(u);
        rc = ctl_error(CTL_EX_SOFTWARE, "User \"%s\" already exists", name);
    } else if (rc == CTL_EX_NOUSER) {
        rc = ctl_user_put(c, name, json_pack("{s:s, s:[]}", "password", password, "tags"));
        if (rc == CTL_OK && !c->quiet && !c->silent)
            puts("Done. Don't forget to grant the user permissions to some virtual hosts! See "
                 "'warrenctl help set_permissions' to learn more.");
    }
    free(line);
    return rc;
}

int
ctl_cmd_delete_user(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    char path[1024];
    struct ctl_reply r;
    ctl_banner(c, "Deleting user \"%s\" ...", argv[0]);
    if (ctl_path(path, sizeof(path), "users/", argv[0], NULL) < 0)
        return CTL_EX_USAGE;
    if (ctl_http(c, "DELETE", path, NULL, 0, NULL, &r) < 0)
        return CTL_EX_UNAVAILABLE;
    if (r.status == 404) {
        ctl_reply_free(&r);
        return ctl_no_user(CTL_EX_NOUSER, argv[0]);
    }
    return ctl_status_result(&r);
}

/* Sends the user back with a new password ("password") or password_hash, keeping its tags. */
static int
ctl_user_set_password(struct ctl *c, const char *name, const char *key, const char *value)
{
    json_t *u;
    int rc = ctl_user_fetch(c, name, &u);
    if (rc != 0)
        return ctl_no_user(rc, name);
    json_t *tags = ctl_user_tags(u);
    json_decref(u);
    return ctl_user_put(c, name, json_pack("{s:s, s:o?}", key, value, "tags", tags));
}

int
ctl_cmd_change_password(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    ctl_banner(c, "Changing password for user \"%s\" ...", argv[0]);
    return ctl_user_set_password(c, argv[0], "password", argv[1]);
}

int
ctl_cmd_clear_password(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    ctl_banner(c, "Clearing password for user \"%s\" ...", argv[0]);
    return ctl_user_set_password(c, argv[0], "password_hash", "");
}

/* Checks the password against the user's stored hash with the broker's own code (a one-user
 * auth_db and a PLAIN login, as the AMQP port checks it): the API has no call that checks a
 * password, and /api/whoami on the trusted Unix socket ignores credentials. */
int
ctl_cmd_authenticate_user(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    const char *name = argv[0], *password = argv[1];
    json_t *u;
    ctl_banner(c, "Authenticating user \"%s\" ...", name);
    int rc = ctl_user_fetch(c, name, &u);
    if (rc != 0 && rc != CTL_EX_NOUSER)
        return rc;
    enum auth_result res = AUTH_REFUSED;
    if (rc == 0) {
        const char *hash = json_string_value(json_object_get(u, "password_hash"));
        const char *algname = json_string_value(json_object_get(u, "hashing_algorithm"));
        enum auth_hash_alg alg = AUTH_HASH_SHA256;
        struct auth_db *db = auth_db_new();
        char err[256], why[256];
        size_t nl = strlen(name), pl = strlen(password);
        char *plain = malloc(nl + pl + 2); /* PLAIN: NUL user NUL password */
        if (db == NULL || plain == NULL)
            rc = ctl_error(CTL_EX_SOFTWARE, "out of memory");
        else if (hash == NULL || (algname != NULL && auth_hash_alg_parse(algname, &alg) < 0) ||
                 auth_user_put_hash(db, name, hash, alg, false, err, sizeof(err)) < 0)
            rc = ctl_error(CTL_EX_UNAVAILABLE,
                           "the broker's password hash for user \"%s\" is "
                           "not one Warren reads",
                           name);
        else {
            const struct auth_user *who;
            plain[0] = '\0';
            memcpy(plain + 1, name, nl + 1);
            memcpy(plain + nl + 2, password, pl);
            res = auth_login(db, WIRE_STR_LIT("PLAIN"),
                             (struct wire_str){(const uint8_t *)plain, (uint32_t)(nl + pl + 2)},
                             true, &who, why, sizeof(why));
        }
        free(plain);
        if (db != NULL)
            auth_db_free(db);
        json_decref(u);
        if (rc != 0)
            return rc;
    }
    if (res != AUTH_OK)
        return ctl_error(CTL_EX_DATAERR,
                         "Error: failed to authenticate user \"%s\"\nuser '%s' - invalid "
                         "credentials",
                         name, name);
    puts(c->formatter == CTL_FMT_JSON ? "{\"message\":\"Success\"}" : "Success"); /* even -s */
    return CTL_OK;
}

int
ctl_cmd_set_user_tags(struct ctl *c, int argc, char **argv)
{
    json_t *tags = json_array(), *u;
    char shown[1024] = "";
    for (int i = 1; i < argc && tags != NULL; i++) {
        json_array_append_new(tags, json_string(argv[i]));
        size_t n = strlen(shown);
        snprintf(shown + n, sizeof(shown) - n, "%s%s", i > 1 ? ", " : "", argv[i]);
    }
    ctl_banner(c, "Setting tags for user \"%s\" to [%s] ...", argv[0], shown);
    int rc = ctl_user_fetch(c, argv[0], &u);
    if (rc != 0) {
        json_decref(tags);
        return ctl_no_user(rc, argv[0]);
    }
    /* Without its hash, the PUT would clear the user's password. */
    json_t *body =
        json_pack("{s:O?, s:O?, s:o?}", "password_hash", json_object_get(u, "password_hash"),
                  "hashing_algorithm", json_object_get(u, "hashing_algorithm"), "tags", tags);
    json_decref(u);
    return ctl_user_put(c, argv[0], body);
}

int
ctl_cmd_list_users(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    static const char *const cols[] = {"user", "tags"};
    json_t *users, *rows = json_array(), *u;
    size_t i;
    ctl_banner(c, "Listing users ...");
    int rc = ctl_get_json(c, "users", &users);
    if (rc != 0) {
        json_decref(rows);
        return rc < 0 ? -rc : ctl_error(CTL_EX_UNAVAILABLE, "the broker has no /api/users");
    }
    json_array_foreach(users, i, u)
    {
        if (json_is_object(u))
            json_array_append_new(rows,
                                  json_pack("{s:O?, s:o?}", "user", json_object_get(u, "name"),
                                            "tags", ctl_user_tags(u)));
    }
    if ((rc = ctl_rows_sort(rows, "user", NULL)) == 0)
        ctl_out_table(c, cols, 2, rows);
    json_decref(rows);
    json_decref(users);
    return rc;
}

int
ctl_limits_set(struct ctl *c, const char *kind, const char *owner, const char *text,
               const char *const *keys, size_t nkeys)
{
    json_error_t jerr;
    char path[1024];
    json_t *want = json_loads(text, JSON_DECODE_ANY, &jerr), *have = NULL, *v;
    const char *k;
    int rc = CTL_OK;
    if (!json_is_object(want)) {
        json_decref(want);
        return ctl_error(CTL_EX_UNAVAILABLE, "JSON decoding error. Reason: %s",
                         want == NULL ? jerr.text : "not an object");
    }
    json_object_foreach(want, k, v)
    {
        size_t i = 0;
        while (i < nkeys && strcmp(keys[i], k) != 0)
            i++;
        if (i == nkeys) {
            char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            rc = ctl_error(CTL_EX_UNAVAILABLE,
                           "Validation failed\n\nUnrecognised terms [{<<\"%s\">>,%s}] in %s\n", k,
                           s != NULL ? s : "",
                           strcmp(kind, "vhost-limits/") == 0 ? "limits" : "user-limits");
            free(s);
            goto out;
        }
        if (!json_is_integer(v)) {
            char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            rc = ctl_error(CTL_EX_UNAVAILABLE, "%s should be a number, actually was %s", k,
                           s != NULL ? s : "");
            free(s);
            goto out;
        }
    }
    /* The new definition replaces the old one, as in rabbitmqctl: limits it leaves out go. */
    if (ctl_path(path, sizeof(path), kind, owner, NULL) < 0) {
        rc = CTL_EX_USAGE;
        goto out;
    }
    rc = ctl_get_json(c, path, &have); /* 404: none yet (an array either way) */
    if (rc != 0 && rc != 404) {
        rc = rc < 0 ? -rc : CTL_EX_UNAVAILABLE;
        goto out;
    }
    size_t i;
    json_t *entry;
    json_array_foreach(have, i, entry)
    {
        json_object_foreach(json_object_get(entry, "value"), k, v)
        {
            struct ctl_reply r;
            if (json_object_get(want, k) != NULL)
                continue;
            if (ctl_path(path, sizeof(path), kind, owner, k) < 0) {
                rc = CTL_EX_USAGE;
                goto out;
            }
            if (ctl_http(c, "DELETE", path, NULL, 0, NULL, &r) < 0) {
                rc = CTL_EX_UNAVAILABLE;
                goto out;
            }
            if ((rc = ctl_status_result(&r)) != CTL_OK)
                goto out;
        }
    }
    json_object_foreach(want, k, v)
    {
        struct ctl_reply r;
        json_t *body = json_pack("{s:O}", "value", v);
        if (ctl_path(path, sizeof(path), kind, owner, k) < 0) {
            json_decref(body);
            rc = CTL_EX_USAGE;
            goto out;
        }
        int e = ctl_http_json(c, "PUT", path, body, &r);
        json_decref(body);
        if (e < 0) {
            rc = CTL_EX_UNAVAILABLE;
            goto out;
        }
        if ((rc = ctl_status_result(&r)) != CTL_OK)
            goto out;
    }
out:
    json_decref(have);
    json_decref(want);
    return rc;
}

int
ctl_cmd_set_user_limits(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    static const char *const keys[] = {"max-connections", "max-channels"};
    json_t *u;
    ctl_banner(c, "Setting user limits to \"%s\" for user \"%s\" ...", argv[1], argv[0]);
    int rc = ctl_user_fetch(c, argv[0], &u);
    if (rc == CTL_EX_NOUSER)
        return ctl_error(CTL_EX_UNAVAILABLE, "{:no_such_user, \"%s\"}", argv[0]);
    if (rc != 0)
        return rc;
    json_decref(u);
    return ctl_limits_set(c, "user-limits/", argv[0], argv[1], keys, 2);
}
