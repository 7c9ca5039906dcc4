/* Unit tests for src/store/store.c: a new data directory gets the format marker and reopens;
 * a newer format, a corrupt marker, or a RocksDB database that Warren did not create is
 * refused with a message saying so, and left untouched. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>
#include <rocksdb/c.h>

#include "warren/log.h"
#include "warren/store.h"

/* The marker as the store writes it: part of the on-disk format this test pins down. */
static const char format_key[] = "\0warren/format";

static char data_dir[64];

static void
setup(void)
{
    strcpy(data_dir, "/tmp/check_store.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(data_dir));
    log_set_level(LOG_NONE);
}

static void
teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", data_dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Writes key=value straight into <data_dir>/db with RocksDB, as another program (or another
 * Warren version) would have. */
static void
put_raw(const char *key, size_t klen, const char *value)
{
    char path[128], *err = NULL;
    snprintf(path, sizeof(path), "%s/db", data_dir);
    rocksdb_options_t *opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(opts, 1);
    rocksdb_t *db = rocksdb_open(opts, path, &err);
    ck_assert_msg(err == NULL, "%s", err);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_put(db, wo, key, klen, value, strlen(value), &err);
    ck_assert_msg(err == NULL, "%s", err);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_close(db);
    rocksdb_options_destroy(opts);
}

START_TEST(test_create_and_reopen)
{
    char err[512] = "";
    for (int i = 0; i < 3; i++) {
        struct store *st = store_open(data_dir, err, sizeof(err));
        ck_assert_msg(st != NULL, "open %d: %s", i, err);
        ck_assert_int_eq(store_close(st, err, sizeof(err)), 0);
    }
}
END_TEST

START_TEST(test_creates_nested_data_dir)
{
    char nested[128], err[512] = "";
    snprintf(nested, sizeof(nested), "%s/a/b/c", data_dir);
    struct store *st = store_open(nested, err, sizeof(err));
    ck_assert_msg(st != NULL, "%s", err);
    ck_assert_int_eq(store_close(st, err, sizeof(err)), 0);
}
END_TEST

static const struct {
    const char *what, *key, *value, *message;
    size_t klen;
} refused[] = {
    {"newer format", format_key, "2", "data format version 2, this warren-server reads version 1 "
                                      "only (written by a newer Warren)",
     sizeof(format_key) - 1},
    {"older format", format_key, "0", "data format version 0, this warren-server reads version 1",
     sizeof(format_key) - 1},
    {"corrupt marker", format_key, "1x", "format marker is corrupt", sizeof(format_key) - 1},
    {"empty marker", format_key, "", "format marker is corrupt", sizeof(format_key) - 1},
    {"someone else's database", "user-key", "v", "has no Warren format marker", 8},
};

START_TEST(test_refused)
{
    char err[512] = "";
    put_raw(refused[_i].key, refused[_i].klen, refused[_i].value);
    struct store *st = store_open(data_dir, err, sizeof(err));
    ck_assert_msg(st == NULL, "%s: opened", refused[_i].what);
    ck_assert_msg(strstr(err, refused[_i].message) != NULL, "%s: message '%s' lacks '%s'",
                  refused[_i].what, err, refused[_i].message);
    /* Refusing leaves the database as it was: refused again, the same way. */
    char again[512] = "";
    ck_assert_ptr_null(store_open(data_dir, again, sizeof(again)));
    ck_assert_str_eq(again, err);
}
END_TEST

START_TEST(test_data_dir_is_a_file)
{
    char path[128], err[512] = "";
    snprintf(path, sizeof(path), "%s/file", data_dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    ck_assert_ptr_null(store_open(path, err, sizeof(err)));
    ck_assert_msg(strstr(err, path) != NULL, "message '%s' does not name %s", err, path);
}
END_TEST

static Suite *
store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("open");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_create_and_reopen);
    tcase_add_test(tc, test_creates_nested_data_dir);
    tcase_add_loop_test(tc, test_refused, 0, sizeof(refused) / sizeof(refused[0]));
    tcase_add_test(tc, test_data_dir_is_a_file);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(store_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
