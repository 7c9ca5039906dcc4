/* The administration tests' state: see admin_fixture.h. */
#include "config.h"

#include "admin_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <event2/event.h>

#include "warren/durable.h"
#include "warren/log.h"
#include "warren/store.h"

struct conf conf;
struct auth_db *db;
struct vhost_registry vhosts;
struct admin *adm;

/* The stored fixture's; st and dur are NULL in memory. */
static char data_dir[64];
static struct event_base *base;
static struct store *st;
static struct durable *dur;

/* Makes adm over the state (and st and dur, if any). */
static void
fixture_admin_new(void)
{
    struct admin_env env = {
        .auth = db, .vhosts = &vhosts, .durable = dur, .store = st, .conf = &conf};
    adm = admin_new(&env);
    ck_assert_ptr_nonnull(adm);
}

void
fixture_admin_renew(void)
{
    admin_free(adm);
    fixture_admin_new();
}

/* Makes the state, over a store in data_dir if stored, and reads back what is stored. */
static void
fixture_open(bool stored)
{
    char err[512];
    conf_init_defaults(&conf);
    db = auth_db_new();
    ck_assert_ptr_nonnull(db);
    vhost_registry_init(&vhosts);
    if (stored) {
        st = store_open(data_dir, NULL, base, err, sizeof(err));
        ck_assert_msg(st != NULL, "%s", err);
        dur = durable_new(st, base);
        ck_assert_ptr_nonnull(dur);
    }
    fixture_admin_new();
    ck_assert_msg(admin_recover(adm, err, sizeof(err)) == 0, "%s", err);
    if (stored)
        ck_assert_msg(durable_recover(dur, &vhosts, err, sizeof(err)) == 0, "%s", err);
}

/* Frees the state, closing the store (what was submitted is written first) if any. */
static void
fixture_close(void)
{
    if (dur != NULL) {
        char err[512];
        durable_detach(dur, &vhosts);
        durable_submit_pending(dur);
        ck_assert_msg(store_close(st, err, sizeof(err)) == 0, "%s", err);
        durable_free(dur);
        dur = NULL;
        st = NULL;
    }
    admin_free(adm);
    vhost_registry_clear(&vhosts);
    auth_db_free(db);
    conf_free(&conf);
}

void
fixture_setup(void)
{
    fixture_open(false);
}

void
fixture_teardown(void)
{
    fixture_close();
}

void
fixture_stored_setup(void)
{
    log_set_level(LOG_NONE);
    strcpy(data_dir, "/tmp/warren-fixture.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(data_dir));
    base = event_base_new();
    ck_assert_ptr_nonnull(base);
    fixture_open(true);
}

void
fixture_stored_teardown(void)
{
    fixture_close();
    event_base_free(base);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", data_dir);
    ck_assert_int_eq(system(cmd), 0);
}

void
fixture_restart(void)
{
    fixture_close();
    fixture_open(true);
}

static void
fixture_on_synced(void *arg, enum admin_result r, const char *e)
{
    ck_assert_int_eq(r, ADMIN_OK);
    ck_assert_msg(e == NULL, "%s", e);
    *(bool *)arg = true;
}

void
fixture_synced(void)
{
    bool done = false;
    ck_assert_int_eq(admin_sync(adm, fixture_on_synced, &done), 0);
    for (int i = 0; !done && i < 1000; i++)
        ck_assert_int_ge(event_base_loop(base, EVLOOP_ONCE), 0);
    ck_assert(done);
}
