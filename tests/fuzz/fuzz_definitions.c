/* libFuzzer target for the definitions loader (src/admin/definitions.c) and the records it
 * applies (src/admin/admin.c): any bytes, parsed by jansson as a definitions document and
 * imported into a fresh broker state (defaults of a first start, no store). Checked for every
 * input: the import neither crashes nor leaks (ASan), a failure names the entry at fault, what
 * was imported exports as a document that imports into a second, fresh state without error,
 * and the users' records (their stored form) apply again there. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "warren/admin.h"
#include "warren/auth.h"
#include "warren/conf.h"
#include "warren/log.h"
#include "warren/vhost.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz_state {
    struct conf conf;
    struct auth_db *db;
    struct vhost_registry vhosts;
    struct admin *adm;
};

static void
fz_fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_definitions: %s: %s\n", what, detail);
    abort();
}

static void
fz_init(struct fz_state *s)
{
    char err[256];
    conf_init_defaults(&s->conf);
    s->db = auth_db_new();
    vhost_registry_init(&s->vhosts);
    struct admin_env env = {.auth = s->db, .vhosts = &s->vhosts, .conf = &s->conf};
    s->adm = s->db != NULL ? admin_new(&env) : NULL;
    if (s->adm == NULL || admin_recover(s->adm, err, sizeof(err)) < 0)
        fz_fail("set-up", s->adm == NULL ? "out of memory" : err);
}

static void
fz_free(struct fz_state *s)
{
    admin_free(s->adm);
    vhost_registry_clear(&s->vhosts);
    auth_db_free(s->db);
    conf_free(&s->conf);
}

/* Applies every record of list (kind) to s: each must apply. */
static void
fz_reapply(struct fz_state *s, const char *kind, json_t *list)
{
    char err[600];
    size_t i;
    json_t *e;
    if (list == NULL)
        fz_fail("listing", kind);
    json_array_foreach(list, i, e)
    {
        if (admin_apply(s->adm, kind, e, NULL, true, err, sizeof(err)) != ADMIN_OK)
            fz_fail("a listed record does not apply again", err);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    log_set_level(LOG_NONE);
    json_t *defs = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (defs == NULL)
        return 0;
    struct fz_state a, b;
    char err[600];
    fz_init(&a);
    err[0] = '\0';
    if (admin_definitions_import(a.adm, defs, err, sizeof(err)) != ADMIN_OK && err[0] == '\0')
        fz_fail("a failed import says nothing", "");
    json_decref(defs);

    /* Whatever was imported (all of it, or what came before the entry at fault) exports as
     * a document that imports into a fresh state without error, giving the same users, and
     * its records list back into records that apply again. */
    fz_init(&b);
    json_t *out = admin_definitions_export(a.adm);
    if (out == NULL)
        fz_fail("export", "failed");
    if (admin_definitions_import(b.adm, out, err, sizeof(err)) != ADMIN_OK)
        fz_fail("an export does not import", err);
    json_decref(out);
    json_t *users = admin_users_json(a.adm), *again = admin_users_json(b.adm);
    if (users == NULL || again == NULL || json_array_size(again) != json_array_size(users))
        fz_fail("users after the round trip", "count differs");
    fz_reapply(&b, "users", users);
    json_decref(users);
    json_decref(again);
    fz_free(&b);
    fz_free(&a);
    return 0;
}
