/* Publishes to other nodes' queues, in a cluster: a message routed here to a queue that lives
 * on another node (queue.home) is forwarded to that node over the node links
 * (cluster_send), which enqueues it there as if published there, and answers whether it
 * took it; a publisher in confirm mode is confirmed only once every node its message went to
 * took it (and wrote it, for a persistent message on a durable queue), and nacked when one
 * refused it (x-overflow reject-publish) or may not have got it.
 *
 * The messages one node sends another are numbered (seq, from 1 at each start of the sender,
 * whose runs its incarnation tells apart: net_server.incarnation) and go in batches, one per peer
 * per loop turn (or FWD_BATCH_MAX bytes): 'P' [u64 incarnation][u64 first seq][u32 count] then
 * count entries: [u8 vhost length][vhost][u16 queues]([u8 length][name])... [i64 expiration ms][u32
 * record length][the message's record (durable_msg_parts)] 'A' [u64 incarnation][u64 first][u64
 * last][u32 refused]([u64 seq])... The receiver answers each batch with 'A' for its range once what
 * it wrote is synced (the store completes its barriers in order, so the answers go in the order of
 * the batches), the seqs it refused listed. A link that goes down drops what it held: the sender
 * learns it when an answer starts past a seq it still waits for (lost: nacked), when the peer is no
 * longer running, or after FWD_ANSWER_MS. A nacked publish may still have been enqueued (its answer
 * lost): the publisher sends it again, a duplicate, never a loss.
 *
 * Flow: what a node sends another and that is not answered yet is bounded (FWD_WINDOW bytes
 * per peer): past it, the connection whose publish was forwarded reads nothing more (held, as
 * by a store wait) until every peer's unanswered bytes are below half of it. A publisher
 * faster than another node takes its messages is so slowed to that node's pace, rather than
 * filling the link (whose output past CLUSTER_TRANSPORT_OUTPUT_MAX would be dropped).
 *
 * A tx.commit's publishes all answer to one chan_fwd (seq 0): tx.commit-ok waits for every node,
 * and a refusal fails the commit (chan_tx_forwarded).
 *
 * A replicated queue's publishes (quorum.c) are answered once their enqueues are committed in
 * its group too (the batch's answer holds for them, and answers still go in order); one sent
 * to a node that no longer serves the queue (its leader moved) is refused, so that its
 * publisher sends it again rather than hear it confirmed and dropped.
 *
 * Not yet: dead letters to another node's queue (dropped: src/broker/deadletter.c routes
 * without forwarding). */
#include "config.h"

#include "forward.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <event2/event.h>
#include <openssl/rand.h>

#include "net_int.h"
#include "quorum.h"
#include "relay.h"
#include "warren/bytes.h"
#include "warren/cluster.h"
#include "warren/durable.h"
#include "warren/log.h"
#include "warren/msg.h"
#include "warren/publish.h"
#include "warren/queue.h"
#include "warren/vhost.h"

/* A batch is sent once it holds this many bytes, else at the end of the loop turn. */
#define FWD_BATCH_MAX (256u << 10)
/* How long a forwarded publish waits for its answer before it is nacked (ms). */
#define FWD_ANSWER_MS 10000
/* How often the waits are checked against the peers' liveness and FWD_ANSWER_MS (ms). */
#define FWD_CHECK_MS 250
#define FWD_BATCH_HDR (1 + 8 + 8 + 4)
/* Bytes sent to a peer and not answered yet past which publishers are held (see above). */
#define FWD_WINDOW (1u << 20)

/* A batch sent and not answered yet. */
struct fwd_sent {
    struct fwd_sent *next;
    uint64_t last; /* its last seq */
    size_t bytes;
    uint64_t sent_ms;
};

/* A confirm-mode publish forwarded to a peer, waiting for its answer. */
struct fwd_wait {
    struct fwd_wait *next;
    uint64_t seq;
    uint64_t sent_ms;
    struct chan_fwd *cf; /* shares: the publish's (chan_fwd_settle) */
};

/* What this node sends one peer, and waits for from it. */
struct fwd_peer {
    struct fwd_peer *next;
    char node[CLUSTER_NODE_NAME_MAX];
    uint64_t next_seq; /* the next message's */
    uint8_t *batch;    /* owns: the open batch, NULL when none */
    size_t len, cap;
    uint32_t count;                       /* entries in it */
    uint64_t first;                       /* its first seq */
    struct fwd_wait *waits, **waits_tail; /* owns, in seq order */
    struct fwd_sent *sent, **sent_tail;   /* owns: the batches not answered, in order */
    size_t unanswered;                    /* their bytes */
};

struct net_forward {
    struct net_server *s;
    struct fwd_peer *peers;    /* owns */
    struct event *flush;       /* owns: sends the open batches at the end of the turn */
    struct event *check;       /* owns: FWD_CHECK_MS while anything waits */
    struct conn_list held;     /* borrows: the connections held for the window (conn.fwd_link) */
    struct route_result route; /* scratch for the publishes received */
    TAILQ_HEAD(, fwd_answer) answers; /* borrows: the batches received, not answered yet */
};

static uint64_t
fwd_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the publishing side ---- */

struct chan_fwd *
chan_fwd_new(struct chan *ch, uint64_t seq)
{
    struct chan_fwd *cf = calloc(1, sizeof(*cf));
    if (cf == NULL)
        return NULL;
    cf->ch = ch;
    cf->seq = seq;
    cf->remaining = 1; /* the caller's, until chan_fwd_settle(cf, false) */
    TAILQ_INSERT_TAIL(&ch->fwds, cf, link);
    return cf;
}

void
chan_fwd_settle(struct chan_fwd *cf, bool nack)
{
    cf->nacked |= nack;
    if (--cf->remaining > 0)
        return;
    if (cf->ch != NULL)
        chan_forwarded(cf->ch, cf);
    free(cf);
}

void
chan_fwd_release(struct chan *ch)
{
    struct chan_fwd *cf;
    while ((cf = TAILQ_FIRST(&ch->fwds)) != NULL) {
        TAILQ_REMOVE(&ch->fwds, cf, link);
        cf->ch = NULL; /* its waits free it */
    }
}

static struct fwd_peer *
fwd_peer(struct net_forward *f, const char *node, bool make)
{
    for (struct fwd_peer *p = f->peers; p != NULL; p = p->next)
        if (strcmp(p->node, node) == 0)
            return p;
    if (!make)
        return NULL;
    struct fwd_peer *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    snprintf(p->node, sizeof(p->node), "%s", node);
    p->next_seq = 1;
    p->waits_tail = &p->waits;
    p->sent_tail = &p->sent;
    p->next = f->peers;
    f->peers = p;
    return p;
}

/* Appends n bytes to p's open batch (grown as needed). 0, or -1 on ENOMEM. */
static int
fwd_put(struct fwd_peer *p, const void *bytes, size_t n)
{
    if (p->len + n > p->cap) {
        size_t cap = p->cap > 0 ? p->cap : 4096;
        while (cap < p->len + n)
            cap *= 2;
        uint8_t *b = realloc(p->batch, cap);
        if (b == NULL)
            return -1;
        p->batch = b;
        p->cap = cap;
    }
    if (n > 0)
        memcpy(p->batch + p->len, bytes, n);
    p->len += n;
    return 0;
}

/* Answers w: its publish done (nack: not taken, or not known to be) as far as this peer goes. */
static void
fwd_wait_answer(struct fwd_wait *w, bool nack)
{
    chan_fwd_settle(w->cf, nack);
    free(w);
}

/* Nacks p's waits up to seq (all of them: UINT64_MAX). */
static void
fwd_fail_upto(struct fwd_peer *p, uint64_t seq)
{
    struct fwd_wait *w;
    while ((w = p->waits) != NULL && w->seq <= seq) {
        p->waits = w->next;
        fwd_wait_answer(w, true);
    }
    if (p->waits == NULL)
        p->waits_tail = &p->waits;
}

static void fwd_check_arm(struct net_forward *f);

/* Sends p's open batch. When it cannot go, what waits on it is nacked. */
static void
fwd_send(struct net_forward *f, struct fwd_peer *p)
{
    if (p->batch == NULL)
        return;
    bytes_put32(p->batch + 1 + 16, p->count);
    uint64_t last = p->first + p->count - 1;
    uint8_t *batch = p->batch;
    size_t len = p->len;
    p->batch = NULL;
    p->len = p->cap = 0;
    p->count = 0;
    struct fwd_sent *s = malloc(sizeof(*s));
    if (s == NULL || cluster_send(f->s->env.cluster, p->node, batch, len) < 0) {
        free(s);
        fwd_fail_upto(p, last);
        return;
    }
    *s = (struct fwd_sent){.last = last, .bytes = len, .sent_ms = fwd_now_ms()};
    *p->sent_tail = s;
    p->sent_tail = &s->next;
    p->unanswered += len;
    fwd_check_arm(f);
}

/* Whether a peer's unanswered bytes are over limit. */
static bool
fwd_over(const struct net_forward *f, size_t limit)
{
    for (const struct fwd_peer *p = f->peers; p != NULL; p = p->next)
        if (p->unanswered > limit)
            return true;
    return false;
}

/* p's batches up to seq are answered (or lost): out of its window; the held connections read
 * again once every peer is below half of it. */
static void
fwd_answered_upto(struct net_forward *f, struct fwd_peer *p, uint64_t seq)
{
    struct fwd_sent *s;
    while ((s = p->sent) != NULL && s->last <= seq) {
        p->sent = s->next;
        p->unanswered -= s->bytes;
        free(s);
    }
    if (p->sent == NULL)
        p->sent_tail = &p->sent;
    if (TAILQ_EMPTY(&f->held) || fwd_over(f, FWD_WINDOW / 2))
        return;
    struct conn *c;
    while ((c = TAILQ_FIRST(&f->held)) != NULL) {
        TAILQ_REMOVE(&f->held, c, fwd_link);
        c->fwd_held = false;
        c->store_paused--;
        conn_resume(c);
    }
}

void
net_forward_hold(struct conn *c)
{
    struct net_forward *f = c->server->forward;
    if (f == NULL || c->fwd_held || !fwd_over(f, FWD_WINDOW))
        return;
    c->fwd_held = true;
    c->store_paused++; /* its input waits (fwd_answered_upto) */
    TAILQ_INSERT_TAIL(&f->held, c, fwd_link);
}

void
net_forward_unhold(struct conn *c)
{
    if (!c->fwd_held)
        return;
    TAILQ_REMOVE(&c->server->forward->held, c, fwd_link);
    c->fwd_held = false;
}

static void
fwd_on_flush(evutil_socket_t fd, short what, void *arg)
{
    struct net_forward *f = arg;
    (void)fd;
    (void)what;
    for (struct fwd_peer *p = f->peers; p != NULL; p = p->next)
        fwd_send(f, p);
}

/* Adds one entry (m to the queues of one home node) to p's batch. 0, or -1 on ENOMEM. */
static int
fwd_add(struct net_forward *f, struct fwd_peer *p, struct vhost *vh, struct queue **queues,
        uint32_t n, struct msg *m)
{
    if (p->batch == NULL) {
        uint8_t hdr[FWD_BATCH_HDR] = {'P'};
        bytes_put64(hdr + 1, f->s->incarnation);
        bytes_put64(hdr + 9, p->next_seq);
        p->first = p->next_seq;
        if (fwd_put(p, hdr, sizeof(hdr)) < 0)
            return -1;
    }
    size_t mark = p->len;
    uint8_t x[8], vlen = (uint8_t)strlen(vh->name);
    uint8_t rhdr[DURABLE_MSG_HDR_LEN];
    struct iovec iov[DURABLE_MSG_PARTS];
    durable_msg_parts(rhdr, m, iov);
    size_t rlen = 0;
    for (int i = 0; i < DURABLE_MSG_PARTS; i++)
        rlen += iov[i].iov_len;
    int rc = fwd_put(p, &vlen, 1) | fwd_put(p, vh->name, vlen);
    bytes_put16(x, (uint16_t)n);
    rc |= fwd_put(p, x, 2);
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        uint8_t qlen = (uint8_t)queues[i]->name_len;
        rc |= fwd_put(p, &qlen, 1) | fwd_put(p, queues[i]->name, qlen);
    }
    bytes_put64(x, (uint64_t)m->expiration_ms);
    rc |= fwd_put(p, x, 8);
    bytes_put32(x, (uint32_t)rlen);
    rc |= fwd_put(p, x, 4);
    for (int i = 0; i < DURABLE_MSG_PARTS && rc == 0; i++)
        rc |= fwd_put(p, iov[i].iov_base, iov[i].iov_len);
    if (rc != 0) {
        p->len = mark; /* the batch as it was */
        return -1;
    }
    p->count++;
    p->next_seq++;
    return 0;
}

/* Starts the check timer if it is not running. */
static void
fwd_check_arm(struct net_forward *f)
{
    if (!evtimer_pending(f->check, NULL)) {
        struct timeval tv = {0, FWD_CHECK_MS * 1000};
        evtimer_add(f->check, &tv);
    }
}

int
net_forward(struct net_server *s, struct vhost *vh, struct queue **queues, uint32_t n,
            struct msg *m, struct chan_fwd *cf)
{
    struct net_forward *f = s->forward;
    int failed = 0;
    /* One entry per home node, with its queues. */
    for (uint32_t i = 0; i < n; i++) {
        if (queues[i] == NULL)
            continue;
        const char *home = queues[i]->home;
        struct queue *same[256];
        uint32_t k = 0;
        for (uint32_t j = i; j < n && k < 256; j++)
            if (queues[j] != NULL && strcmp(queues[j]->home, home) == 0) {
                same[k++] = queues[j];
                queues[j] = NULL;
            }
        struct fwd_peer *p = fwd_peer(f, home, true);
        struct fwd_wait *w = cf != NULL ? malloc(sizeof(*w)) : NULL;
        uint64_t seq = p != NULL ? p->next_seq : 0;
        if (p == NULL || (cf != NULL && w == NULL) || !cluster_node_running(s->env.cluster, home) ||
            fwd_add(f, p, vh, same, k, m) < 0) {
            free(w);
            failed++;
            continue;
        }
        if (w != NULL) {
            *w = (struct fwd_wait){.seq = seq, .sent_ms = fwd_now_ms(), .cf = cf};
            cf->remaining++;
            *p->waits_tail = w;
            p->waits_tail = &w->next;
            fwd_check_arm(f);
        }
        if (p->len >= FWD_BATCH_MAX)
            fwd_send(f, p);
        else
            event_active(f->flush, EV_TIMEOUT, 0);
    }
    return failed > 0 ? -1 : 0;
}

/* 'A' from peer p: the batch [first, last] was handled, refused seqs listed. */
static void
fwd_on_answer(struct net_forward *f, struct fwd_peer *p, const uint8_t *b, size_t len)
{
    if (len < 1 + 8 + 8 + 8 + 4 || bytes_get64(b + 1) != f->s->incarnation)
        return; /* for a previous run of this node */
    uint64_t first = bytes_get64(b + 9), last = bytes_get64(b + 17);
    uint32_t n_refused = bytes_get32(b + 25);
    const uint8_t *refused = b + 29, *end = b + len;
    if (first > 0)
        fwd_fail_upto(p, first - 1); /* before its range and unanswered: lost on the way */
    fwd_answered_upto(f, p, last);
    struct fwd_wait *w;
    while ((w = p->waits) != NULL && w->seq <= last) {
        while (n_refused > 0 && refused + 8 <= end && bytes_get64(refused) < w->seq) {
            refused += 8;
            n_refused--;
        }
        bool nack = n_refused > 0 && refused + 8 <= end && bytes_get64(refused) == w->seq;
        p->waits = w->next;
        fwd_wait_answer(w, nack);
    }
    if (p->waits == NULL)
        p->waits_tail = &p->waits;
}

static void
fwd_on_check(evutil_socket_t fd, short what, void *arg)
{
    struct net_forward *f = arg;
    (void)fd;
    (void)what;
    uint64_t now = fwd_now_ms();
    bool waiting = false;
    for (struct fwd_peer *p = f->peers; p != NULL; p = p->next) {
        if (p->waits == NULL && p->sent == NULL)
            continue;
        if (!cluster_node_running(f->s->env.cluster, p->node)) {
            fwd_fail_upto(p, UINT64_MAX);
            fwd_answered_upto(f, p, UINT64_MAX); /* (lost with it) */
            continue;
        }
        struct fwd_wait *w;
        while ((w = p->waits) != NULL && now - w->sent_ms >= FWD_ANSWER_MS)
            fwd_fail_upto(p, w->seq);
        if (p->sent != NULL && now - p->sent->sent_ms >= FWD_ANSWER_MS)
            fwd_answered_upto(f, p, p->sent->last); /* lost with a link: out of the window */
        waiting |= p->waits != NULL || p->sent != NULL;
    }
    if (waiting)
        fwd_check_arm(f);
}

/* ---- the receiving side ---- */

/* An answer waiting for the store to sync what its batch wrote, and for the replicated
 * queues' enqueues it made to be committed (quorum.h). Answers go in the order of the batches
 * (the sender takes an answer past a seq it waits for as that seq lost): f->answers. */
struct fwd_answer {
    struct net_quorum_scope scope; /* its enqueues' commits: holds */
    TAILQ_ENTRY(fwd_answer) link;  /* in f->answers while f lives */
    struct net_forward *f;         /* borrows; NULL once f is gone (the answer is dropped) */
    char node[CLUSTER_NODE_NAME_MAX];
    uint8_t *bytes; /* owns: the 'A' message */
    size_t len;
    unsigned holds;  /* the store's barrier, and each enqueue's commit */
    bool refuse_all; /* not written, or not committed: every entry of the batch is refused */
};

/* Sends the answers whose batches are done, in order. */
static void
fwd_answers_send(struct net_forward *f)
{
    struct fwd_answer *a;
    while ((a = TAILQ_FIRST(&f->answers)) != NULL && a->holds == 0) {
        TAILQ_REMOVE(&f->answers, a, link);
        if (a->refuse_all) {
            /* The sender nacks them all. */
            uint32_t n = (uint32_t)(bytes_get64(a->bytes + 17) - bytes_get64(a->bytes + 9) + 1);
            uint8_t *b = realloc(a->bytes, 29 + (size_t)n * 8);
            if (b != NULL) {
                a->bytes = b;
                bytes_put32(b + 25, n);
                for (uint32_t i = 0; i < n; i++)
                    bytes_put64(b + 29 + (size_t)i * 8, bytes_get64(b + 9) + i);
                a->len = 29 + (size_t)n * 8;
            }
        }
        /* (cluster_send takes the bytes) */
        if (cluster_send(f->s->env.cluster, a->node, a->bytes, a->len) < 0 && errno != ENOTCONN)
            log_msg(LOG_WARNING, "cluster: cannot answer %s's publishes: %s", a->node,
                    strerror(errno));
        free(a);
    }
}

static void
fwd_answer_release(struct fwd_answer *a, bool refuse_all)
{
    a->refuse_all |= refuse_all;
    if (--a->holds > 0)
        return;
    if (a->f != NULL) {
        fwd_answers_send(a->f);
    } else {
        free(a->bytes);
        free(a);
    }
}

static void
fwd_answer_synced(void *arg, const char *err)
{
    struct fwd_answer *a = arg;
    if (err != NULL)
        log_msg(LOG_ERROR, "cluster: publishes forwarded by %s not stored: %s", a->node, err);
    fwd_answer_release(a, err != NULL);
}

static void *
fwd_answer_hold(struct net_quorum_scope *sc)
{
    struct fwd_answer *a = (struct fwd_answer *)sc;
    a->holds++;
    return a;
}

static void
fwd_answer_committed(void *held, enum cluster_outcome outcome, int result)
{
    struct fwd_answer *a = held;
    if (outcome != CLUSTER_COMMITTED || result != 0)
        log_msg(LOG_WARNING, "cluster: publishes forwarded by %s not replicated", a->node);
    fwd_answer_release(a, outcome != CLUSTER_COMMITTED || result != 0);
}

/* Reads a u8-length string at *p (before end). */
static int
fwd_get_name(const uint8_t **p, const uint8_t *end, struct wire_str *out)
{
    if (*p >= end || (size_t)(end - *p) < 1u + **p)
        return -1;
    *out = (struct wire_str){*p + 1, **p};
    *p += 1 + out->len;
    return 0;
}

/* Publishes one forwarded entry at *p here. Returns 1 if it was refused (or could not be
 * enqueued), 0 if taken, -1 if the batch does not decode; *stored: it wrote to the store. */
static int
fwd_take(struct net_forward *f, const uint8_t **pp, const uint8_t *end, bool *stored)
{
    const uint8_t *p = *pp;
    struct wire_str vname, qname;
    if (fwd_get_name(&p, end, &vname) < 0 || end - p < 2)
        return -1;
    uint16_t nq = bytes_get16(p);
    p += 2;
    struct vhost *vh = vhost_find(f->s->env.vhosts, vname);
    struct route_result *r = &f->route;
    r->n = 0;
    int refused = 0;
    for (uint16_t i = 0; i < nq; i++) {
        if (fwd_get_name(&p, end, &qname) < 0)
            return -1;
        struct queue *q = vh != NULL ? vhost_queue_find(vh, qname) : NULL;
        /* A queue deleted meanwhile: as unroutable there, dropped. One served by another node
         * now (a replicated queue's new leader): refused, so that its publisher sends it
         * again rather than hear it confirmed. */
        if (q != NULL && (q->home != NULL || route_result_add(r, q) < 0))
            refused = 1;
    }
    if (end - p < 12)
        return -1;
    int64_t expiration_ms = (int64_t)bytes_get64(p);
    uint32_t rlen = bytes_get32(p + 8);
    p += 12;
    if ((size_t)(end - p) < rlen)
        return -1;
    struct msg *m = r->n > 0 ? durable_msg_from_record(p, rlen) : NULL;
    p += rlen;
    *pp = p;
    if (r->n == 0)
        return refused;
    if (m == NULL)
        return 1; /* out of memory (the record came whole: it decodes) */
    m->expiration_ms = expiration_ms;
    struct publish_outcome out;
    if (publish_routed(vh, m, r, &out) != PUBLISH_OK || out.n_refused > 0)
        refused = 1;
    for (uint32_t i = 0; i < r->n; i++)
        stats_add(&r->queues[i]->stats, STATS_PUBLISH, 1);
    *stored |= out.stored;
    msg_unref(&m);
    return refused;
}

/* 'P' from node: publishes them here, then answers once what they wrote is synced. */
static void
fwd_on_batch(struct net_forward *f, const char *node, const uint8_t *b, size_t len)
{
    if (len < FWD_BATCH_HDR)
        return;
    uint64_t first = bytes_get64(b + 9);
    uint32_t count = bytes_get32(b + 17);
    struct fwd_answer *a = calloc(1, sizeof(*a));
    uint8_t *ans = malloc(29 + (size_t)count * 8);
    if (a == NULL || ans == NULL || count == 0) {
        free(a);
        free(ans);
        log_msg(LOG_ERROR, "cluster: %u publishes forwarded by %s dropped: out of memory", count,
                node);
        return; /* unanswered: the sender nacks them */
    }
    ans[0] = 'A';
    memcpy(ans + 1, b + 1, 8);
    bytes_put64(ans + 9, first);
    bytes_put64(ans + 17, first + count - 1);
    uint32_t n_refused = 0;
    bool stored = false;
    const uint8_t *p = b + FWD_BATCH_HDR, *end = b + len;
    a->scope = (struct net_quorum_scope){fwd_answer_hold, fwd_answer_committed, false};
    a->holds = 1; /* the store's barrier's */
    net_quorum_scope(f->s, &a->scope);
    for (uint32_t i = 0; i < count; i++) {
        int rc = fwd_take(f, &p, end, &stored);
        if (rc < 0) {
            log_msg(LOG_ERROR,
                    "cluster: a batch of publishes from %s does not decode: the "
                    "rest of it is refused",
                    node);
            for (; i < count; i++)
                bytes_put64(ans + 29 + (size_t)n_refused++ * 8, first + i);
            break;
        }
        if (rc > 0)
            bytes_put64(ans + 29 + (size_t)n_refused++ * 8, first + i);
    }
    net_quorum_scope(f->s, NULL);
    bytes_put32(ans + 25, n_refused);
    a->f = f;
    a->bytes = ans;
    a->len = 29 + (size_t)n_refused * 8;
    a->refuse_all = a->scope.failed;
    snprintf(a->node, sizeof(a->node), "%s", node);
    TAILQ_INSERT_TAIL(&f->answers, a, link);
    struct durable *d = f->s->env.vhosts->durable;
    if (d == NULL || durable_barrier(d, stored, fwd_answer_synced, a) < 0)
        fwd_answer_synced(a, stored ? "cannot wait for the store" : NULL);
}

static void
fwd_on_message(void *arg, const char *from, const uint8_t *bytes, size_t len)
{
    struct net_forward *f = arg;
    if (len == 0)
        return;
    if (bytes[0] == 'P') {
        fwd_on_batch(f, from, bytes, len);
    } else if (bytes[0] == 'R') {
        relay_on_message(f->s, from, bytes, len);
    } else if (bytes[0] == 'L') {
        net_alarms_on_message(f->s, from, bytes, len);
    } else if (bytes[0] == 'F' || bytes[0] == 'f' || bytes[0] == 'B' || bytes[0] == 'M' ||
               bytes[0] == 'm') {
        net_quorum_on_message(f->s, from, bytes, len);
    } else if (bytes[0] == 'A') {
        struct fwd_peer *p = fwd_peer(f, from, false);
        if (p != NULL)
            fwd_on_answer(f, p, bytes, len);
    }
}

/* A dead letter routed to other nodes' queues (the vhosts' forward_dead): sent at most once,
 * as RabbitMQ's default dead-lettering is, answered to nobody. */
static void
fwd_dead_letter(void *arg, struct vhost *vh, struct queue **queues, uint32_t n, struct msg *m)
{
    if (net_forward(arg, vh, queues, n, m, NULL) < 0)
        log_msg(LOG_WARNING,
                "cluster: a dead letter of vhost '%s' did not reach another node's queue: its "
                "node is down, or out of memory",
                vh->name);
}

int
net_forward_open(struct net_server *s)
{
    if (s->env.cluster == NULL)
        return 0;
    struct net_forward *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    f->s = s;
    TAILQ_INIT(&f->held);
    TAILQ_INIT(&f->answers);
    f->flush = event_new(s->env.base, -1, 0, fwd_on_flush, f);
    f->check = evtimer_new(s->env.base, fwd_on_check, f);
    if (f->flush == NULL || f->check == NULL ||
        RAND_bytes((unsigned char *)&s->incarnation, sizeof(s->incarnation)) != 1) {
        if (f->flush != NULL)
            event_free(f->flush);
        if (f->check != NULL)
            event_free(f->check);
        free(f);
        return -1;
    }
    s->forward = f;
    s->env.vhosts->forward_dead = fwd_dead_letter;
    s->env.vhosts->forward_dead_arg = s;
    cluster_on_node_message(s->env.cluster, fwd_on_message, f);
    return 0;
}

void
net_forward_free(struct net_server *s)
{
    struct net_forward *f = s->forward;
    if (f == NULL)
        return;
    s->env.vhosts->forward_dead = NULL;
    cluster_on_node_message(s->env.cluster, NULL, NULL);
    struct fwd_answer *a;
    while ((a = TAILQ_FIRST(&f->answers)) != NULL) {
        TAILQ_REMOVE(&f->answers, a, link);
        a->f = NULL; /* freed by its last hold's release */
    }
    struct fwd_peer *p;
    while ((p = f->peers) != NULL) {
        f->peers = p->next;
        fwd_fail_upto(p, UINT64_MAX);
        fwd_answered_upto(f, p, UINT64_MAX);
        free(p->batch);
        free(p);
    }
    event_free(f->flush);
    event_free(f->check);
    route_result_free(&f->route);
    free(f);
    s->forward = NULL;
}
