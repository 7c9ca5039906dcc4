/* The Raft thread: canonical raft runs its groups on a libuv loop (raft_uv's disk log and the
 * nodes' transport are libuv's), which this thread runs beside the broker's libevent loop.
 * raft has no locks: every raft_* call, and its state machines' apply callbacks, must run on
 * this thread. The two loops talk only through two mailboxes of calls, one each way, so that
 * no broker state is touched from the Raft thread and no raft state from the broker's.
 *
 * A call is an intrusive struct cluster_call embedded in whatever it carries: posting one
 * allocates nothing and cannot fail. Calls run in the order they were posted. */
#ifndef WARREN_CLUSTER_RAFT_THREAD_H
#define WARREN_CLUSTER_RAFT_THREAD_H

#include <stddef.h>
#include <uv.h>

#include <event2/event.h>

struct cluster_call {
    struct cluster_call *next; /* the mailbox's link: the poster leaves it alone */
    void (*fn)(struct cluster_call *call);
};

struct cluster_thread;

/* A Raft thread whose results come back on base's loop. Its libuv loop exists from here on
 * (groups are set up on it before the thread starts); the thread runs once
 * cluster_thread_start is called. Returns NULL with err filled. */
struct cluster_thread *cluster_thread_new(struct event_base *base, char *err, size_t errlen);

/* The libuv loop the thread runs: for raft_uv and the transport, before the start or from
 * the thread itself. */
uv_loop_t *cluster_thread_loop(struct cluster_thread *t);

/* Starts the thread. Returns 0, or -1 with err filled. */
int cluster_thread_start(struct cluster_thread *t, char *err, size_t errlen);

/* From the broker's loop: call->fn(call) runs on the Raft thread, soon. */
void cluster_thread_call(struct cluster_thread *t, struct cluster_call *call);

/* From the Raft thread: call->fn(call) runs on the broker's loop, soon. */
void cluster_thread_post(struct cluster_thread *t, struct cluster_call *call);

/* From the Raft thread, when everything on its loop has been closed: the loop ends once its
 * last handles are gone, and with it the thread. */
void cluster_thread_finish(struct cluster_thread *t);

/* From the broker's loop: waits for the thread to end (after cluster_thread_finish), runs
 * the calls it posted last, and frees t. A thread never started is just freed. NULL is
 * ignored. */
void cluster_thread_free(struct cluster_thread *t);

#endif
