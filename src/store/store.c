/* RocksDB-backed store: opening with bounded memory, the format marker, and a clean close;
 * the store thread lives in store_writer.c, reads in store_read.c. The format marker is the
 * key "\0warren/format" holding the decimal version; it is written (synced) when the
 * database is created, so a database without it was not made by Warren. The key
 * "\0warren/open" is there while a process has the store open: written (synced) at open,
 * deleted by a clean close, so finding it at open means the last run did not close cleanly. */
#include "config.h"

#include "warren/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <rocksdb/c.h>

#include "store_int.h"
#include "warren/log.h"

/* Compaction trigger for tombstones: a table file is marked for compaction when any window of
 * STORE_DELETION_WINDOW consecutive keys in it holds STORE_DELETION_TRIGGER deletes. */
#define STORE_DELETION_WINDOW 16384
#define STORE_DELETION_TRIGGER 8192

static const char store_format_key[] = "\0warren/format";
#define STORE_FORMAT_KEY_LEN (sizeof(store_format_key) - 1)
static const char store_open_key[] = "\0warren/open";
#define STORE_OPEN_KEY_LEN (sizeof(store_open_key) - 1)

void
store_options_init(struct store_options *o)
{
    o->block_cache_size = STORE_BLOCK_CACHE_SIZE_DEFAULT;
    o->write_buffer_size = STORE_WRITE_BUFFER_SIZE_DEFAULT;
    o->max_write_buffers = STORE_MAX_WRITE_BUFFERS_DEFAULT;
}

/* Frees what store_open built; the store thread is not running. */
static void
store_free(struct store *st)
{
    if (st->db != NULL)
        rocksdb_close(st->db);
    if (st->wb != NULL)
        rocksdb_writebatch_destroy(st->wb);
    if (st->done_ev != NULL)
        event_free(st->done_ev);
    if (st->done_fd >= 0)
        close(st->done_fd);
    if (st->wo_sync != NULL)
        rocksdb_writeoptions_destroy(st->wo_sync);
    if (st->wo != NULL)
        rocksdb_writeoptions_destroy(st->wo);
    if (st->ro != NULL)
        rocksdb_readoptions_destroy(st->ro);
    if (st->opts != NULL)
        rocksdb_options_destroy(st->opts);
    if (st->table_opts != NULL)
        rocksdb_block_based_options_destroy(st->table_opts);
    if (st->cache != NULL)
        rocksdb_cache_destroy(st->cache);
    pthread_cond_destroy(&st->done_cv);
    pthread_cond_destroy(&st->work_cv);
    pthread_mutex_destroy(&st->mu);
    free(st->path);
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

/* Writes (synced) this build's format marker: a new database, or one of an older format
 * this build reads, which from now on may hold records the older build cannot read. */
static int
store_format_write(struct store *st, const char *path, char *err, size_t errlen)
{
    char ver[16], *rerr = NULL;
    int n = snprintf(ver, sizeof(ver), "%d", STORE_FORMAT_VERSION);
    rocksdb_put(st->db, st->wo_sync, store_format_key, STORE_FORMAT_KEY_LEN, ver, (size_t)n, &rerr);
    if (rerr != NULL) {
        snprintf(err, errlen, "%s: cannot write format marker: %s", path, rerr);
        rocksdb_free(rerr);
        return -1;
    }
    return 0;
}

/* Checks the format marker, writing it into a new database (or one of an older format). */
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
        return store_format_write(st, path, err, errlen);
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
        snprintf(err, errlen, "%s: format marker is corrupt; refusing to touch the database", path);
        return -1;
    }
    long version = strtol(ver, NULL, 10);
    if (version < STORE_FORMAT_OLDEST || version > STORE_FORMAT_VERSION) {
        snprintf(err, errlen,
                 "%s: data format version %ld, this warren-server reads versions %d to %d%s", path,
                 version, STORE_FORMAT_OLDEST, STORE_FORMAT_VERSION,
                 version > STORE_FORMAT_VERSION ? " (written by a newer Warren)" : "");
        return -1;
    }
    if (version < STORE_FORMAT_VERSION && store_format_write(st, path, err, errlen) < 0)
        return -1;
    return 0;
}

/* Notes whether the last run closed the store cleanly, then marks it open (synced, so that a
 * crash from here on is seen by the next open). 0, or -1 with the reason in err. */
static int
store_mark_open(struct store *st, const char *path, char *err, size_t errlen)
{
    char *rerr = NULL;
    size_t vlen;
    char *val = rocksdb_get(st->db, st->ro, store_open_key, STORE_OPEN_KEY_LEN, &vlen, &rerr);
    if (rerr == NULL) {
        st->unclean_stop = val != NULL;
        rocksdb_free(val);
        rocksdb_put(st->db, st->wo_sync, store_open_key, STORE_OPEN_KEY_LEN, "", 0, &rerr);
    }
    if (rerr != NULL) {
        snprintf(err, errlen, "%s: cannot mark the store open: %s", path, rerr);
        rocksdb_free(rerr);
        return -1;
    }
    return 0;
}

/* Bounds RocksDB's memory: the block cache (index and filter blocks charged to it, so they
 * are bounded too) and the memtables. Returns 0, or -1 on ENOMEM. */
static int
store_set_memory(struct store *st, const struct store_options *o)
{
    st->table_opts = rocksdb_block_based_options_create();
    if (st->table_opts == NULL)
        return -1;
    if (o->block_cache_size == 0) {
        rocksdb_block_based_options_set_no_block_cache(st->table_opts, 1);
    } else {
        st->cache = rocksdb_cache_create_lru((size_t)o->block_cache_size);
        if (st->cache == NULL)
            return -1;
        rocksdb_block_based_options_set_block_cache(st->table_opts, st->cache);
        rocksdb_block_based_options_set_cache_index_and_filter_blocks(st->table_opts, 1);
        rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(st->table_opts, 1);
    }
    rocksdb_options_set_block_based_table_factory(st->opts, st->table_opts);
    if (o->write_buffer_size != 0)
        rocksdb_options_set_write_buffer_size(st->opts, (size_t)o->write_buffer_size);
    rocksdb_options_set_max_write_buffer_number(st->opts, (int)o->max_write_buffers);
    return 0;
}

struct store *
store_open(const char *data_dir, const struct store_options *opts, struct event_base *base,
           char *err, size_t errlen)
{
    struct store_options defaults;
    if (opts == NULL) {
        store_options_init(&defaults);
        opts = &defaults;
    }
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
    st->done_fd = -1;
    pthread_mutex_init(&st->mu, NULL);
    store_writer_hists_init(st);
    pthread_cond_init(&st->work_cv, NULL);
    pthread_cond_init(&st->done_cv, NULL);
    STAILQ_INIT(&st->queue);
    STAILQ_INIT(&st->done);
    st->base = base;
    st->path = strdup(path);
    st->opts = rocksdb_options_create();
    st->wo_sync = rocksdb_writeoptions_create();
    st->wo = rocksdb_writeoptions_create();
    st->ro = rocksdb_readoptions_create();
    st->wb = rocksdb_writebatch_create();
    if (st->path == NULL || st->opts == NULL || st->wo_sync == NULL || st->wo == NULL ||
        st->ro == NULL || st->wb == NULL || store_set_memory(st, opts) < 0) {
        snprintf(err, errlen, "out of memory opening the store");
        goto fail;
    }
    rocksdb_options_set_create_if_missing(st->opts, 1);
    rocksdb_options_set_paranoid_checks(st->opts, 1);
    /* RocksDB's own LOG file gets its header and fatal errors only. Debian's RocksDB has
     * assertions on, and a LOG write after a failed one (a full disk) aborts the process
     * (WritableFileWriter, sync_without_flush_called_): RocksDB logs its errors exactly
     * then. We log write errors ourselves, on the event loop. */
    rocksdb_options_set_info_log_level(st->opts, 4 /* FATAL_LEVEL */);
    rocksdb_options_set_keep_log_file_num(st->opts, 1); /* not one empty LOG.old per start */
    /* Queues delete what they wrote, in order: a table file dense with tombstones (acked
     * messages) is compacted soon, so that its space is reclaimed and that reading a queue
     * back does not walk the deleted entries below its head. */
    rocksdb_options_add_compact_on_deletion_collector_factory(st->opts, STORE_DELETION_WINDOW,
                                                              STORE_DELETION_TRIGGER);
    rocksdb_writeoptions_set_sync(st->wo_sync, 1);

    char *rerr = NULL;
    st->db = rocksdb_open(st->opts, path, &rerr);
    if (rerr != NULL) {
        snprintf(err, errlen, "cannot open store %s: %s", path, rerr);
        rocksdb_free(rerr);
        goto fail;
    }
    if (store_check_format(st, path, err, errlen) < 0 || store_mark_open(st, path, err, errlen) < 0)
        goto fail;
    if (store_writer_start(st, err, errlen) < 0)
        goto fail;
    log_msg(LOG_INFO,
            "store %s opened (format %d; block cache %llu bytes, %u memtables of %llu bytes)%s",
            path, STORE_FORMAT_VERSION, (unsigned long long)opts->block_cache_size,
            opts->max_write_buffers, (unsigned long long)opts->write_buffer_size,
            st->unclean_stop ? "; the last run did not stop cleanly" : "");
    return st;
fail:
    store_free(st);
    return NULL;
}

int
store_close(struct store *st, char *err, size_t errlen)
{
    int rc = 0;
    store_writer_stop(st);
    /* Clean only if every write of this run succeeded: a failed one may have been a delivery
     * watermark, which the next start then has to assume was behind. */
    char *rerr = NULL;
    if (st->n_failed == 0)
        rocksdb_delete(st->db, st->wo_sync, store_open_key, STORE_OPEN_KEY_LEN, &rerr);
    if (rerr != NULL) {
        log_msg(LOG_WARNING, "store %s: cannot mark a clean stop: %s", st->path, rerr);
        rocksdb_free(rerr);
        rerr = NULL;
    }
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(fo, 1);
    rocksdb_flush(st->db, fo, &rerr);
    rocksdb_flushoptions_destroy(fo);
    if (rerr != NULL) {
        snprintf(err, errlen, "flushing the store %s failed: %s", st->path, rerr);
        rocksdb_free(rerr);
        rc = -1;
    }
    store_free(st);
    return rc;
}

bool
store_unclean_stop(const struct store *st)
{
    return st->unclean_stop;
}
