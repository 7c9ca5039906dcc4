/* Replicated queues' Raft groups (warren/cluster.h): one group per queue, on the node's Raft
 * thread and transport beside the metadata group, with the broker's handle to each.
 *
 * A handle and its group have two owners: the broker holds the handle until
 * cluster_replica_close, and the group lives until raft closed it (or failed to start). The
 * handle is freed when both are done: the broker's close may come while the group still
 * starts, and cluster_close closes the groups of handles the broker still holds.
 *
 * The Raft thread keeps its own list of the started groups (c->replicas_raft), to hand them the
 * node-link messages that name them (a follower's batch forwarded to its leader). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include "cluster_int.h"
#include "warren/log.h"

/* How long a closing group waits for its commands in flight (ms). */
#define REPLICA_CLOSE_DRAIN_MS 1000
/* A snapshot every so many entries (an entry is a loop turn's commands: up to a few hundred
 * messages under load, and the log keeps its entries in memory until a snapshot), keeping so
 * many entries before it for the members a little behind (more: a snapshot to install). A
 * short queue's snapshot takes a few ms. */
#define REPLICA_SNAPSHOT_THRESHOLD 1024
#define REPLICA_SNAPSHOT_TRAILING 1024
/* Bodies go through a queue's log: segments of 16 MiB are made every second or so at 10k
 * msgs/s of 1 KiB (2 MiB ones, every 0.1 s, made one append in a few tens of ms late). */
#define REPLICA_SEGMENT_SIZE (16u << 20)

struct cluster_replica {
    LIST_ENTRY(cluster_replica) link;  /* in c->replicas while the broker holds the handle */
    struct cluster_replica *raft_next; /* in c->replicas_raft (Raft thread) while listed */
    struct cluster *c;                 /* borrows */
    struct cluster_group *g;           /* owns until closed; NULL once closed */
    uint64_t id;
    const struct cluster_replica_ops *ops;
    void *arg, *raft_arg;
    bool started;     /* raft runs the group: it closes through cluster_group_close */
    bool closing;     /* its close has begun */
    bool handle_gone; /* the broker closed the handle: no op runs any more */
    bool destroy;     /* its log goes once it is closed */
    int start_rc;     /* the Raft thread's answer */
    struct cluster_call start_call, started_call, unlist_call;
    char dir[4096];
};

/* The members' indices in c->nodes: size of them in turn from the node named first. */
static unsigned
replica_member_indices(const struct cluster *c, const char *first, unsigned size, unsigned *out)
{
    unsigned start = 0;
    size_t first_len = strlen(first);
    for (unsigned i = 0; i < c->n_nodes; i++)
        if (cluster_address_name_len(c->nodes[i].address) == first_len &&
            memcmp(c->nodes[i].address, first, first_len) == 0)
            start = i;
    unsigned n = size == 0 || size > c->n_nodes ? c->n_nodes : size;
    for (unsigned i = 0; i < n; i++)
        out[i] = (start + i) % c->n_nodes;
    return n;
}

bool
cluster_replica_member(const struct cluster *c, const char *first, unsigned size)
{
    unsigned idx[CLUSTER_MAX_NODES];
    unsigned n = replica_member_indices(c, first, size, idx);
    for (unsigned i = 0; i < n; i++)
        if (c->nodes[idx[i]].id == c->self_id)
            return true;
    return false;
}

unsigned
cluster_replica_members(const struct cluster *c, const char *first, unsigned size,
                        char (*names)[CLUSTER_NODE_NAME_MAX], unsigned cap)
{
    unsigned idx[CLUSTER_MAX_NODES];
    unsigned n = replica_member_indices(c, first, size, idx);
    for (unsigned i = 0; i < n && i < cap; i++) {
        const char *a = c->nodes[idx[i]].address;
        snprintf(names[i], CLUSTER_NODE_NAME_MAX, "%.*s", (int)cluster_address_name_len(a), a);
    }
    return n < cap ? n : cap;
}

/* Deletes a closed group's log: the files raft_uv keeps in its directory, then the directory. */
static void
replica_remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    char path[4400];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (unlink(path) < 0)
            log_msg(LOG_WARNING, "cluster: cannot delete %s: %s", path, strerror(errno));
    }
    closedir(d);
    if (rmdir(dir) < 0)
        log_msg(LOG_WARNING, "cluster: cannot delete %s: %s", dir, strerror(errno));
}

/* The group is gone (closed, or never started): the handle follows if the broker let go. */
static void
replica_group_gone(struct cluster_replica *r)
{
    struct cluster *c = r->c;
    r->g = NULL;
    if (r->destroy)
        replica_remove_dir(r->dir);
    r->ops->closed(r->raft_arg, r->destroy);
    if (r->handle_gone)
        free(r);
    c->n_replica_groups--;
    cluster_replicas_closed(c);
}

static void
replica_on_closed(void *arg)
{
    replica_group_gone(arg);
}

/* Raft thread: the group is out of the list that node-link messages are looked up in, before
 * its close (calls run in order). */
static void
replica_unlist_on_raft(struct cluster_call *call)
{
    struct cluster_replica *r =
        (struct cluster_replica *)((char *)call - offsetof(struct cluster_replica, unlist_call));
    struct cluster_replica **p = &r->c->replicas_raft;
    while (*p != NULL && *p != r)
        p = &(*p)->raft_next;
    if (*p == r)
        *p = r->raft_next;
}

static void
replica_close_group(struct cluster_replica *r)
{
    r->closing = true;
    r->unlist_call.fn = replica_unlist_on_raft;
    cluster_thread_call(r->c->thread, &r->unlist_call);
    cluster_group_close(r->g, REPLICA_CLOSE_DRAIN_MS, replica_on_closed, r);
}

static void
replica_started_on_broker(struct cluster_call *call)
{
    struct cluster_replica *r =
        (struct cluster_replica *)((char *)call - offsetof(struct cluster_replica, started_call));
    if (r->start_rc < 0) {
        log_msg(LOG_ERROR, "cluster: the replicated queue group %llu did not start: %s",
                (unsigned long long)r->id, cluster_group_error(r->g));
        cluster_group_free(r->g);
        replica_group_gone(r);
        return;
    }
    r->started = true;
    if (r->handle_gone || r->c->closing)
        replica_close_group(r);
}

/* Raft thread. */
static void
replica_on_started(void *arg, int rc)
{
    struct cluster_replica *r = arg;
    r->start_rc = rc;
    if (rc < 0)
        replica_unlist_on_raft(&r->unlist_call);
    r->started_call.fn = replica_started_on_broker;
    cluster_thread_post(r->c->thread, &r->started_call);
}

static void
replica_start_on_raft(struct cluster_call *call)
{
    struct cluster_replica *r =
        (struct cluster_replica *)((char *)call - offsetof(struct cluster_replica, start_call));
    r->raft_next = r->c->replicas_raft;
    r->c->replicas_raft = r;
    cluster_group_start(r->g, r->c->transport, replica_on_started, r);
}

void
cluster_replica_on_message(struct cluster *c, uint64_t group, uint64_t peer, uint8_t type,
                           const uint8_t *body, size_t len)
{
    for (struct cluster_replica *r = c->replicas_raft; r != NULL; r = r->raft_next)
        if (r->id == group) {
            cluster_group_on_message(r->g, peer, type, body, len);
            return;
        }
}

static void
replica_changed(void *arg, const struct cluster_group_status *st)
{
    struct cluster_replica *r = arg;
    if (r->handle_gone)
        return;
    char leader[CLUSTER_NODE_NAME_MAX] = "";
    for (unsigned i = 0; i < st->n_members; i++)
        if (st->members[i].id == st->leader_id)
            snprintf(leader, sizeof(leader), "%.*s",
                     (int)cluster_address_name_len(st->members[i].address), st->members[i].address);
    r->ops->changed(r->arg, st->role == CLUSTER_LEADER, st->term, leader);
}

/* ---- the state machine, on the Raft thread (the group's raft_arg is the handle) ---- */

static int
replica_apply_raft(void *arg, uint64_t index, const uint8_t *cmd, size_t len)
{
    struct cluster_replica *r = arg;
    return r->ops->apply(r->raft_arg, index, cmd, len);
}

static void
replica_applied_raft(void *arg, uint64_t index)
{
    struct cluster_replica *r = arg;
    r->ops->applied(r->raft_arg, index);
}

static int
replica_snapshot_raft(void *arg, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct cluster_replica *r = arg;
    return r->ops->snapshot(r->raft_arg, bufs, n_bufs);
}

/* A restore told to the loop (ops->restored). */
struct replica_restored {
    struct cluster_call call;
    struct cluster_replica *r;
};

static void
replica_restored_on_broker(struct cluster_call *call)
{
    struct replica_restored *p = (struct replica_restored *)call;
    struct cluster_replica *r = p->r; /* (freed only once its group's close is posted too) */
    free(p);
    if (!r->handle_gone)
        r->ops->restored(r->arg);
}

static int
replica_restore_raft(void *arg, struct raft_buffer *buf)
{
    struct cluster_replica *r = arg;
    int rc = r->ops->restore(r->raft_arg, buf);
    if (rc != 0 || r->ops->restored == NULL)
        return rc;
    struct replica_restored *p = malloc(sizeof(*p));
    if (p == NULL) {
        log_msg(LOG_ERROR,
                "cluster: replicated queue group %llu: out of memory: a snapshot "
                "restored is not acted on before the next start",
                (unsigned long long)r->id);
        return 0;
    }
    p->r = r;
    p->call.fn = replica_restored_on_broker;
    cluster_thread_post(r->c->thread, &p->call);
    return 0;
}

static const struct cluster_group_ops replica_group_ops = {
    .changed = replica_changed,
    .apply_raft = replica_apply_raft,
    .applied_raft = replica_applied_raft,
    .snapshot = replica_snapshot_raft,
    .restore = replica_restore_raft,
};

/* A call of the state machine's (cluster_replica_call). */
struct replica_call {
    struct cluster_call call;
    struct cluster_thread *thread;
    void *raft_arg;
    void (*fn)(void *raft_arg, void *arg);
    void (*done)(void *arg);
    void *arg;
};

static void
replica_call_on_broker(struct cluster_call *call)
{
    struct replica_call *rc = (struct replica_call *)call;
    void (*done)(void *) = rc->done;
    void *arg = rc->arg;
    free(rc);
    done(arg);
}

static void
replica_call_on_raft(struct cluster_call *call)
{
    struct replica_call *rc = (struct replica_call *)call;
    rc->fn(rc->raft_arg, rc->arg);
    rc->call.fn = replica_call_on_broker;
    cluster_thread_post(rc->thread, &rc->call);
}

int
cluster_replica_call(struct cluster_replica *r, void (*fn)(void *raft_arg, void *arg),
                     void (*done)(void *arg), void *arg)
{
    /* Started and not closing: raft_arg stays the Raft thread's until after this call ran
     * there (a group's close, and the closed op that frees raft_arg, come after it). */
    if (r->g == NULL || !r->started || r->closing) {
        errno = ESHUTDOWN;
        return -1;
    }
    struct replica_call *rc = malloc(sizeof(*rc));
    if (rc == NULL)
        return -1;
    *rc = (struct replica_call){.call.fn = replica_call_on_raft,
                                .thread = r->c->thread,
                                .raft_arg = r->raft_arg,
                                .fn = fn,
                                .done = done,
                                .arg = arg};
    cluster_thread_call(r->c->thread, &rc->call);
    return 0;
}

void
cluster_replica_hand_over(struct cluster_replica *r, const char *to)
{
    if (r->g == NULL || !r->started || r->closing)
        return;
    raft_id id = 0;
    const struct cluster_group_status *st = cluster_group_status(r->g);
    for (unsigned i = 0; to != NULL && i < st->n_members; i++) {
        const char *a = st->members[i].address;
        if (cluster_address_name_len(a) == strlen(to) && memcmp(a, to, strlen(to)) == 0)
            id = st->members[i].id;
    }
    if (to == NULL || id != 0)
        cluster_group_hand_over(r->g, id);
}

struct cluster_replica *
cluster_replica_open(struct cluster *c, uint64_t id, const char *first, unsigned size,
                     const struct cluster_replica_ops *ops, void *arg, void *raft_arg)
{
    if (c->closing) {
        errno = ESHUTDOWN;
        return NULL;
    }
    struct cluster_replica *r;
    LIST_FOREACH(r, &c->replicas, link)
        if (r->id == id) {
            errno = EEXIST;
            return NULL;
        }
    unsigned idx[CLUSTER_MAX_NODES];
    unsigned n = first != NULL ? replica_member_indices(c, first, size, idx) : 0;
    struct cluster_member initial[CLUSTER_MAX_NODES];
    int self = -1;
    for (unsigned i = 0; i < n; i++) {
        initial[i] = c->nodes[idx[i]];
        initial[i].voter = true;
        if (initial[i].id == c->self_id)
            self = (int)i;
    }
    if (first != NULL && self < 0) {
        errno = ENOENT;
        return NULL;
    }
    if ((r = calloc(1, sizeof(*r))) == NULL)
        return NULL;
    r->c = c;
    r->id = id;
    r->ops = ops;
    r->arg = arg;
    r->raft_arg = raft_arg;
    if (snprintf(r->dir, sizeof(r->dir), "%s/cluster/q%llu", c->data_dir, (unsigned long long)id) >=
        (int)sizeof(r->dir)) {
        free(r);
        errno = ENAMETOOLONG;
        return NULL;
    }
    struct cluster_group_options o = {.id = id,
                                      .dir = r->dir,
                                      .self_id = c->self_id,
                                      .self_address = c->self_address,
                                      .n_initial = n,
                                      .initial = initial,
                                      .ops = &replica_group_ops,
                                      .arg = r,
                                      .raft_arg = r,
                                      .snapshot_threshold = REPLICA_SNAPSHOT_THRESHOLD,
                                      .snapshot_trailing = REPLICA_SNAPSHOT_TRAILING,
                                      .segment_size = REPLICA_SEGMENT_SIZE};
    char err[256];
    if ((r->g = cluster_group_new(c->base, c->thread, &o, err, sizeof(err))) == NULL) {
        log_msg(LOG_ERROR, "cluster: replicated queue group %llu: %s", (unsigned long long)id, err);
        free(r);
        errno = ENOMEM;
        return NULL;
    }
    if (first == NULL)
        cluster_group_skip_bootstrap(r->g);
    LIST_INSERT_HEAD(&c->replicas, r, link);
    c->n_replica_groups++;
    r->start_call.fn = replica_start_on_raft;
    cluster_thread_call(c->thread, &r->start_call);
    return r;
}

int
cluster_replica_change(struct cluster_replica *r, const char *node, bool add,
                       cluster_change_fn done, void *arg)
{
    const struct cluster_member *m = cluster_member_named(r->c, node);
    if (m == NULL) {
        errno = ENOENT;
        return -1;
    }
    if (r->g == NULL || !r->started || r->closing) {
        errno = ESHUTDOWN;
        return -1;
    }
    return add ? cluster_group_add(r->g, m->id, m->address, done, arg)
               : cluster_group_remove(r->g, m->id, true, done, arg);
}

bool
cluster_replica_view(const struct cluster_replica *r, struct cluster_replica_view *v)
{
    if (r->g == NULL)
        return false;
    const struct cluster_group_status *st = cluster_group_status(r->g);
    v->n_members = 0;
    v->leader[0] = '\0';
    for (unsigned i = 0; i < st->n_members && i < CLUSTER_MAX_NODES; i++) {
        const char *a = st->members[i].address;
        snprintf(v->names[i], CLUSTER_NODE_NAME_MAX, "%.*s", (int)cluster_address_name_len(a), a);
        if (st->members[i].id == st->leader_id)
            snprintf(v->leader, sizeof(v->leader), "%s", v->names[i]);
        v->online[i] = st->members[i].reachable;
        v->n_members++;
    }
    v->term = st->term;
    v->commit_index = st->commit_index;
    v->last_applied = st->last_applied;
    return true;
}

int
cluster_replica_submit(struct cluster_replica *r, const void *cmd, size_t len, cluster_done_fn done,
                       void *arg)
{
    if (r->g == NULL || r->closing) {
        errno = ESHUTDOWN;
        return -1;
    }
    return cluster_group_submit(r->g, cmd, len, done, arg);
}

void
cluster_replica_close(struct cluster_replica *r, bool destroy)
{
    LIST_REMOVE(r, link);
    r->handle_gone = true;
    r->destroy = destroy;
    if (r->g == NULL) {
        if (destroy)
            replica_remove_dir(r->dir);
        free(r);
    } else if (r->started && !r->closing) {
        replica_close_group(r);
    } /* else: closing already, or closed once started (replica_started_on_broker) */
}

void
cluster_replicas_close(struct cluster *c)
{
    struct cluster_replica *r;
    LIST_FOREACH(r, &c->replicas, link)
        if (r->g != NULL && r->started && !r->closing)
            replica_close_group(r);
}
