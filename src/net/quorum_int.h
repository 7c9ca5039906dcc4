/* Replicated queues' internals shared by quorum.c (the loop's side: the live queue, leading)
 * and quorum_image.c (the Raft thread's side: the image). Network layer only. */
#ifndef WARREN_NET_QUORUM_INT_H
#define WARREN_NET_QUORUM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "warren/cluster.h"
#include "warren/durable.h"

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

/* The Raft thread's side of one replicated queue: its image in the store. Made by the loop
 * before its group opens, the Raft thread's while the group runs, the loop's again once it is
 * closed (quorum_image_closed frees it). */
struct quorum_image {
    struct store *st; /* borrows */
    uint64_t gid;
    char queue[64]; /* the queue's name (cut), for the log */
    struct durable_image_state ist;
    /* the entries up to this index are in the image already (the log is replayed from its
     * start, or from its snapshot) */
    uint64_t restored_index;
    struct store_batch *batch; /* owns: the current entry's changes, NULL when none */
    bool failed;               /* a write failed: logged once */
    /* a snapshot was too big at this index: none tried again before the next threshold */
    uint64_t busy_until;
};

/* A new image's side (st: fresh, or as the store has it), NULL on ENOMEM or a read error
 * (logged). */
struct quorum_image *quorum_image_new(struct store *st, uint64_t gid, const char *queue,
                                      unsigned n_lanes, bool fresh);

/* The group's state machine (cluster_replica_ops' apply, applied, snapshot, restore and
 * closed, with the image as raft_arg): the Raft thread's, closed the loop's. */
struct raft_buffer;
int quorum_image_apply(void *raft_arg, uint64_t index, const uint8_t *cmd, size_t len);
void quorum_image_applied(void *raft_arg, uint64_t index);
int quorum_image_snapshot(void *raft_arg, struct raft_buffer *bufs[], unsigned *n_bufs);
int quorum_image_restore(void *raft_arg, struct raft_buffer *buf);
void quorum_image_closed(void *raft_arg, bool destroyed);

#endif
