/* Members added to and removed from replicated queues' groups after their declare
 * (rabbitmq-queues add_member and delete_member, which grow and shrink are made of; the HTTP
 * API's /api/queues/quorum/...).
 *
 * The node that serves the queue (its group's leader, which knows the members and makes the
 * change) makes it, asked over the node links when the request came to another node
 * (cluster_send):
 *   'M' [u64 request][u8 op][u8 vhost len][vhost][u8 name len][name][node]   op: enum
 *                                                                             net_member_op
 *   'm' [u64 request][u16 code][u32 members after][text]                     code 0: done
 * An addition is told to the node first, through the metadata log's 'G': it opens the group
 * as a new member, with an empty log and image (quorum.c), which the leader then fills once
 * raft adds it (a snapshot and a fetch of the messages, or the log's entries) and makes it a
 * voter. A removal goes the other way: the member is taken out of the group first (it must
 * not go while the others still count it), then the metadata log's 'g' has it close its copy
 * and delete it; a node down then does so when it applies 'g' at its next start. A leader
 * asked to remove itself hands the leadership over first and answers "try again": the next
 * leader removes it.
 *
 * The node asked tries again (every MEMBERS_RETRY_DELAY_MS, for MEMBERS_RETRY_MS) while the
 * answer is "try again" (MEMBERS_RETRY): the queue between two leaders (its home known here
 * may be the last one), or another change of its members under way. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/event.h>

#include "net_int.h"
#include "quorum_int.h"
#include "topology.h"
#include "warren/bytes.h"
#include "warren/cluster.h"
#include "warren/log.h"
#include "warren/queue.h"
#include "warren/vhost.h"

/* How long a node waits for the answer of the node it asked (RabbitMQ's is 30 s too). */
#define MEMBERS_ANSWER_MS 30000
/* "Try again" (not an AMQP code): tried again every MEMBERS_RETRY_DELAY_MS for MEMBERS_RETRY_MS
 * (a few elections' worth). */
#define MEMBERS_RETRY 2
#define MEMBERS_RETRY_DELAY_MS 200
#define MEMBERS_RETRY_MS 8000

struct quorum_members {
    struct net_server *s;           /* borrows */
    LIST_HEAD(, member_job) jobs;   /* the changes being made here */
    LIST_HEAD(, member_call) calls; /* the changes asked here (net_queue_member_change) */
    uint64_t next_request;
};

/* A change asked here, tried until its answer is not "try again". */
struct member_call {
    LIST_ENTRY(member_call) link; /* in m->calls */
    struct quorum_members *m;
    char vhost[256], queue[256];
    char node[CLUSTER_NODE_NAME_MAX];
    enum net_member_op op;
    uint64_t deadline_ms;
    struct event *timer; /* owns: the next try's, or the answer's deadline */
    uint64_t request;    /* the try asked of home, waiting for its answer (0: none) */
    char home[CLUSTER_NODE_NAME_MAX];
    net_topo_done_fn done;
    void *arg;
};

/* A change being made here. Its steps' callbacks hold it: it outlives m (m NULL then). */
struct member_job {
    LIST_ENTRY(member_job) link; /* in m->jobs while m has it */
    struct quorum_members *m;    /* borrows; NULL once the node stops */
    char vhost[256], queue[256];
    uint64_t gid;
    char node[CLUSTER_NODE_NAME_MAX];
    bool add;
    unsigned members; /* the group's before the change */
    /* who is answered: done(arg), or the node asker's request */
    net_topo_done_fn done;
    void *arg;
    char asker[CLUSTER_NODE_NAME_MAX];
    uint64_t request;
};

/* ---- the node that serves the queue ---- */

/* Sends the answer 'm' to node to. */
static void
members_send_answer(struct net_server *s, const char *to, uint64_t request,
                    const struct net_decl_err *err, unsigned members)
{
    size_t n = strlen(err->text);
    uint8_t *b = malloc(15 + n);
    if (b == NULL)
        return; /* (the asker times out) */
    b[0] = 'm';
    bytes_put64(b + 1, request);
    bytes_put16(b + 9, err->code);
    bytes_put32(b + 11, members);
    memcpy(b + 15, err->text, n);
    cluster_send(s->env.cluster, to, b, 15 + n); /* (lost: the asker times out) */
}

/* The job's end: its answer, then it is freed. */
static void
job_end(struct member_job *job, const struct net_decl_err *err, unsigned members)
{
    if (job->m != NULL) {
        LIST_REMOVE(job, link);
        if (job->done != NULL)
            job->done(job->arg, err, false, members);
        else
            members_send_answer(job->m->s, job->asker, job->request, err, members);
    }
    free(job);
}

static void
job_fail(struct member_job *job, uint16_t code, const char *text)
{
    struct net_decl_err err = {.code = code};
    snprintf(err.text, sizeof(err.text), "%s", text);
    job_end(job, &err, job->members);
}

/* q's group, when this node serves q. */
static struct cluster_replica *
members_served_group(const struct queue *q)
{
    const struct queue_replica *base = q->replica;
    return base != NULL && base->live ? quorum_group(base) : NULL;
}

/* The job's queue, if it still is (the same group), else NULL. */
static struct queue *
job_queue(const struct member_job *job)
{
    struct vhost *vh =
        vhost_find(job->m->s->env.vhosts,
                   (struct wire_str){(const uint8_t *)job->vhost, (uint32_t)strlen(job->vhost)});
    struct queue *q = vh != NULL
                          ? vhost_queue_find(vh, (struct wire_str){(const uint8_t *)job->queue,
                                                                   (uint32_t)strlen(job->queue)})
                          : NULL;
    return q != NULL && q->group_id == job->gid ? q : NULL;
}

/* Submits 'G' (added) or 'g' for the job's node to the metadata log. */
static int
job_tell(struct member_job *job, bool added, cluster_done_fn done, void *arg)
{
    struct topo_buf b;
    topo_cmd_begin(&b, added ? 'G' : 'g', NULL, job->vhost, job->gid, job->node);
    topo_cmd_queue_name(
        &b, (struct wire_str){(const uint8_t *)job->queue, (uint32_t)strlen(job->queue)});
    return topo_cmd_submit(job->m->s, &b, done, arg);
}

static const char *
members_change_text(enum cluster_change outcome)
{
    switch (outcome) {
    case CLUSTER_CHANGE_BUSY:
        return "another change of its members is under way";
    case CLUSTER_CHANGE_NO_LEADER:
        return "its group has no leader at the moment";
    case CLUSTER_CHANGE_UNKNOWN:
        return "the operation timed out and may not have been completed";
    default:
        return "the change failed (see the leader's log)";
    }
}

/* A removal's last step: the removed node told. */
static void
job_on_told_removed(void *arg, enum cluster_outcome outcome, int result)
{
    struct member_job *job = arg;
    (void)result;
    if (outcome != CLUSTER_COMMITTED) {
        log_msg(LOG_WARNING,
                "cluster: queue '%s' in vhost '%s': %s is out of its group but was not told "
                "to delete its copy: %s",
                job->queue, job->vhost, job->node, topo_outcome_text(outcome));
        job_fail(job, NET_DECL_UNAVAILABLE, topo_outcome_text(outcome));
        return;
    }
    struct net_decl_err done = {0};
    job_end(job, &done, job->members - 1);
}

static void
job_on_changed(void *arg, enum cluster_change outcome)
{
    struct member_job *job = arg;
    if (outcome == CLUSTER_CHANGE_DONE && job->add) {
        struct net_decl_err done = {0};
        job_end(job, &done, job->members + 1);
        return;
    }
    if (outcome == CLUSTER_CHANGE_DONE && job->m != NULL &&
        job_tell(job, false, job_on_told_removed, job) == 0)
        return;
    if (job->m != NULL && job->add) /* the node opened the group for nothing: it closes it */
        job_tell(job, false, NULL, NULL);
    if (outcome == CLUSTER_CHANGE_NOT_MEMBER) { /* removed meanwhile */
        char text[300];
        snprintf(text, sizeof(text), "%s is not a member", job->node);
        job_fail(job, WIRE_PRECONDITION_FAILED, text);
        return;
    }
    bool again = outcome == CLUSTER_CHANGE_BUSY || outcome == CLUSTER_CHANGE_NO_LEADER;
    job_fail(job, again ? MEMBERS_RETRY : NET_DECL_UNAVAILABLE,
             outcome == CLUSTER_CHANGE_DONE ? "out of memory" : members_change_text(outcome));
}

/* Makes the raft change of the job's group, on the queue's leader: still this node unless it
 * changed meanwhile. */
static void
job_change(struct member_job *job)
{
    if (job->m == NULL) {
        free(job);
        return;
    }
    struct queue *q = job_queue(job);
    struct cluster_replica *group = q != NULL ? members_served_group(q) : NULL;
    if (q == NULL)
        job_fail(job, WIRE_NOT_FOUND, "the queue was deleted meanwhile");
    else if (group == NULL)
        job_on_changed(job, CLUSTER_CHANGE_NO_LEADER);
    else if (cluster_replica_change(group, job->node, job->add, job_on_changed, job) < 0)
        job_on_changed(job, errno == ESHUTDOWN ? CLUSTER_CHANGE_NO_LEADER : CLUSTER_CHANGE_FAILED);
}

/* An addition's first step: the node told. */
static void
job_on_told_added(void *arg, enum cluster_outcome outcome, int result)
{
    struct member_job *job = arg;
    (void)result;
    if (outcome != CLUSTER_COMMITTED && job->m != NULL)
        job_fail(job, NET_DECL_UNAVAILABLE, topo_outcome_text(outcome));
    else
        job_change(job);
}

/* Checks op on q (served here) and starts it, answered to done(arg), or the asker's request.
 * Returns 0, or -1 with err and *members the group's count (0: not known). */
static int
members_start(struct quorum_members *m, const struct queue *q, const char *node,
              enum net_member_op op, net_topo_done_fn done, void *arg, const char *asker,
              uint64_t request, unsigned *members, struct net_decl_err *err)
{
    *members = 0;
    bool add = op != NET_MEMBER_REMOVE;
    if (q->group_id == 0)
        return net_decl_fail(err, NET_DECL_UNAVAILABLE,
                             add ? "Cannot add members to a classic queue"
                                 : "Cannot delete members from a classic queue");
    struct cluster_replica *group = members_served_group(q);
    struct cluster_replica_view v;
    if (group == NULL || !cluster_replica_view(group, &v))
        return net_decl_fail(err, MEMBERS_RETRY, "queue '%s' in vhost '%s' has no leader", q->name,
                             q->vhost->name);
    struct cluster_node_view nodes[CLUSTER_MAX_NODES];
    unsigned n = cluster_nodes(m->s->env.cluster, nodes, CLUSTER_MAX_NODES), i = 0, k = 0;
    while (i < n && strcmp(nodes[i].name, node) != 0)
        i++;
    while (k < v.n_members && strcmp(v.names[k], node) != 0)
        k++;
    bool member = k < v.n_members;
    *members = v.n_members;
    if (i == n)
        return net_decl_fail(err, NET_DECL_UNAVAILABLE, "%s is not a node of this cluster", node);
    if (add && member)
        return net_decl_fail(err, WIRE_PRECONDITION_FAILED, "%s is already a member", node);
    if (op == NET_MEMBER_ADD_IF_EVEN && v.n_members % 2 != 0)
        return net_decl_fail(err, WIRE_PRECONDITION_FAILED, "an odd number of members");
    if (add && !nodes[i].running)
        return net_decl_fail(err, NET_DECL_UNAVAILABLE, "node %s is not running", node);
    if (!add && !member)
        return net_decl_fail(err, WIRE_PRECONDITION_FAILED, "%s is not a member", node);
    if (!add && v.n_members == 1)
        return net_decl_fail(err, NET_DECL_UNAVAILABLE, "the last member cannot be removed");
    if (!add && nodes[i].self) { /* the next leader removes this one */
        cluster_replica_hand_over(group, NULL);
        return net_decl_fail(err, MEMBERS_RETRY, "its leadership is being handed over");
    }
    struct member_job *job = calloc(1, sizeof(*job));
    if (job == NULL)
        return net_decl_fail(err, NET_DECL_UNAVAILABLE, "out of memory");
    *job = (struct member_job){.m = m,
                               .gid = q->group_id,
                               .add = add,
                               .members = v.n_members,
                               .done = done,
                               .arg = arg,
                               .request = request};
    snprintf(job->vhost, sizeof(job->vhost), "%s", q->vhost->name);
    snprintf(job->queue, sizeof(job->queue), "%s", q->name);
    snprintf(job->node, sizeof(job->node), "%s", node);
    snprintf(job->asker, sizeof(job->asker), "%s", asker != NULL ? asker : "");
    LIST_INSERT_HEAD(&m->jobs, job, link);
    log_msg(LOG_INFO, "cluster: queue '%s' in vhost '%s': %s %s (%u members)", q->name,
            q->vhost->name, add ? "adding a member on" : "removing its member on", node,
            v.n_members);
    if (!add) {
        job_change(job);
    } else if (job_tell(job, true, job_on_told_added, job) < 0) {
        LIST_REMOVE(job, link);
        free(job);
        return net_decl_fail(err, NET_DECL_UNAVAILABLE, "the cluster did not take it: %s",
                             strerror(errno));
    }
    return 0;
}

/* 'M' from node from. */
static void
members_on_ask(struct quorum_members *m, const char *from, const uint8_t *b, size_t len)
{
    struct net_decl_err err = {0};
    uint64_t request = bytes_get64(b + 1);
    const uint8_t *p = b + 10, *end = b + len;
    struct wire_str vname = {0}, qname = {0};
    if (end - p >= 1 && (size_t)(end - p - 1) >= p[0]) {
        vname = (struct wire_str){p + 1, p[0]};
        p += 1 + p[0];
    }
    if (vname.ptr != NULL && end - p >= 1 && (size_t)(end - p - 1) >= p[0]) {
        qname = (struct wire_str){p + 1, p[0]};
        p += 1 + p[0];
    }
    char node[CLUSTER_NODE_NAME_MAX];
    unsigned members = 0;
    struct vhost *vh = vname.ptr != NULL ? vhost_find(m->s->env.vhosts, vname) : NULL;
    struct queue *q = vh != NULL && qname.ptr != NULL ? vhost_queue_find(vh, qname) : NULL;
    if (qname.ptr == NULL || b[9] > NET_MEMBER_REMOVE || end - p <= 0 ||
        (size_t)(end - p) >= sizeof(node)) {
        net_decl_fail(&err, NET_DECL_UNAVAILABLE, "a malformed request");
    } else if (q == NULL) {
        net_decl_fail(&err, WIRE_NOT_FOUND, "no queue '%.*s' in vhost '%.*s'", WIRE_STR_ARG(qname),
                      WIRE_STR_ARG(vname));
    } else {
        snprintf(node, sizeof(node), "%.*s", (int)(end - p), (const char *)p);
        if (members_start(m, q, node, (enum net_member_op)b[9], NULL, NULL, from, request, &members,
                          &err) == 0)
            return;
    }
    members_send_answer(m->s, from, request, &err, members);
}

/* ---- the node asked ---- */

static uint64_t
members_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
call_arm(struct member_call *c, unsigned ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

/* Tries c once: made here, or asked of the queue's home. 0, or -1 with err and *members (as
 * members_start). */
static int call_try(struct member_call *c, unsigned *members, struct net_decl_err *err);

/* A try's answer: c is answered (and freed), or tried again in a while. */
static void
call_answered(void *arg, const struct net_decl_err *err, bool created, uint64_t members)
{
    (void)created;
    struct member_call *c = arg;
    c->request = 0;
    evtimer_del(c->timer);
    if (err->code == MEMBERS_RETRY && members_now_ms() < c->deadline_ms) {
        call_arm(c, MEMBERS_RETRY_DELAY_MS);
        return;
    }
    struct net_decl_err last = *err;
    if (last.code == MEMBERS_RETRY)
        last.code = NET_DECL_UNAVAILABLE;
    LIST_REMOVE(c, link);
    event_free(c->timer);
    c->done(c->arg, &last, false, members);
    free(c);
}

/* The next try's time, or the answer's deadline. */
static void
call_on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct member_call *c = arg;
    struct net_decl_err err;
    unsigned members = 0;
    if (c->request != 0)
        net_decl_fail(&err, NET_DECL_UNAVAILABLE,
                      "the operation timed out and may not have been completed");
    if (c->request != 0 || call_try(c, &members, &err) < 0)
        call_answered(c, &err, false, members);
}

static int
call_try(struct member_call *c, unsigned *members, struct net_decl_err *err)
{
    *members = 0;
    struct net_server *s = c->m->s;
    struct wire_str vname = {(const uint8_t *)c->vhost, (uint32_t)strlen(c->vhost)};
    struct wire_str qname = {(const uint8_t *)c->queue, (uint32_t)strlen(c->queue)};
    struct vhost *vh = vhost_find(s->env.vhosts, vname);
    struct queue *q = vh != NULL ? vhost_queue_find(vh, qname) : NULL;
    if (q == NULL)
        return net_decl_fail(err, WIRE_NOT_FOUND, "no queue '%s' in vhost '%s'", c->queue,
                             c->vhost);
    if (q->home == NULL || q->group_id == 0)
        return members_start(c->m, q, c->node, c->op, call_answered, c, NULL, 0, members, err);
    size_t nlen = strlen(c->node);
    uint8_t *b = malloc(12 + vname.len + qname.len + nlen);
    if (b == NULL)
        return net_decl_fail(err, NET_DECL_UNAVAILABLE, "out of memory");
    c->request = ++c->m->next_request;
    snprintf(c->home, sizeof(c->home), "%s", q->home);
    b[0] = 'M';
    bytes_put64(b + 1, c->request);
    b[9] = (uint8_t)c->op;
    b[10] = (uint8_t)vname.len;
    memcpy(b + 11, vname.ptr, vname.len);
    b[11 + vname.len] = (uint8_t)qname.len;
    memcpy(b + 12 + vname.len, qname.ptr, qname.len);
    memcpy(b + 12 + vname.len + qname.len, c->node, nlen);
    if (cluster_send(s->env.cluster, q->home, b, 12 + vname.len + qname.len + nlen) < 0) {
        c->request = 0; /* (b taken) */
        return net_decl_fail(err, MEMBERS_RETRY,
                             "the node that serves queue '%s', %s, is down or inaccessible",
                             c->queue, c->home);
    }
    call_arm(c, MEMBERS_ANSWER_MS);
    return 0;
}

/* 'm' from node from. */
static void
members_on_answer(struct quorum_members *m, const char *from, const uint8_t *b, size_t len)
{
    if (len < 15)
        return;
    uint64_t request = bytes_get64(b + 1);
    struct member_call *c;
    LIST_FOREACH(c, &m->calls, link)
        if (c->request == request && strcmp(c->home, from) == 0) {
            struct net_decl_err err = {.code = bytes_get16(b + 9)};
            snprintf(err.text, sizeof(err.text), "%.*s", (int)(len - 15), (const char *)b + 15);
            call_answered(c, &err, false, bytes_get32(b + 11));
            return;
        }
}

int
net_queue_member_change(struct net_server *s, struct vhost *vh, struct wire_str name,
                        const char *node, enum net_member_op op, net_topo_done_fn done, void *arg,
                        struct net_decl_err *err)
{
    struct quorum_members *m = s->quorum != NULL ? quorum_members(s) : NULL;
    if (m == NULL)
        return net_decl_fail(err, NET_DECL_UNAVAILABLE, "not in a cluster");
    if (name.len > 255) /* (no AMQP name is longer) */
        return net_decl_fail(err, WIRE_NOT_FOUND, "no queue of such a long name");
    if (strlen(node) >= CLUSTER_NODE_NAME_MAX)
        return net_decl_fail(err, NET_DECL_UNAVAILABLE, "%.100s... is not a node of this cluster",
                             node);
    struct member_call *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->timer = evtimer_new(s->env.base, call_on_timer, c)) == NULL) {
        free(c);
        return net_decl_fail(err, NET_DECL_UNAVAILABLE, "out of memory");
    }
    c->m = m;
    snprintf(c->vhost, sizeof(c->vhost), "%s", vh->name);
    snprintf(c->queue, sizeof(c->queue), "%.*s", WIRE_STR_ARG(name));
    snprintf(c->node, sizeof(c->node), "%s", node);
    c->op = op;
    c->deadline_ms = members_now_ms() + MEMBERS_RETRY_MS;
    c->done = done;
    c->arg = arg;
    LIST_INSERT_HEAD(&m->calls, c, link);
    call_arm(c, 0); /* the first try, answered from a later loop turn whatever it finds */
    return 0;
}

/* ---- the members' state ---- */

struct quorum_members *
quorum_members_new(struct net_server *s)
{
    struct quorum_members *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->s = s;
    LIST_INIT(&m->jobs);
    LIST_INIT(&m->calls);
    return m;
}

void
quorum_members_on_message(struct quorum_members *m, const char *from, const uint8_t *b, size_t len)
{
    if (b[0] == 'M' && len >= 10)
        members_on_ask(m, from, b, len);
    else if (b[0] == 'm')
        members_on_answer(m, from, b, len);
}

void
quorum_members_free(struct quorum_members *m)
{
    if (m == NULL)
        return;
    struct net_decl_err err = {.code = NET_DECL_UNAVAILABLE};
    snprintf(err.text, sizeof(err.text), "the node is stopping");
    /* The jobs first: their answers may go to calls, which end with them. */
    struct member_job *job;
    while ((job = LIST_FIRST(&m->jobs)) != NULL) { /* its step's callback frees it */
        LIST_REMOVE(job, link);
        if (job->done != NULL)
            job->done(job->arg, &err, false, job->members);
        job->m = NULL;
    }
    while (!LIST_EMPTY(&m->calls))
        call_answered(LIST_FIRST(&m->calls), &err, false, 0);
    free(m);
}
