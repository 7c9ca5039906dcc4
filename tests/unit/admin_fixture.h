/* The state the administration tests (check_admin, check_policy) work on: a configuration
 * with its defaults, a user table, a vhost registry and an admin layer over them, made fresh
 * for each test as warren-server makes them at start; either in memory, or over a store in a
 * temporary directory that a test can restart. */
#ifndef WARREN_TESTS_ADMIN_FIXTURE_H
#define WARREN_TESTS_ADMIN_FIXTURE_H

#include "warren/admin.h"
#include "warren/auth.h"
#include "warren/conf.h"
#include "warren/vhost.h"

/* The state, made by the setups below and freed by their teardowns. */
extern struct conf conf;
extern struct auth_db *db;
extern struct vhost_registry vhosts;
extern struct admin *adm;

/* A checked fixture: everything in memory (nothing stored), after admin_recover made the
 * first start's defaults. */
void fixture_setup(void);
void fixture_teardown(void);

/* A checked fixture: the same over a store and durable layer in a new temporary directory
 * (removed by the teardown), read back as main() reads it (admin_recover, then
 * durable_recover). Logging is off. */
void fixture_stored_setup(void);
void fixture_stored_teardown(void);
/* In the stored fixture: frees everything and makes it again from the same directory, as
 * warren-server restarts. Call fixture_synced() first for what must survive. */
void fixture_restart(void);
/* In the stored fixture: waits until every change applied so far is written and synced. */
void fixture_synced(void);

/* Replaces adm by a new admin layer over the same state (one that reads conf anew); reads
 * nothing back. */
void fixture_admin_renew(void);

#endif
