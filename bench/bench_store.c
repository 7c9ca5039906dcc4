/* Store benchmark: synced messages per second through the store thread, for 1 KiB messages
 * (one put each, keyed like persistent messages), with the default memory settings.
 *   "group of K": K synced batches submitted at once, then wait for all of them; repeated.
 *                 K = 1 is what a broker without group commit would do.
 *   "N submitters": N independent submitters (think: connections publishing with confirms),
 *                 each with one synced batch in flight, submitting the next from its done
 *                 callback: how group commit scales with concurrency.
 *   "unsynced": groups of 1000 without sync, for reference.
 * Each line gives msgs/s, the fsyncs done and the messages per fsync. It prints figures and
 * asserts nothing about time. The database goes in a new directory under DIR (default: the
 * current directory, which should be on the disk the broker will use; a tmpfs makes fsync
 * free) and is removed at the end.
 * Usage: bench_store [seconds per measurement, default 1] [DIR]. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <time.h>

#include <event2/event.h>

#include "warren/log.h"
#include "warren/store.h"

#define TMPFS_MAGIC_NUMBER 0x01021994

enum { VLEN = 1024 };

static struct event_base *base;
static struct store *st;
static double seconds = 1.0;
static uint64_t next_id; /* message id of the next put */
static uint64_t n_done;  /* callbacks run in this measurement */
static bool stopping;    /* submitters stop resubmitting */
static char value[VLEN];

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
on_done(void *arg, const char *err)
{
    if (err != NULL) {
        fprintf(stderr, "bench_store: write failed: %s\n", err);
        exit(1);
    }
    n_done++;
}

/* Submits one batch with one 1 KiB message. */
static void
submit_one(bool sync, store_done_fn done, void *arg)
{
    uint8_t key[STORE_KEY_MSG_LEN];
    struct store_batch *b = store_batch_new();
    if (b == NULL || store_batch_put(b, key, store_key_msg(key, next_id++), value, VLEN) < 0 ||
        store_submit(st, b, sync, done, arg) < 0) {
        fprintf(stderr, "bench_store: out of memory\n");
        exit(1);
    }
}

static void
run_until(uint64_t want)
{
    while (n_done < want)
        if (event_base_loop(base, EVLOOP_ONCE) < 0) {
            fprintf(stderr, "bench_store: event loop failed\n");
            exit(1);
        }
}

/* Deletes every message written so far, so that each measurement starts alike. */
static void
clear_messages(void)
{
    uint8_t begin[STORE_KEY_MSG_LEN], end[STORE_KEY_MSG_LEN];
    struct store_batch *b = store_batch_new();
    if (b == NULL ||
        store_batch_delete_range(b, begin, store_key_msg(begin, 0), end,
                                 store_key_msg(end, next_id)) < 0 ||
        store_submit(st, b, true, on_done, NULL) < 0) {
        fprintf(stderr, "bench_store: out of memory\n");
        exit(1);
    }
    n_done = 0;
    run_until(1);
}

static void
report(const char *what, uint64_t msgs, double elapsed, const struct store_stats *before)
{
    struct store_stats after;
    store_stats(st, &after);
    uint64_t syncs = after.syncs - before->syncs;
    printf("  %-22s %9.0f msgs/s  %7llu fsyncs  %8.1f msgs/fsync\n", what, (double)msgs / elapsed,
           (unsigned long long)syncs, syncs != 0 ? (double)msgs / (double)syncs : 0.0);
    fflush(stdout);
}

/* Groups of k batches submitted at once, each group waited for. */
static void
bench_groups(unsigned k, bool sync)
{
    struct store_stats before;
    clear_messages();
    store_stats(st, &before);
    n_done = 0;
    double start = now(), elapsed;
    uint64_t msgs = 0;
    do {
        for (unsigned i = 0; i < k; i++)
            submit_one(sync, on_done, NULL);
        msgs += k;
        run_until(msgs);
        elapsed = now() - start;
    } while (elapsed < seconds);
    char what[64];
    snprintf(what, sizeof(what), "%sgroup of %u", sync ? "" : "unsynced, ", k);
    report(what, msgs, elapsed, &before);
}

static void
on_done_resubmit(void *arg, const char *err)
{
    on_done(arg, err);
    if (!stopping)
        submit_one(true, on_done_resubmit, NULL);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
    stopping = true;
}

/* n submitters, each with one synced batch in flight. */
static void
bench_submitters(unsigned n)
{
    struct store_stats before, s;
    clear_messages();
    store_stats(st, &before);
    n_done = 0;
    stopping = false;
    struct timeval tv = {(time_t)seconds, (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6)};
    struct event *timer = evtimer_new(base, on_timer, NULL);
    evtimer_add(timer, &tv);
    double start = now();
    for (unsigned i = 0; i < n; i++)
        submit_one(true, on_done_resubmit, NULL);
    while (!stopping)
        event_base_loop(base, EVLOOP_ONCE);
    double elapsed = now() - start;
    uint64_t msgs = n_done;
    do { /* let the ones in flight finish, uncounted */
        store_stats(st, &s);
        if (s.pending != 0)
            event_base_loop(base, EVLOOP_ONCE);
    } while (s.pending != 0);
    event_free(timer);
    char what[64];
    snprintf(what, sizeof(what), "%u submitter%s", n, n == 1 ? "" : "s");
    report(what, msgs, elapsed, &before);
}

int
main(int argc, char **argv)
{
    if (argc > 1)
        seconds = atof(argv[1]);
    if (seconds <= 0) {
        fprintf(stderr, "usage: bench_store [seconds per measurement] [DIR]\n");
        return 2;
    }
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/bench_store.XXXXXX", argc > 2 ? argv[2] : ".");
    if (mkdtemp(dir) == NULL) {
        perror(dir);
        return 1;
    }
    for (size_t i = 0; i < VLEN; i++)
        value[i] = (char)('a' + i * 7 % 26);
    log_set_level(LOG_WARNING);
    char err[512];
    if ((base = event_base_new()) == NULL) {
        fprintf(stderr, "bench_store: cannot create the event loop\n");
        return 1;
    }
    st = store_open(dir, NULL, base, err, sizeof(err));
    if (st == NULL) {
        fprintf(stderr, "bench_store: %s\n", err);
        return 1;
    }
    struct statfs sfs;
    bool tmpfs = statfs(dir, &sfs) == 0 && sfs.f_type == TMPFS_MAGIC_NUMBER;
    printf("bench_store: 1 KiB messages, one put per batch, %.1f s per line, in %s%s\n", seconds,
           dir, tmpfs ? " (tmpfs: fsync costs nothing there)" : "");
    printf("synced, K batches submitted at once, then waited for:\n");
    static const unsigned groups[] = {1, 10, 100, 1000};
    for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
        bench_groups(groups[i], true);
    printf("synced, N submitters with one batch each in flight:\n");
    static const unsigned submitters[] = {1, 4, 16, 64, 256};
    for (size_t i = 0; i < sizeof(submitters) / sizeof(submitters[0]); i++)
        bench_submitters(submitters[i]);
    printf("for reference:\n");
    bench_groups(1000, false);

    int rc = 0;
    if (store_close(st, err, sizeof(err)) < 0) {
        fprintf(stderr, "bench_store: %s\n", err);
        rc = 1;
    }
    event_base_free(base);
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        rc = 1;
    return rc;
}
