/* The durable store: one RocksDB database under the data directory, written by a store thread
 * with group commit and read on the event loop. This layer knows the on-disk format and its
 * version; the messaging core persists its queue commands here as batches of key writes.
 * A data directory written by a newer or unknown format is refused, never rewritten.
 *
 * Threads. The event loop thread is the only caller of every function below, but for
 * store_write_now and the reads, which any thread may call (RocksDB's own locking). store_submit()
 * queues a batch for the store thread, which writes whatever is queued as one RocksDB write
 * and, if any batch in it asked for durability, makes the lot durable with one WAL fsync
 * (group commit). The batch's done callback then runs on the event loop, in submission
 * order: the store thread wakes the loop through an eventfd and never calls libevent itself.
 * The loop never waits on a disk write; the reads (store_get, store_iter_*) are synchronous
 * RocksDB reads, meant for recovery and paging.
 *
 * Key layout. Every key starts with a tag byte naming its family. Integers are big-endian,
 * so that RocksDB's byte order is numeric order; names (vhosts, exchanges, queues, routing
 * keys: AMQP shortstrs) are one length byte then the bytes, so that no name's key is a
 * prefix of another name's. The store itself writes only the format marker; the rest is
 * what the broker keeps there, built with the store_key_* helpers below.
 *
 *   tag  key after the tag                               value
 *   0x00 "warren/format"                                 decimal format version (the marker)
 *   0x00 "warren/open"                                   present while a process has the store
 *                                                        open (empty value)
 *   0x00 "warren/<anything>"                             other metadata, the broker's own
 *   'E'  name(vhost) name(exchange)                      a durable exchange: type, flags, args
 *   'Q'  name(vhost) name(queue)                         a durable queue: its queue id (u64),
 *                                                        flags and arguments
 *   'B'  name(vhost) name(source exchange) kind          a binding; kind is 'q' (to a queue) or
 *        name(destination) name(routing key) args        'e' (to an exchange); args is the
 *                                                        encoded arguments table, to the end
 *                                                        of the key (empty value)
 *   'M'  u64(message id)                                 a persistent message: its properties
 *                                                        and body, stored once however many
 *                                                        queues hold it
 *   'I'  u64(queue id) u64(seq)                          a queue's entry: flags, then the
 *                                                        message inline or its 'M' id
 *   'D'  u64(queue id)                                   the queue's delivery watermark: the
 *                                                        highest seq handed to a consumer
 *   'T'  u64(queue id)                                   a queue that is not stored but has
 *                                                        entries paged out: they go at start
 *   'U'  name(user)                                      a user: its definitions entry (JSON:
 *                                                        name, password_hash, hashing_algorithm,
 *                                                        tags, limits)
 *   'V'  name(vhost)                                     a vhost: its definitions entry (JSON:
 *                                                        name, metadata, limits)
 *   'P'  name(vhost) name(user)                          a user's permissions on a vhost (JSON)
 *   'R'  name(vhost) name(user) name(exchange)           a user's topic permissions (JSON)
 *   'Y'  name(vhost) name(policy)                        a policy (JSON, stored, not applied)
 *   'Z'  name(vhost) name(component) name(parameter)     a runtime parameter (JSON, likewise)
 *   'G'  name(parameter)                                 a global parameter (JSON, likewise)
 *   'J'  u64(group) u64(seq)                             a replicated queue's entry in its
 *                                                        image (durable.h): as an 'I' value,
 *                                                        the message inline
 *   'J'  u64(group) u64(seq) 'x'                         that entry's requeues and death:
 *                                                        u32 count, u8 dead, u8 reason
 *   'K'  u64(group)                                      the image's state: the log index it
 *                                                        is at, its epoch and term, and per
 *                                                        lane its delivery watermark and
 *                                                        last seq
 *
 * The administration records ('U' to 'G') are each the whole state of one object, written
 * and replaced whole: applying one twice is applying it once (warren/admin.h).
 *
 * A vhost's exchanges, queues or bindings are one prefix (tag + name(vhost)); a queue's
 * entries, in order, are the prefix 'I' + u64(queue id), and deleting a queue is one
 * store_batch_delete_range() over it. Queue ids are never reused, so a queue declared again
 * under the same name cannot see its predecessor's entries. Seeking to the start of a range
 * that had many deletes walks their tombstones: keep each queue's head seq in memory and
 * start from it (store_iter_range). */
#ifndef WARREN_STORE_H
#define WARREN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "warren/stats.h"

struct event_base;
struct iovec;

/* On-disk format written by this build. Bumped on any change an older build cannot read;
 * this build also reads STORE_FORMAT_OLDEST and up, and marks such a database as its own
 * format when it opens it. 2: queue entries may carry an expiry time, and entries of shared
 * messages their body length. 3: queue entries may carry their delivery count (a format 2
 * build would take it for the start of the message). */
#define STORE_FORMAT_VERSION 3
#define STORE_FORMAT_OLDEST 1

struct store;
struct store_batch;

/* RocksDB's memory, as set by warren.conf's store.* keys. */
struct store_options {
    uint64_t block_cache_size;  /* bytes of the block cache, index and filter blocks included;
                                 * 0: no block cache (reads go through the page cache) */
    uint64_t write_buffer_size; /* bytes of one memtable; 0: RocksDB's default (64 MiB) */
    unsigned max_write_buffers; /* memtables, the active one included, before writes stall */
};

/* The defaults: 32 MiB cache, 16 MiB memtables, 2 of them (warren.conf's defaults). */
#define STORE_BLOCK_CACHE_SIZE_DEFAULT (32u << 20)
#define STORE_WRITE_BUFFER_SIZE_DEFAULT (16u << 20)
#define STORE_MAX_WRITE_BUFFERS_DEFAULT 2u
void store_options_init(struct store_options *o);

/* Counters for tests and benchmarks. Monotonic from store_open, except the pending ones. */
struct store_stats {
    uint64_t batches;       /* batches completed, with or without an error */
    uint64_t failed;        /* of those, completed with an error */
    uint64_t writes;        /* RocksDB writes: each carries one or more batches */
    uint64_t syncs;         /* WAL fsyncs */
    uint64_t bytes;         /* bytes handed to RocksDB (its write-batch encoding) */
    uint64_t pending;       /* batches submitted whose done callback has not run yet */
    uint64_t pending_bytes; /* bytes held by those batches */
    /* Microseconds each RocksDB write took, without and with the WAL's fsync (a sync write,
     * or a barrier's WAL flush), and how many batches each write carried (group commit). */
    struct stats_hist write_us, sync_write_us, group_batches;
};

/* Opens (creating if needed) the database in <data_dir>/db, creating data_dir too, with
 * RocksDB's memory bounded by *opts (NULL: the defaults), and starts the store thread, whose
 * completions run on <base> (borrowed; it must outlive the store). Returns NULL after
 * writing the reason to err: RocksDB's error, a newer format, or a database without Warren's
 * format marker (corrupt or someone else's). */
struct store *store_open(const char *data_dir, const struct store_options *opts,
                         struct event_base *base, char *err, size_t errlen);

/* Completes every submitted batch (their done callbacks run from here, and may submit more,
 * which are completed too), stops the store thread, flushes memtables to disk and closes.
 * Not from a done callback. Returns 0, or -1 with the error in err (the database is closed
 * either way: the WAL still holds every synced write). */
int store_close(struct store *st, char *err, size_t errlen);

/* Whether the run before this open did not close the store cleanly (killed, crashed, or a
 * write of it failed): what the broker writes lazily, not covered by any sync, may then be
 * behind what clients saw. */
bool store_unclean_stop(const struct store *st);

/* Counters; see struct store_stats. */
void store_stats(struct store *st, struct store_stats *s);

/* Writes. A batch is a list of puts and deletes applied atomically, in the order added.
 * The add functions copy their arguments. On ENOMEM they return -1 and mark the batch
 * failed: store_submit() then refuses it, so checking its result alone is enough. */
struct store_batch *store_batch_new(void); /* NULL on ENOMEM */
int store_batch_put(struct store_batch *b, const void *key, size_t klen, const void *val,
                    size_t vlen);
/* A put whose value is the concatenation of parts (a record header and a body, say), copied
 * once into the batch. */
int store_batch_putv(struct store_batch *b, const void *key, size_t klen, const struct iovec *parts,
                     int nparts);
int store_batch_delete(struct store_batch *b, const void *key, size_t klen);
/* Deletes every key k with begin <= k < end (bytewise). begin >= end deletes nothing. */
int store_batch_delete_range(struct store_batch *b, const void *begin, size_t blen, const void *end,
                             size_t elen);
/* Bytes the batch holds, for memory accounting. */
size_t store_batch_bytes(const struct store_batch *b);
/* Frees a batch that was never submitted. NULL is ignored. */
void store_batch_free(struct store_batch *b);

/* Called on the event loop when a batch has completed: err is NULL when the batch was
 * applied (and, for a sync batch, when the WAL holding it is fsynced), else RocksDB's
 * message, e.g. "IO error: No space left on device: While appending to file: ...". err is
 * valid during the call only. The callback may submit batches and read. */
typedef void (*store_done_fn)(void *arg, const char *err);

/* Queues b for the store thread, which owns it from now on and frees it after done. With
 * sync, done is called once b is in a fsynced WAL (a publisher confirm may go out); without
 * it, once b is written to RocksDB (lost by a machine crash, not by a process crash). Batches
 * complete in submission order; a non-sync batch waits for no fsync but those of batches
 * submitted before it. An empty sync batch is a barrier: done runs once everything before
 * it is durable. Write errors (disk full, I/O error) complete the batches of the failed
 * write with the message and are logged once; the next batches are written again.
 * Returns 0, or -1 if an add to b had failed (ENOMEM): b is freed and done is not called. */
int store_submit(struct store *st, struct store_batch *b, bool sync, store_done_fn done, void *arg);

/* Writes b now, from any thread (RocksDB orders concurrent writes): for a state machine run
 * by another thread than the loop's, whose own log makes it durable (a replicated queue's
 * image, written by the Raft thread). With sync, the WAL is fsynced before it returns (and so
 * every write before b's): before that log is cut. Frees b. Returns 0, or -1 with the reason
 * in err (RocksDB's error, or an add to b that failed). */
int store_write_now(struct store *st, struct store_batch *b, bool sync, char *err, size_t errlen);

/* Reads. They see every write whose done callback has run, and may see writes that are
 * submitted but not completed yet (written, not yet fsynced, or about to fail its fsync). */

/* Looks up key. Returns 1 and sets *val (malloc'd, NUL-terminated after vlen bytes; the
 * caller frees it) and *vlen; 0 if there is no such key; -1 with RocksDB's error in err. */
int store_get(struct store *st, const void *key, size_t klen, char **val, size_t *vlen, char *err,
              size_t errlen);

/* Called for each key in order; key and val are valid during the call only. Returns 0 to go
 * on, nonzero to stop. */
typedef int (*store_iter_fn)(void *arg, const void *key, size_t klen, const void *val, size_t vlen);

/* Visits every key that starts with prefix (plen 0: every key), in key order. Returns 0
 * when all were visited, 1 if fn stopped the walk, -1 with RocksDB's error in err. */
int store_iter_prefix(struct store *st, const void *prefix, size_t plen, store_iter_fn fn,
                      void *arg, char *err, size_t errlen);

/* Visits every key k with begin <= k < end, in key order (end NULL: no upper bound).
 * Returns as store_iter_prefix. */
int store_iter_range(struct store *st, const void *begin, size_t blen, const void *end, size_t elen,
                     store_iter_fn fn, void *arg, char *err, size_t errlen);

/* Keys (see "Key layout" above). The builders write into buf and return the key's length;
 * names are at most STORE_NAME_MAX bytes (AMQP shortstrs: longer is a caller's bug). */
enum store_key_tag {
    STORE_TAG_META = 0x00,
    STORE_TAG_BINDING = 'B',
    STORE_TAG_DELIVERED = 'D',
    STORE_TAG_EXCHANGE = 'E',
    STORE_TAG_QENTRY = 'I',
    STORE_TAG_MSG = 'M',
    STORE_TAG_QUEUE = 'Q',
    STORE_TAG_TEMP_QUEUE = 'T',
    STORE_TAG_USER = 'U',
    STORE_TAG_VHOST = 'V',
    STORE_TAG_PERMISSION = 'P',
    STORE_TAG_TOPIC_PERMISSION = 'R',
    STORE_TAG_POLICY = 'Y',
    STORE_TAG_PARAMETER = 'Z',
    STORE_TAG_GLOBAL_PARAMETER = 'G',
    STORE_TAG_IMAGE = 'J',
    STORE_TAG_IMAGE_STATE = 'K',
};
#define STORE_NAME_MAX 255
#define STORE_KEY_NAMED_MAX (1 + 2 * (1 + STORE_NAME_MAX)) /* 'E', 'Q' keys; vhost prefixes */
#define STORE_KEY_BINDING_MAX(args_len) (2 + 4 * (1 + STORE_NAME_MAX) + (args_len))
#define STORE_KEY_MSG_LEN 9       /* 'M' u64 */
#define STORE_KEY_QENTRY_LEN 17   /* 'I' u64 u64; 9 for a queue's prefix */
#define STORE_KEY_DELIVERED_LEN 9 /* 'D' u64 */

/* tag name(vhost): the prefix of a vhost's exchanges, queues or bindings. */
size_t store_key_vhost_prefix(uint8_t *buf, enum store_key_tag tag, const void *vhost,
                              size_t vhost_len);
size_t store_key_exchange(uint8_t *buf, const void *vhost, size_t vhost_len, const void *name,
                          size_t name_len);
size_t store_key_queue(uint8_t *buf, const void *vhost, size_t vhost_len, const void *name,
                       size_t name_len);
/* dest_kind is 'q' or 'e'; buf holds STORE_KEY_BINDING_MAX(args_len) bytes. */
size_t store_key_binding(uint8_t *buf, const void *vhost, size_t vhost_len, const void *source,
                         size_t source_len, char dest_kind, const void *dest, size_t dest_len,
                         const void *routing_key, size_t rk_len, const void *args, size_t args_len);
size_t store_key_msg(uint8_t *buf, uint64_t msg_id);
/* 'I' u64(queue id): the prefix of one queue's entries. */
size_t store_key_qentry_prefix(uint8_t *buf, uint64_t queue_id);
size_t store_key_qentry(uint8_t *buf, uint64_t queue_id, uint64_t seq);
size_t store_key_delivered(uint8_t *buf, uint64_t queue_id);
size_t store_key_temp_queue(uint8_t *buf, uint64_t queue_id); /* STORE_KEY_DELIVERED_LEN */
/* tag name(names[0]) name(names[1])...: the administration records' keys (n <= 3, each name
 * at most STORE_NAME_MAX bytes), and with fewer names their prefixes. */
#define STORE_KEY_NAMES_MAX (1 + 3 * (1 + STORE_NAME_MAX))
size_t store_key_names(uint8_t *buf, enum store_key_tag tag, const char *const *names, size_t n);

#endif
