/* Unit tests for src/store: a new data directory gets the format marker and reopens; a
 * newer format, a corrupt marker, or a RocksDB database that Warren did not create is refused
 * with a message saying so, and left untouched. Batches are submitted from an event loop
 * that then runs until their callbacks arrive: completions come in submission order, synced
 * batches survive a reopen and a killed process, group commit fsyncs far less often than
 * there are batches, a close completes what is pending, and a full disk fails the batches
 * with RocksDB's message, logged once, while reads go on working, and writes succeed again
 * once there is space. The full disk is a 4 MiB tmpfs: the test needs root (CAP_SYS_ADMIN),
 * and fails, saying so, without it. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <event2/event.h>
#include <rocksdb/c.h>

#include "fullfs.h"
#include "warren/bytes.h"
#include "warren/log.h"
#include "warren/store.h"

/* The marker as the store writes it: part of the on-disk format this test pins down. */
static const char format_key[] = "\0warren/format";

static char data_dir[64];
static char mnt_dir[80]; /* a tmpfs mounted by test_write_error, or "" */
static struct event_base *base;

static void
setup(void)
{
    strcpy(data_dir, "/tmp/check_store.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(data_dir));
    log_set_level(LOG_NONE);
    base = event_base_new();
    ck_assert_ptr_nonnull(base);
}

static void
teardown(void)
{
    if (mnt_dir[0] != '\0') {
        umount2(mnt_dir, MNT_DETACH);
        mnt_dir[0] = '\0';
    }
    event_base_free(base);
    base = NULL;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", data_dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* What the done callbacks saw. Each batch's arg is its index in submission order. */
static struct {
    int n;            /* callbacks run */
    int out_of_order; /* callbacks whose index was not the next one */
    int failed;       /* callbacks with an error */
    char err[512];    /* the last error */
} seen;

static void
on_done(void *arg, const char *err)
{
    if ((intptr_t)arg != seen.n)
        seen.out_of_order++;
    seen.n++;
    if (err != NULL) {
        seen.failed++;
        snprintf(seen.err, sizeof(seen.err), "%s", err);
    }
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
}

/* Runs the event loop until seen.n reaches want, for at most 120 s. */
static void
run_until(int want)
{
    struct timeval second = {1, 0};
    struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    ck_assert_ptr_nonnull(tick);
    event_add(tick, &second);
    time_t start = time(NULL);
    while (seen.n < want) {
        ck_assert_int_ge(event_base_loop(base, EVLOOP_ONCE), 0);
        ck_assert_msg(time(NULL) - start < 120, "%d of %d callbacks after 120 s", seen.n, want);
    }
    event_free(tick);
}

static struct store *
open_store(const char *dir, const struct store_options *o)
{
    char err[512] = "";
    struct store *st = store_open(dir, o, base, err, sizeof(err));
    ck_assert_msg(st != NULL, "%s", err);
    return st;
}

static void
close_store(struct store *st)
{
    char err[512] = "";
    ck_assert_msg(store_close(st, err, sizeof(err)) == 0, "%s", err);
}

/* key<i>, and value<i>: "value<i>" then letters up to vlen bytes, or just "value<i>" if that
 * is longer. The value's buffer holds vlen + 32 bytes. Both return the length. */
static size_t
key_of(char *buf, size_t cap, int i)
{
    return (size_t)snprintf(buf, cap, "key%08d", i);
}

static size_t
value_of(char *buf, size_t vlen, int i)
{
    int n = snprintf(buf, 32, "value%d", i);
    for (size_t j = (size_t)n; j < vlen; j++)
        buf[j] = (char)('a' + j % 26);
    return vlen > (size_t)n ? vlen : (size_t)n;
}

/* Submits one batch putting key<i> = value<i> (vlen bytes), its arg i. */
static void
submit_put(struct store *st, int i, size_t vlen, bool sync)
{
    char key[32], *val = malloc(vlen + 32);
    ck_assert_ptr_nonnull(val);
    size_t klen = key_of(key, sizeof(key), i), n = value_of(val, vlen, i);
    struct store_batch *b = store_batch_new();
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(store_batch_put(b, key, klen, val, n), 0);
    free(val);
    ck_assert_int_eq(store_submit(st, b, sync, on_done, (void *)(intptr_t)i), 0);
}

/* Asserts key<i> holds value<i> of vlen bytes. */
static void
assert_value(struct store *st, int i, size_t vlen)
{
    char key[32], err[512] = "", *want = malloc(vlen + 32), *val = NULL;
    size_t klen = key_of(key, sizeof(key), i), wlen = value_of(want, vlen, i), n = 0;
    int rc = store_get(st, key, klen, &val, &n, err, sizeof(err));
    ck_assert_msg(rc == 1, "key %d: store_get %d %s", i, rc, err);
    ck_assert_msg(n == wlen && memcmp(val, want, n) == 0, "key %d: wrong value", i);
    ck_assert_int_eq(val[n], '\0');
    free(val);
    free(want);
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

/* Each close is clean, and the next open says so. */
START_TEST(test_create_and_reopen)
{
    char err[512] = "";
    for (int i = 0; i < 3; i++) {
        struct store *st = store_open(data_dir, NULL, base, err, sizeof(err));
        ck_assert_msg(st != NULL, "open %d: %s", i, err);
        ck_assert(!store_unclean_stop(st));
        ck_assert_int_eq(store_close(st, err, sizeof(err)), 0);
    }
}
END_TEST

START_TEST(test_creates_nested_data_dir)
{
    char nested[128], err[512] = "";
    snprintf(nested, sizeof(nested), "%s/a/b/c", data_dir);
    struct store *st = store_open(nested, NULL, base, err, sizeof(err));
    ck_assert_msg(st != NULL, "%s", err);
    ck_assert_int_eq(store_close(st, err, sizeof(err)), 0);
}
END_TEST

static const struct {
    const char *what, *key, *value, *message;
    size_t klen;
} refused[] = {
    {"newer format", format_key, "4",
     "data format version 4, this warren-server reads versions 1 to 3 (written by a newer Warren)",
     sizeof(format_key) - 1},
    {"older format", format_key, "0",
     "data format version 0, this warren-server reads versions 1 to 3", sizeof(format_key) - 1},
    {"corrupt marker", format_key, "1x", "format marker is corrupt", sizeof(format_key) - 1},
    {"empty marker", format_key, "", "format marker is corrupt", sizeof(format_key) - 1},
    {"someone else's database", "user-key", "v", "has no Warren format marker", 8},
};

START_TEST(test_refused)
{
    char err[512] = "";
    put_raw(refused[_i].key, refused[_i].klen, refused[_i].value);
    struct store *st = store_open(data_dir, NULL, base, err, sizeof(err));
    ck_assert_msg(st == NULL, "%s: opened", refused[_i].what);
    ck_assert_msg(strstr(err, refused[_i].message) != NULL, "%s: message '%s' lacks '%s'",
                  refused[_i].what, err, refused[_i].message);
    /* Refusing leaves the database as it was: refused again, the same way. */
    char again[512] = "";
    ck_assert_ptr_null(store_open(data_dir, NULL, base, again, sizeof(again)));
    ck_assert_str_eq(again, err);
}
END_TEST

/* Formats 1 (entries without expiry times) and 2 (without delivery counts) are read, and
 * marked 3 from then on: the records written next may have them. */
static const char *const older_formats[] = {"1", "2"};

START_TEST(test_upgrades_older_format)
{
    char err[512] = "", *val;
    size_t vlen;
    put_raw(format_key, sizeof(format_key) - 1, older_formats[_i]);
    struct store *st = store_open(data_dir, NULL, base, err, sizeof(err));
    ck_assert_msg(st != NULL, "%s", err);
    ck_assert_int_eq(
        store_get(st, format_key, sizeof(format_key) - 1, &val, &vlen, err, sizeof(err)), 1);
    ck_assert_int_eq(vlen, 1);
    ck_assert_int_eq(val[0], '3');
    free(val);
    ck_assert_int_eq(store_close(st, err, sizeof(err)), 0);
}
END_TEST

START_TEST(test_data_dir_is_a_file)
{
    char path[128], err[512] = "";
    snprintf(path, sizeof(path), "%s/file", data_dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    ck_assert_ptr_null(store_open(path, NULL, base, err, sizeof(err)));
    ck_assert_msg(strstr(err, path) != NULL, "message '%s' does not name %s", err, path);
}
END_TEST

START_TEST(test_put_get)
{
    memset(&seen, 0, sizeof(seen));
    struct store *st = open_store(data_dir, NULL);
    submit_put(st, 0, 10, true);
    submit_put(st, 1, 0, false);
    run_until(2);
    ck_assert_int_eq(seen.failed, 0);
    ck_assert_int_eq(seen.out_of_order, 0);
    assert_value(st, 0, 10);
    assert_value(st, 1, 0);

    char err[512] = "", *val = NULL;
    size_t n = 0;
    ck_assert_int_eq(store_get(st, "nokey", 5, &val, &n, err, sizeof(err)), 0);
    /* The format marker is there, read like any key. */
    ck_assert_int_eq(store_get(st, format_key, sizeof(format_key) - 1, &val, &n, err, sizeof(err)),
                     1);
    ck_assert_str_eq(val, "3");
    free(val);

    struct store_stats s;
    store_stats(st, &s);
    ck_assert_uint_eq(s.batches, 2);
    ck_assert_uint_eq(s.failed, 0);
    ck_assert_uint_eq(s.pending, 0);
    ck_assert_uint_eq(s.pending_bytes, 0);
    ck_assert_uint_ge(s.syncs, 1);
    ck_assert_uint_ge(s.writes, 1);
    ck_assert_uint_gt(s.bytes, 10);
    close_store(st);
}
END_TEST

/* 10k batches, every seventh synced: callbacks in submission order, all applied. */
START_TEST(test_completion_order)
{
    enum { N = 10000 };
    memset(&seen, 0, sizeof(seen));
    struct store *st = open_store(data_dir, NULL);
    for (int i = 0; i < N; i++)
        submit_put(st, i, 100, i % 7 == 3);
    struct store_stats s;
    store_stats(st, &s);
    ck_assert_uint_eq(s.pending, N);
    ck_assert_uint_gt(s.pending_bytes, N * 100);
    run_until(N);
    ck_assert_int_eq(seen.n, N);
    ck_assert_int_eq(seen.out_of_order, 0);
    ck_assert_int_eq(seen.failed, 0);
    store_stats(st, &s);
    ck_assert_uint_eq(s.batches, N);
    ck_assert_uint_eq(s.pending, 0);
    ck_assert_uint_ge(s.syncs, 1);
    ck_assert_uint_le(s.syncs, N / 7 + 1);
    for (int i = 0; i < N; i += 997)
        assert_value(st, i, 100);
    close_store(st);
}
END_TEST

/* Synced batches are there after a close and a reopen. */
START_TEST(test_sync_durable)
{
    enum { N = 300 };
    memset(&seen, 0, sizeof(seen));
    struct store *st = open_store(data_dir, NULL);
    for (int i = 0; i < N; i++)
        submit_put(st, i, 1024, true);
    run_until(N);
    ck_assert_int_eq(seen.failed, 0);
    close_store(st);
    st = open_store(data_dir, NULL);
    for (int i = 0; i < N; i++)
        assert_value(st, i, 1024);
    close_store(st);
}
END_TEST

/* The killed process of test_survives_killed_process: a fresh process (this program run
 * with --write-and-die DIR, so that it inherits no RocksDB thread from earlier tests) that
 * writes key 0..N-1 (the second half synced), waits for every callback, and exits without
 * closing the store. Exits with 0, or a status saying what failed. */
enum { DIE_N = 200, DIE_VLEN = 512 };
static const char *self_path;

static int
write_and_die(const char *dir)
{
    static struct store *st; /* still reachable at _exit, for valgrind */
    char err[512] = "";
    log_set_level(LOG_NONE);
    base = event_base_new();
    st = store_open(dir, NULL, base, err, sizeof(err));
    if (st == NULL) {
        fprintf(stderr, "%s\n", err);
        _exit(2);
    }
    static char val[DIE_VLEN + 32];
    for (int i = 0; i < DIE_N; i++) {
        char key[32];
        size_t klen = key_of(key, sizeof(key), i), vlen = value_of(val, DIE_VLEN, i);
        struct store_batch *b = store_batch_new();
        if (b == NULL || store_batch_put(b, key, klen, val, vlen) < 0 ||
            store_submit(st, b, i >= DIE_N / 2, on_done, (void *)(intptr_t)i) < 0)
            _exit(3);
    }
    while (seen.n < DIE_N)
        if (event_base_loop(base, EVLOOP_ONCE) < 0)
            _exit(4);
    if (seen.failed != 0 || seen.out_of_order != 0)
        _exit(5);
    _exit(0);
}

/* A process killed once its callbacks have run, without closing the store, keeps what they
 * reported: synced batches, and also unsynced ones (only a machine crash loses those); the
 * next open knows the stop was not clean, the one after a clean close again that it was. */
START_TEST(test_survives_killed_process)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        execl(self_path, self_path, "--write-and-die", data_dir, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s --write-and-die: status %d",
                  self_path, status);
    struct store *st = open_store(data_dir, NULL);
    ck_assert(store_unclean_stop(st));
    for (int i = 0; i < DIE_N; i++)
        assert_value(st, i, DIE_VLEN);
    close_store(st);
    st = open_store(data_dir, NULL);
    ck_assert(!store_unclean_stop(st));
    close_store(st);
}
END_TEST

/* 1000 synced batches submitted at once are made durable by a handful of fsyncs. They are
 * built first, so that the submitting loop is quicker than an fsync even under valgrind. */
START_TEST(test_group_commit)
{
    enum { N = 1000, VLEN = 1024 };
    static struct store_batch *batches[N];
    static char val[VLEN + 32];
    memset(&seen, 0, sizeof(seen));
    struct store *st = open_store(data_dir, NULL);
    for (int i = 0; i < N; i++) {
        char key[32];
        size_t klen = key_of(key, sizeof(key), i), vlen = value_of(val, VLEN, i);
        batches[i] = store_batch_new();
        ck_assert_ptr_nonnull(batches[i]);
        ck_assert_int_eq(store_batch_put(batches[i], key, klen, val, vlen), 0);
    }
    for (int i = 0; i < N; i++)
        store_submit(st, batches[i], true, on_done, (void *)(intptr_t)i);
    run_until(N);
    ck_assert_int_eq(seen.failed, 0);
    ck_assert_int_eq(seen.out_of_order, 0);
    struct store_stats s;
    store_stats(st, &s);
    ck_assert_uint_eq(s.batches, N);
    ck_assert_msg(s.syncs >= 1 && s.syncs <= N / 20, "%llu fsyncs for %d batches",
                  (unsigned long long)s.syncs, N);
    ck_assert_uint_le(s.writes, N / 20 + 1);
    ck_assert_uint_gt(s.bytes, (uint64_t)N * VLEN);
    for (int i = 0; i < N; i += 99)
        assert_value(st, i, VLEN);
    close_store(st);
}
END_TEST

/* Unsynced batches never fsync; an empty synced batch is a barrier that does. */
START_TEST(test_unsynced_and_barrier)
{
    enum { N = 1000 };
    memset(&seen, 0, sizeof(seen));
    struct store *st = open_store(data_dir, NULL);
    for (int i = 0; i < N; i++)
        submit_put(st, i, 100, false);
    run_until(N);
    struct store_stats s;
    store_stats(st, &s);
    ck_assert_uint_eq(s.syncs, 0);
    struct store_batch *b = store_batch_new();
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(store_submit(st, b, true, on_done, (void *)(intptr_t)N), 0);
    run_until(N + 1);
    store_stats(st, &s);
    ck_assert_uint_eq(s.syncs, 1);
    ck_assert_int_eq(seen.failed, 0);
    ck_assert_int_eq(seen.out_of_order, 0);
    close_store(st);
}
END_TEST

/* Collects the seqs of a queue's entries, checking their prefix and order. */
struct walk {
    uint64_t queue_id;
    uint64_t seqs[200];
    int n, bad, stop_after;
};

static int
on_entry(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct walk *w = arg;
    const uint8_t *k = key;
    if (klen != STORE_KEY_QENTRY_LEN || k[0] != STORE_TAG_QENTRY ||
        bytes_get64(k + 1) != w->queue_id || vlen != 8 ||
        bytes_get64(val) != bytes_get64(k + 9) * 3 ||
        (w->n > 0 && bytes_get64(k + 9) <= w->seqs[w->n - 1]) || w->n == 200) {
        w->bad++;
        return 1;
    }
    w->seqs[w->n++] = bytes_get64(k + 9);
    return w->stop_after != 0 && w->n == w->stop_after;
}

static void
walk_queue(struct store *st, struct walk *w, uint64_t queue_id, int want_rc)
{
    uint8_t prefix[STORE_KEY_QENTRY_LEN];
    char err[512] = "";
    memset(w, 0, sizeof(*w));
    w->queue_id = queue_id;
    size_t plen = store_key_qentry_prefix(prefix, queue_id);
    ck_assert_int_eq(store_iter_prefix(st, prefix, plen, on_entry, w, err, sizeof(err)), want_rc);
    ck_assert_int_eq(w->bad, 0);
}

/* Queue entries: delete_range drops a queue's span, delete one entry, and the prefix walk
 * sees the rest of that queue in seq order, seqs above 255 included, and no other queue. */
START_TEST(test_delete_range_and_iter)
{
    memset(&seen, 0, sizeof(seen));
    struct store *st = open_store(data_dir, NULL);
    struct store_batch *b = store_batch_new();
    uint8_t key[STORE_KEY_QENTRY_LEN], end[STORE_KEY_QENTRY_LEN], val[8];
    static const uint64_t queues[] = {1, 2, 0x100, UINT64_MAX};
    for (size_t q = 0; q < 4; q++) {
        for (uint64_t seq = 0; seq < 100; seq++) {
            uint64_t s = seq < 50 ? seq : seq * 1000; /* 50..99 become 50000..99000 */
            bytes_put64(val, s * 3);
            ck_assert_int_eq(store_batch_put(b, key, store_key_qentry(key, queues[q], s), val, 8),
                             0);
        }
    }
    ck_assert_int_eq(store_submit(st, b, true, on_done, (void *)0), 0);

    /* Queue 1: drop seqs 10..(60000 excluded) and seq 70000; an empty range does nothing. */
    b = store_batch_new();
    ck_assert_int_eq(store_batch_delete_range(b, key, store_key_qentry(key, 1, 10), end,
                                              store_key_qentry(end, 1, 60000)),
                     0);
    ck_assert_int_eq(store_batch_delete(b, key, store_key_qentry(key, 1, 70000)), 0);
    ck_assert_int_eq(store_batch_delete_range(b, end, store_key_qentry(end, 2, 5), key,
                                              store_key_qentry(key, 2, 1)),
                     0);
    ck_assert_int_eq(store_submit(st, b, false, on_done, (void *)1), 0);
    run_until(2);
    ck_assert_int_eq(seen.failed, 0);

    struct walk w;
    walk_queue(st, &w, 1, 0);
    ck_assert_int_eq(w.n, 10 + 39);
    ck_assert_uint_eq(w.seqs[9], 9);
    ck_assert_uint_eq(w.seqs[10], 60000);
    ck_assert_uint_eq(w.seqs[11], 61000);
    ck_assert_uint_eq(w.seqs[w.n - 1], 99000);
    for (int i = 0; i < w.n; i++)
        ck_assert_uint_ne(w.seqs[i], 70000);
    walk_queue(st, &w, 2, 0);
    ck_assert_int_eq(w.n, 100);
    walk_queue(st, &w, 0x100, 0);
    ck_assert_int_eq(w.n, 100);
    walk_queue(st, &w, UINT64_MAX, 0); /* an all-0xff prefix has no successor key */
    ck_assert_int_eq(w.n, 100);
    walk_queue(st, &w, 3, 0);
    ck_assert_int_eq(w.n, 0);

    /* The callback stops the walk; a range walk starts at a remembered head seq. */
    memset(&w, 0, sizeof(w));
    w.queue_id = 2;
    w.stop_after = 5;
    char err[512] = "";
    ck_assert_int_eq(store_iter_range(st, key, store_key_qentry(key, 2, 40), end,
                                      store_key_qentry(end, 2, 52000), on_entry, &w, err,
                                      sizeof(err)),
                     1);
    ck_assert_int_eq(w.n, 5);
    ck_assert_uint_eq(w.seqs[0], 40);
    memset(&w, 0, sizeof(w));
    w.queue_id = 2;
    ck_assert_int_eq(store_iter_range(st, key, store_key_qentry(key, 2, 40), end,
                                      store_key_qentry(end, 2, 52000), on_entry, &w, err,
                                      sizeof(err)),
                     0);
    ck_assert_int_eq(w.n, 10 + 2); /* 40..49, 50000, 51000 */

    /* Deleting a whole queue's span, as queue.delete will. */
    b = store_batch_new();
    ck_assert_int_eq(store_batch_delete_range(b, key, store_key_qentry_prefix(key, 2), end,
                                              store_key_qentry_prefix(end, 3)),
                     0);
    ck_assert_int_eq(store_submit(st, b, true, on_done, (void *)2), 0);
    run_until(3);
    walk_queue(st, &w, 2, 0);
    ck_assert_int_eq(w.n, 0);
    walk_queue(st, &w, 1, 0);
    ck_assert_int_eq(w.n, 49);
    close_store(st);
}
END_TEST

/* store_close with batches still queued: every callback runs, in order, before it returns,
 * and a callback may submit more (completed too). The data is there on reopen. */
static struct store *chain_st;

static void
on_done_chain(void *arg, const char *err)
{
    on_done(arg, err);
    intptr_t i = (intptr_t)arg;
    if (i % 100 == 0 && i < 500)
        submit_put(chain_st, (int)(1000 + i / 100), 64, true);
}

START_TEST(test_close_completes_pending)
{
    enum { N = 500 };
    memset(&seen, 0, sizeof(seen));
    struct store *st = chain_st = open_store(data_dir, NULL);
    for (int i = 0; i < N; i++) {
        char key[32];
        struct store_batch *b = store_batch_new();
        ck_assert_int_eq(store_batch_put(b, key, key_of(key, sizeof(key), i), "v", 1), 0);
        ck_assert_int_eq(store_submit(st, b, i % 2 == 0, on_done_chain, (void *)(intptr_t)i), 0);
    }
    close_store(st);
    ck_assert_int_eq(seen.n, N + 5);
    ck_assert_int_eq(seen.failed, 0);
    /* The chained ones have args 1000..1004: out of order by design, the rest in order. */
    ck_assert_int_le(seen.out_of_order, 5);
    st = open_store(data_dir, NULL);
    for (int i = 0; i < 5; i++)
        assert_value(st, 1000 + i, 64);
    char err[512] = "", *val = NULL, key[32];
    size_t n;
    ck_assert_int_eq(
        store_get(st, key, key_of(key, sizeof(key), N - 1), &val, &n, err, sizeof(err)), 1);
    free(val);
    close_store(st);
}
END_TEST

/* A batch whose add failed (ENOMEM; here an impossible length) is refused by store_submit,
 * which frees it without calling done. */
START_TEST(test_failed_batch_refused)
{
    memset(&seen, 0, sizeof(seen));
    struct store *st = open_store(data_dir, NULL);
    struct store_batch *b = store_batch_new();
    ck_assert_int_eq(store_batch_put(b, "k", 1, "v", 1), 0);
    ck_assert_int_eq(store_batch_put(b, "k", SIZE_MAX / 2, "v", 1), -1);
    ck_assert_int_eq(errno, ENOMEM);
    ck_assert_int_eq(store_batch_delete(b, "k", 1), -1); /* sticky */
    ck_assert_int_eq(store_submit(st, b, true, on_done, NULL), -1);
    struct store_stats s;
    store_stats(st, &s);
    ck_assert_uint_eq(s.pending, 0);
    close_store(st);
    ck_assert_int_eq(seen.n, 0);
    store_batch_free(NULL);
    b = store_batch_new();
    ck_assert_int_eq(store_batch_put(b, "k", 1, "v", 1), 0);
    store_batch_free(b); /* never submitted */
}
END_TEST

/* Reads the newest OPTIONS file RocksDB wrote in <dir>/db into buf. */
static void
read_options_file(const char *dir, char *buf, size_t cap)
{
    char pattern[160];
    glob_t g;
    snprintf(pattern, sizeof(pattern), "%s/db/OPTIONS-*", dir);
    ck_assert_int_eq(glob(pattern, 0, NULL, &g), 0);
    FILE *f = fopen(g.gl_pathv[g.gl_pathc - 1], "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
    globfree(&g);
}

/* The memory options reach RocksDB; tiny memtables flush to tables and reads find the data. */
START_TEST(test_memory_options)
{
    static char text[1 << 17];
    struct store_options o;
    store_options_init(&o);
    ck_assert_uint_eq(o.block_cache_size, 32u << 20);
    ck_assert_uint_eq(o.write_buffer_size, 16u << 20);
    ck_assert_uint_eq(o.max_write_buffers, 2);

    struct store *st = open_store(data_dir, &o);
    read_options_file(data_dir, text, sizeof(text));
    ck_assert_ptr_nonnull(strstr(text, "write_buffer_size=16777216"));
    ck_assert_ptr_nonnull(strstr(text, "max_write_buffer_number=2"));
    ck_assert_ptr_nonnull(strstr(text, "no_block_cache=false"));
    ck_assert_ptr_nonnull(strstr(text, "cache_index_and_filter_blocks=true"));
    close_store(st);

    o.block_cache_size = 0;
    o.write_buffer_size = 64 << 10;
    o.max_write_buffers = 3;
    memset(&seen, 0, sizeof(seen));
    st = open_store(data_dir, &o);
    read_options_file(data_dir, text, sizeof(text));
    ck_assert_ptr_nonnull(strstr(text, "write_buffer_size=65536"));
    ck_assert_ptr_nonnull(strstr(text, "max_write_buffer_number=3"));
    ck_assert_ptr_nonnull(strstr(text, "no_block_cache=true"));
    for (int i = 0; i < 500; i++)
        submit_put(st, i, 1024, i % 50 == 49);
    run_until(500);
    ck_assert_int_eq(seen.failed, 0);
    for (int i = 0; i < 500; i += 7)
        assert_value(st, i, 1024);
    close_store(st);
}
END_TEST

/* Keys: integers sort numerically, names cannot run into each other. */
START_TEST(test_keys)
{
    uint8_t a[STORE_KEY_BINDING_MAX(8)], b[STORE_KEY_BINDING_MAX(8)];
    static const uint64_t seqs[] = {
        0, 1, 255, 256, 65535, 65536, UINT32_MAX, 1ull << 32, UINT64_MAX - 1, UINT64_MAX};
    for (size_t i = 0; i + 1 < sizeof(seqs) / sizeof(seqs[0]); i++) {
        ck_assert_int_eq(store_key_qentry(a, 7, seqs[i]), STORE_KEY_QENTRY_LEN);
        store_key_qentry(b, 7, seqs[i + 1]);
        ck_assert_int_lt(memcmp(a, b, STORE_KEY_QENTRY_LEN), 0);
        ck_assert_uint_eq(bytes_get64(a + 9), seqs[i]);
        store_key_msg(a, seqs[i]);
        store_key_msg(b, seqs[i + 1]);
        ck_assert_int_lt(memcmp(a, b, STORE_KEY_MSG_LEN), 0);
    }
    ck_assert_int_eq(store_key_msg(a, 0x0102030405060708ull), STORE_KEY_MSG_LEN);
    ck_assert_mem_eq(a, "M\x01\x02\x03\x04\x05\x06\x07\x08", STORE_KEY_MSG_LEN);

    /* Vhost "/" owns "/"'s queues, not "/x"'s; queue "a" is not a prefix of queue "ab". */
    size_t plen = store_key_vhost_prefix(a, STORE_TAG_QUEUE, "/", 1);
    ck_assert_mem_eq(a, "Q\x01/", 3);
    size_t n = store_key_queue(b, "/", 1, "q1", 2);
    ck_assert_uint_eq(n, 6);
    ck_assert_mem_eq(b, "Q\x01/\x02q1", 6);
    ck_assert_int_eq(memcmp(a, b, plen), 0);
    n = store_key_queue(b, "/x", 2, "q1", 2);
    ck_assert_int_ne(memcmp(a, b, plen), 0);
    size_t alen = store_key_exchange(a, "/", 1, "a", 1);
    n = store_key_exchange(b, "/", 1, "ab", 2);
    ck_assert_int_ne(memcmp(a, b, alen < n ? alen : n), 0);
    ck_assert_uint_eq(store_key_exchange(a, "", 0, "", 0), 3);

    n = store_key_binding(a, "/", 1, "amq.topic", 9, 'q', "q1", 2, "a.*", 3, "\0\0\0\0", 4);
    ck_assert_uint_eq(n, 1 + 2 + 10 + 1 + 3 + 4 + 4);
    ck_assert_mem_eq(a,
                     "B\x01/\x09"
                     "amq.topic"
                     "q\x02q1\x03"
                     "a.*\0\0\0\0",
                     n);
    ck_assert_uint_eq(STORE_KEY_NAMED_MAX, 513);
}
END_TEST

/* Counts the lines of file path that contain needle. */
static int
count_lines(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof(line), f) != NULL)
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

/* A full disk: the write fails with RocksDB's message, its batch (and the next ones, while
 * RocksDB refuses writes) completes with it, one line is logged, reads still work. Then
 * either (_i = 0) space comes back and writes succeed again, logged once, or (_i = 1) the
 * store is closed on the full disk, without aborting; the next open then knows that the stop
 * was not a clean one. */
START_TEST(test_write_error)
{
    fullfs_mount(mnt_dir, sizeof(mnt_dir), data_dir);
    char dir[128], filler[128], logpath[128];
    snprintf(dir, sizeof(dir), "%s/data", mnt_dir);
    snprintf(filler, sizeof(filler), "%s/filler", mnt_dir);
    snprintf(logpath, sizeof(logpath), "%s/log", data_dir);

    /* Our log goes to a file, to count its lines. */
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    int logfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(logfd, 0);
    dup2(logfd, STDERR_FILENO);
    close(logfd);
    log_set_level(LOG_WARNING);

    memset(&seen, 0, sizeof(seen));
    struct store_options o;
    store_options_init(&o);
    o.write_buffer_size = 64 << 10;
    struct store *st = open_store(dir, &o);
    submit_put(st, 0, 100, true);
    run_until(1);
    ck_assert_int_eq(seen.failed, 0);

    fullfs_fill(filler);
    enum { BIG = 1 << 20 };
    submit_put(st, 1, BIG, true);
    submit_put(st, 2, 100, false);
    run_until(3);
    ck_assert_int_ge(seen.failed, 1);
    ck_assert_int_eq(seen.out_of_order, 0);
    ck_assert_msg(strstr(seen.err, "No space left on device") != NULL, "error: %s", seen.err);
    struct store_stats s;
    store_stats(st, &s);
    ck_assert_uint_eq(s.failed, (uint64_t)seen.failed);
    ck_assert_uint_eq(s.pending, 0);

    /* Reads still work; the failed put is not there. */
    assert_value(st, 0, 100);
    char err[512] = "", *val = NULL, key[32];
    size_t n;
    ck_assert_int_eq(store_get(st, key, key_of(key, sizeof(key), 1), &val, &n, err, sizeof(err)),
                     0);

    if (_i == 1) {
        /* Closing on a full disk: the flush may fail, the close must not abort. */
        if (store_close(st, err, sizeof(err)) < 0)
            ck_assert_msg(strstr(err, "No space left on device") != NULL, "close: %s", err);
    } else {
        /* With space again, later batches are tried again: the first ones may still get
         * RocksDB's error (it holds writes until its recovery has seen the free space),
         * then they succeed. */
        ck_assert_int_eq(unlink(filler), 0);
        time_t start = time(NULL);
        int next = 3;
        do {
            ck_assert_msg(time(NULL) - start < 60, "writes still fail 60 s after freeing space: %s",
                          seen.err);
            seen.err[0] = '\0';
            int failed_before = seen.failed;
            submit_put(st, next, 100, next % 2 == 0);
            next++;
            run_until(next);
            if (seen.failed == failed_before)
                break;
            ck_assert_msg(seen.err[0] != '\0', "a failed batch without a message");
            usleep(200 * 1000);
        } while (1);
        ck_assert_int_eq(seen.out_of_order, 0);
        assert_value(st, next - 1, 100);
        close_store(st);
        /* A run with a failed write does not count as a clean stop. */
        st = open_store(dir, &o);
        ck_assert(store_unclean_stop(st));
        assert_value(st, 0, 100);
        assert_value(st, next - 1, 100);
        close_store(st);
    }

    log_set_level(LOG_NONE);
    dup2(saved, STDERR_FILENO);
    close(saved);
    ck_assert_int_eq(count_lines(logpath, "write failed: "), 1);
    ck_assert_int_eq(count_lines(logpath, "No space left on device"), 1);
    ck_assert_int_eq(count_lines(logpath, "writes succeed again"), _i == 0);

    ck_assert_int_eq(umount(mnt_dir), 0);
    mnt_dir[0] = '\0';
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
    tcase_add_loop_test(tc, test_upgrades_older_format, 0,
                        sizeof(older_formats) / sizeof(older_formats[0]));
    tcase_add_test(tc, test_data_dir_is_a_file);
    tcase_add_test(tc, test_memory_options);
    tcase_add_test(tc, test_keys);
    suite_add_tcase(s, tc);

    /* Valgrind makes these slow: 10k batches take a while under it. */
    tc = tcase_create("writer");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_put_get);
    tcase_add_test(tc, test_completion_order);
    tcase_add_test(tc, test_sync_durable);
    tcase_add_test(tc, test_survives_killed_process);
    tcase_add_test(tc, test_group_commit);
    tcase_add_test(tc, test_unsynced_and_barrier);
    tcase_add_test(tc, test_delete_range_and_iter);
    tcase_add_test(tc, test_close_completes_pending);
    tcase_add_test(tc, test_failed_batch_refused);
    tcase_add_loop_test(tc, test_write_error, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int
main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--write-and-die") == 0)
        return write_and_die(argv[2]);
    self_path = argv[0];
    SRunner *sr = srunner_create(store_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    libevent_global_shutdown();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
