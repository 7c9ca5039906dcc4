/* RocksDB-backed store: opening, the format marker, and a clean close. The format marker is
 * the key "\0warren/format" holding the decimal version; it is written (synced) when the
 * database is created, so a database without it was not made by Warren. */
#include "config.h"

#include "warren/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <rocksdb/c.h>

#include "warren/log.h"

static const char store_format_key[] = "\0warren/format";
#define STORE_FORMAT_KEY_LEN (sizeof(store_format_key) - 1)

struct store {
    rocksdb_t *db;               /* owns */
    rocksdb_options_t *opts;     /* owns */
    rocksdb_writeoptions_t *wo_sync; /* owns: WAL synced before the write returns */
    rocksdb_readoptions_t *ro;   /* owns */
};

static void
store_free(struct store *st)
{
    if (st->db != NULL)
        rocksdb_close(st->db);
    if (st->wo_sync != NULL)
        rocksdb_writeoptions_destroy(st->wo_sync);
    if (st->ro != NULL)
        rocksdb_readoptions_destroy(st->ro);
    if (st->opts != NULL)
        rocksdb_options_destroy(st->opts);
    free(st);
}

/* mkdir -p for one or two levels is all we need, but do it properly for any depth. */
static int
store_mkdirs(const char *path, char *err, size_t errlen)
{
    char buf[4096];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) {
        snprintf(err, errlen, "data directory path too long: %s", path);
        return -1;
    }
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0750) < 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create %s: %s", buf, strerror(errno));
            return -1;
        }
        *p = '/';
    }
    if (mkdir(buf, 0750) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", buf, strerror(errno));
        return -1;
    }
    return 0;
}

/* True if the database holds no key at all (just created). */
static int
store_is_empty(struct store *st)
{
    rocksdb_iterator_t *it = rocksdb_create_iterator(st->db, st->ro);
    rocksdb_iter_seek_to_first(it);
    int empty = !rocksdb_iter_valid(it);
    rocksdb_iter_destroy(it);
    return empty;
}

/* Checks the format marker, writing it into a new database. */
static int
store_check_format(struct store *st, const char *path, char *err, size_t errlen)
{
    char *rerr = NULL;
    size_t vlen = 0;
    char *val = rocksdb_get(st->db, st->ro, store_format_key, STORE_FORMAT_KEY_LEN, &vlen, &rerr);
    if (rerr != NULL) {
        snprintf(err, errlen, "%s: cannot read format marker: %s", path, rerr);
        rocksdb_free(rerr);
        return -1;
    }
    if (val == NULL) {
        if (!store_is_empty(st)) {
            snprintf(err, errlen,
                     "%s: database has no Warren format marker: not a Warren data directory, "
                     "or corrupt; refusing to touch it",
                     path);
            return -1;
        }
        char ver[16];
        int n = snprintf(ver, sizeof(ver), "%d", STORE_FORMAT_VERSION);
        rocksdb_put(st->db, st->wo_sync, store_format_key, STORE_FORMAT_KEY_LEN, ver, (size_t)n,
                    &rerr);
        if (rerr != NULL) {
            snprintf(err, errlen, "%s: cannot write format marker: %s", path, rerr);
            rocksdb_free(rerr);
            return -1;
        }
        return 0;
    }
    char ver[16] = "";
    int ok = vlen > 0 && vlen < sizeof(ver);
    if (ok) {
        memcpy(ver, val, vlen);
        for (size_t i = 0; i < vlen; i++)
            ok = ok && ver[i] >= '0' && ver[i] <= '9';
    }
    rocksdb_free(val);
    if (!ok) {
        snprintf(err, errlen, "%s: format marker is corrupt; refusing to touch the database",
                 path);
        return -1;
    }
    long version = strtol(ver, NULL, 10);
    if (version != STORE_FORMAT_VERSION) {
        snprintf(err, errlen,
                 "%s: data format version %ld, this warren-server reads version %d only%s", path,
                 version, STORE_FORMAT_VERSION,
                 version > STORE_FORMAT_VERSION ? " (written by a newer Warren)" : "");
        return -1;
    }
    return 0;
}

struct store *
store_open(const char *data_dir, char *err, size_t errlen)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/db", data_dir) >= (int)sizeof(path)) {
        snprintf(err, errlen, "data directory path too long: %s", data_dir);
        return NULL;
    }
    if (store_mkdirs(data_dir, err, errlen) < 0)
        return NULL;

    struct store *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        snprintf(err, errlen, "out of memory opening the store");
        return NULL;
    }
    st->opts = rocksdb_options_create();
    st->wo_sync = rocksdb_writeoptions_create();
    st->ro = rocksdb_readoptions_create();
    if (st->opts == NULL || st->wo_sync == NULL || st->ro == NULL) {
        snprintf(err, errlen, "out of memory opening the store");
        goto fail;
    }
    rocksdb_options_set_create_if_missing(st->opts, 1);
    rocksdb_options_set_paranoid_checks(st->opts, 1);
    rocksdb_writeoptions_set_sync(st->wo_sync, 1);

    char *rerr = NULL;
    st->db = rocksdb_open(st->opts, path, &rerr);
    if (rerr != NULL) {
        snprintf(err, errlen, "cannot open store %s: %s", path, rerr);
        rocksdb_free(rerr);
        goto fail;
    }
    if (store_check_format(st, path, err, errlen) < 0)
        goto fail;
    log_msg(LOG_INFO, "store %s opened (format %d)", path, STORE_FORMAT_VERSION);
    return st;
fail:
    store_free(st);
    return NULL;
}

int
store_close(struct store *st, char *err, size_t errlen)
{
    int rc = 0;
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    char *rerr = NULL;
    rocksdb_flushoptions_set_wait(fo, 1);
    rocksdb_flush(st->db, fo, &rerr);
    rocksdb_flushoptions_destroy(fo);
    if (rerr != NULL) {
        snprintf(err, errlen, "flushing the store failed: %s", rerr);
        rocksdb_free(rerr);
        rc = -1;
    }
    store_free(st);
    return rc;
}
