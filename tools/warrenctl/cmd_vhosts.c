/* warrenctl's vhost and permission commands: add_vhost, delete_vhost, list_vhosts,
 * set_vhost_limits, set/clear/list_permissions, list_user_permissions and
 * set/clear/list_topic_permissions, over /api/vhosts, /api/permissions and
 * /api/topic-permissions. rabbitmqctl names a missing vhost or user in a different way per
 * command (and with a different exit code); each command here says it the same way. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

int
ctl_exists(const struct ctl *c, const char *prefix, const char *name)
{
    char path[1024];
    json_t *j;
    if (ctl_path(path, sizeof(path), prefix, name, NULL) < 0)
        return CTL_EX_USAGE;
    int rc = ctl_get_json(c, path, &j);
    json_decref(j);
    return rc < 0 ? -rc : rc;
}

int
ctl_no_vhost_65(const char *vhost)
{
    fflush(stdout);
    fprintf(stderr, "Virtual host '%s' does not exist\n", vhost);
    return CTL_EX_DATAERR;
}

/* set_permissions and set_topic_permissions: vhost, then user must exist. */
static int
ctl_check_vhost_user(const struct ctl *c, const char *vhost, const char *user)
{
    int rc = ctl_exists(c, "vhosts/", vhost);
    if (rc == 404)
        return ctl_error(CTL_EX_UNAVAILABLE, "Virtual host %s does not exist", vhost);
    if (rc == 0)
        rc = ctl_exists(c, "users/", user);
    if (rc == 404)
        return ctl_error(CTL_EX_NOUSER, "User %s does not exist", user);
    return rc;
}

/* Sends method with body (may be NULL, consumed) to prefix/vhost/user. 404 counts as done
 * when ok404 (clearing what is not there). */
static int
ctl_vhost_user_send(const struct ctl *c, const char *method, const char *prefix, const char *vhost,
                    const char *user, json_t *body, bool ok404)
{
    char path[1024];
    struct ctl_reply r;
    int rc = ctl_path(path, sizeof(path), prefix, vhost, user);
    if (rc == 0)
        rc = ctl_http_json(c, method, path, body, &r);
    json_decref(body);
    if (rc < 0)
        return CTL_EX_UNAVAILABLE;
    if (ok404 && r.status == 404) {
        ctl_reply_free(&r);
        return CTL_OK;
    }
    return ctl_status_result(&r);
}

/* The rows of GET path whose "vhost" is vhost (all when vhost is NULL), in *rows. */
static int
ctl_list_filtered(const struct ctl *c, const char *path, const char *vhost, json_t **rows)
{
    json_t *all, *e;
    size_t i;
    *rows = NULL;
    int rc = ctl_get_json(c, path, &all);
    if (rc != 0)
        return rc < 0
                   ? -rc
                   : ctl_error(CTL_EX_UNAVAILABLE, "the broker has no /api/%s (HTTP %d)", path, rc);
    if ((*rows = json_array()) == NULL) {
        json_decref(all);
        return ctl_error(CTL_EX_SOFTWARE, "out of memory");
    }
    json_array_foreach(all, i, e)
    {
        const char *v = json_string_value(json_object_get(e, "vhost"));
        if (json_is_object(e) && (vhost == NULL || (v != NULL && strcmp(v, vhost) == 0)))
            json_array_append(*rows, e);
    }
    json_decref(all);
    return 0;
}

int
ctl_cmd_add_vhost(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    ctl_banner(c, "Adding vhost \"%s\" ...", argv[0]);
    /* An existing vhost is left as it is, as rabbitmqctl does (a PUT would reset it). */
    int rc = ctl_exists(c, "vhosts/", argv[0]);
    if (rc != 404)
        return rc;
    json_t *body = json_object();
    if (body == NULL)
        return ctl_error(CTL_EX_SOFTWARE, "out of memory");
    if (c->description != NULL)
        json_object_set_new(body, "description", json_string(c->description));
    if (c->tags != NULL)
        json_object_set_new(body, "tags", json_string(c->tags));
    if (c->default_queue_type != NULL)
        json_object_set_new(body, "default_queue_type", json_string(c->default_queue_type));
    char path[1024];
    struct ctl_reply r;
    rc = ctl_path(path, sizeof(path), "vhosts/", argv[0], NULL);
    if (rc == 0)
        rc = ctl_http_json(c, "PUT", path, body, &r);
    json_decref(body);
    return rc < 0 ? CTL_EX_UNAVAILABLE : ctl_status_result(&r);
}

int
ctl_cmd_delete_vhost(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    char path[1024];
    struct ctl_reply r;
    ctl_banner(c, "Deleting vhost \"%s\" ...", argv[0]);
    if (ctl_path(path, sizeof(path), "vhosts/", argv[0], NULL) < 0)
        return CTL_EX_USAGE;
    if (ctl_http(c, "DELETE", path, NULL, 0, NULL, &r) < 0)
        return CTL_EX_UNAVAILABLE;
    if (r.status == 404) {
        ctl_reply_free(&r);
        return ctl_no_vhost_65(argv[0]);
    }
    return ctl_status_result(&r);
}

int
ctl_cmd_list_vhosts(struct ctl *c, int argc, char **argv)
{
    static const char *const keys[] = {"name",    "description",   "tags",
                                       "tracing", "cluster_state", "default_queue_type"};
    static const char *const dflt[] = {"name"};
    json_t *rows, *v;
    size_t i;
    int rc = ctl_check_columns(c->cmd, keys, 6, argc, argv);
    if (rc != 0)
        return rc;
    ctl_banner(c, "Listing vhosts ...");
    if ((rc = ctl_list_filtered(c, "vhosts", NULL, &rows)) != 0)
        return rc;
    json_array_foreach(rows, i, v)
    {
        /* rabbitmqctl's word for a vhost without one */
        if (!json_is_string(json_object_get(v, "default_queue_type")))
            json_object_set_new(v, "default_queue_type", json_string("undefined"));
        if (json_object_get(v, "tracing") == NULL)
            json_object_set_new(v, "tracing", json_false());
    }
    if ((rc = ctl_rows_sort(rows, "name", NULL)) == 0)
        ctl_out_table(c, argc > 0 ? (const char *const *)argv : dflt, argc > 0 ? (size_t)argc : 1,
                      rows);
    json_decref(rows);
    return rc;
}

int
ctl_cmd_set_vhost_limits(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    static const char *const keys[] = {"max-connections", "max-queues"};
    ctl_banner(c, "Setting vhost limits to \"%s\" for vhost \"%s\" ...", argv[0], c->vhost);
    int rc = ctl_exists(c, "vhosts/", c->vhost);
    if (rc == 404)
        return ctl_no_vhost_65(c->vhost);
    if (rc != 0)
        return rc;
    return ctl_limits_set(c, "vhost-limits/", c->vhost, argv[0], keys, 2);
}

int
ctl_cmd_set_permissions(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    ctl_banner(c, "Setting permissions for user \"%s\" in vhost \"%s\" ...", argv[0], c->vhost);
    int rc = ctl_check_vhost_user(c, c->vhost, argv[0]);
    if (rc != 0)
        return rc;
    json_t *body =
        json_pack("{s:s, s:s, s:s}", "configure", argv[1], "write", argv[2], "read", argv[3]);
    return ctl_vhost_user_send(c, "PUT", "permissions/", c->vhost, argv[0], body, false);
}

int
ctl_cmd_clear_permissions(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    ctl_banner(c, "Clearing permissions for user \"%s\" in vhost \"%s\" ...", argv[0], c->vhost);
    int rc = ctl_exists(c, "users/", argv[0]);
    if (rc == 404)
        return ctl_error(CTL_EX_NOUSER, "User %s does not exist", argv[0]);
    if (rc != 0)
        return rc;
    return ctl_vhost_user_send(c, "DELETE", "permissions/", c->vhost, argv[0], NULL, true);
}

/* list_permissions and list_topic_permissions: the vhost's rows of the whole list. */
static int
ctl_list_vhost_rows(struct ctl *c, const char *path, const char *const *cols, size_t ncols)
{
    json_t *rows;
    int rc = ctl_exists(c, "vhosts/", c->vhost);
    if (rc == 404)
        return ctl_no_vhost_65(c->vhost);
    if (rc != 0 || (rc = ctl_list_filtered(c, path, c->vhost, &rows)) != 0)
        return rc;
    if ((rc = ctl_rows_sort(rows, cols[0], cols[1])) == 0)
        ctl_out_table(c, cols, ncols, rows);
    json_decref(rows);
    return rc;
}

int
ctl_cmd_list_permissions(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    static const char *const cols[] = {"user", "configure", "write", "read"};
    ctl_banner(c, "Listing permissions for vhost \"%s\" ...", c->vhost);
    return ctl_list_vhost_rows(c, "permissions", cols, 4);
}

int
ctl_cmd_list_user_permissions(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    static const char *const cols[] = {"vhost", "configure", "write", "read"};
    char path[1024];
    json_t *rows;
    ctl_banner(c, "Listing permissions for user \"%s\" ...", argv[0]);
    if (ctl_path(path, sizeof(path), "users/", argv[0], NULL) < 0 ||
        strlen(path) + sizeof("/permissions") > sizeof(path))
        return CTL_EX_USAGE;
    strcat(path, "/permissions");
    int rc = ctl_get_json(c, path, &rows);
    if (rc == 404)
        return ctl_error(CTL_EX_UNAVAILABLE, "{:no_such_user, \"%s\"}", argv[0]);
    if (rc != 0)
        return -rc;
    if (!json_is_array(rows)) {
        json_decref(rows);
        return ctl_error(CTL_EX_UNAVAILABLE, "the broker's reply to GET /api/%s is not a list",
                         path);
    }
    if ((rc = ctl_rows_sort(rows, "vhost", NULL)) == 0)
        ctl_out_table(c, cols, 4, rows);
    json_decref(rows);
    return rc;
}

int
ctl_cmd_set_topic_permissions(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    ctl_banner(c, "Setting topic permissions on \"%s\" for user \"%s\" in vhost \"%s\" ...",
               argv[1], argv[0], c->vhost);
    int rc = ctl_check_vhost_user(c, c->vhost, argv[0]);
    if (rc != 0)
        return rc;
    json_t *body =
        json_pack("{s:s, s:s, s:s}", "exchange", argv[1], "write", argv[2], "read", argv[3]);
    return ctl_vhost_user_send(c, "PUT", "topic-permissions/", c->vhost, argv[0], body, false);
}

/* The API deletes a user's topic permissions in a vhost all at once: to clear one exchange,
 * delete them all and put back the others. */
int
ctl_cmd_clear_topic_permissions(struct ctl *c, int argc, char **argv)
{
    const char *user = argv[0], *exchange = argc > 1 ? argv[1] : NULL;
    char path[1024];
    json_t *keep = NULL, *e;
    size_t i;
    if (exchange != NULL)
        ctl_banner(c, "Clearing topic permissions on \"%s\" for user \"%s\" in vhost \"%s\" ...",
                   exchange, user, c->vhost);
    else
        ctl_banner(c, "Clearing topic permissions for user \"%s\" in vhost \"%s\" ...", user,
                   c->vhost);
    int rc = ctl_exists(c, "users/", user);
    if (rc == 404)
        return ctl_error(CTL_EX_NOUSER, "User %s does not exist", user);
    if (rc != 0)
        return rc;
    if (exchange != NULL) {
        if (ctl_path(path, sizeof(path), "topic-permissions/", c->vhost, user) < 0)
            return CTL_EX_USAGE;
        rc = ctl_get_json(c, path, &keep);
        if (rc == 404)
            return CTL_OK; /* nothing to clear */
        if (rc != 0)
            return -rc;
    }
    rc = ctl_vhost_user_send(c, "DELETE", "topic-permissions/", c->vhost, user, NULL, true);
    json_array_foreach(keep, i, e)
    {
        const char *x = json_string_value(json_object_get(e, "exchange"));
        if (rc != CTL_OK)
            break;
        if (x == NULL || strcmp(x, exchange) == 0)
            continue;
        json_t *body = json_pack("{s:s, s:O?, s:O?}", "exchange", x, "write",
                                 json_object_get(e, "write"), "read", json_object_get(e, "read"));
        rc = ctl_vhost_user_send(c, "PUT", "topic-permissions/", c->vhost, user, body, false);
    }
    json_decref(keep);
    return rc;
}

int
ctl_cmd_list_topic_permissions(struct ctl *c, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    static const char *const cols[] = {"user", "exchange", "write", "read"};
    ctl_banner(c, "Listing topic permissions for vhost \"%s\" ...", c->vhost);
    return ctl_list_vhost_rows(c, "topic-permissions", cols, 4);
}
