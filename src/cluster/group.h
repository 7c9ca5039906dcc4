/* A Raft group: one canonical raft instance, its raft_uv log under a directory of its own,
 * its connections through the node's transport, and its state machine on the broker's loop.
 *
 * The broker submits commands (opaque bytes) on any member's loop; the commands submitted
 * during one loop turn go to Raft as one log entry (a follower forwards it to the leader over
 * the node link) (one raft_apply, one disk write, one round of
 * replication: the spike measured twice the throughput of an entry per command). Every
 * member then applies the entry's commands in log order, on its broker's loop, through
 * ops->apply; on the member that submitted them, each command's done callback follows its
 * apply. Raft's thread never touches broker state: entries are copied to the broker's loop.
 *
 * Snapshots are taken only for groups whose state the Raft thread keeps itself (ops'
 * Raft-thread hooks: replicated queues); the metadata group's log keeps every entry (they are
 * few). */
#ifndef WARREN_CLUSTER_GROUP_H
#define WARREN_CLUSTER_GROUP_H

#include <raft.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "warren/cluster.h"

struct cluster_thread;
struct cluster_transport;
struct event_base;

/* Most members a group has: the cluster's nodes. */
#define CLUSTER_GROUP_MAX_MEMBERS CLUSTER_MAX_NODES
/* A member's Raft address: "name@host:port". */
#define CLUSTER_ADDRESS_MAX 300

enum cluster_role { CLUSTER_UNAVAILABLE = 0, CLUSTER_FOLLOWER, CLUSTER_CANDIDATE, CLUSTER_LEADER };

struct cluster_member {
    raft_id id;
    char address[CLUSTER_ADDRESS_MAX];
    bool voter;
    /* this member, or one whose node link is up and heard from (transport.h) */
    bool reachable;
};

/* What a member knows of its group, published on the broker's loop after each change. */
struct cluster_group_status {
    enum cluster_role role;
    uint64_t term;
    uint64_t commit_index, last_applied; /* raft's, when it looked */
    raft_id leader_id;                   /* 0: no leader known */
    unsigned n_members;
    struct cluster_member members[CLUSTER_GROUP_MAX_MEMBERS];
};

struct cluster_group_ops {
    /* A committed command, on every member, in log order (broker's loop), unless apply_raft
     * applies it (below). What it returns
     * goes to the command's done callback on the member that submitted it: the same apply
     * on every member must decide the same (a declare refused for a conflict everywhere).
     * index: the entry's in the log (the commands of one entry share it). */
    int (*apply)(void *arg, uint64_t index, const uint8_t *cmd, size_t len);
    /* The status changed: role, term, leader, members or their reachability (broker's loop). */
    void (*changed)(void *arg, const struct cluster_group_status *st);
    /* Optional, for a state machine the Raft thread keeps itself (raft_arg): each committed
     * command, in log order, on the Raft thread; what it returns is the command's result, for
     * its done callback (apply is not called then: the loop hears only of this member's own
     * entries, to answer their submitters). With it, snapshots: snapshot makes one of the state as
     * of the last command applied (raft's contract: bufs raft_malloc'ed, raft's from then on;
     * RAFT_BUSY: not now), restore replaces the state with one (taking buf's memory). */
    int (*apply_raft)(void *raft_arg, uint64_t index, const uint8_t *cmd, size_t len);
    void (*applied_raft)(void *raft_arg, uint64_t index); /* after an entry's commands */
    int (*snapshot)(void *raft_arg, struct raft_buffer *bufs[], unsigned *n_bufs);
    int (*restore)(void *raft_arg, struct raft_buffer *buf);
};

struct cluster_group_options {
    uint64_t id;     /* the group's id, the same on every member */
    const char *dir; /* its raft_uv directory (created if missing) */
    raft_id self_id; /* this member's Raft id */
    const char *self_address;
    /* The members a pristine group starts with (the same list on every member); ignored when
     * the directory already holds the group's log. */
    unsigned n_initial;
    const struct cluster_member *initial;
    unsigned election_timeout_ms; /* 0: raft's 1000 */
    const struct cluster_group_ops *ops;
    void *arg;
    void *raft_arg; /* for ops' Raft-thread hooks */
    /* With ops->snapshot: a snapshot every snapshot_threshold entries applied, keeping
     * snapshot_trailing entries before it in the log for followers a little behind. */
    unsigned snapshot_threshold, snapshot_trailing;
    /* The log's segment files' size (0: 2 MiB): a new one is made (and preallocated) when the
     * last is full, which the appends of that moment wait for. */
    size_t segment_size;
    /* The leader appends a barrier after applying entries, so that the followers learn of their
     * commit at once rather than at the next heartbeat (one more append and sync per round):
     * for a group whose followers act on what they apply (the metadata's visibility). */
    bool kick_commits;
    /* The group keeps a node link to each of its members, dropped when one is removed: the
     * metadata group's, whose members are the cluster's nodes. The others' members are nodes
     * of the cluster, linked already, whose links outlive their groups. */
    bool links_members;
};

struct cluster_group;

/* A group's broker side, on base's loop, with its Raft side still to start (o and its
 * strings are copied). Returns NULL with err filled. */
struct cluster_group *cluster_group_new(struct event_base *base, struct cluster_thread *t,
                                        const struct cluster_group_options *o, char *err,
                                        size_t errlen);

/* On the Raft thread: opens the group's log, bootstraps it when pristine, and starts it on
 * tr, then calls started(arg, 0). On failure it calls started(arg, -1) once everything it
 * opened is closed again, with the reason in cluster_group_error(g); g is then to be freed
 * with cluster_group_free (broker's loop). */
void cluster_group_start(struct cluster_group *g, struct cluster_transport *tr,
                         void (*started)(void *arg, int rc), void *arg);

/* Why cluster_group_start failed. */
const char *cluster_group_error(const struct cluster_group *g);

/* Frees a group that never started or failed to: a started one is closed with
 * cluster_group_close, which frees it. */
void cluster_group_free(struct cluster_group *g);

/* Submits one command (copied; not empty) to go into the log with the others of this loop turn;
 * done(arg, outcome, result) is called on the broker's loop once the outcome is known: for
 * CLUSTER_COMMITTED right after this member applied it. done may be NULL. Returns 0, or -1
 * with errno ENOMEM, EINVAL (empty), EMSGSIZE or ESHUTDOWN (closing): done is then not
 * called. */
int cluster_group_submit(struct cluster_group *g, const void *cmd, size_t len, cluster_done_fn done,
                         void *arg);

/* Removes the member id from the group: on the leader's Raft thread (a follower forwards the
 * request there over the node link), unless the leader sees it alive (CLUSTER_CHANGE_RUNNING)
 * and running_too is false; done(arg, outcome) then runs on the broker's loop, never within
 * this call. Returns 0, or -1 with errno ENOMEM or ESHUTDOWN (closing): done is then not
 * called. */
int cluster_group_remove(struct cluster_group *g, raft_id id, bool running_too,
                         cluster_change_fn done, void *arg);

/* cluster_group_add_on_raft, asked on the broker's loop and answered there as
 * cluster_group_remove is, once the member is a voter (errno also ENAMETOOLONG: address too
 * long). */
int cluster_group_add(struct cluster_group *g, raft_id id, const char *address,
                      cluster_change_fn done, void *arg);

/* This member, if it leads, hands the leadership to the voter to (0: the most up-to-date
 * other voter) with raft_transfer, soon, on the Raft thread. Nothing happens when it does not
 * lead, or when that voter is not there or does not take it within an election timeout. */
void cluster_group_hand_over(struct cluster_group *g, raft_id to);

/* On the Raft thread: makes the node id at address a member (a spare, then a voter once raft
 * caught it up), through the leader as cluster_group_remove does; done(arg, outcome) runs on
 * the Raft thread once it is in the configuration (DONE: also when it was already a voter),
 * possibly within this call. */
void cluster_group_add_on_raft(struct cluster_group *g, raft_id id, const char *address,
                               cluster_change_fn done, void *arg);

/* On the Raft thread, once started: whether the group is formed, as a joining node's question
 * is answered: its log was not pristine at the start (or was the leader's to send), or a
 * leader is known, or an entry beyond the first configuration is committed. */
bool cluster_group_formed(struct cluster_group *g);

/* On the Raft thread, before cluster_group_start: the log starts pristine and unbootstrapped,
 * for the leader of a formed cluster to fill (a node joining it). */
void cluster_group_skip_bootstrap(struct cluster_group *g);

/* Node-link message types below CLUSTER_GROUP_MSG_END are groups': [group id, u64][body]. */
#define CLUSTER_GROUP_MSG_END 16

/* On the Raft thread: a node-link message for this group (its group id taken off), from the
 * member peer: forwarded batches and their refusals (see group.c). */
void cluster_group_on_message(struct cluster_group *g, uint64_t peer, uint8_t type,
                              const uint8_t *body, size_t len);

/* On the Raft thread: the members' ids as raft knows them now, up to cap. Returns how many. */
unsigned cluster_group_members_now(struct cluster_group *g, raft_id *ids, unsigned cap);

/* The last status published (role, leader, members). */
const struct cluster_group_status *cluster_group_status(const struct cluster_group *g);

/* Stops the group: no more submissions; waits up to drain_ms for the commands in flight (raft
 * 0.15 crashes when a leader closes with appends in flight), hands the leadership over to
 * another voter when this member leads, then closes raft and its log on the Raft thread and
 * calls closed(arg) on the broker's loop. Commands still in flight are
 * answered CLUSTER_MAYBE. g is freed after closed runs. */
void cluster_group_close(struct cluster_group *g, unsigned drain_ms, void (*closed)(void *arg),
                         void *arg);

#endif
