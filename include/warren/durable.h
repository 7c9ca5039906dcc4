/* Durability: what the broker keeps in the store, and getting it back after a restart.
 *
 * What is stored (keys as in warren/store.h). Durable exchanges (but the predeclared amq.*
 * ones, which every vhost recreates), durable queues that are not exclusive (RabbitMQ drops
 * exclusive queues with their connection, restart included), and the bindings between two
 * stored ends. A persistent message (delivery_mode 2) enqueued on a stored queue becomes an
 * entry key I(queue id, seq): the message inline in the entry when it went to one stored queue,
 * else a reference to one M(message id) record shared by all of them, freed with its last
 * entry. A requeue writes its entry again with the entry's delivery count (x-delivery-limit),
 * so that a restart does not give a poison message its limit afresh. A queue's delivery
 * watermark D(queue id) is the highest seq each of its lanes (warren/queue.h) has handed to a
 * consumer: an entry at or below its lane's that is still there after a restart was delivered
 * and never acked, so it comes back redelivered (a lane's deliveries go out in seq order,
 * requeues keep their seq). Its value is one u64 per lane, lane 0 first: a queue without
 * priorities writes one, as before lanes. The watermark is written with the turn's batch, not
 * before the deliveries leave, so after a stop that was not clean (store_unclean_stop) it may
 * be behind what consumers got: every entry then comes back redelivered (the redelivered flag
 * says "may have been delivered": a message delivered before must never come back without
 * it). Transient messages and anything on non-durable queues never touch the disk.
 *
 * Lazy paging. A stored queue keeps the messages of its ready entries in memory up to a window
 * of bytes (durable_set_window); past it, new entries are written to the store only, transient
 * messages too (flagged, and dropped by the next start), and read back in seq order when the
 * in-memory part falls under half the window. A backlog thus costs no memory but the shared
 * records' reference counts. Queues that are not stored page out the same way while messages
 * take more than the memory pressure mark (durable_set_memory_pressure), so that a backlog of
 * transient messages fills the disk rather than blocking publishers for good; their entries
 * are keyed under a temporary id that the next start deletes. A batch that fails takes its
 * paged-out entries with it: they do not exist, and their queue stops counting them when the
 * store reports the failure (their publishes are nacked by the same report). Each lane of a
 * priority queue pages on its own (once one of its entries is in the store only, the lane's
 * next ones are too), under the queue's one window: the lane delivered from next is read back
 * when the window allows, or a step of it (durable_page.c's DURABLE_PAGE_IN_FORCED bytes) when
 * none of it is in memory and other lanes fill the window, so that a high priority arriving
 * behind a backlog of lower ones waits for one read, not for them; each lane can take that
 * step beyond the window.
 *
 * Purge and queue.delete drop a queue's paged entries at once (message counts are right
 * right away). Those that refer to shared records are read in bounded steps from a timer to
 * drop their references (a record goes with its last), then deleted; meanwhile a marker tells
 * a start that they are gone: a purge marker (a meta key naming the queue id and seq range),
 * or for a deleted queue its temporary-id key, as for queues that were not stored. A start
 * deletes what a marker names without reading it, and the records nothing else refers to.
 *
 * Writes. The hooks below are called by the broker as it changes (vhost.c, exchange.c), and
 * the queues' commands arrive in order through durable_queue_cmd (queue.c's journal, whose
 * command set is warren/queue.h's): the layer writes what each command means for the store,
 * and never changes a queue's state but for its paging, below the commands. All of it adds to
 * one batch per loop turn, which a zero-delay timer hands to the store thread: every
 * connection's changes in a turn share one RocksDB write, and a fsync when any waiter asked
 * for one. The store completes batches in order, so a barrier (durable_barrier)
 * passed means every change made before it is written, and synced if it asked: publisher
 * confirms and tx.commit-ok wait on one. Entity changes do not wait (as RabbitMQ's declare-ok
 * does not wait for a fsync): a confirm that follows a declaration covers it too.
 *
 * A vhost registry with no durable layer attached (unit tests, shutdown) writes nothing. */
#ifndef WARREN_DURABLE_H
#define WARREN_DURABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "warren/exchange.h"
#include "warren/queue.h"
#include "warren/wire.h"

struct event_base;
struct msg;
struct queue;
struct queue_cmd;
struct store;
struct vhost_registry;

struct durable;

/* A durable layer writing to st (borrowed; it must outlive the layer), flushing from a timer
 * of base. NULL on ENOMEM. */
struct durable *durable_new(struct store *st, struct event_base *base);
/* Stops writing reg's changes (shutdown: consumers going away must not delete durable
 * auto-delete queues, which RabbitMQ brings back after a restart), writing what is due for
 * queues that may be freed from now on. d may be NULL. */
void durable_detach(struct durable *d, struct vhost_registry *reg);
/* Hands this turn's batch to the store now: call before store_close, which completes it. */
void durable_submit_pending(struct durable *d);
/* The store the layer writes to (a replicated queue's image is written there directly). */
struct store *durable_store(const struct durable *d);
/* Frees the layer, after store_close (its completions refer to the layer). NULL is ignored. */
void durable_free(struct durable *d);

/* A stored queue's in-memory window, in message bytes. */
#define DURABLE_WINDOW_DEFAULT (8u << 20)
void durable_set_window(struct durable *d, uint64_t bytes);
/* Message bytes (msg_bytes_live) past which queues that are not stored page out too; 0: never. */
void durable_set_memory_pressure(struct durable *d, uint64_t bytes);

/* Restores every stored vhost entity and message into reg (durable exchanges, queues,
 * bindings, queue entries in order, redelivered where delivered before), deletes what no
 * longer belongs (transient leftovers), then attaches d to reg and its vhosts so that later
 * changes are written. Call once, before clients connect. Returns 0, or -1 with the reason
 * in err (a store read error or a record this build cannot decode: the data is not touched). */
int durable_recover(struct durable *d, struct vhost_registry *reg, char *err, size_t errlen);

/* The node is in a cluster (call before durable_recover). Its metadata log (warren/cluster.h)
 * is replayed at a start only past durable_meta_index, so the store keeps the topology every
 * node has: exchanges and bindings that are not durable too, and the definition of each
 * queue whose messages are not stored here (another node's, with its home node's name, and
 * this node's transient and exclusive ones). */
void durable_set_clustered(struct durable *d);
/* The metadata log index the stored metadata (the records of warren/admin.h and the
 * topology) was at when durable_recover read it: its entries up to this one are in the store
 * already. 0: none. */
uint64_t durable_meta_index(const struct durable *d);
/* Writes index as the one the stored metadata is at, in this loop turn's batch: each
 * metadata apply writes its entry's, in the batch its records go in (a log entry's commands
 * are applied in one loop turn), so that the store is always at some index. */
void durable_meta_index_put(struct durable *d, uint64_t index);

/* Hooks, called by the broker after the change is made in memory. d may be NULL. */
void durable_exchange_added(struct durable *d, const struct exch *e);
void durable_exchange_removed(struct durable *d, const struct exch *e);
/* Gives a storable queue (durable, not exclusive, of this node) its store id and writes it;
 * in a cluster, writes any other's definition. */
void durable_queue_added(struct durable *d, struct queue *q);
void durable_binding_changed(struct durable *d, const struct exch *src, struct bind_dest dst,
                             struct wire_str routing_key, struct wire_table args, bool added);

/* Records the broker keeps beside the vhost entities (users, vhosts' metadata, permissions,
 * policies: warren/admin.h writes them, whole, under keys of its own families). Added to this
 * turn's batch; a durable_barrier after them says when they are written. d may be NULL. */
void durable_record_put(struct durable *d, const void *key, size_t klen, const void *val,
                        size_t vlen);
void durable_record_delete(struct durable *d, const void *key, size_t klen);
/* Deletes every key that starts with prefix (plen >= 1). */
void durable_record_delete_prefix(struct durable *d, const void *prefix, size_t plen);

/* Whether a message enqueued on q is written: q is stored and m persistent. */
bool durable_entry_wanted(const struct queue *q, const struct msg *m);
/* m is about to be enqueued on n stored queues: with n > 1 it gets one shared record. */
void durable_msg_routed(struct durable *d, struct msg *m, uint32_t n_stored_queues);
/* The journal of the queues' commands (warren/queue.h), each called once it is applied in
 * memory, in order. d may be NULL (nothing is written, but a deleted queue's bookkeeping is
 * freed). What each writes: ENQUEUE the entry, when durable_entry_wanted (a paged-out one
 * was written by the page-out; a replayed one is in the store already); DELIVER the delivery
 * watermark, once per batch, for stored entries; SETTLE, DROP and DLX_RELEASE the deletion of a
 * stored entry (and of its shared record with its last reference); DLX_HOLD the stored entry
 * again, marked dead with its reason, so that a start puts it back among the dead letters
 * waiting (see durable_int.h); REQUEUE nothing (the entry keeps
 * its key; the watermark marks it delivered); PURGE the deletion of the dropped stored entries
 * and of the paged ones (those referring to shared records in the background); DELETE the
 * removal of a stored queue with all its entries, and frees its bookkeeping: shared records
 * lose the references its entries held. */
void durable_queue_cmd(struct durable *d, const struct queue_cmd *c);

/* Paging. How many of q's ready entries are in the store only (q->n_ready counts them). */
uint64_t durable_queue_paged(const struct queue *q);
/* How many of those are in lane. */
uint64_t durable_lane_paged(const struct queue *q, unsigned lane);
/* Whether m, about to be enqueued on q in lane, goes to the store only (d may be NULL). */
bool durable_page_out_wanted(const struct durable *d, const struct queue *q, unsigned lane,
                             const struct msg *m);
/* Writes m as q's entry seq expiring at expires_at (us since the epoch, 0 never), not kept in
 * memory, and counts it paged. 0, or -1 on ENOMEM (logged; not written). */
int durable_entry_page_out(struct durable *d, struct queue *q, const struct msg *m, uint64_t seq,
                           uint64_t expires_at);
/* Whether paged entries of lane (delivered from next) are to be read back: q's in-memory
 * entries are low enough, or none of the lane's is in memory. */
bool durable_page_in_wanted(const struct durable *d, const struct queue *q, unsigned lane);
/* Reads lane's lowest paged entries back into memory (queue_entry_page_in) up to the window
 * (a step past it when none of lane's was in memory). Entries whose write has not completed
 * yet are not readable: q is then dispatched again once the store completes its next batch. */
void durable_page_in(struct durable *d, struct queue *q, unsigned lane);

/* Replicated queues' images (durable_image.c). Every member of a replicated queue's group
 * keeps what the group's committed commands left of the queue, under the group's id ('J' and
 * 'K' keys, warren/store.h): its entries, each with its message inline, and the image's state.
 * The Raft log is what makes them durable: the member's Raft thread writes each entry's changes
 * with the state (the log index they are at) in one write without a sync (store_write_now),
 * so that a start replays the log past that index only. A member that starts to lead loads
 * the image into the queue. Snapshots of the group hold the entries' positions, not their
 * messages: a member that restores one fetches the messages it lacks from another member.
 * The functions below touch nothing but the store and what they are given: any thread may
 * call them. */
struct durable_image_state {
    uint64_t index;      /* the group's log index the image is at */
    uint64_t epoch;      /* the index of the last leader's marker applied (src/net/quorum.c) */
    uint64_t epoch_term; /* and its term */
    unsigned n_lanes;
    /* per lane: the highest seq handed to a consumer, and the highest enqueued */
    uint64_t delivered[QUEUE_LANES_MAX], last[QUEUE_LANES_MAX];
};
/* The longest encoded state (durable_image_state_encode). */
#define DURABLE_IMAGE_STATE_MAX (26 + 16 * QUEUE_LANES_MAX)
/* An entry's position: what a snapshot says of it. */
struct durable_image_pos {
    uint64_t seq;
    uint32_t count; /* requeued so many times */
    bool dead;      /* died (for reason), kept until a copy reached a queue */
    uint8_t reason;
    bool missing; /* its message is still to be fetched from another member */
};
struct store;
struct store_batch;
/* Adds to b: the entry seq, expiring at expires_at (0: never), of the message record
 * (durable_msg_parts' bytes, len of them). */
void durable_image_enqueue(struct store_batch *b, uint64_t group, uint64_t seq, uint64_t expires_at,
                           const uint8_t *record, size_t len);
/* Adds to b: the entry seq, whose message is still to be fetched. */
void durable_image_put_missing(struct store_batch *b, uint64_t group, uint64_t seq);
/* Adds to b: the entry seq with its value as another member's image has it
 * (durable_image_values'). */
void durable_image_put_value(struct store_batch *b, uint64_t group, uint64_t seq, const void *val,
                             size_t len);
/* Calls fn(arg, seq, value, len) for each entry of [first, last] whose message is here, in seq
 * order (one read through the range: many at once cost far less than as many
 * durable_image_value); fn returns nonzero to stop. 0, or -1 with the reason in err. */
typedef int (*durable_image_value_fn)(void *arg, uint64_t seq, const void *val, size_t len);
int durable_image_values(struct store *st, uint64_t group, uint64_t first, uint64_t last,
                         durable_image_value_fn fn, void *arg, char *err, size_t errlen);
/* Adds to b: the entry seq left (settled, dropped, purged). */
void durable_image_remove(struct store_batch *b, uint64_t group, uint64_t seq);
/* Adds to b: the entry seq was requeued count times so far, or died (dead: for reason, kept
 * until a copy reached a queue, as QUEUE_CMD_DLX_HOLD). */
void durable_image_mark(struct store_batch *b, uint64_t group, uint64_t seq, uint32_t count,
                        bool dead, uint8_t reason);
/* Adds to b: the image's state. */
void durable_image_state_put(struct store_batch *b, uint64_t group,
                             const struct durable_image_state *ist);
/* The state's encoding, into buf (DURABLE_IMAGE_STATE_MAX bytes). Returns its length. */
size_t durable_image_state_encode(uint8_t *buf, const struct durable_image_state *ist);
/* Decodes a state from the len bytes at p. Returns its length, 0 if it does not decode. */
size_t durable_image_state_decode(const uint8_t *p, size_t len, struct durable_image_state *ist);
/* Adds to b: the image goes (its queue was deleted). */
void durable_image_drop(struct store_batch *b, uint64_t group);
/* Reads the state: 1 when there is one, 0 when there is no image (ist zeroed), -1 with the
 * reason in err. */
int durable_image_state_get(struct store *st, uint64_t group, struct durable_image_state *ist,
                            char *err, size_t errlen);
/* Calls fn(arg, pos) for each entry of the image, in seq order; fn returns 0 to go on,
 * nonzero after a failure of its own (ENOMEM). 0, or -1 with the reason in err. */
typedef int (*durable_image_scan_fn)(void *arg, const struct durable_image_pos *pos);
int durable_image_scan(struct store *st, uint64_t group, durable_image_scan_fn fn, void *arg,
                       char *err, size_t errlen);
/* Loads the image into q, which has no entries: each entry enqueued again
 * (queue_cmd_enqueue_replayed), redelivered when it was delivered (at or below its lane's
 * watermark) or requeued, dead ones into dlx_waiting; every lane's next seq past its last.
 * Loop thread. Returns how many entries it loaded, or -1 with the reason in err (a read
 * error, an entry that does not decode, ENOMEM), DURABLE_IMAGE_MISSING when an entry's
 * message is still to be fetched; q has some of the entries then (queue_reset). */
#define DURABLE_IMAGE_MISSING (-2)
int64_t durable_image_load(struct store *st, uint64_t group, struct queue *q,
                           const struct durable_image_state *ist, char *err, size_t errlen);

/* A message's record as the store keeps it, also for layers that ship messages whole (a
 * cluster's forwarded publishes): m's record header (DURABLE_MSG_HDR_LEN bytes, into hdr),
 * then its properties, exchange, routing key and body, in iov[0..3] (borrowing hdr and m):
 * the parts of a value after whatever the caller puts first. */
#define DURABLE_MSG_HDR_LEN 16
#define DURABLE_MSG_PARTS 4
struct iovec;
void durable_msg_parts(uint8_t *hdr, const struct msg *m, struct iovec *iov);
/* A new message (one reference, the caller's) from a record of len bytes; NULL when it does
 * not decode, or on ENOMEM. */
struct msg *durable_msg_from_record(const uint8_t *p, size_t len);

/* Called once everything changed before the durable_barrier call is written, and synced if
 * sync was asked; err is NULL, or the store's error when any of it failed (the changes stay
 * in memory but may be lost by a restart). */
typedef void (*durable_done_fn)(void *arg, const char *err);
/* Registers fn. Returns 0, or -1 on ENOMEM (fn will not be called). */
int durable_barrier(struct durable *d, bool sync, durable_done_fn fn, void *arg);

#endif
