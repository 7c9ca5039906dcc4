/* Replicated queues' internals shared by quorum.c (the loop's side: the live queue, leading)
 * and quorum_image.c (the Raft thread's side: the image). Network layer only. */
#ifndef WARREN_NET_QUORUM_INT_H
#define WARREN_NET_QUORUM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "warren/cluster.h"
#include "warren/durable.h"
#include "warren/idmap.h"

struct store;

/* A command: [u8 op][u64 epoch] then the op's fields (quorum.c's top comment). */
#define QUORUM_HDR 9
enum quorum_op {
    QUORUM_ENQUEUE = 'E', /* [u64 seq][u64 expires at (us; 0 never)][the message's record] */
    QUORUM_DELIVER = 'D', /* [u64 seq] */
    QUORUM_SETTLE = 'S',  /* [u64 seq] */
    QUORUM_REQUEUE = 'R', /* [u64 seq][u32 count] */
    QUORUM_DIED = 'X',    /* [u64 seq][u32 count][u8 reason] */
    QUORUM_MARKER = 'M',  /* [u64 term][the leader's name], epoch 0 */
};
/* A marker's result: it starts the epoch, or its term's epoch had started already (the same
 * leader's marker, submitted again and committed twice); anything else is refused (-1). */
#define QUORUM_MARKER_NEW 0
#define QUORUM_MARKER_AGAIN 1

/* An entry of the image, as the Raft thread keeps it in memory for snapshots. */
struct quorum_pos {
    struct idmap_entry by_seq; /* in im->positions, under its seq */
    uint32_t count;            /* durable_image_pos' */
    bool dead, missing;
    uint8_t reason;
};

/* The Raft thread's side of one replicated queue: its image in the store, and its entries'
 * positions in memory. Made by the loop before its group opens, the Raft thread's while the
 * group runs, the loop's again once it is closed (quorum_image_closed frees it). */
struct quorum_image {
    struct store *st; /* borrows */
    uint64_t gid;
    char queue[64]; /* the queue's name (cut), for the log */
    struct durable_image_state ist;
    /* the entries up to this index are in the image already (the log is replayed from its
     * start, or from its snapshot) */
    uint64_t restored_index;
    struct store_batch *batch; /* owns: the current entry's changes, NULL when none */
    bool failed;               /* a write failed: none is made any more (logged) */
    struct idmap positions;    /* owns its struct quorum_pos: every entry of the image */
    uint64_t n_missing;        /* positions whose message is still to be fetched */
    bool positions_lost;       /* one was not kept (ENOMEM): no snapshot from here any more */
    /* Fetching (quorum_fetch.c): the missing entries' seqs in order, as they were listed
     * last, and the next one to ask for. */
    uint64_t *fetch_seqs; /* owns */
    size_t n_fetch_seqs, fetch_next;
};

/* A new image's side (st: fresh, or as the store has it, its positions read), NULL on ENOMEM
 * or a read error (logged). Loop. */
struct quorum_image *quorum_image_new(struct store *st, uint64_t gid, const char *queue,
                                      unsigned n_lanes, bool fresh);
/* Frees im (the loop's, its group closed or never opened). NULL is ignored. */
void quorum_image_free(struct quorum_image *im);

/* Positions (Raft thread, or the loop before the group opens). */
struct quorum_pos *quorum_image_pos(const struct quorum_image *im, uint64_t seq);
/* Sets the position of p->seq (added if new). 0, or -1 on ENOMEM (logged, positions_lost). */
int quorum_image_pos_set(struct quorum_image *im, const struct durable_image_pos *p);
/* Forgets pos. */
void quorum_image_pos_drop(struct quorum_image *im, struct quorum_pos *pos);

/* The group's state machine (cluster_replica_ops' apply, applied, snapshot, restore and
 * closed, with the image as raft_arg): the Raft thread's, closed the loop's. */
struct raft_buffer;
int quorum_image_apply(void *raft_arg, uint64_t index, const uint8_t *cmd, size_t len);
void quorum_image_applied(void *raft_arg, uint64_t index);
void quorum_image_closed(void *raft_arg, bool destroyed);
/* quorum_snapshot.c: snapshots hold the image's state and positions, not its messages. */
int quorum_image_snapshot(void *raft_arg, struct raft_buffer *bufs[], unsigned *n_bufs);
int quorum_image_restore(void *raft_arg, struct raft_buffer *buf);

/* quorum_fetch.c, the loop's side of fetching the messages the image lacks (its Raft
 * thread's side runs through cluster_replica_call). */
struct quorum_fetch;
struct net_server;
/* Starts fetching them for group (gid; what names its queue for the log): complete(arg) runs
 * once none is missing any more, and frees f (quorum_fetch_free). NULL on ENOMEM. */
struct quorum_fetch *quorum_fetch_new(struct net_server *s, struct cluster_replica *group,
                                      uint64_t gid, const char *what, void (*complete)(void *arg),
                                      void *arg);
/* A snapshot was restored meanwhile: the missing entries are listed again. */
void quorum_fetch_relist(struct quorum_fetch *f);
/* How many are missing, as last listed. */
uint64_t quorum_fetch_missing(const struct quorum_fetch *f);
/* Stops fetching (its owner goes): f is freed now, or once the Raft thread gives it back.
 * NULL is ignored. */
void quorum_fetch_free(struct quorum_fetch *f);
/* 'f' from node from: the answer to f's request, maybe. */
void quorum_fetch_on_answer(struct quorum_fetch *f, const char *from, const uint8_t *b, size_t len);
/* 'F' from node from: answered from the image in st (NULL: not a member here, none). */
void quorum_fetch_answer(struct net_server *s, struct store *st, const char *from, const uint8_t *b,
                         size_t len);

/* quorum.c, for quorum_members.c: the group of a replicated queue's copy here; the members'
 * state of s's replicated queues. */
struct queue_replica;
struct cluster_replica *quorum_group(const struct queue_replica *base);
struct quorum_members *quorum_members(struct net_server *s);

/* quorum_members.c: members added and removed (net_queue_member_change). */
struct quorum_members;
/* NULL on ENOMEM. */
struct quorum_members *quorum_members_new(struct net_server *s);
/* Answers the changes under way "the node is stopping". NULL is ignored. */
void quorum_members_free(struct quorum_members *m);
/* 'M' or 'm' from node from. */
void quorum_members_on_message(struct quorum_members *m, const char *from, const uint8_t *b,
                               size_t len);

#endif
