/* Fetching the messages a member's image lacks (quorum_int.h). A member that restored a
 * snapshot (quorum_snapshot.c) has its entries' positions, not their messages. It asks another
 * member (the leader first) for them, FETCH_SEQS entries a request, answered with up to
 * FETCH_BYTES of messages, one request at a time: each costs the member asked a few ms of its
 * loop however far behind this one is, and its queue goes on being served meanwhile. A member
 * with messages missing does not serve the queue: it hands the leadership over (quorum.c).
 *
 * Between nodes (cluster_send):
 *   'F' [u64 group][u64 request][u32 n][n x u64 seq]     asks for those entries (seqs in
 *                                                         order: answered in one read)
 *   'f' [u64 group][u64 request] then for the entries asked, in order, until the byte budget
 *       is spent: [u64 seq][u32 length][the entry's value in the image]; length FETCH_ABSENT:
 *       none there (settled meanwhile, or missing there too)
 *
 * The Raft thread lists the missing seqs (fetch_list_raft) and writes what came
 * (fetch_fill_raft) into the entries still missing only: one settled meanwhile stays gone.
 * The loop carries the requests and answers. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "net_int.h"
#include "quorum_int.h"
#include "warren/bytes.h"
#include "warren/log.h"
#include "warren/store.h"

/* Entries asked for in one request, and the bytes of messages an answer carries (at least
 * one message, however big). */
#define FETCH_SEQS 1024
#define FETCH_BYTES (1u << 20)
#define FETCH_ABSENT UINT32_MAX
/* How long an answer is waited for, and the pause after a round that brought nothing (the
 * member asked lacks them too, or is not there: another is asked next). */
#define FETCH_ANSWER_MS 2000
#define FETCH_PAUSE_MS 250

struct quorum_fetch {
    struct net_server *s;          /* borrows */
    struct cluster_replica *group; /* borrows; NULL once its owner let go (in_call) */
    uint64_t gid;
    char what[600]; /* "queue 'q' in vhost 'v'", for the log */
    void (*complete)(void *arg);
    void *arg;
    struct event *timer; /* owns: an answer's deadline, or the pause before the next round */
    bool in_call;        /* the Raft thread has it (fetch_*_raft): the loop waits */
    bool filling;        /* that call writes an answer */
    bool relist;         /* list again once that call is back (a snapshot was restored) */
    uint64_t request;    /* the request whose answer is awaited (0: none) */
    uint64_t requests;   /* numbers them */
    char peer[CLUSTER_NODE_NAME_MAX];
    unsigned turn; /* rotates the member asked after a round that brought nothing */
    /* The Raft thread's answers */
    uint64_t n_missing;
    uint64_t filled; /* by the answer written (fetch_fill_raft) */
    unsigned n_seqs;
    uint64_t *seqs; /* owns: FETCH_SEQS */
    /* For the Raft thread: the answer to write (owns) */
    uint8_t *answer;
    size_t answer_len;
    /* For the log */
    bool logged;
    uint64_t fetched, started_ms;
    unsigned unanswered, pauses;
};

/* ---- the Raft thread ---- */

static int
fetch_seq_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The missing seqs, in order, into im->fetch_seqs (from its start). */
static void
fetch_relist(struct quorum_image *im)
{
    free(im->fetch_seqs);
    im->n_fetch_seqs = im->fetch_next = 0;
    if ((im->fetch_seqs = malloc(im->n_missing * sizeof(uint64_t))) == NULL)
        return; /* (none asked for: the loop tries again after a pause) */
    struct idmap_iter it;
    struct idmap_entry *e;
    idmap_iter_init(&it, &im->positions);
    while ((e = idmap_iter_next(&it)) != NULL)
        if (idmap_container_of(e, struct quorum_pos, by_seq)->missing)
            im->fetch_seqs[im->n_fetch_seqs++] = e->id;
    qsort(im->fetch_seqs, im->n_fetch_seqs, sizeof(uint64_t), fetch_seq_cmp);
}

/* The next seqs to ask for, into f: those still missing from the list's next one on. */
static void
fetch_list_raft(void *raft_arg, void *arg)
{
    struct quorum_image *im = raft_arg;
    struct quorum_fetch *f = arg;
    f->n_missing = im->n_missing;
    f->n_seqs = 0;
    if (im->n_missing == 0) {
        free(im->fetch_seqs);
        im->fetch_seqs = NULL;
        im->n_fetch_seqs = im->fetch_next = 0;
        return;
    }
    if (im->fetch_next >= im->n_fetch_seqs)
        fetch_relist(im); /* from the start again: what was absent where it was asked */
    for (size_t i = im->fetch_next; i < im->n_fetch_seqs && f->n_seqs < FETCH_SEQS; i++) {
        const struct quorum_pos *pos = quorum_image_pos(im, im->fetch_seqs[i]);
        if (pos != NULL && pos->missing)
            f->seqs[f->n_seqs++] = im->fetch_seqs[i];
    }
}

/* Writes f's answer into the entries still missing, then lists the next seqs. */
static void
fetch_fill_raft(void *raft_arg, void *arg)
{
    struct quorum_image *im = raft_arg;
    struct quorum_fetch *f = arg;
    const uint8_t *p = f->answer, *end = p + f->answer_len;
    struct store_batch *b = im->failed ? NULL : store_batch_new();
    uint64_t last = 0;
    bool any = false;
    f->filled = 0;
    while (b != NULL && end - p >= 12) {
        uint64_t seq = bytes_get64(p);
        uint32_t len = bytes_get32(p + 8);
        p += 12;
        if (len != FETCH_ABSENT) {
            if (len > (size_t)(end - p))
                break;
            struct quorum_pos *pos = quorum_image_pos(im, seq);
            if (pos != NULL && pos->missing && len > 0) {
                durable_image_put_value(b, im->gid, seq, p, len);
                pos->missing = false;
                im->n_missing--;
                f->filled++;
            }
            p += len;
        }
        last = seq;
        any = true;
    }
    char err[256];
    if (b != NULL && store_write_now(im->st, b, false, err, sizeof(err)) < 0) {
        log_msg(LOG_ERROR,
                "cluster: queue '%s': messages fetched are not written: %s; its image is not "
                "written any more here until the node restarts",
                im->queue, err);
        im->failed = true;
    }
    free(f->answer);
    f->answer = NULL;
    while (any && im->fetch_next < im->n_fetch_seqs && im->fetch_seqs[im->fetch_next] <= last)
        im->fetch_next++;
    fetch_list_raft(raft_arg, arg);
}

/* ---- the loop ---- */

static void fetch_on_listed(void *arg);

static void
fetch_pause(struct quorum_fetch *f)
{
    f->pauses++;
    struct timeval tv = {FETCH_PAUSE_MS / 1000, (FETCH_PAUSE_MS % 1000) * 1000};
    f->turn++;
    evtimer_add(f->timer, &tv);
}

/* Hands f to the Raft thread for fn. */
static void
fetch_call(struct quorum_fetch *f, void (*fn)(void *raft_arg, void *arg))
{
    if (cluster_replica_call(f->group, fn, fetch_on_listed, f) < 0) {
        /* Its group is not running yet (or out of memory): a while later. */
        free(f->answer);
        f->answer = NULL;
        fetch_pause(f);
        return;
    }
    f->in_call = true;
    f->filling = fn == fetch_fill_raft;
}

/* The member to ask: the leader, unless it is this one; another online member after a round
 * that brought nothing. False when none is online. */
static bool
fetch_pick_peer(struct quorum_fetch *f)
{
    struct cluster_replica_view v;
    if (!cluster_replica_view(f->group, &v))
        return false;
    const char *self = cluster_self_name(f->s->env.cluster);
    const char *others[CLUSTER_MAX_NODES];
    unsigned n = 0, first = 0;
    for (unsigned i = 0; i < v.n_members; i++) {
        if (!v.online[i] || strcmp(v.names[i], self) == 0)
            continue;
        if (strcmp(v.names[i], v.leader) == 0)
            first = n;
        others[n++] = v.names[i];
    }
    if (n == 0)
        return false;
    snprintf(f->peer, sizeof(f->peer), "%s", others[(first + f->turn) % n]);
    return true;
}

static void
fetch_ask(struct quorum_fetch *f)
{
    size_t len = 1 + 8 + 8 + 4 + 8 * (size_t)f->n_seqs;
    uint8_t *b = fetch_pick_peer(f) ? malloc(len) : NULL;
    if (b == NULL) {
        fetch_pause(f);
        return;
    }
    f->request = ++f->requests;
    b[0] = 'F';
    bytes_put64(b + 1, f->gid);
    bytes_put64(b + 9, f->request);
    bytes_put32(b + 17, f->n_seqs);
    for (unsigned i = 0; i < f->n_seqs; i++)
        bytes_put64(b + 21 + 8 * i, f->seqs[i]);
    if (cluster_send(f->s->env.cluster, f->peer, b, len) < 0) { /* (b taken) */
        f->request = 0;
        fetch_pause(f);
        return;
    }
    struct timeval tv = {FETCH_ANSWER_MS / 1000, (FETCH_ANSWER_MS % 1000) * 1000};
    evtimer_add(f->timer, &tv);
}

/* The Raft thread listed (or filled, then listed): ask for the next ones, or done. */
static void
fetch_on_listed(void *arg)
{
    struct quorum_fetch *f = arg;
    bool filled_none = f->filling && f->filled == 0;
    if (f->filling)
        f->fetched += f->filled;
    f->in_call = f->filling = false;
    if (f->group == NULL) { /* its owner let go meanwhile */
        quorum_fetch_free(f);
        return;
    }
    if (f->relist) {
        f->relist = false;
        fetch_call(f, fetch_list_raft);
        return;
    }
    if (f->n_missing == 0) {
        if (f->logged)
            log_msg(LOG_INFO,
                    "cluster: %s: caught up: %" PRIu64 " messages fetched in %.1f s (%" PRIu64
                    " requests, %u unanswered, %u pauses)",
                    f->what, f->fetched, (double)(server_now_ms() - f->started_ms) / 1000,
                    f->requests, f->unanswered, f->pauses);
        f->complete(f->arg); /* (frees f) */
        return;
    }
    if (!f->logged) {
        log_msg(LOG_INFO, "cluster: %s: %" PRIu64 " messages to fetch from other members", f->what,
                f->n_missing);
        f->logged = true;
    }
    if (f->n_seqs == 0 || filled_none)
        fetch_pause(f);
    else
        fetch_ask(f);
}

static void
fetch_on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct quorum_fetch *f = arg;
    if (f->request != 0) { /* no answer: another member next */
        f->unanswered++;
        f->request = 0;
        f->turn++;
    }
    fetch_call(f, fetch_list_raft);
}

struct quorum_fetch *
quorum_fetch_new(struct net_server *s, struct cluster_replica *group, uint64_t gid,
                 const char *what, void (*complete)(void *arg), void *arg)
{
    struct quorum_fetch *f = calloc(1, sizeof(*f));
    if (f == NULL || (f->seqs = malloc(FETCH_SEQS * sizeof(uint64_t))) == NULL ||
        (f->timer = evtimer_new(s->env.base, fetch_on_timer, f)) == NULL) {
        if (f != NULL)
            free(f->seqs);
        free(f);
        return NULL;
    }
    f->s = s;
    f->group = group;
    f->gid = gid;
    snprintf(f->what, sizeof(f->what), "%s", what);
    f->complete = complete;
    f->arg = arg;
    f->started_ms = server_now_ms();
    fetch_call(f, fetch_list_raft);
    return f;
}

void
quorum_fetch_relist(struct quorum_fetch *f)
{
    if (f->in_call) {
        f->relist = true;
        return;
    }
    evtimer_del(f->timer);
    f->request = 0; /* (its answer, if it comes, is ignored) */
    fetch_call(f, fetch_list_raft);
}

uint64_t
quorum_fetch_missing(const struct quorum_fetch *f)
{
    return f->n_missing;
}

void
quorum_fetch_free(struct quorum_fetch *f)
{
    if (f == NULL)
        return;
    if (f->in_call) { /* the Raft thread has it: freed when it comes back */
        f->group = NULL;
        return;
    }
    event_free(f->timer);
    free(f->answer);
    free(f->seqs);
    free(f);
}

void
quorum_fetch_on_answer(struct quorum_fetch *f, const char *from, const uint8_t *b, size_t len)
{
    if (len < 17 || f->request == 0 || bytes_get64(b + 9) != f->request ||
        strcmp(from, f->peer) != 0)
        return; /* (an answer given up on) */
    f->request = 0;
    evtimer_del(f->timer);
    f->answer_len = len - 17;
    if (f->answer_len == 0 || (f->answer = malloc(f->answer_len)) == NULL) {
        fetch_pause(f); /* (it has none of them, or out of memory) */
        return;
    }
    memcpy(f->answer, b + 17, f->answer_len);
    fetch_call(f, fetch_fill_raft);
}

/* An answer being made (quorum_fetch_answer): the seqs asked for, in order, and the next one to
 * answer. */
struct fetch_reply {
    const uint8_t *seqs; /* n of them, u64 each */
    uint32_t n, next;
    uint8_t *out; /* owns: 'f' and its header, then entries */
    size_t len, cap;
    bool failed; /* out of memory */
};

/* Appends [seq][len][val] (val NULL: FETCH_ABSENT). False when out of memory. */
static bool
fetch_reply_put(struct fetch_reply *fr, uint64_t seq, const void *val, size_t vlen)
{
    if (fr->len + 12 + vlen > fr->cap) {
        size_t cap = fr->len + 12 + vlen + FETCH_BYTES / 4;
        uint8_t *grown = realloc(fr->out, cap);
        if (grown == NULL) {
            fr->failed = true;
            return false;
        }
        fr->out = grown;
        fr->cap = cap;
    }
    bytes_put64(fr->out + fr->len, seq);
    bytes_put32(fr->out + fr->len + 8, val != NULL ? (uint32_t)vlen : FETCH_ABSENT);
    if (vlen > 0)
        memcpy(fr->out + fr->len + 12, val, vlen);
    fr->len += 12 + vlen;
    return true;
}

/* The asked seqs below seq have no message here: said so. False when out of memory. */
static bool
fetch_reply_absent_below(struct fetch_reply *fr, uint64_t seq)
{
    for (; fr->next < fr->n && bytes_get64(fr->seqs + 8 * fr->next) < seq; fr->next++)
        if (!fetch_reply_put(fr, bytes_get64(fr->seqs + 8 * fr->next), NULL, 0))
            return false;
    return true;
}

/* Each entry of the range asked for that has its message here (durable_image_values). */
static int
fetch_reply_entry(void *arg, uint64_t seq, const void *val, size_t vlen)
{
    struct fetch_reply *fr = arg;
    if (!fetch_reply_absent_below(fr, seq))
        return 1;
    if (fr->next == fr->n)
        return 1;
    if (bytes_get64(fr->seqs + 8 * fr->next) != seq)
        return 0; /* (not asked for) */
    fr->next++;
    if (!fetch_reply_put(fr, seq, val, vlen))
        return 1;
    return fr->len - 17 >= FETCH_BYTES; /* full: the rest another time */
}

void
quorum_fetch_answer(struct net_server *s, struct store *st, const char *from, const uint8_t *b,
                    size_t len)
{
    if (len < 21)
        return;
    uint64_t gid = bytes_get64(b + 1);
    uint32_t n = bytes_get32(b + 17);
    if (n > FETCH_SEQS || len - 21 < 8 * (size_t)n)
        return;
    struct fetch_reply fr = {.seqs = b + 21, .n = st != NULL ? n : 0};
    for (uint32_t i = 1; i < fr.n; i++)
        if (bytes_get64(fr.seqs + 8 * i) <= bytes_get64(fr.seqs + 8 * (i - 1)))
            return; /* not in order: not a request of ours */
    if ((fr.out = malloc(17 + FETCH_BYTES / 4)) == NULL)
        return; /* (asked again after its deadline) */
    fr.cap = 17 + FETCH_BYTES / 4;
    memcpy(fr.out, b, 17);
    fr.out[0] = 'f';
    fr.len = 17;
    char err[256];
    if (fr.n > 0) {
        uint64_t first = bytes_get64(fr.seqs), last = bytes_get64(fr.seqs + 8 * (fr.n - 1));
        if (durable_image_values(st, gid, first, last, fetch_reply_entry, &fr, err, sizeof(err)) <
            0) {
            log_msg(LOG_ERROR, "cluster: messages asked for by %s are not read: %s", from, err);
            fr.len = 17; /* (nothing said: asked again) */
        } else if (fr.len - 17 < FETCH_BYTES && !fr.failed) {
            fetch_reply_absent_below(&fr, UINT64_MAX); /* the range walked to its end */
        }
    }
    cluster_send(s->env.cluster, from, fr.out, fr.len); /* (lost: asked again after its deadline) */
}
