/* Private to durable.c, durable_page.c, durable_record.c and durable_recover.c (and
 * check_durable, which looks at it): the durable layer's state, its bookkeeping of each queue,
 * and the encoding of the values it stores (the keys are warren/store.h's, but for the purge
 * markers, meta keys of the layer's own). */
#ifndef WARREN_DURABLE_INT_H
#define WARREN_DURABLE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/uio.h>

#include <event2/util.h>

#include "warren/durable.h"
#include "warren/hmap.h"
#include "warren/queue.h"

struct store_batch;
struct event;

/* The entries one batch pages out of one queue: counted in the queue as they are added, so
 * that they are not there if the batch fails. In d->pageouts (by batch) and the queue's list
 * until the batch completes. */
struct durable_pageout {
    TAILQ_ENTRY(durable_pageout) by_turn; /* in d->pageouts */
    LIST_ENTRY(durable_pageout) by_queue; /* in q->durable_state->pageouts, while q is set */
    struct queue *q;     /* borrows; NULL once the queue dropped its paged entries (or went) */
    uint64_t turn;       /* the batch that writes them */
    uint64_t n;          /* entries */
    uint64_t body_bytes; /* their bodies' bytes */
    unsigned lane;       /* the queue's lane they are in */
};
TAILQ_HEAD(durable_pageout_list, durable_pageout);

/* The durable layer's bookkeeping of one lane of a queue (warren/queue.h): its paging and its
 * delivery watermark, which are the lane's as a queue without priorities has them. */
struct durable_lane {
    /* Lazy paging: past a window of message bytes, ready entries live only in the store,
     * seqs page_lo and up (to the lane's end), and are read back ahead of consumers. */
    uint64_t n_paged;        /* ready entries in the store only (its n_ready counts them) */
    uint64_t page_lo;        /* the lowest seq that may be paged out */
    uint64_t restored_below; /* seqs below were there at start: transient paged entries
                              * among them are leftovers, being deleted, never read */
    uint64_t delivered_seq;  /* highest seq handed out: its part of the delivery watermark */
    bool paged_shared;       /* some paged entries may refer to shared records: dropping
                              * them means reading them */
};

/* The durable layer's bookkeeping of one queue (q->durable_state), for queues that are stored
 * or have paged out entries: NULL for the others. Made by durable_queue_attach, freed with the
 * queue by its DELETE command (durable_queue_cmd). */
struct durable_queue {
    struct queue *q;   /* borrows: the queue it is of */
    uint64_t store_id; /* its id in the store; 0: not stored (any more) */
    bool store_temp;   /* store_id only names its paged-out entries: not stored itself */
    bool page_waiting; /* paged entries are not readable yet: in d->page_wait until the next
                        * batch completes */
    TAILQ_ENTRY(durable_queue) page_link;
    /* borrows: the counts of entries paged out in batches not completed */
    LIST_HEAD(, durable_pageout) pageouts;
    bool delivered_dirty; /* a lane's delivered_seq changed since the watermark was written */
    TAILQ_ENTRY(durable_queue) dirty_link; /* in d->dirty while delivered_dirty */
    unsigned n_lanes;                      /* q->n_lanes */
    struct durable_lane lanes[];           /* one per lane of q */
};
TAILQ_HEAD(durable_queue_list, durable_queue);

/* q's bookkeeping, made if q has none yet. NULL on ENOMEM. */
struct durable_queue *durable_queue_attach(struct queue *q);
/* The store id of q: 0 if it has none. */
uint64_t durable_queue_id(const struct queue *q);

/* Paged entries dropped from their queue (purge, queue removal) that refer to shared records:
 * read in steps, from a timer, to drop those references, then deleted. The batch that drops
 * them also writes a marker (a purge marker, or the deleted queue's 'T' key) so that a start
 * in the meantime deletes them without counting their references. */
struct durable_sweep {
    TAILQ_ENTRY(durable_sweep) link; /* in d->sweeps, oldest first */
    uint64_t turn;                   /* the batch that writes its marker */
    bool ready;                      /* that batch is written: every entry is readable */
    bool deleted;                    /* queue removal: every entry of the queue goes */
    uint64_t queue_id;
    uint64_t lo, next, end; /* seqs [lo, end) dropped, [next, end) not read yet */
};
TAILQ_HEAD(durable_sweep_list, durable_sweep);

/* A durable_barrier() caller, waiting for the batch it was registered with. */
struct durable_waiter {
    STAILQ_ENTRY(durable_waiter) link;
    durable_done_fn fn;
    void *arg;
};
STAILQ_HEAD(durable_waiter_list, durable_waiter);

struct durable {
    struct store *st;                    /* borrows */
    struct event *flush_ev;              /* owns: zero-delay timer that submits the batch */
    struct store_batch *batch;           /* owns: this loop turn's changes; NULL when none */
    struct durable_waiter_list waiters;  /* owns: barriers on this turn's batch */
    bool want_sync;                      /* a waiter on this batch asked for a fsync */
    bool lost;                           /* a change of this turn could not be added (ENOMEM) */
    struct durable_queue_list dirty;     /* borrows: queues whose watermark is to be written */
    struct durable_queue_list page_wait; /* borrows: queues waiting for paged entries to be
                                          * readable */
    uint64_t turn;       /* the number of this turn's batch (the next one submitted) */
    bool clustered;      /* durable_set_clustered */
    uint64_t meta_index; /* the metadata log index the store's metadata was at at start */
    struct durable_pageout_list pageouts; /* owns: page-outs of batches not completed yet */
    struct durable_sweep_list sweeps;     /* owns */
    struct event *sweep_ev;               /* owns: zero-delay timer running the next step */
    struct hmap shared;                   /* owns each struct durable_shared: the shared records */
    uint64_t window;        /* a stored queue's in-memory bytes (durable_set_window) */
    uint64_t pressure;      /* msg_bytes_live past which any queue pages; 0: never */
    uint64_t next_queue_id; /* ids are never reused: above every stored one */
    uint64_t next_msg_id;
};

/* Value of an 'E' key: type, flags, then the declare arguments. */
#define DURABLE_EXCH_AUTO_DELETE 0x01
#define DURABLE_EXCH_INTERNAL 0x02
#define DURABLE_EXCH_TRANSIENT 0x04 /* in a cluster: not durable (durable_set_clustered) */
#define DURABLE_EXCH_HDR_LEN 2
/* Value of a 'Q' key: u64 id, flags, then the declare arguments. In a cluster, a queue whose
 * messages this node does not store (another node's, a transient or exclusive one, or a
 * replicated one) has a record of its definition alone (DURABLE_QUEUE_CLUSTER, its id the
 * replicated queue's group, else 0): after the flags come the u64
 * owner id (queue.owner_id), the u8 length and the name of its home node ("" for this one),
 * with DURABLE_QUEUE_OWNER_NODE the u8 length and the name of its owner's node
 * (queue.owner_node), then the arguments. */
#define DURABLE_QUEUE_AUTO_DELETE 0x01
#define DURABLE_QUEUE_CLUSTER 0x02
#define DURABLE_QUEUE_TRANSIENT 0x04
#define DURABLE_QUEUE_EXCLUSIVE 0x08
#define DURABLE_QUEUE_OWNER_NODE 0x10
#define DURABLE_QUEUE_HDR_LEN 9
#define DURABLE_QUEUE_CLUSTER_HDR_LEN (DURABLE_QUEUE_HDR_LEN + 8 + 1)
/* The metadata log index the stored metadata is at (decimal), see durable_meta_index. */
#define DURABLE_META_INDEX_KEY "\0warren/admin-index"
#define DURABLE_META_INDEX_KEY_LEN (sizeof(DURABLE_META_INDEX_KEY) - 1)
/* Value of an 'I' key: flags, then u64 expiry time if DURABLE_ENTRY_EXPIRES, then u8 reason
 * (enum deadletter_reason) if DURABLE_ENTRY_DEAD, then u32 delivery count if
 * DURABLE_ENTRY_COUNTED (format 3: written again by each requeue; without it, 0), then either
 * u64 'M' id and u32 body length (DURABLE_ENTRY_SHARED; records of format 1 have no length) or
 * the message record inline. A transient message paged out (DURABLE_ENTRY_TRANSIENT) is
 * deleted at start. A dead entry waits in its queue's dlx_waiting (QUEUE_CMD_DLX_HOLD,
 * dead-letter-strategy at-least-once): its key is I(queue id | DURABLE_DEAD_QUEUE, seq), apart
 * from the queue's other entries, so that it is never inside their paged or purged ranges;
 * always in memory, read back at start after them whatever the window, never paged in nor
 * swept (its shared record reference is the in-memory entry's). Format 2 with that flag:
 * builds before it do not read such entries. durable_entry_head_* below are the only code that
 * knows this layout. */
#define DURABLE_DEAD_QUEUE (UINT64_C(1) << 63)
#define DURABLE_ENTRY_SHARED 0x01
#define DURABLE_ENTRY_TRANSIENT 0x02
#define DURABLE_ENTRY_EXPIRES 0x04
#define DURABLE_ENTRY_DEAD 0x08
#define DURABLE_ENTRY_COUNTED 0x10
#define DURABLE_ENTRY_HEAD_MAX (1 + 8 + 1 + 4 + 8 + 4)
/* What precedes (or replaces) the message in an entry's value. */
struct durable_entry_head {
    uint8_t flags;
    uint64_t expires_at;     /* us since the epoch; 0: never */
    uint8_t dead_reason;     /* DURABLE_ENTRY_DEAD: why it died */
    uint32_t delivery_count; /* DURABLE_ENTRY_COUNTED: requeues so far; else 0 */
    uint64_t shared_id;      /* DURABLE_ENTRY_SHARED: its 'M' record */
    uint32_t body_len;       /* DURABLE_ENTRY_SHARED: the body's size, 0 if unknown (format 1) */
    const uint8_t *msg;      /* the inline message record (borrows the value); NULL if shared */
    size_t msg_len;
};
/* Encodes h (but its msg) into buf (DURABLE_ENTRY_HEAD_MAX bytes); returns the length. */
size_t durable_entry_head_encode(uint8_t *buf, const struct durable_entry_head *h);
/* Decodes an entry's value. False if it is malformed. */
bool durable_entry_head_decode(const uint8_t *v, size_t vlen, struct durable_entry_head *h);
/* The body size of the message record p (an inline one), 0 if it cannot be decoded. */
uint64_t durable_msg_body_len(const uint8_t *p, size_t len);

/* A purge's marker: 0x00 "warren/purged" u64(queue id) u64(first seq), valued u64(end seq):
 * the queue's entries in [first, end) are purged, whatever the store still holds there. */
#define DURABLE_PURGED_PREFIX "\0warren/purged"
#define DURABLE_PURGED_PREFIX_LEN 14
#define DURABLE_PURGED_KEY_LEN (DURABLE_PURGED_PREFIX_LEN + 16)
size_t durable_key_purged(uint8_t *buf, uint64_t queue_id, uint64_t first);

/* A shared message record and the number of stored entries referring to it, whether their
 * message is in memory or paged out. */
struct durable_shared {
    struct hmap_entry by_id;
    uint8_t id[8]; /* big-endian: the map's key */
    uint32_t refs;
};
/* Counts one more reference to the shared record id. 0, or -1 on ENOMEM. */
int durable_shared_ref(struct durable *d, uint64_t id);
/* Drops one reference, deleting the record (in b, if not NULL) with the last. */
void durable_shared_unref(struct durable *d, struct store_batch *b, uint64_t id);
/* A message record (an 'M' value, or inline in an entry; durable_msg_parts in durable.h):
 * delivery_mode, priority, u32 headers offset and length within the properties, u32
 * properties length, exchange and routing key lengths; then the properties, exchange, routing
 * key and body. */

/* Writes m's record header (DURABLE_MSG_HDR_LEN bytes) into buf. */
void durable_msg_header(uint8_t *buf, const struct msg *m);
/* Outcomes of reading a message record back. */
enum durable_load {
    DURABLE_LOAD_OK = 0,  /* *mp holds one reference, the caller's */
    DURABLE_LOAD_CORRUPT, /* the record cannot be decoded */
    DURABLE_LOAD_NOMEM,
    DURABLE_LOAD_MISSING,    /* no shared record under that id */
    DURABLE_LOAD_READ_ERROR, /* RocksDB's error is in err */
};
/* Decodes a message record: OK, CORRUPT or NOMEM. */
enum durable_load durable_msg_decode(const uint8_t *p, size_t len, struct msg **mp);
/* Reads and decodes the shared record id (its store_id set). */
enum durable_load durable_shared_load(struct durable *d, uint64_t id, struct msg **mp, char *err,
                                      size_t errlen);

/* A queue that is stored itself (not just its paged-out entries). */
bool durable_queue_stored(const struct queue *q);
/* Writes the entry seq of q for m, expiring at expires_at (us since the epoch, 0 never): a
 * reference to m's shared record, or m inline (flagged transient if it is not to survive a
 * restart). 0, or -1 on ENOMEM. */
int durable_entry_write(struct durable *d, const struct queue *q, const struct msg *m, uint64_t seq,
                        uint64_t expires_at, bool transient);
/* Deletes every entry of the queue with that store id, its dead ones too (two range
 * deletes). */
void durable_entries_delete_all(struct store_batch *b, uint64_t queue_id);

/* durable_page.c. q drops its paged entries (purge, removal): whatever becomes of the batches
 * writing some, its count is no longer theirs to correct. */
void durable_pageouts_detach(struct durable_queue *dq);
/* Deletes q's paged entries (purge; d NULL: only forgets them): those that refer to shared
 * records in the background (their count is q's no more at once), the others at once. */
void durable_page_forget(struct durable *d, struct queue *q);
/* Deletes the entries of q (stored, being removed) in b: at once, or, when
 * paged ones refer to shared records or an earlier purge's sweep is still reading some,
 * through a sweep that runs after the earlier ones. */
void durable_queue_entries_drop(struct durable *d, struct store_batch *b, struct queue *q);
/* The batch turn has completed; err is NULL, or why it failed: its page-outs are uncounted
 * (they do not exist) and its sweeps dropped (their entries stay, and come back with a
 * restart like any change that was not written). */
void durable_page_turn_done(struct durable *d, uint64_t turn, const char *err);
/* q waits for its paged entries to be readable (the next batch's completion). */
void durable_page_wait(struct durable *d, struct queue *q);
/* The sweep timer's callback: reads the oldest ready sweep's next step. */
void durable_sweep_step(evutil_socket_t fd, short what, void *arg);
/* Frees the sweeps not done: the next start finishes them from their markers. */
void durable_sweeps_free(struct durable *d);

/* Arms the zero-delay flush of this turn's batch (and barrier). */
void durable_arm(struct durable *d);
/* A lane of dq moved its delivered_seq: the watermark goes into this turn's batch. */
void durable_watermark_moved(struct durable *d, struct durable_queue *dq);
/* Drops this turn's changes unwritten (a recovery that failed). */
void durable_discard_pending(struct durable *d);

/* Adds to this turn's batch (creating it, and arming the flush). NULL on ENOMEM, logged:
 * the change is then not written, and the next barrier reports the failure. */
struct store_batch *durable_batch(struct durable *d);

#endif
