/* Inside the store: struct store and struct store_batch, shared by store.c (open, close,
 * format), store_writer.c (the store thread, group commit, completions) and store_read.c.
 * Each field says which thread may touch it: "loop" (the event loop thread), "writer" (the
 * store thread), "mu" (either, holding st->mu), or "const" (set by store_open, then read-only
 * until store_close has joined the store thread). */
#ifndef WARREN_STORE_INT_H
#define WARREN_STORE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <rocksdb/c.h>

#include "warren/store.h"

/* Operations as store_batch_* encode them in a batch's buffer: the type byte, then one
 * slice (put: key then value, so two; delete: key; delete_range: begin then end), each a
 * size_t length in host order followed by the bytes. Memory only, never on disk. */
enum store_op {
    STORE_OP_PUT = 0,
    STORE_OP_DELETE,
    STORE_OP_DELETE_RANGE,
};

struct store_batch {
    STAILQ_ENTRY(store_batch) link; /* in st->queue, the writer's group, then st->done */
    uint8_t *ops;                   /* owns: encoded operations */
    size_t len, cap;                /* bytes used and allocated in ops */
    bool failed;                    /* an add failed (ENOMEM): store_submit refuses it */
    bool sync;                      /* set by store_submit */
    store_done_fn done;             /* set by store_submit */
    void *arg;                      /* borrows; passed to done */
    bool errored;                   /* the write failed (writer) */
    char *err;                      /* owns: its message; NULL if strdup failed (writer) */
};
STAILQ_HEAD(store_batch_list, store_batch);

struct store {
    /* const */
    rocksdb_t *db;                                   /* owns */
    rocksdb_options_t *opts;                         /* owns */
    rocksdb_block_based_table_options_t *table_opts; /* owns */
    rocksdb_cache_t *cache;                          /* owns; NULL: no block cache */
    rocksdb_writeoptions_t *wo_sync; /* owns: WAL fsynced before the write returns */
    rocksdb_writeoptions_t *wo;      /* owns: written, not fsynced */
    rocksdb_readoptions_t *ro;       /* owns; for store_get and the format check */
    char *path;                      /* owns: <data_dir>/db, for messages */
    struct event_base *base;         /* borrows */
    int done_fd;                     /* owns: eventfd the writer writes when batches complete */
    bool unclean_stop;               /* the last run did not close the store (store_mark_open) */
    struct event *done_ev;           /* owns: reads done_fd on the loop */

    /* writer */
    rocksdb_writebatch_t *wb; /* owns: the group being written, reused */

    /* mu */
    pthread_mutex_t mu;
    pthread_cond_t work_cv;        /* writer waits for batches or stopping */
    pthread_cond_t done_cv;        /* store_close waits for completions */
    struct store_batch_list queue; /* submitted, not taken by the writer yet */
    struct store_batch_list done;  /* written (or failed), done not called yet */
    bool stopping;                 /* store_close: the writer exits once the queue is empty */
    uint64_t n_writes, n_syncs, n_bytes;
    struct stats_hist write_us, sync_write_us, group_batches; /* see struct store_stats */

    /* loop */
    pthread_t writer;
    bool writer_running;
    bool failing;    /* the last completed write failed: logged, not again until success */
    bool delivering; /* done callbacks are running */
    uint64_t n_batches, n_failed, n_pending, pending_bytes;
};

/* Sets up the writer's histograms (struct store_stats) with their bounds. */
void store_writer_hists_init(struct store *st);

/* store_writer.c: starts the store thread. Returns 0, or -1 with the reason in err. */
int store_writer_start(struct store *st, char *err, size_t errlen);
/* Runs every pending done callback (waiting for the writer as needed), then stops and
 * joins the store thread. Nothing may be pending or running afterwards. */
void store_writer_stop(struct store *st);

#endif
