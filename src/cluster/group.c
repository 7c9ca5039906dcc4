/* A Raft group (see group.h): submissions batched per loop turn on the broker's loop, raft and
 * raft_uv on the Raft thread, committed entries copied back to the broker's loop.
 *
 * An entry is one batch: [origin: the submitting member's Raft id, u64][its incarnation,
 * u64][the batch's sequence number there, u64], then its commands, each as [u32 length][bytes]
 * (all big-endian), then NUL bytes up to a multiple of 8: raft 0.15's log writer pads an entry
 * to 8 bytes but its loader reads the unpadded length, and an entry of another size made the
 * entries after it in its segment unreadable at the next start (dropped as a torn tail).
 *
 * The member whose entry it is finds its batch by origin and sequence number when it applies
 * the entry, and answers each command's submitter right after the command's apply, with what
 * the apply returned: raft's own completion callback only matters when the entry did not get
 * in (or may not have). The incarnation, random at each start, keeps an entry of an earlier
 * run, committed late, from being taken for a batch of this one. */
#include "config.h"

#include "group.h"

#include <errno.h>
#include <raft/uv.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <uv.h>

#include <event2/event.h>
#include <openssl/rand.h>

#include "raft_thread.h"
#include "transport.h"
#include "warren/log.h"

/* A batch grows to this many bytes before it is submitted within the same loop turn. */
#define GROUP_BATCH_MAX (1u << 20)
/* How often the Raft thread looks at raft's state for changes to publish (ms). */
#define GROUP_WATCH_MS 50
/* A follower that sees its leader's node gone for GROUP_HASTEN_GRACE_MS starts an election
 * within GROUP_HASTENED_ELECTION_MS more (ms). */
#define GROUP_HASTEN_GRACE_MS 300
#define GROUP_HASTENED_ELECTION_MS 150
/* How long a closing member waits for the batches it took for followers (ms). */
#define GROUP_CLOSE_WAIT_MS 2000
/* A batch refused because no member led (an election, a leader just lost) is submitted again
 * every GROUP_RETRY_DELAY_MS, for GROUP_RETRY_MS after its first submission: refused, it is not
 * in the log, so submitting it again cannot make it twice. */
#define GROUP_RETRY_DELAY_MS 100
#define GROUP_RETRY_MS 8000
/* A batch not answered within this long (a forwarded one whose leader died, a partition) is
 * answered CLUSTER_MAYBE: its entry may still commit, but its submitter does not wait on. */
#define GROUP_ANSWER_TIMEOUT_MS 10000
/* The node-link messages of groups: [group id, u64] then the body. */
enum {
    GROUP_MSG_FORWARD = 1, /* a follower's entry for the leader to submit */
    GROUP_MSG_REFUSED = 2, /* [outcome, u8][the entry's header]: it did not, or may not, get in */
    /* a follower's membership change for the leader to make: [the asker's incarnation,
     * u64][its sequence number, u64][GROUP_CHANGE_*, u8][the member's id, u64][its address,
     * for an addition] */
    GROUP_MSG_CHANGE = 3,
    /* the leader's answer: [incarnation, u64][sequence number, u64][enum cluster_change, u8] */
    GROUP_MSG_CHANGED = 4,
};
enum {
    GROUP_CHANGE_REMOVE = 1,    /* a member that is not running (forget_cluster_node) */
    GROUP_CHANGE_ADD = 2,       /* then the member's address */
    GROUP_CHANGE_EVICT = 3,     /* a member, running or not, this one too (delete_member) */
    GROUP_CHANGE_ADD_VOTER = 4, /* as ADD, answered once a voter (add_member) */
};
#define GROUP_CHANGE_MSG 25
#define GROUP_CHANGED_MSG 17

/* raft_uv's open segments (it keeps up to three preallocated) unless the options say: the
 * metadata's entries are small, and 3 x raft's default 8 MiB per group would be disk for
 * nothing. */
#define GROUP_SEGMENT_SIZE (2u << 20)

struct group_waiter {
    cluster_done_fn done;
    void *arg;
};

#define GROUP_HEADER 24 /* origin, incarnation, sequence number */

/* One batch of commands, on the broker's loop: filled during a loop turn, then pending until
 * its entry is applied or known to be refused. */
struct group_batch {
    struct group_batch *next; /* the group's pending list */
    uint64_t seq;
    uint64_t submitted_ms; /* on the monotonic clock */
    uint64_t retry_ms;     /* when to submit it again (refused: no leader); 0: not to */
    uint8_t *entry;        /* raft_malloc'ed; each submission hands raft a copy */
    size_t len, cap;
    unsigned n_waiters, cap_waiters;
    struct group_waiter *waiters; /* owns */
};

/* One raft_apply: made on the broker's loop, run on the Raft thread, and back on the broker's
 * loop only when the entry did not (or may not) get in. */
struct group_submit {
    struct cluster_call call;
    struct cluster_group *g;
    struct raft_apply req;
    struct raft_buffer buf; /* the entry: raft's once raft_apply accepted it */
    uint64_t seq;
    enum cluster_outcome outcome;
};

/* A committed entry, copied for the broker's loop. */
struct group_applied {
    struct cluster_call call;
    struct cluster_group *g;
    uint64_t index; /* the entry's in the log */
    size_t len;
    /* with ops->apply_raft: its commands' results, after the entry's header (the data) */
    int *results;
    size_t n_results;
    uint8_t data[];
};

/* A membership change: made on the broker's loop of the member asked (or, for a follower's
 * request, on the leader's Raft thread), run by raft on the leader, answered on the asker's
 * broker's loop. */
struct group_change {
    struct cluster_call call;
    struct cluster_group *g;
    struct raft_change req;
    struct group_change *next;         /* the asker's list of changes forwarded to the leader */
    uint8_t op;                        /* GROUP_CHANGE_* */
    raft_id id;                        /* the member changed */
    char address[CLUSTER_ADDRESS_MAX]; /* an addition's */
    uint64_t peer;             /* on the leader, a follower's request: the asker (0: ours) */
    uint64_t incarnation, seq; /* a forwarded request's, which its answer names */
    uint64_t sent;             /* uv_now when forwarded */
    enum cluster_change outcome;
    cluster_change_fn done; /* on the broker's loop, or on the Raft thread with on_raft */
    void *arg;
    bool on_raft;
};

struct group_status_post {
    struct cluster_call call;
    struct cluster_group *g;
    struct cluster_group_status st;
};

struct cluster_group {
    struct cluster_thread *thread; /* borrows */
    const struct cluster_group_ops *ops;
    void *arg, *raft_arg;
    unsigned election_timeout_ms;
    unsigned snapshot_threshold, snapshot_trailing;
    size_t segment_size;
    bool kick_commits, links_members; /* the options' */
    uint64_t hastened_term;           /* the term whose leader's loss hastened the election here */
    uint64_t leader_link_term;        /* the term whose leader this follower saw linked */
    uint64_t leader_link_down_at;     /* uv_now when that link was first seen down; 0: up */
    uint64_t id;
    char dir[4096];
    raft_id self_id;
    char self_address[CLUSTER_ADDRESS_MAX];
    unsigned n_initial;
    struct cluster_member initial[CLUSTER_GROUP_MAX_MEMBERS];
    char error[1024];     /* why the start failed */
    uint64_t incarnation; /* random at each start (see the top of the file) */

    /* Raft thread only */
    struct raft raft;
    struct raft_io io;
    struct raft_fsm fsm;
    struct raft_uv_transport transport;
    uv_timer_t watch;
    /* The leader's kick (group_on_kick): a barrier entry after entries applied, so that the
     * followers hear of their commit at once rather than at the next heartbeat. */
    uv_timer_t kick;
    bool kick_ready;                  /* kick is initialised and the group not closing */
    bool kick_wanted;                 /* entries were applied since the last barrier was appended */
    bool kick_in_flight;              /* a barrier is appended, not committed yet */
    struct cluster_group_status seen; /* last published */
    struct cluster_transport *tr;     /* borrows; the node's */
    struct cluster_call close_call;
    struct raft_transfer transfer; /* a closing leader's handover */
    unsigned forwarded_in_flight;  /* followers' batches in raft_apply */
    uint64_t close_wait_start;     /* uv_now when raft was asked to close */
    struct group_change *changes;  /* owns: this member's, forwarded, awaiting an answer */
    bool had_log;                  /* the log was not pristine at the start, or is the leader's */
    uint64_t next_change;          /* their sequence numbers */
    void (*started)(void *arg, int rc);
    void *started_arg;

    /* Broker's loop only */
    struct cluster_group_status status;
    struct event *flush;        /* owns; submits the open batch at the end of the turn */
    struct event *answer_timer; /* owns; answers the batches pending too long */
    struct event *retry_timer;  /* owns; submits again the batches refused for no leader */
    struct group_batch *open;   /* owns; the batch being filled, or NULL */
    struct group_batch *pending, **pending_tail; /* owns; submitted, in sequence order */
    uint64_t next_seq;
    unsigned in_flight; /* batches pending */
    bool closing;
    struct event *drain_timer; /* owns, while closing with batches in flight */
    void (*closed)(void *arg);
    void *closed_arg;
    struct cluster_call closed_call;
};

/* ---- Raft thread ---- */

static uint64_t
group_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void
group_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static void group_req_on_broker(struct cluster_call *call);

static void
group_req_back(struct group_submit *q, enum cluster_outcome outcome)
{
    q->outcome = outcome;
    q->call.fn = group_req_on_broker;
    cluster_thread_post(q->g->thread, &q->call);
}

static void
group_req_on_applied(struct raft_apply *req, int status, void *result)
{
    struct group_submit *q = req->data;
    if (status == 0) { /* the apply answered the batch */
        free(q);
        return;
    }
    group_req_back(q, CLUSTER_MAYBE); /* it was in the log: it may commit yet */
}

/* Sends a message of type with [group id][bytes] to peer. Returns 0, or -1 when it could not
 * be queued (no live link, ENOMEM). */
static int
group_send(struct cluster_group *g, uint64_t peer, uint8_t type, const void *bytes, size_t len)
{
    uint8_t *msg = malloc(8 + len);
    if (msg == NULL)
        return -1;
    group_put64(msg, g->id);
    memcpy(msg + 8, bytes, len);
    int rc = cluster_transport_send(g->tr, peer, type, msg, 8 + len);
    free(msg);
    return rc;
}

/* A follower's batch goes to the leader, which submits it as its own: the batch is answered by
 * its apply here, a GROUP_MSG_REFUSED from the leader, or the broker's timeout. */
static void
group_forward(struct group_submit *q)
{
    struct cluster_group *g = q->g;
    raft_id leader;
    const char *address;
    raft_leader(&g->raft, &leader, &address);
    if (leader == 0 || leader == g->self_id ||
        group_send(g, leader, GROUP_MSG_FORWARD, q->buf.base, q->buf.len) < 0) {
        group_req_back(q, CLUSTER_NOT_LEADER);
        return;
    }
    raft_free(q->buf.base);
    free(q);
}

static void
group_req_on_raft(struct cluster_call *call)
{
    struct group_submit *q = (struct group_submit *)call;
    if (raft_state(&q->g->raft) != RAFT_LEADER) {
        group_forward(q);
        return;
    }
    q->req.data = q;
    int rc = raft_apply(&q->g->raft, &q->req, &q->buf, 1, group_req_on_applied);
    if (rc != 0) /* not in the log: the entry is still ours, freed with the request */
        group_req_back(q, rc == RAFT_NOTLEADER ? CLUSTER_NOT_LEADER : CLUSTER_FAILED);
    else
        q->buf.base = NULL; /* raft's now */
}

/* A batch a follower forwarded, in raft on its behalf. */
struct group_forwarded {
    struct raft_apply req;
    struct cluster_group *g;
    uint64_t peer;
    uint8_t origin[GROUP_HEADER]; /* its entry's header: who is waiting for it */
};

/* Tells peer that its batch (origin: the entry's header) did not, or may not, get in. */
static void
group_refuse(struct cluster_group *g, uint64_t peer, const uint8_t *origin,
             enum cluster_outcome outcome)
{
    uint8_t msg[1 + GROUP_HEADER];
    msg[0] = (uint8_t)outcome;
    memcpy(msg + 1, origin, GROUP_HEADER);
    group_send(g, peer, GROUP_MSG_REFUSED, msg, sizeof(msg)); /* lost: the peer times out */
}

static void
group_forwarded_on_applied(struct raft_apply *req, int status, void *result)
{
    struct group_forwarded *f = req->data;
    f->g->forwarded_in_flight--;
    if (status != 0) /* it was in the log: it may commit yet */
        group_refuse(f->g, f->peer, f->origin, CLUSTER_MAYBE);
    free(f);
}

static void
group_on_forward(struct cluster_group *g, uint64_t peer, const uint8_t *entry, size_t len)
{
    if (raft_state(&g->raft) != RAFT_LEADER) {
        group_refuse(g, peer, entry, CLUSTER_NOT_LEADER);
        return;
    }
    struct group_forwarded *f = malloc(sizeof(*f));
    struct raft_buffer buf = {.base = raft_malloc(len), .len = len};
    if (f == NULL || buf.base == NULL) {
        free(f);
        raft_free(buf.base);
        group_refuse(g, peer, entry, CLUSTER_FAILED);
        return;
    }
    memcpy(buf.base, entry, len);
    f->g = g;
    f->peer = peer;
    memcpy(f->origin, entry, GROUP_HEADER);
    f->req.data = f;
    int rc = raft_apply(&g->raft, &f->req, &buf, 1, group_forwarded_on_applied);
    if (rc != 0) {
        raft_free(buf.base);
        group_refuse(g, peer, entry, rc == RAFT_NOTLEADER ? CLUSTER_NOT_LEADER : CLUSTER_FAILED);
        free(f);
    } else {
        g->forwarded_in_flight++;
    }
}

/* The leader refused this member's batch: its submitters are told, on the broker's loop. */
static void
group_on_refused(struct cluster_group *g, const uint8_t *msg, size_t len)
{
    if (group_get64(msg + 1) != g->self_id || group_get64(msg + 9) != g->incarnation)
        return; /* an earlier run's */
    struct group_submit *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return; /* the broker's timeout answers it */
    q->g = g;
    q->seq = group_get64(msg + 17);
    group_req_back(q, msg[0] <= CLUSTER_FAILED ? (enum cluster_outcome)msg[0] : CLUSTER_FAILED);
}

static void group_change_on_broker(struct cluster_call *call);
static void group_status_publish(struct cluster_group *g);

/* A change's end: its outcome goes back to the member that asked (lost on the way, the asker
 * times out), after the members it made, so that the broker sees them once answered. Frees or
 * hands on ch. */
static void
group_change_end(struct group_change *ch, enum cluster_change outcome)
{
    struct cluster_group *g = ch->g;
    group_status_publish(g);
    if (ch->peer == 0 && ch->on_raft) {
        ch->done(ch->arg, outcome);
        free(ch);
        return;
    }
    if (ch->peer == 0) {
        ch->outcome = outcome;
        ch->call.fn = group_change_on_broker;
        cluster_thread_post(g->thread, &ch->call);
        return;
    }
    uint8_t msg[GROUP_CHANGED_MSG];
    group_put64(msg, ch->incarnation);
    group_put64(msg + 8, ch->seq);
    msg[16] = (uint8_t)outcome;
    group_send(g, ch->peer, GROUP_MSG_CHANGED, msg, sizeof(msg));
    free(ch);
}

/* What raft's status for a change means for its asker. */
static enum cluster_change
group_change_outcome(int rc)
{
    switch (rc) {
    case 0:
        return CLUSTER_CHANGE_DONE;
    case RAFT_CANTCHANGE:
        return CLUSTER_CHANGE_BUSY;
    case RAFT_NOTLEADER:
        return CLUSTER_CHANGE_NO_LEADER;
    case RAFT_BADID:
    case RAFT_NOTFOUND:
        return CLUSTER_CHANGE_NOT_MEMBER;
    case RAFT_LEADERSHIPLOST: /* appended, then the leader lost: it may commit */
        return CLUSTER_CHANGE_UNKNOWN;
    default:
        return CLUSTER_CHANGE_FAILED;
    }
}

/* The new member is a voter (caught up first by raft), or could not be made one: it stays a
 * spare, which an operator forgets. An ADD_VOTER's asker hears it now; an ADD's heard when it
 * was added, and ch is a copy. */
static void
group_change_on_assigned(struct raft_change *req, int status)
{
    struct group_change *ch = req->data;
    if (status == 0)
        log_msg(LOG_INFO, "cluster: group %llu: %s is a voter", (unsigned long long)ch->g->id,
                ch->address);
    else
        log_msg(LOG_WARNING, "cluster: group %llu: %s stays a spare: %s",
                (unsigned long long)ch->g->id, ch->address, raft_strerror(status));
    if (ch->op == GROUP_CHANGE_ADD_VOTER)
        group_change_end(ch, group_change_outcome(status));
    else
        free(ch);
}

/* Has raft make ch's member a voter, on a change of its own: ch itself for an ADD_VOTER,
 * answered then; a copy for an ADD (ch is answered meanwhile). */
static void
group_change_promote(struct group_change *ch)
{
    struct group_change *assign = ch;
    if (ch->op != GROUP_CHANGE_ADD_VOTER && (assign = malloc(sizeof(*assign))) == NULL) {
        log_msg(LOG_WARNING, "cluster: %s stays a spare: out of memory", ch->address);
        return;
    }
    if (assign != ch)
        *assign = *ch;
    assign->req.data = assign;
    int rc = raft_assign(&ch->g->raft, &assign->req, ch->id, RAFT_VOTER, group_change_on_assigned);
    if (rc != 0)
        group_change_on_assigned(&assign->req, rc);
}

/* A new member in the configuration, as a spare: an ADD's asker is answered now, as the member
 * (a node joining) only starts receiving the log once answered; raft then catches it up and
 * makes it a voter (raft_assign). */
static void
group_change_on_added(struct raft_change *req, int status)
{
    struct group_change *ch = req->data;
    struct cluster_group *g = ch->g;
    if (status != 0) {
        log_msg(LOG_WARNING, "cluster: group %llu: adding %s: %s", (unsigned long long)g->id,
                ch->address, raft_strerror(status));
        group_change_end(ch, group_change_outcome(status));
        return;
    }
    log_msg(LOG_INFO, "cluster: group %llu: %s added", (unsigned long long)g->id, ch->address);
    bool answered_now = ch->op == GROUP_CHANGE_ADD;
    group_change_promote(ch);
    if (answered_now)
        group_change_end(ch, CLUSTER_CHANGE_DONE);
}

static void
group_change_on_committed(struct raft_change *req, int status)
{
    struct group_change *ch = req->data;
    if (status == 0)
        log_msg(LOG_INFO, "cluster: group %llu: member %llx removed", (unsigned long long)ch->g->id,
                (unsigned long long)ch->id);
    else
        log_msg(LOG_WARNING, "cluster: group %llu: removing member %llx: %s",
                (unsigned long long)ch->g->id, (unsigned long long)ch->id, raft_strerror(status));
    group_change_end(ch, group_change_outcome(status));
}

/* On the leader: the change goes to raft, which answers once the new configuration is
 * committed. A member the leader sees alive (itself included) is not removed unless evicted:
 * RabbitMQ forgets only a stopped node, and a running one removed would go on as if a member;
 * an evicted one is told to stop by its owner (a replicated queue's member deleted). A leader
 * that evicts itself steps down once the configuration without it is committed (raft). */
static void
group_change_run(struct group_change *ch)
{
    struct cluster_group *g = ch->g;
    ch->req.data = ch;
    if (ch->op == GROUP_CHANGE_ADD || ch->op == GROUP_CHANGE_ADD_VOTER) {
        const struct raft_server *s = NULL;
        for (unsigned i = 0; i < g->raft.configuration.n; i++)
            if (g->raft.configuration.servers[i].id == ch->id)
                s = &g->raft.configuration.servers[i];
        if (s == NULL) {
            int rc = raft_add(&g->raft, &ch->req, ch->id, ch->address, group_change_on_added);
            if (rc != 0)
                group_change_end(ch, group_change_outcome(rc));
        } else if (s->role != RAFT_VOTER) {
            bool answered_now = ch->op == GROUP_CHANGE_ADD;
            group_change_promote(ch);
            if (answered_now)
                group_change_end(ch, CLUSTER_CHANGE_DONE);
        } else {
            group_change_end(ch, CLUSTER_CHANGE_DONE);
        }
        return;
    }
    if (ch->op == GROUP_CHANGE_REMOVE &&
        (ch->id == g->self_id || cluster_transport_peer_alive(g->tr, ch->id))) {
        group_change_end(ch, CLUSTER_CHANGE_RUNNING);
        return;
    }
    int rc = raft_remove(&g->raft, &ch->req, ch->id, group_change_on_committed);
    if (rc != 0)
        group_change_end(ch, group_change_outcome(rc));
}

/* A change this member's broker asked for: made here when this member leads, else sent to
 * the leader, and kept until it answers or GROUP_ANSWER_TIMEOUT_MS passes. */
static void
group_change_on_raft(struct cluster_call *call)
{
    struct group_change *ch = (struct group_change *)call;
    struct cluster_group *g = ch->g;
    if (raft_state(&g->raft) == RAFT_LEADER) {
        group_change_run(ch);
        return;
    }
    raft_id leader;
    const char *address;
    raft_leader(&g->raft, &leader, &address);
    uint8_t msg[GROUP_CHANGE_MSG + CLUSTER_ADDRESS_MAX];
    size_t len = GROUP_CHANGE_MSG;
    ch->incarnation = g->incarnation;
    ch->seq = ++g->next_change;
    group_put64(msg, ch->incarnation);
    group_put64(msg + 8, ch->seq);
    msg[16] = ch->op;
    group_put64(msg + 17, ch->id);
    if (ch->op == GROUP_CHANGE_ADD || ch->op == GROUP_CHANGE_ADD_VOTER) {
        memcpy(msg + len, ch->address, strlen(ch->address));
        len += strlen(ch->address);
    }
    if (leader == 0 || leader == g->self_id ||
        group_send(g, leader, GROUP_MSG_CHANGE, msg, len) < 0) {
        group_change_end(ch, CLUSTER_CHANGE_NO_LEADER);
        return;
    }
    ch->sent = uv_now(cluster_thread_loop(g->thread));
    ch->next = g->changes;
    g->changes = ch;
}

/* On the leader: a follower's change. */
static void
group_on_change(struct cluster_group *g, uint64_t peer, const uint8_t *msg, size_t len)
{
    struct group_change *ch = calloc(1, sizeof(*ch));
    if (ch == NULL)
        return; /* the asker times out */
    ch->g = g;
    ch->peer = peer;
    ch->incarnation = group_get64(msg);
    ch->seq = group_get64(msg + 8);
    ch->op = msg[16];
    ch->id = group_get64(msg + 17);
    size_t addr_len = len - GROUP_CHANGE_MSG;
    memcpy(ch->address, msg + GROUP_CHANGE_MSG, addr_len);
    ch->address[addr_len] = '\0';
    if (ch->op == GROUP_CHANGE_REMOVE || ch->op == GROUP_CHANGE_EVICT
            ? addr_len != 0
            : (ch->op != GROUP_CHANGE_ADD && ch->op != GROUP_CHANGE_ADD_VOTER) || addr_len == 0 ||
                  memchr(ch->address, '\0', addr_len) != NULL)
        group_change_end(ch, CLUSTER_CHANGE_FAILED);
    else if (raft_state(&g->raft) != RAFT_LEADER)
        group_change_end(ch, CLUSTER_CHANGE_NO_LEADER);
    else
        group_change_run(ch);
}

/* The leader's answer to one of this member's changes (none waiting: an earlier run's, or
 * one that timed out). */
static void
group_on_changed(struct cluster_group *g, const uint8_t *msg)
{
    uint64_t incarnation = group_get64(msg), seq = group_get64(msg + 8);
    for (struct group_change **pp = &g->changes; *pp != NULL; pp = &(*pp)->next) {
        struct group_change *ch = *pp;
        if (ch->incarnation != incarnation || ch->seq != seq)
            continue;
        *pp = ch->next;
        group_change_end(ch, msg[16] <= CLUSTER_CHANGE_FAILED ? (enum cluster_change)msg[16]
                                                              : CLUSTER_CHANGE_FAILED);
        return;
    }
}

/* Answers UNKNOWN the forwarded changes waiting longer than GROUP_ANSWER_TIMEOUT_MS (all of
 * them when closing): the leader may make them yet. */
static void
group_changes_expire(struct cluster_group *g, bool all)
{
    uint64_t now = uv_now(cluster_thread_loop(g->thread));
    for (struct group_change **pp = &g->changes; *pp != NULL;) {
        struct group_change *ch = *pp;
        if (!all && now - ch->sent < GROUP_ANSWER_TIMEOUT_MS) {
            pp = &ch->next;
            continue;
        }
        *pp = ch->next;
        group_change_end(ch, CLUSTER_CHANGE_UNKNOWN);
    }
}

/* A change of op for member id (address: an addition's). NULL with errno ENOMEM or
 * ENAMETOOLONG. */
static struct group_change *
group_change_new(struct cluster_group *g, uint8_t op, raft_id id, const char *address,
                 cluster_change_fn done, void *arg)
{
    struct group_change *ch = calloc(1, sizeof(*ch));
    if (ch == NULL)
        return NULL;
    if (address != NULL && strlen(address) >= sizeof(ch->address)) {
        free(ch);
        errno = ENAMETOOLONG;
        return NULL;
    }
    ch->g = g;
    ch->op = op;
    ch->id = id;
    if (address != NULL)
        snprintf(ch->address, sizeof(ch->address), "%s", address);
    ch->done = done;
    ch->arg = arg;
    return ch;
}

void
cluster_group_add_on_raft(struct cluster_group *g, raft_id id, const char *address,
                          cluster_change_fn done, void *arg)
{
    struct group_change *ch = group_change_new(g, GROUP_CHANGE_ADD, id, address, done, arg);
    if (ch == NULL) {
        done(arg, CLUSTER_CHANGE_FAILED);
        return;
    }
    ch->on_raft = true;
    group_change_on_raft(&ch->call);
}

bool
cluster_group_formed(struct cluster_group *g)
{
    raft_id leader;
    const char *address;
    raft_leader(&g->raft, &leader, &address);
    return g->had_log || leader != 0 || g->raft.commit_index > 1;
}

void
cluster_group_skip_bootstrap(struct cluster_group *g)
{
    g->n_initial = 0;
    g->had_log = true;
}

unsigned
cluster_group_members_now(struct cluster_group *g, raft_id *ids, unsigned cap)
{
    unsigned n = 0;
    for (unsigned i = 0; i < g->raft.configuration.n && n < cap; i++)
        ids[n++] = g->raft.configuration.servers[i].id;
    return n;
}

void
cluster_group_on_message(struct cluster_group *g, uint64_t peer, uint8_t type, const uint8_t *body,
                         size_t len)
{
    if (type == GROUP_MSG_FORWARD && len >= GROUP_HEADER)
        group_on_forward(g, peer, body, len);
    else if (type == GROUP_MSG_REFUSED && len == 1 + GROUP_HEADER)
        group_on_refused(g, body, len);
    else if (type == GROUP_MSG_CHANGE && len >= GROUP_CHANGE_MSG &&
             len < GROUP_CHANGE_MSG + CLUSTER_ADDRESS_MAX)
        group_on_change(g, peer, body, len);
    else if (type == GROUP_MSG_CHANGED && len == GROUP_CHANGED_MSG)
        group_on_changed(g, body);
    else
        log_msg(LOG_WARNING,
                "cluster: group %llu: a message of type %u and %zu bytes from "
                "node %llx: ignored",
                (unsigned long long)g->id, type, len, (unsigned long long)peer);
}

static void group_applied_on_broker(struct cluster_call *call);

/* raft's state machine: the entry goes to the broker's loop, where the state lives. A
 * committed entry cannot be refused: without memory for its copy the member stops. */
static void group_on_kick(uv_timer_t *timer);

/* The kick's barrier is committed (or failed: the group closes, or lost its leadership). */
static void
group_on_kicked(struct raft_barrier *req, int status)
{
    struct cluster_group *g = req->data;
    (void)status;
    free(req);
    g->kick_in_flight = false;
    if (g->kick_ready && g->kick_wanted)
        uv_timer_start(&g->kick, group_on_kick, 0, 0);
}

/* A follower learns that entries are committed from the leader's next AppendEntries, which
 * raft 0.15 sends when it appends, or at the next heartbeat (100 ms, and up to twice that
 * with its tick): a member that forwarded a command would answer it that late. So the
 * leader appends a barrier (an empty entry) after entries are applied: its AppendEntries
 * carries the new commit index at once. One at a time; entries applied meanwhile get the
 * next. */
static void
group_on_kick(uv_timer_t *timer)
{
    struct cluster_group *g = timer->data;
    if (!g->kick_wanted || g->kick_in_flight || raft_state(&g->raft) != RAFT_LEADER)
        return;
    struct raft_barrier *req = malloc(sizeof(*req));
    if (req == NULL)
        return; /* the heartbeat tells them */
    req->data = g;
    g->kick_wanted = false;
    if (raft_barrier(&g->raft, req, group_on_kicked) != 0) {
        free(req);
        return;
    }
    g->kick_in_flight = true;
}

/* The next command of an entry (len bytes at data) from *off: 1 with it in *cmd and *n, 0 at
 * the end (the entry's, or its padding), -1 when it is cut short. */
static int
group_entry_next(const uint8_t *data, size_t len, size_t *off, const uint8_t **cmd, size_t *n)
{
    if (len - *off < 4)
        return 0;
    const uint8_t *p = data + *off;
    *n = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
    if (*n == 0)
        return 0; /* the entry's padding */
    if (*n > len - *off - 4)
        return -1;
    *cmd = p + 4;
    *off += 4 + *n;
    return 1;
}

/* A state machine the Raft thread runs (ops->apply_raft) applies the entry here; the loop hears
 * only of this member's own entries, whose submitters wait for their commands' results: the
 * entry's header and the results. NULL when the entry is another member's. */
static struct group_applied *
group_apply_raft(struct cluster_group *g, uint64_t index, const struct raft_buffer *buf)
{
    const uint8_t *cmd;
    size_t n, off = GROUP_HEADER, n_cmds = 0;
    if (buf->len < GROUP_HEADER)
        return NULL;
    while (group_entry_next(buf->base, buf->len, &off, &cmd, &n) > 0)
        n_cmds++;
    struct group_applied *a = NULL;
    if (group_get64(buf->base) == g->self_id) {
        /* (the results after the header, which is a multiple of their alignment) */
        if ((a = malloc(sizeof(*a) + GROUP_HEADER + n_cmds * sizeof(int))) == NULL) {
            log_msg(LOG_CRITICAL, "cluster: out of memory for a committed entry's results");
            abort();
        }
        a->len = GROUP_HEADER;
        memcpy(a->data, buf->base, GROUP_HEADER);
        a->results = (int *)(a->data + GROUP_HEADER);
        a->n_results = n_cmds;
    }
    off = GROUP_HEADER;
    for (size_t i = 0; group_entry_next(buf->base, buf->len, &off, &cmd, &n) > 0; i++) {
        int result = g->ops->apply_raft(g->raft_arg, index, cmd, n);
        if (a != NULL)
            a->results[i] = result;
    }
    g->ops->applied_raft(g->raft_arg, index);
    return a;
}

static int
group_fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct cluster_group *g = fsm->data;
    uint64_t index = g->raft.last_applied + 1; /* raft counts it applied once this returns */
    struct group_applied *a;
    if (g->ops->apply_raft != NULL) {
        a = group_apply_raft(g, index, buf);
    } else {
        if ((a = malloc(sizeof(*a) + buf->len)) == NULL) {
            log_msg(LOG_CRITICAL, "cluster: out of memory for a committed entry of %zu bytes",
                    buf->len);
            abort();
        }
        a->len = buf->len;
        memcpy(a->data, buf->base, buf->len);
        a->results = NULL;
    }
    if (a != NULL) {
        a->g = g;
        a->index = index;
        a->call.fn = group_applied_on_broker;
        cluster_thread_post(g->thread, &a->call);
    }
    *result = NULL;
    if (g->kick_ready && g->kick_commits && raft_state(&g->raft) == RAFT_LEADER) {
        g->kick_wanted = true;
        if (!g->kick_in_flight)
            uv_timer_start(&g->kick, group_on_kick, 0, 0); /* not from within raft's apply */
    }
    return 0;
}

/* Only for groups with ops->snapshot: for the others the threshold is out of reach. */
static int
group_fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct cluster_group *g = fsm->data;
    return g->ops->snapshot != NULL ? g->ops->snapshot(g->raft_arg, bufs, n_bufs) : RAFT_NOTFOUND;
}

static int
group_fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct cluster_group *g = fsm->data;
    return g->ops->restore != NULL ? g->ops->restore(g->raft_arg, buf) : RAFT_NOTFOUND;
}

static void group_status_on_broker(struct cluster_call *call);

static void
group_status_read(struct cluster_group *g, struct cluster_group_status *st)
{
    struct raft *r = &g->raft;
    memset(st, 0, sizeof(*st));
    int state = raft_state(r);
    st->role = state == RAFT_LEADER      ? CLUSTER_LEADER
               : state == RAFT_CANDIDATE ? CLUSTER_CANDIDATE
               : state == RAFT_FOLLOWER  ? CLUSTER_FOLLOWER
                                         : CLUSTER_UNAVAILABLE;
    st->term = r->current_term;
    st->commit_index = r->commit_index;
    st->last_applied = r->last_applied;
    const char *leader_address;
    raft_leader(r, &st->leader_id, &leader_address);
    for (unsigned i = 0; i < r->configuration.n && i < CLUSTER_GROUP_MAX_MEMBERS; i++) {
        const struct raft_server *s = &r->configuration.servers[i];
        struct cluster_member *m = &st->members[st->n_members++];
        m->id = s->id;
        snprintf(m->address, sizeof(m->address), "%s", s->address);
        m->voter = s->role == RAFT_VOTER;
        m->reachable = s->id == r->id || cluster_transport_peer_alive(g->tr, s->id);
    }
}

/* Keeps a node link to every other member of st, and drops the links to the members of the
 * last status published that st no longer has (removed) (idempotent: called when the members
 * may have changed). The links carry forwarded batches and tell which members run. */
static void
group_link_members(struct cluster_group *g, const struct cluster_group_status *st)
{
    for (unsigned i = 0; i < st->n_members; i++)
        if (st->members[i].id != g->self_id &&
            cluster_transport_link(g->tr, st->members[i].id, st->members[i].address) < 0)
            log_msg(LOG_ERROR, "cluster: cannot link to %s", st->members[i].address);
    for (unsigned i = 0; i < g->seen.n_members; i++) {
        unsigned j = 0;
        while (j < st->n_members && st->members[j].id != g->seen.members[i].id)
            j++;
        if (j == st->n_members && g->seen.members[i].id != g->self_id) {
            log_msg(LOG_INFO, "cluster: %s is no longer a member: link dropped",
                    g->seen.members[i].address);
            cluster_transport_unlink(g->tr, g->seen.members[i].id);
        }
    }
}

/* A follower whose leader's node link is down (a process killed: its connections close at
 * once) forgets that leader and starts its election within GROUP_HASTENED_ELECTION_MS, rather
 * than after the whole election timeout of heartbeats' silence. Raft 0.15 has no call for it,
 * but both are public fields of struct raft: the follower timer's deadline (counted from the
 * leader's last word), and the leader a follower knows, which it clears as raft's
 * convertClearFollower does (a follower that knows a leader votes for nobody, raft's guard
 * against disruptive servers: the other followers must forget it too, to vote for whichever
 * of them asks first). The random part keeps them from splitting the vote. */
static void
group_hasten_election(struct cluster_group *g)
{
    struct raft *r = &g->raft;
    raft_id leader;
    const char *address;
    raft_leader(r, &leader, &address);
    if (raft_state(r) != RAFT_FOLLOWER || leader == 0 || leader == g->self_id ||
        g->hastened_term == r->current_term)
        return;
    raft_time now = uv_now(cluster_thread_loop(g->thread));
    if (cluster_transport_peer_alive(g->tr, leader)) {
        g->leader_link_term = r->current_term;
        g->leader_link_down_at = 0;
        return;
    }
    /* Only a link seen up in this term and gone: a follower that has just started hears from
     * its leader (raft's own connections) before its node link to it is up. And gone for
     * GROUP_HASTEN_GRACE_MS: a leader that stops cleanly hands its leadership over before its
     * links close, and the new leader's word must not be raced by an election here. */
    if (g->leader_link_term != r->current_term)
        return;
    if (g->leader_link_down_at == 0)
        g->leader_link_down_at = now;
    if (now - g->leader_link_down_at < GROUP_HASTEN_GRACE_MS)
        return;
    g->hastened_term = r->current_term;
    r->follower_state.current_leader.id = 0;
    raft_free(r->follower_state.current_leader.address);
    r->follower_state.current_leader.address = NULL;
    raft_time since = now - r->election_timer_start;
    unsigned soon = (unsigned)since + (unsigned)r->io->random(r->io, 0, GROUP_HASTENED_ELECTION_MS);
    if (soon < r->follower_state.randomized_election_timeout)
        r->follower_state.randomized_election_timeout = soon;
}

/* Publishes the status to the broker's loop if it changed since it was last. */
static void
group_status_publish(struct cluster_group *g)
{
    struct cluster_group_status st;
    group_status_read(g, &st);
    if (memcmp(&st, &g->seen, sizeof(st)) == 0)
        return;
    if (g->links_members &&
        (st.n_members != g->seen.n_members ||
         memcmp(st.members, g->seen.members, st.n_members * sizeof(st.members[0])) != 0))
        group_link_members(g, &st);
    struct group_status_post *p = malloc(sizeof(*p));
    if (p == NULL)
        return; /* published at the next look */
    g->seen = st;
    p->g = g;
    p->st = st;
    p->call.fn = group_status_on_broker;
    cluster_thread_post(g->thread, &p->call);
}

static void
group_on_watch(uv_timer_t *timer)
{
    struct cluster_group *g = timer->data;
    group_changes_expire(g, false);
    group_hasten_election(g);
    group_status_publish(g);
}

static void group_closed_on_broker(struct cluster_call *call);

static void
group_on_raft_closed(struct raft *r)
{
    struct cluster_group *g = r->data;
    raft_uv_close(&g->io);
    g->closed_call.fn = group_closed_on_broker;
    cluster_thread_post(g->thread, &g->closed_call);
}

static void
group_on_watch_closed(uv_handle_t *h)
{
    struct cluster_group *g = h->data;
    raft_close(&g->raft, group_on_raft_closed);
}

/* Every 10 ms once closing: raft closes when no batch it took for a follower is in flight
 * (raft 0.15 crashes closing with appends in flight), or after GROUP_CLOSE_WAIT_MS. */
static void
group_on_close_wait(uv_timer_t *timer)
{
    struct cluster_group *g = timer->data;
    if (g->forwarded_in_flight > 0 &&
        uv_now(cluster_thread_loop(g->thread)) - g->close_wait_start < GROUP_CLOSE_WAIT_MS)
        return;
    uv_timer_stop(timer);
    g->kick_ready = false;
    uv_close((uv_handle_t *)&g->kick, NULL); /* closed before the watch's callback runs */
    uv_close((uv_handle_t *)timer, group_on_watch_closed);
}

static void
group_close_when_idle(struct cluster_group *g)
{
    g->close_wait_start = uv_now(cluster_thread_loop(g->thread));
    uv_timer_start(&g->watch, group_on_close_wait, 0, 10); /* the watch's job is over */
}

static void
group_on_transferred(struct raft_transfer *req)
{
    struct cluster_group *g = req->data;
    raft_id leader;
    const char *address;
    raft_leader(&g->raft, &leader, &address);
    if (leader != 0 && leader != g->self_id)
        log_msg(LOG_INFO, "cluster: group %llu: leadership handed to %s before closing",
                (unsigned long long)g->id, address);
    else
        log_msg(LOG_WARNING,
                "cluster: group %llu: no member took the leadership over: the "
                "others elect one",
                (unsigned long long)g->id);
    group_close_when_idle(g);
}

/* A closing leader hands its leadership to the most up-to-date voter first (raft_transfer):
 * the group goes on at once instead of an election timeout later. */
static void
group_close_on_raft(struct cluster_call *call)
{
    struct cluster_group *g =
        (struct cluster_group *)((char *)call - offsetof(struct cluster_group, close_call));
    group_changes_expire(g, true);
    g->transfer.data = g;
    if (raft_state(&g->raft) != RAFT_LEADER ||
        raft_transfer(&g->raft, &g->transfer, 0, group_on_transferred) != 0)
        group_close_when_idle(g);
}

/* ---- broker's loop ---- */

static void group_close_now(struct cluster_group *g);

static void
group_batch_free(struct group_batch *b)
{
    raft_free(b->entry);
    free(b->waiters);
    free(b);
}

static uint64_t
group_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct group_batch *
group_pending_find(struct cluster_group *g, uint64_t seq)
{
    for (struct group_batch *b = g->pending; b != NULL; b = b->next)
        if (b->seq == seq)
            return b;
    return NULL;
}

/* Takes the pending batch seq out of the list; NULL when it is not there (answered already). */
static struct group_batch *
group_pending_take(struct cluster_group *g, uint64_t seq)
{
    for (struct group_batch **pp = &g->pending; *pp != NULL; pp = &(*pp)->next) {
        struct group_batch *b = *pp;
        if (b->seq != seq)
            continue;
        *pp = b->next;
        if (g->pending_tail == &b->next)
            g->pending_tail = pp;
        g->in_flight--;
        return b;
    }
    return NULL;
}

static void
group_after_answer(struct cluster_group *g)
{
    if (g->closing && g->in_flight == 0 && g->drain_timer != NULL)
        group_close_now(g);
}

/* The entry did not get in, or may not have: every command of its batch is answered so. */
static void
group_req_on_broker(struct cluster_call *call)
{
    struct group_submit *q = (struct group_submit *)call;
    struct cluster_group *g = q->g;
    enum cluster_outcome outcome = q->outcome;
    uint64_t seq = q->seq;
    raft_free(q->buf.base);
    free(q);
    struct group_batch *b = group_pending_find(g, seq);
    if (b == NULL)
        return;
    uint64_t now = group_now_ms();
    if (outcome == CLUSTER_NOT_LEADER && !g->closing && now - b->submitted_ms < GROUP_RETRY_MS) {
        b->retry_ms = now + GROUP_RETRY_DELAY_MS;
        if (!evtimer_pending(g->retry_timer, NULL)) {
            struct timeval tv = {0, GROUP_RETRY_DELAY_MS * 1000};
            evtimer_add(g->retry_timer, &tv);
        }
        return;
    }
    group_pending_take(g, seq);
    for (unsigned i = 0; i < b->n_waiters; i++)
        if (b->waiters[i].done != NULL)
            b->waiters[i].done(b->waiters[i].arg, outcome, 0);
    group_batch_free(b);
    group_after_answer(g);
}

/* Every second: the batches pending longer than GROUP_ANSWER_TIMEOUT_MS are answered MAYBE. */
static void
group_on_answer_timer(evutil_socket_t fd, short what, void *arg)
{
    struct cluster_group *g = arg;
    uint64_t now = group_now_ms();
    while (g->pending != NULL && now - g->pending->submitted_ms > GROUP_ANSWER_TIMEOUT_MS) {
        struct group_batch *b = group_pending_take(g, g->pending->seq);
        log_msg(LOG_WARNING,
                "cluster: group %llu: %u commands unanswered after %u ms: they "
                "may or may not be committed",
                (unsigned long long)g->id, b->n_waiters, GROUP_ANSWER_TIMEOUT_MS);
        for (unsigned i = 0; i < b->n_waiters; i++)
            if (b->waiters[i].done != NULL)
                b->waiters[i].done(b->waiters[i].arg, CLUSTER_MAYBE, 0);
        group_batch_free(b);
    }
    group_after_answer(g);
}

static void
group_applied_on_broker(struct cluster_call *call)
{
    struct group_applied *a = (struct group_applied *)call;
    struct cluster_group *g = a->g;
    struct group_batch *b = NULL;
    if (a->len >= GROUP_HEADER && group_get64(a->data) == g->self_id &&
        group_get64(a->data + 8) == g->incarnation)
        b = group_pending_take(g, group_get64(a->data + 16));
    size_t off = GROUP_HEADER, n;
    const uint8_t *cmd;
    int rc = a->len >= GROUP_HEADER ? 1 : 0;
    for (unsigned i = 0; a->results != NULL && i < a->n_results; i++)
        if (b != NULL && i < b->n_waiters && b->waiters[i].done != NULL)
            b->waiters[i].done(b->waiters[i].arg, CLUSTER_COMMITTED, a->results[i]);
    for (unsigned i = 0; a->results == NULL && rc > 0 &&
                         (rc = group_entry_next(a->data, a->len, &off, &cmd, &n)) > 0;
         i++) {
        int result = g->ops->apply(g->arg, a->index, cmd, n);
        if (b != NULL && i < b->n_waiters && b->waiters[i].done != NULL)
            b->waiters[i].done(b->waiters[i].arg, CLUSTER_COMMITTED, result);
    }
    if (rc < 0)
        log_msg(LOG_ERROR, "cluster: group %llu: a committed entry is cut short",
                (unsigned long long)g->id);
    free(a);
    if (b != NULL) {
        group_batch_free(b);
        group_after_answer(g);
    }
}

static void
group_status_on_broker(struct cluster_call *call)
{
    struct group_status_post *p = (struct group_status_post *)call;
    struct cluster_group *g = p->g;
    g->status = p->st;
    free(p);
    if (g->ops->changed != NULL)
        g->ops->changed(g->arg, &g->status);
}

/* Hands raft a copy of a pending batch's entry. Returns 0, or -1 on ENOMEM. */
static int
group_batch_submit(struct cluster_group *g, struct group_batch *b)
{
    struct group_submit *q = calloc(1, sizeof(*q));
    void *entry = raft_malloc(b->len);
    if (q == NULL || entry == NULL) {
        free(q);
        raft_free(entry);
        return -1;
    }
    memcpy(entry, b->entry, b->len);
    q->g = g;
    q->seq = b->seq;
    q->buf = (struct raft_buffer){.base = entry, .len = b->len};
    q->call.fn = group_req_on_raft;
    cluster_thread_call(g->thread, &q->call);
    return 0;
}

/* The batches whose time to be submitted again has come (refused for no leader). */
static void
group_on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    struct cluster_group *g = arg;
    uint64_t now = group_now_ms(), next = 0;
    for (struct group_batch *b = g->pending; b != NULL; b = b->next) {
        if (b->retry_ms == 0)
            continue;
        if (b->retry_ms <= now && group_batch_submit(g, b) == 0)
            b->retry_ms = 0;
        else if (next == 0 || b->retry_ms < next)
            next = b->retry_ms > now ? b->retry_ms : now + GROUP_RETRY_DELAY_MS;
    }
    if (next != 0) {
        struct timeval tv = {0, (suseconds_t)(next - now) * 1000};
        evtimer_add(g->retry_timer, &tv);
    }
}

/* Submits the open batch: pending from now on, its entry on its way to raft. */
static void
group_flush(struct cluster_group *g)
{
    struct group_batch *b = g->open;
    if (b == NULL)
        return;
    g->open = NULL;
    b->seq = ++g->next_seq;
    b->submitted_ms = group_now_ms();
    group_put64(b->entry, g->self_id);
    group_put64(b->entry + 8, g->incarnation);
    group_put64(b->entry + 16, b->seq);
    size_t pad = (8 - b->len % 8) % 8; /* room was kept for it */
    memset(b->entry + b->len, 0, pad);
    b->len += pad;
    b->next = NULL;
    *g->pending_tail = b;
    g->pending_tail = &b->next;
    g->in_flight++;
    if (group_batch_submit(g, b) < 0) { /* ENOMEM: refused as a whole, as raft would */
        group_pending_take(g, b->seq);
        for (unsigned i = 0; i < b->n_waiters; i++)
            if (b->waiters[i].done != NULL)
                b->waiters[i].done(b->waiters[i].arg, CLUSTER_FAILED, 0);
        group_batch_free(b);
    }
}

static void
group_on_flush(evutil_socket_t fd, short what, void *arg)
{
    group_flush(arg);
}

/* Makes room in the open batch (opening one) for a command of len bytes and one waiter.
 * Returns the batch, or NULL on ENOMEM. */
static struct group_batch *
group_batch_reserve(struct cluster_group *g, size_t len)
{
    if (g->open != NULL && g->open->n_waiters > 0 && g->open->len + 4 + len > GROUP_BATCH_MAX)
        group_flush(g);
    struct group_batch *b = g->open;
    if (b == NULL) {
        if ((b = calloc(1, sizeof(*b))) == NULL)
            return NULL;
        b->len = GROUP_HEADER;
        g->open = b;
        event_active(g->flush, 0, 0);
    }
    if (b->len + 4 + len + 7 > b->cap) { /* 7: the entry's padding (group_flush) */
        size_t cap = b->cap == 0 ? 4096 : b->cap;
        while (cap < b->len + 4 + len + 7)
            cap *= 2;
        void *p = raft_realloc(b->entry, cap);
        if (p == NULL)
            return NULL;
        b->entry = p;
        b->cap = cap;
    }
    if (b->n_waiters == b->cap_waiters) {
        unsigned n = b->cap_waiters == 0 ? 8 : 2 * b->cap_waiters;
        void *p = realloc(b->waiters, n * sizeof(*b->waiters));
        if (p == NULL)
            return NULL;
        b->waiters = p;
        b->cap_waiters = n;
    }
    return b;
}

int
cluster_group_submit(struct cluster_group *g, const void *cmd, size_t len, cluster_done_fn done,
                     void *arg)
{
    if (g->closing || len == 0 || len > UINT32_MAX - 4 - 7 - GROUP_HEADER) {
        errno = g->closing ? ESHUTDOWN : len == 0 ? EINVAL : EMSGSIZE;
        return -1;
    }
    struct group_batch *b = group_batch_reserve(g, len);
    if (b == NULL) {
        errno = ENOMEM;
        return -1;
    }
    uint8_t *p = b->entry + b->len;
    p[0] = (uint8_t)(len >> 24);
    p[1] = (uint8_t)(len >> 16);
    p[2] = (uint8_t)(len >> 8);
    p[3] = (uint8_t)len;
    memcpy(p + 4, cmd, len);
    b->len += 4 + len;
    b->waiters[b->n_waiters++] = (struct group_waiter){done, arg};
    return 0;
}

static void
group_change_on_broker(struct cluster_call *call)
{
    struct group_change *ch = (struct group_change *)call;
    cluster_change_fn done = ch->done;
    void *arg = ch->arg;
    enum cluster_change outcome = ch->outcome;
    free(ch);
    done(arg, outcome);
}

/* A change asked on the broker's loop, answered there. */
static int
group_change_ask(struct cluster_group *g, uint8_t op, raft_id id, const char *address,
                 cluster_change_fn done, void *arg)
{
    if (g->closing) {
        errno = ESHUTDOWN;
        return -1;
    }
    struct group_change *ch = group_change_new(g, op, id, address, done, arg);
    if (ch == NULL)
        return -1;
    ch->call.fn = group_change_on_raft;
    cluster_thread_call(g->thread, &ch->call);
    return 0;
}

int
cluster_group_remove(struct cluster_group *g, raft_id id, bool running_too, cluster_change_fn done,
                     void *arg)
{
    return group_change_ask(g, running_too ? GROUP_CHANGE_EVICT : GROUP_CHANGE_REMOVE, id, NULL,
                            done, arg);
}

int
cluster_group_add(struct cluster_group *g, raft_id id, const char *address, cluster_change_fn done,
                  void *arg)
{
    return group_change_ask(g, GROUP_CHANGE_ADD_VOTER, id, address, done, arg);
}

/* A hand-over asked of the Raft thread; freed when raft is done with it. */
struct group_hand_over {
    struct cluster_call call;
    struct cluster_group *g;
    raft_id to;
    struct raft_transfer req;
};

static void
group_on_handed_over(struct raft_transfer *req)
{
    free(req->data);
}

static void
group_hand_over_on_raft(struct cluster_call *call)
{
    struct group_hand_over *h = (struct group_hand_over *)call;
    h->req.data = h;
    if (raft_state(&h->g->raft) != RAFT_LEADER ||
        raft_transfer(&h->g->raft, &h->req, h->to, group_on_handed_over) != 0)
        free(h);
}

void
cluster_group_hand_over(struct cluster_group *g, raft_id to)
{
    struct group_hand_over *h = g->closing ? NULL : calloc(1, sizeof(*h));
    if (h == NULL)
        return; /* (out of memory: the next election decides) */
    h->g = g;
    h->to = to;
    h->call.fn = group_hand_over_on_raft;
    cluster_thread_call(g->thread, &h->call);
}

const struct cluster_group_status *
cluster_group_status(const struct cluster_group *g)
{
    return &g->status;
}

static int
group_mkdir(const char *dir, char *err, size_t errlen)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path)) {
        snprintf(err, errlen, "cluster: directory name too long: %s", dir);
        return -1;
    }
    for (char *s = path + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(path, 0700) < 0 && errno != EEXIST) {
            snprintf(err, errlen, "cluster: cannot create %.400s: %s", path, strerror(errno));
            return -1;
        }
        if ((*s = c) == '\0')
            return 0;
    }
}

struct cluster_group *
cluster_group_new(struct event_base *base, struct cluster_thread *t,
                  const struct cluster_group_options *o, char *err, size_t errlen)
{
    struct cluster_group *g = calloc(1, sizeof(*g));
    struct timeval second = {1, 0};
    if (g == NULL || (g->flush = event_new(base, -1, 0, group_on_flush, g)) == NULL ||
        (g->answer_timer = event_new(base, -1, EV_PERSIST, group_on_answer_timer, g)) == NULL ||
        (g->retry_timer = evtimer_new(base, group_on_retry_timer, g)) == NULL ||
        event_add(g->answer_timer, &second) < 0) {
        snprintf(err, errlen, "cluster: out of memory");
        if (g != NULL && g->flush != NULL)
            event_free(g->flush);
        if (g != NULL && g->answer_timer != NULL)
            event_free(g->answer_timer);
        if (g != NULL && g->retry_timer != NULL)
            event_free(g->retry_timer);
        free(g);
        return NULL;
    }
    if (o->n_initial > CLUSTER_GROUP_MAX_MEMBERS ||
        snprintf(g->dir, sizeof(g->dir), "%s", o->dir) >= (int)sizeof(g->dir)) {
        snprintf(err, errlen, "cluster: too many members or too long a directory name");
        cluster_group_free(g);
        return NULL;
    }
    g->thread = t;
    g->ops = o->ops;
    g->arg = o->arg;
    g->raft_arg = o->raft_arg;
    g->snapshot_threshold = o->snapshot_threshold;
    g->snapshot_trailing = o->snapshot_trailing;
    g->segment_size = o->segment_size;
    g->kick_commits = o->kick_commits;
    g->links_members = o->links_members;
    g->election_timeout_ms = o->election_timeout_ms != 0 ? o->election_timeout_ms : 1000;
    g->id = o->id;
    g->self_id = o->self_id;
    snprintf(g->self_address, sizeof(g->self_address), "%s", o->self_address);
    g->n_initial = o->n_initial;
    memcpy(g->initial, o->initial, o->n_initial * sizeof(*o->initial));
    g->pending_tail = &g->pending;
    if (RAND_bytes((unsigned char *)&g->incarnation, sizeof(g->incarnation)) != 1) {
        snprintf(err, errlen, "cluster: no random bytes from OpenSSL");
        cluster_group_free(g);
        return NULL;
    }
    return g;
}

const char *
cluster_group_error(const struct cluster_group *g)
{
    return g->error;
}

void
cluster_group_free(struct cluster_group *g)
{
    /* Batches still unanswered (closed with no quorum): their entries may yet commit. */
    while (g->pending != NULL) {
        struct group_batch *b = g->pending;
        g->pending = b->next;
        for (unsigned i = 0; i < b->n_waiters; i++)
            if (b->waiters[i].done != NULL)
                b->waiters[i].done(b->waiters[i].arg, CLUSTER_MAYBE, 0);
        group_batch_free(b);
    }
    event_free(g->answer_timer);
    event_free(g->retry_timer);
    event_free(g->flush);
    free(g);
}

static void
group_on_start_undone(struct raft *r)
{
    struct cluster_group *g = r->data;
    raft_uv_close(&g->io);
    g->started(g->started_arg, -1);
}

/* The raft instance's first configuration: the initial members, when the log is pristine
 * (RAFT_CANTBOOTSTRAP otherwise, which is no error). Returns 0, or a raft error code. */
static int
group_bootstrap(struct cluster_group *g)
{
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    int rc = 0;
    if (g->n_initial == 0) /* joining: the leader sends the log */
        return 0;
    for (unsigned i = 0; i < g->n_initial && rc == 0; i++)
        rc = raft_configuration_add(&conf, g->initial[i].id, g->initial[i].address,
                                    g->initial[i].voter ? RAFT_VOTER : RAFT_SPARE);
    if (rc == 0 && (rc = raft_bootstrap(&g->raft, &conf)) == RAFT_CANTBOOTSTRAP) {
        g->had_log = true;
        rc = 0;
    }
    raft_configuration_close(&conf);
    return rc;
}

void
cluster_group_start(struct cluster_group *g, struct cluster_transport *tr,
                    void (*started)(void *arg, int rc), void *arg)
{
    uv_loop_t *loop = cluster_thread_loop(g->thread);
    g->started = started;
    g->started_arg = arg;
    int rc;
    if (group_mkdir(g->dir, g->error, sizeof(g->error)) < 0)
        goto fail;
    g->tr = tr;
    if (cluster_transport_group(tr, g->id, &g->transport) < 0) {
        snprintf(g->error, sizeof(g->error), "cluster: group %llu set up twice",
                 (unsigned long long)g->id);
        goto fail;
    }
    if ((rc = raft_uv_init(&g->io, loop, g->dir, &g->transport)) != 0) {
        snprintf(g->error, sizeof(g->error), "cluster: cannot open the Raft log in %.300s: %s",
                 g->dir, g->io.errmsg[0] != '\0' ? g->io.errmsg : raft_strerror(rc));
        goto fail;
    }
    raft_uv_set_segment_size(&g->io, g->segment_size != 0 ? g->segment_size : GROUP_SEGMENT_SIZE);
    g->fsm = (struct raft_fsm){.version = 1,
                               .data = g,
                               .apply = group_fsm_apply,
                               .snapshot = group_fsm_snapshot,
                               .restore = group_fsm_restore};
    if ((rc = raft_init(&g->raft, &g->io, &g->fsm, g->self_id, g->self_address)) != 0) {
        snprintf(g->error, sizeof(g->error), "cluster: cannot start Raft in %.300s: %s", g->dir,
                 raft_errmsg(&g->raft));
        raft_uv_close(&g->io);
        goto fail;
    }
    g->raft.data = g;
    raft_set_election_timeout(&g->raft, g->election_timeout_ms);
    raft_set_heartbeat_timeout(&g->raft, g->election_timeout_ms / 10); /* raft's ratio */
    /* A snapshot message lost is sent again only after this: raft's 30 s stalled a member's
     * catch-up that long. Lost: sent on a link just gone down, or dropped by a follower busy
     * taking a snapshot of its own (raft 0.15 answers nothing then), as a member restarted
     * does right after applying the entries queued for it while it was down. Snapshots are
     * small (metadata, queue positions): sent within a second; one that arrives while the
     * last is still being installed is dropped the same way. */
    raft_set_install_snapshot_timeout(&g->raft, 2 * g->election_timeout_ms);
    if (g->ops->snapshot != NULL && g->snapshot_threshold > 0) {
        raft_set_snapshot_threshold(&g->raft, g->snapshot_threshold);
        raft_set_snapshot_trailing(&g->raft, g->snapshot_trailing);
    } else {
        raft_set_snapshot_threshold(&g->raft, UINT32_MAX);
    }
    if ((rc = group_bootstrap(g)) != 0 || (rc = raft_start(&g->raft)) != 0) {
        snprintf(g->error, sizeof(g->error), "cluster: cannot start the Raft log in %.300s: %s",
                 g->dir,
                 raft_errmsg(&g->raft)[0] != '\0' ? raft_errmsg(&g->raft) : raft_strerror(rc));
        raft_close(&g->raft, group_on_start_undone);
        return;
    }
    uv_timer_init(loop, &g->watch);
    g->watch.data = g;
    uv_timer_start(&g->watch, group_on_watch, GROUP_WATCH_MS, GROUP_WATCH_MS);
    uv_timer_init(loop, &g->kick);
    g->kick.data = g;
    g->kick_ready = true;
    started(arg, 0);
    return;

fail:
    started(arg, -1);
}

static void
group_close_now(struct cluster_group *g)
{
    if (g->drain_timer != NULL) {
        event_free(g->drain_timer);
        g->drain_timer = NULL;
    }
    if (g->in_flight > 0)
        log_msg(LOG_WARNING, "cluster: closing with %u batches of commands unanswered",
                g->in_flight);
    g->close_call.fn = group_close_on_raft;
    cluster_thread_call(g->thread, &g->close_call);
}

static void
group_on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    group_close_now(arg);
}

static void
group_closed_on_broker(struct cluster_call *call)
{
    struct cluster_group *g =
        (struct cluster_group *)((char *)call - offsetof(struct cluster_group, closed_call));
    void (*closed)(void *) = g->closed;
    void *arg = g->closed_arg;
    cluster_group_free(g);
    if (closed != NULL)
        closed(arg);
}

void
cluster_group_close(struct cluster_group *g, unsigned drain_ms, void (*closed)(void *arg),
                    void *arg)
{
    g->closing = true;
    g->closed = closed;
    g->closed_arg = arg;
    event_del(g->flush);
    group_flush(g);
    if (g->in_flight == 0) {
        group_close_now(g);
        return;
    }
    struct timeval tv = {drain_ms / 1000, (drain_ms % 1000) * 1000};
    g->drain_timer = evtimer_new(event_get_base(g->flush), group_on_drain_timeout, g);
    if (g->drain_timer == NULL || evtimer_add(g->drain_timer, &tv) < 0)
        group_close_now(g);
}
