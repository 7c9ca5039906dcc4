/* Replicated queues in a cluster (x-queue-type quorum): each has a Raft group of its own
 * (warren/cluster.h's cluster_replica), whose members are the nodes that keep a copy of it.
 *
 * The queue's commands are the log. The member that leads the group serves the queue: its
 * struct queue is live, in memory, and every command it applies (queue.h's journal) is
 * submitted to the group as it happens; every member, the leader included, applies the
 * committed commands to its image in the store, on its Raft thread (quorum_image.c), so that
 * the images are the same on all of them at the same index. A publisher's confirm waits for
 * its enqueue to be committed (on a majority of the members' disks: raft_uv syncs its log)
 * and applied here. The other nodes route to the leader as to any queue's home: the metadata
 * log's 'H' names it (every node applies it to q->home), so forwarding (forward.c) and remote
 * consumers (relay.c) work as for a classic queue.
 *
 * A member that starts to lead commits a marker first: once it is applied here, every
 * command committed before is in the image, which is loaded into the queue (its delivered
 * entries back as redelivered: their consumers were the old leader's), and the queue goes live
 * and names this node its home ('H'). The marker's index is the epoch: every command carries
 * the epoch of the leader that made it, and one of another epoch is ignored by every member
 * (a deposed leader's commands, forwarded to the new one before it heard, would otherwise
 * change an image its live queue does not have). A member that stops leading empties its
 * queue (queue_reset: its unacked entries are left to their channels, and the next leader
 * delivers them again); the other nodes' consumers hear that it is gone from here ('Z'), and
 * wait for the next home, as this node's own consumers do, parked (relay.c).
 *
 * Commands (quorum_int.h): [u8 op][u64 epoch] then
 *   'E' enqueue  [u64 seq][u64 expires at (us; 0 never)][the message's record (durable.h)]
 *   'D' deliver  [u64 seq]                  the lane's delivery watermark moves to seq
 *   'S' settle   [u64 seq]                  the entry left (acked, dropped, purged, released)
 *   'R' requeue  [u64 seq][u32 count]       ready again, requeued count times
 *   'X' died     [u64 seq][u32 count][u8 reason]   kept as a dead letter (at-least-once)
 *   'M' marker   [u64 term][the leader's name]     (epoch 0) a leader starts its epoch
 *
 * A member too far behind for the leader's log gets a snapshot instead: the image's positions,
 * not its messages (quorum_snapshot.c). It fetches those from the other members
 * (quorum_fetch.c) and does not serve the queue until it has them all: elected meanwhile, it
 * hands the leadership over.
 *
 * Members are added and removed after the declare by the queue's leader (quorum_members.c):
 * the metadata log's 'G' has a node open the group as a new member, empty, for the leader to
 * fill, and its 'g' has a member removed from the group close it and delete its copy.
 *
 * Not yet: paging the leader's backlog (it is in memory there). */
#include "config.h"

#include "quorum.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <event2/event.h>

#include "net_int.h"
#include "quorum_int.h"
#include "relay.h"
#include "topology.h"
#include "warren/bytes.h"
#include "warren/cluster.h"
#include "warren/durable.h"
#include "warren/log.h"
#include "warren/msg.h"
#include "warren/queue.h"
#include "warren/vhost.h"

/* How long a declare waits for its new queue's first leader (a few elections' worth). */
#define QUORUM_SERVED_WAIT_MS 10000

struct quorum_replica {
    struct queue_replica base;       /* q->replica */
    LIST_ENTRY(quorum_replica) link; /* in nq->replicas */
    struct net_quorum *nq;           /* borrows */
    struct queue *q;                 /* borrows: the queue frees this with its DELETE */
    struct cluster_replica *group;   /* owns */
    uint64_t gid;
    bool leads;                     /* this member leads the group (as raft last said) */
    uint64_t term;                  /* the group's term, as raft last said */
    uint64_t marked_term;           /* the term this member submitted its marker in */
    uint64_t live_epoch;            /* while live: the epoch its commands carry */
    bool claimed;                   /* a leader named itself its home ('H') since it was declared */
    LIST_HEAD(, quorum_wait) waits; /* owns: declares waiting for that */
    /* owns: fetching the messages its image lacks (quorum_fetch.c); NULL when none is */
    struct quorum_fetch *fetch;
    bool live_wanted; /* it leads, its marker applied, but it waits for them to go live */
};

/* A declare of a new replicated queue, answered once a member serves it (or after
 * QUORUM_SERVED_WAIT_MS: publishes are refused until one does). */
struct quorum_wait {
    LIST_ENTRY(quorum_wait) link; /* in r->waits */
    struct event *timer;          /* owns */
    void (*done)(void *arg);
    void *arg;
};

struct net_quorum {
    struct net_server *s; /* borrows: owns this */
    LIST_HEAD(, quorum_replica) replicas;
    struct quorum_members *members; /* owns */
    struct net_quorum_scope *scope; /* borrows: the publish being routed (net_quorum_scope) */
    uint8_t *buf;                   /* owns: a command being made */
    size_t cap;
};

/* The marker's callback names the replica by group (it may go meanwhile). */
struct quorum_ticket {
    struct net_quorum *nq;
    uint64_t gid, term;
};

struct cluster_replica *
quorum_group(const struct queue_replica *base)
{
    return ((const struct quorum_replica *)base)->group;
}

struct quorum_members *
quorum_members(struct net_server *s)
{
    return s->quorum->members;
}

/* The store the images are in (NULL once the node stops). */
static struct store *
quorum_store(const struct net_quorum *nq)
{
    struct durable *d = nq->s->env.vhosts->durable;
    return d != NULL ? durable_store(d) : NULL;
}

static struct quorum_replica *
quorum_find(struct net_quorum *nq, uint64_t gid)
{
    struct quorum_replica *r;
    LIST_FOREACH(r, &nq->replicas, link)
        if (r->gid == gid)
            return r;
    return NULL;
}

/* ---- the leader: its queue's commands into the log ---- */

/* A command of n bytes past the header in nq->buf (grown). NULL on ENOMEM. */
static uint8_t *
quorum_cmd(struct quorum_replica *r, uint8_t op, size_t n)
{
    struct net_quorum *nq = r->nq;
    if (QUORUM_HDR + n > nq->cap) {
        size_t cap = nq->cap > 0 ? nq->cap : 256;
        while (cap < QUORUM_HDR + n)
            cap *= 2;
        uint8_t *b = realloc(nq->buf, cap);
        if (b == NULL)
            return NULL;
        nq->buf = b;
        nq->cap = cap;
    }
    nq->buf[0] = op;
    bytes_put64(nq->buf + 1, r->live_epoch);
    return nq->buf + QUORUM_HDR;
}

/* Submits the command made in nq->buf, answered to done(arg) (may be NULL). */
static int
quorum_submit(struct quorum_replica *r, size_t n, cluster_done_fn done, void *arg)
{
    int rc = cluster_replica_submit(r->group, r->nq->buf, QUORUM_HDR + n, done, arg);
    if (rc < 0)
        log_msg(LOG_ERROR, "cluster: queue '%s': a command not replicated: %s", r->q->name,
                strerror(errno));
    return rc;
}

/* A command of one seq (and a count, and a reason). */
static void
quorum_submit_seq(struct quorum_replica *r, uint8_t op, uint64_t seq, uint32_t count,
                  uint8_t reason)
{
    size_t n = op == QUORUM_REQUEUE ? 12 : op == QUORUM_DIED ? 13 : 8;
    uint8_t *p = quorum_cmd(r, op, n);
    if (p == NULL) {
        log_msg(LOG_ERROR, "cluster: queue '%s': out of memory replicating a command", r->q->name);
        return;
    }
    bytes_put64(p, seq);
    if (n > 8)
        bytes_put32(p + 8, count);
    if (n > 12)
        p[12] = reason;
    quorum_submit(r, n, NULL, NULL);
}

/* An enqueue: the publisher's scope (if any) waits for it. */
static void
quorum_submit_enqueue(struct quorum_replica *r, const struct queue_cmd *c)
{
    struct net_quorum_scope *sc = r->nq->scope;
    uint8_t hdr[DURABLE_MSG_HDR_LEN];
    struct iovec parts[DURABLE_MSG_PARTS];
    durable_msg_parts(hdr, c->m, parts);
    size_t n = 16;
    for (int i = 0; i < DURABLE_MSG_PARTS; i++)
        n += parts[i].iov_len;
    uint8_t *p = quorum_cmd(r, QUORUM_ENQUEUE, n);
    void *held = sc != NULL ? sc->hold(sc) : NULL;
    if (p == NULL) {
        log_msg(LOG_ERROR, "cluster: queue '%s': out of memory replicating a publish", r->q->name);
    } else {
        bytes_put64(p, c->seq);
        bytes_put64(p + 8, c->e != NULL ? c->e->expires_at : 0);
        p += 16;
        for (int i = 0; i < DURABLE_MSG_PARTS; i++) {
            memcpy(p, parts[i].iov_base, parts[i].iov_len);
            p += parts[i].iov_len;
        }
        if (quorum_submit(r, n, held != NULL ? sc->answer : NULL, held) == 0)
            return;
    }
    if (sc != NULL)
        sc->failed = true;
    if (held != NULL)
        sc->answer(held, CLUSTER_FAILED, 0);
}

static void quorum_replica_free(struct quorum_replica *r, bool destroy);

/* The queue's journal (queue.h), after the durable layer's. */
static void
quorum_journal(struct queue_replica *base, const struct queue_cmd *c)
{
    struct quorum_replica *r = (struct quorum_replica *)base;
    if (c->kind == QUEUE_CMD_DELETE) {
        quorum_replica_free(r, true);
        return;
    }
    if (!base->live)
        return; /* loading the image (replayed enqueues), or nothing to say */
    switch (c->kind) {
    case QUEUE_CMD_ENQUEUE:
        if (!c->replayed)
            quorum_submit_enqueue(r, c);
        break;
    case QUEUE_CMD_DELIVER:
        quorum_submit_seq(r, QUORUM_DELIVER, c->seq, 0, 0);
        break;
    case QUEUE_CMD_SETTLE:
    case QUEUE_CMD_DROP:
    case QUEUE_CMD_DLX_RELEASE:
        quorum_submit_seq(r, QUORUM_SETTLE, c->e->seq, 0, 0);
        break;
    case QUEUE_CMD_REQUEUE:
        quorum_submit_seq(r, QUORUM_REQUEUE, c->e->seq, c->e->delivery_count, 0);
        break;
    case QUEUE_CMD_DLX_HOLD:
        quorum_submit_seq(r, QUORUM_DIED, c->e->seq, c->e->delivery_count, c->e->dlx_reason);
        break;
    case QUEUE_CMD_PURGE: {
        struct qentry *e;
        TAILQ_FOREACH(e, c->dropped, link)
            quorum_submit_seq(r, QUORUM_SETTLE, e->seq, 0, 0);
        break;
    }
    default:
        break;
    }
}

/* ---- leading ---- */

/* Stops serving the queue: another member leads, or will. */
static void
quorum_demote(struct quorum_replica *r)
{
    bool was_live = r->base.live;
    r->base.live = false;
    r->live_epoch = 0;
    r->live_wanted = false;
    if (was_live) {
        log_msg(LOG_INFO, "cluster: queue '%s' in vhost '%s': no longer served here", r->q->name,
                r->q->vhost->name);
        queue_reset(r->q);
        relay_home_queue_lost(r->q); /* this node's consumers stay, parked */
    }
}

/* Names this node the queue's home through the metadata log. */
static void
quorum_claim_home(struct quorum_replica *r)
{
    struct net_server *s = r->nq->s;
    struct topo_buf b;
    topo_cmd_begin(&b, 'H', NULL, r->q->vhost->name, r->gid, cluster_self_name(s->env.cluster));
    topo_cmd_queue_name(&b, (struct wire_str){(const uint8_t *)r->q->name, r->q->name_len});
    if (topo_cmd_submit(s, &b, NULL, NULL) < 0)
        log_msg(LOG_ERROR, "cluster: queue '%s': cannot name this node its home: %s", r->q->name,
                strerror(errno));
}

static void quorum_fetch_start(struct quorum_replica *r);

/* This member leads but cannot serve the queue (why): another member is to, and this one
 * once it can (live_wanted: when its messages are fetched). */
static void
quorum_hand_over(struct quorum_replica *r, const char *why)
{
    log_msg(LOG_WARNING, "cluster: queue '%s' in vhost '%s' is not served here: %s", r->q->name,
            r->q->vhost->name, why);
    queue_reset(r->q);
    cluster_replica_hand_over(r->group, NULL);
}

/* This member's marker is applied here: the image holds every command committed before it.
 * The queue loads it (as the Raft thread wrote it before the marker's result came) and goes
 * live, unless messages of it are still to be fetched here: another member is to serve it
 * then, or this one once they are. */
static void
quorum_go_live(struct quorum_replica *r)
{
    struct queue *q = r->q;
    struct store *st = quorum_store(r->nq);
    struct durable_image_state ist;
    char why[512] = "the node is stopping";
    if (r->fetch != NULL) {
        r->live_wanted = true;
        snprintf(why, sizeof(why), "%" PRIu64 " of its messages are still to be fetched",
                 quorum_fetch_missing(r->fetch));
        quorum_hand_over(r, why);
        return;
    }
    int rc = st != NULL ? durable_image_state_get(st, r->gid, &ist, why, sizeof(why)) : -1;
    if (rc > 0 && ist.epoch_term > r->term)
        return; /* a later leader's epoch already: it serves the queue */
    if (rc > 0 && ist.epoch_term < r->term) {
        quorum_hand_over(r, "its image here is not written (see above)");
        return;
    }
    if (rc == 0)
        snprintf(why, sizeof(why), "its image is missing");
    int64_t n = rc > 0 ? durable_image_load(st, r->gid, q, &ist, why, sizeof(why)) : -1;
    if (n == DURABLE_IMAGE_MISSING) { /* (a snapshot restored, not told to the loop yet) */
        r->live_wanted = true;
        quorum_fetch_start(r);
        quorum_hand_over(r, why);
        return;
    }
    if (n < 0) {
        log_msg(LOG_ERROR, "cluster: queue '%s' in vhost '%s' cannot be served here: %s", q->name,
                q->vhost->name, why);
        queue_reset(q);
        return;
    }
    r->live_epoch = ist.epoch;
    r->base.live = true;
    /* Served here from now on, even before this node applies its own 'H': another node may
     * apply it first and send this one its gets and publishes. */
    free(q->home);
    q->home = NULL;
    log_msg(LOG_INFO,
            "cluster: queue '%s' in vhost '%s' served here (term %" PRIu64 ", %" PRId64
            " messages)",
            q->name, q->vhost->name, r->term, n);
    quorum_claim_home(r);
    queue_dispatch(q);
}

/* Every message of the image is here now. */
static void
quorum_fetched(void *arg)
{
    struct quorum_replica *r = arg;
    quorum_fetch_free(r->fetch);
    r->fetch = NULL;
    if (r->live_wanted && r->leads && !r->base.live) {
        r->live_wanted = false;
        quorum_go_live(r);
    }
}

/* Fetches what the image lacks (after a snapshot restored, or at a start). */
static void
quorum_fetch_start(struct quorum_replica *r)
{
    if (r->fetch != NULL) {
        quorum_fetch_relist(r->fetch);
        return;
    }
    char what[600];
    snprintf(what, sizeof(what), "queue '%s' in vhost '%s'", r->q->name, r->q->vhost->name);
    r->fetch = quorum_fetch_new(r->nq->s, r->group, r->gid, what, quorum_fetched, r);
    if (r->fetch == NULL)
        log_msg(LOG_ERROR,
                "cluster: %s: out of memory: the messages its image lacks here are not "
                "fetched before the next start",
                what);
}

static void
quorum_restored(void *arg)
{
    quorum_fetch_start(arg);
}

/* The marker's outcome: it started this term's epoch (or had: this member's marker of the
 * term committed twice, submitted again after an answer lost). */
static void
quorum_on_marked(void *arg, enum cluster_outcome outcome, int result)
{
    struct quorum_ticket *t = arg;
    struct quorum_replica *r = quorum_find(t->nq, t->gid);
    uint64_t term = t->term;
    free(t);
    if (r == NULL || !r->leads || r->term != term || r->base.live)
        return;
    if (outcome != CLUSTER_COMMITTED || result < 0) {
        r->marked_term = 0; /* submitted again at the group's next change */
        return;
    }
    quorum_go_live(r);
}

static void
quorum_changed(void *arg, bool leads, uint64_t term, const char *leader)
{
    struct quorum_replica *r = arg;
    r->leads = leads;
    r->term = term;
    if (!leads) {
        quorum_demote(r);
        return;
    }
    if (term == r->marked_term)
        return;
    /* A new term led here: the marker first (the queue is served once it is applied). */
    quorum_demote(r);
    struct quorum_ticket *t = malloc(sizeof(*t));
    const char *self = cluster_self_name(r->nq->s->env.cluster);
    size_t name_len = strlen(self);
    uint8_t cmd[QUORUM_HDR + 8 + CLUSTER_NODE_NAME_MAX];
    cmd[0] = QUORUM_MARKER;
    bytes_put64(cmd + 1, 0);
    bytes_put64(cmd + QUORUM_HDR, term);
    memcpy(cmd + QUORUM_HDR + 8, self, name_len);
    if (t != NULL) {
        *t = (struct quorum_ticket){r->nq, r->gid, term};
        if (cluster_replica_submit(r->group, cmd, QUORUM_HDR + 8 + name_len, quorum_on_marked, t) ==
            0) {
            r->marked_term = term;
            return;
        }
    }
    free(t);
    log_msg(LOG_ERROR, "cluster: queue '%s': cannot start leading: %s", r->q->name,
            strerror(errno));
}

static const struct cluster_replica_ops quorum_ops = {
    .changed = quorum_changed,
    .apply = quorum_image_apply,
    .applied = quorum_image_applied,
    .snapshot = quorum_image_snapshot,
    .restore = quorum_image_restore,
    .closed = quorum_image_closed,
    .restored = quorum_restored,
};

/* ---- declares waiting for their queue to be served ---- */

static void
quorum_wait_end(struct quorum_wait *w)
{
    LIST_REMOVE(w, link);
    event_free(w->timer);
    w->done(w->arg);
    free(w);
}

static void
quorum_on_wait_timeout(evutil_socket_t fd, short what, void *arg)
{
    quorum_wait_end(arg);
}

static void
quorum_waits_end(struct quorum_replica *r)
{
    while (!LIST_EMPTY(&r->waits))
        quorum_wait_end(LIST_FIRST(&r->waits));
}

int
net_quorum_wait_served(struct net_server *s, struct queue *q, void (*done)(void *arg), void *arg)
{
    struct quorum_replica *r = (struct quorum_replica *)q->replica;
    if (r == NULL || r->claimed)
        return -1;
    struct quorum_wait *w = calloc(1, sizeof(*w));
    struct timeval tv = {QUORUM_SERVED_WAIT_MS / 1000, (QUORUM_SERVED_WAIT_MS % 1000) * 1000};
    if (w == NULL || (w->timer = evtimer_new(s->env.base, quorum_on_wait_timeout, w)) == NULL ||
        evtimer_add(w->timer, &tv) < 0) {
        if (w != NULL && w->timer != NULL)
            event_free(w->timer);
        free(w);
        return -1;
    }
    w->done = done;
    w->arg = arg;
    LIST_INSERT_HEAD(&r->waits, w, link);
    return 0;
}

/* ---- members ---- */

/* The group size a queue asked for (x-quorum-initial-group-size), 0: every node. */
static unsigned
quorum_group_size(const struct queue *q)
{
    struct wire_value v;
    int64_t n;
    if (wire_table_get((struct wire_table){q->args, q->args_len}, "x-quorum-initial-group-size",
                       &v) &&
        wire_value_to_i64(&v, &n) && n > 0 && n < CLUSTER_MAX_NODES)
        return (unsigned)n;
    return 0;
}

/* How a member's copy of a queue comes to be. */
enum quorum_origin {
    QUORUM_DECLARED, /* the queue was just declared: its group starts with it */
    QUORUM_ADDED,    /* this node was added to the queue's group: its leader fills it */
    QUORUM_RESTORED, /* from the store: its image and log say how far it is */
};

/* Makes q's replication here and opens its group. */
static void
quorum_attach(struct net_quorum *nq, struct queue *q, enum quorum_origin origin)
{
    bool fresh = origin != QUORUM_RESTORED;
    struct cluster *c = nq->s->env.cluster;
    struct store *st = quorum_store(nq);
    struct quorum_replica *r = calloc(1, sizeof(*r));
    struct quorum_image *im =
        st != NULL ? quorum_image_new(st, q->group_id, q->name, q->n_lanes, fresh) : NULL;
    if (r == NULL || im == NULL) {
        if (r == NULL)
            log_msg(LOG_ERROR, "cluster: queue '%s': out of memory: not replicated here", q->name);
        free(r);
        quorum_image_free(im);
        return;
    }
    r->base.journal = quorum_journal;
    r->claimed = origin != QUORUM_DECLARED;
    LIST_INIT(&r->waits);
    r->nq = nq;
    r->q = q;
    r->gid = q->group_id;
    /* The first member is the node that declared it (its home then); a restored group's log
     * has its members already, an added member's gets them from the leader. */
    const char *first = origin != QUORUM_DECLARED ? NULL
                        : q->home != NULL         ? q->home
                                                  : cluster_self_name(c);
    bool missing = im->n_missing > 0; /* (read before the Raft thread has it) */
    r->group = cluster_replica_open(c, r->gid, first, quorum_group_size(q), &quorum_ops, r, im);
    if (r->group == NULL) {
        log_msg(LOG_ERROR, "cluster: queue '%s': its group does not open: %s", q->name,
                strerror(errno));
        free(r);
        quorum_image_free(im);
        return;
    }
    q->replica = &r->base;
    LIST_INSERT_HEAD(&nq->replicas, r, link);
    if (missing)
        quorum_fetch_start(r);
}

/* destroy: the queue was deleted (its group's log and its image go once it is closed); else
 * the node stops. */
static void
quorum_replica_free(struct quorum_replica *r, bool destroy)
{
    LIST_REMOVE(r, link);
    quorum_waits_end(r);
    quorum_fetch_free(r->fetch);
    cluster_replica_close(r->group, destroy);
    r->q->replica = NULL;
    free(r);
}

void
net_quorum_queue_added(struct net_server *s, struct queue *q)
{
    struct cluster *c = s->env.cluster;
    const char *first = q->home != NULL ? q->home : cluster_self_name(c);
    if (s->quorum != NULL && cluster_replica_member(c, first, quorum_group_size(q)))
        quorum_attach(s->quorum, q, QUORUM_DECLARED);
}

void
net_quorum_member_changed(struct net_server *s, struct vhost *vh, struct wire_str name,
                          uint64_t group, struct wire_str node, bool added)
{
    struct queue *q = vhost_queue_find(vh, name);
    const char *self = cluster_self_name(s->env.cluster);
    if (s->quorum == NULL || q == NULL || q->group_id != group || node.len != strlen(self) ||
        memcmp(node.ptr, self, node.len) != 0)
        return;
    struct quorum_replica *r = (struct quorum_replica *)q->replica;
    if (added && r == NULL) {
        log_msg(LOG_INFO, "cluster: queue '%s' in vhost '%s': a member here from now on", q->name,
                vh->name);
        quorum_attach(s->quorum, q, QUORUM_ADDED);
    } else if (!added && r != NULL) {
        log_msg(LOG_INFO,
                "cluster: queue '%s' in vhost '%s': no longer a member here, its copy deleted",
                q->name, vh->name);
        quorum_demote(r);
        quorum_replica_free(r, true);
    }
}

void
net_quorum_home_changed(struct net_server *s, struct vhost *vh, struct wire_str name,
                        uint64_t group, struct wire_str node)
{
    struct queue *q = vhost_queue_find(vh, name);
    if (q == NULL || q->group_id != group)
        return; /* deleted meanwhile */
    const char *self = cluster_self_name(s->env.cluster);
    bool here = node.len == strlen(self) && memcmp(node.ptr, self, node.len) == 0;
    struct quorum_replica *r = (struct quorum_replica *)q->replica;
    if (!here && r != NULL && r->base.live && r->leads) {
        quorum_claim_home(r); /* an older leader's claim, committed late: this one stands */
        return;
    }
    char *home = NULL;
    if (!here && (home = strndup((const char *)node.ptr, node.len)) == NULL) {
        log_msg(LOG_ERROR, "cluster: queue '%s': out of memory naming its home", q->name);
        return;
    }
    free(q->home);
    q->home = home;
    durable_queue_added(vh->durable, q); /* its definition, with its home */
    if (r != NULL) {
        r->claimed = true;
        quorum_waits_end(r);
    }
    if (here)
        return;
    if (r != NULL)
        quorum_demote(r);
    /* This node's consumers of it, parked here, consume where it is served now. */
    relay_follow(s, q);
}

bool
net_quorum_view(const struct queue *q, struct cluster_replica_view *v)
{
    const struct quorum_replica *r = (const struct quorum_replica *)q->replica;
    return r != NULL && cluster_replica_view(r->group, v);
}

/* The running nodes and how many replicated queues each serves, as this node's metadata says
 * (q->home). Returns how many nodes. */
static unsigned
quorum_leader_counts(struct net_server *s, struct cluster_node_view *nodes, unsigned *counts)
{
    unsigned n = cluster_nodes(s->env.cluster, nodes, CLUSTER_MAX_NODES), kept = 0;
    for (unsigned i = 0; i < n; i++)
        if (nodes[i].running)
            nodes[kept++] = nodes[i];
    memset(counts, 0, kept * sizeof(*counts));
    const char *self = cluster_self_name(s->env.cluster);
    for (struct vhost *vh = s->env.vhosts->head; vh != NULL; vh = vh->next) {
        struct hmap_iter it;
        struct hmap_entry *he;
        hmap_iter_init(&it, &vh->queues);
        while ((he = hmap_iter_next(&it)) != NULL) {
            const struct queue *q = hmap_container_of(he, struct queue, by_name);
            const char *home = q->home != NULL ? q->home : self;
            for (unsigned i = 0; q->group_id != 0 && i < kept; i++)
                counts[i] += strcmp(nodes[i].name, home) == 0;
        }
    }
    return kept;
}

void
net_quorum_rebalance(struct net_server *s)
{
    struct net_quorum *nq = s->quorum;
    if (nq == NULL)
        return;
    struct cluster_node_view nodes[CLUSTER_MAX_NODES];
    unsigned counts[CLUSTER_MAX_NODES];
    unsigned n = quorum_leader_counts(s, nodes, counts), self = n, total = 0;
    for (unsigned i = 0; i < n; i++) {
        total += counts[i];
        if (nodes[i].self)
            self = i;
    }
    if (self == n)
        return;
    unsigned fair = (total + n - 1) / n; /* each leads at most this many */
    struct quorum_replica *r;
    LIST_FOREACH(r, &nq->replicas, link) {
        if (counts[self] <= fair)
            break;
        struct cluster_replica_view v;
        if (!r->base.live || !r->leads || !cluster_replica_view(r->group, &v))
            continue;
        /* Its member that serves fewest, if that is better by more than the one moved. */
        unsigned best = n;
        for (unsigned m = 0; m < v.n_members; m++)
            for (unsigned i = 0; i < n; i++)
                if (i != self && v.online[m] && strcmp(nodes[i].name, v.names[m]) == 0 &&
                    counts[i] + 1 < counts[self] && (best == n || counts[i] < counts[best]))
                    best = i;
        if (best == n)
            continue;
        log_msg(LOG_INFO,
                "cluster: queue '%s' in vhost '%s': its leadership goes to %s (rebalance)",
                r->q->name, r->q->vhost->name, nodes[best].name);
        cluster_replica_hand_over(r->group, nodes[best].name);
        counts[self]--;
        counts[best]++;
    }
}

uint64_t
net_quorum_to_fetch(const struct queue *q)
{
    const struct quorum_replica *r = (const struct quorum_replica *)q->replica;
    return r != NULL && r->fetch != NULL ? quorum_fetch_missing(r->fetch) : 0;
}

void
net_rebalance_queues(struct net_server *s)
{
    if (s->quorum == NULL)
        return;
    struct cluster_node_view nodes[CLUSTER_MAX_NODES];
    unsigned n = cluster_nodes(s->env.cluster, nodes, CLUSTER_MAX_NODES);
    for (unsigned i = 0; i < n; i++) {
        uint8_t *b = nodes[i].running && !nodes[i].self ? malloc(1) : NULL;
        if (b != NULL) {
            b[0] = 'B';
            cluster_send(s->env.cluster, nodes[i].name, b, 1); /* (lost: not rebalanced) */
        }
    }
    net_quorum_rebalance(s);
}

void
net_quorum_on_message(struct net_server *s, const char *from, const uint8_t *b, size_t len)
{
    struct net_quorum *nq = s->quorum;
    if (nq != NULL && len == 1 && b[0] == 'B')
        net_quorum_rebalance(s);
    if (nq != NULL && len > 0 && (b[0] == 'M' || b[0] == 'm')) {
        quorum_members_on_message(nq->members, from, b, len);
        return;
    }
    if (nq == NULL || len < 9)
        return;
    struct quorum_replica *r = quorum_find(nq, bytes_get64(b + 1));
    if (b[0] == 'F')
        quorum_fetch_answer(s, r != NULL ? quorum_store(nq) : NULL, from, b, len);
    else if (b[0] == 'f' && r != NULL && r->fetch != NULL)
        quorum_fetch_on_answer(r->fetch, from, b, len);
}

void
net_quorum_scope(struct net_server *s, struct net_quorum_scope *sc)
{
    if (s->quorum != NULL)
        s->quorum->scope = sc;
}

int
net_quorum_open(struct net_server *s)
{
    if (s->env.cluster == NULL)
        return 0;
    struct net_quorum *nq = calloc(1, sizeof(*nq));
    if (nq == NULL)
        return -1;
    nq->s = s;
    LIST_INIT(&nq->replicas);
    if ((nq->members = quorum_members_new(s)) == NULL) {
        free(nq);
        return -1;
    }
    s->quorum = nq;
    /* The replicated queues restored from the store: those with an image here are this
     * node's to replicate. */
    struct store *st = quorum_store(nq);
    for (struct vhost *vh = s->env.vhosts->head; vh != NULL; vh = vh->next) {
        struct hmap_iter it;
        struct hmap_entry *he;
        hmap_iter_init(&it, &vh->queues);
        while ((he = hmap_iter_next(&it)) != NULL) {
            struct queue *q = hmap_container_of(he, struct queue, by_name);
            struct durable_image_state ist;
            char err[256];
            if (q->group_id != 0 && st != NULL &&
                durable_image_state_get(st, q->group_id, &ist, err, sizeof(err)) != 0)
                quorum_attach(nq, q, QUORUM_RESTORED);
        }
    }
    return 0;
}

void
net_quorum_free(struct net_server *s)
{
    struct net_quorum *nq = s->quorum;
    if (nq == NULL)
        return;
    struct quorum_replica *r;
    quorum_members_free(nq->members);
    while ((r = LIST_FIRST(&nq->replicas)) != NULL)
        quorum_replica_free(r, false);
    free(nq->buf);
    free(nq);
    s->quorum = NULL;
}
