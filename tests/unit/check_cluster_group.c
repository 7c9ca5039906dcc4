/* Unit tests for src/cluster/group.c and raft_thread.c: three members of one Raft group in one
 * process, each with its own Raft thread and transport on 127.0.0.1, their broker sides on one
 * libevent base that the tests run. They elect a leader; the commands submitted on the leader
 * in one loop turn go into one entry, are applied on every member in the same order, and each
 * submitter's done callback follows its command's apply with what the apply returned; a
 * follower's commands are forwarded to the leader over the node links and answered the same
 * way; every member sees every other as reachable through the links; members stopped and
 * started again read their logs back whole (entries of every size); membership changes go
 * to the leader and come back with raft's outcome; close drains and frees everything. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <event2/event.h>

#include "group.h"
#include "raft_thread.h"
#include "transport.h"
#include "warren/log.h"

enum { N = 3, MAX_APPLIED = 4096 };

static const uint8_t secret[] = "0123456789abcdef0123456789abcdef";

struct member {
    struct cluster_thread *thread;
    struct cluster_transport *tr;
    struct cluster_group *g;
    char dir[64];
    int started_rc;
    unsigned n_applied;
    uint32_t applied[MAX_APPLIED]; /* each command's 4 bytes, in apply order */
    uint64_t index[MAX_APPLIED];   /* its entry's index */
    unsigned n_changes;
    bool closed, tr_closed;
};

static struct event_base *base;
static struct member members[N];
static struct cluster_member initial[N];

/* What done callbacks saw, in order. */
static unsigned n_done;
static uint32_t done_cmd[MAX_APPLIED];
static enum cluster_outcome done_outcome[MAX_APPLIED];
static int done_result[MAX_APPLIED];
static unsigned applied_at_done[MAX_APPLIED]; /* the submitter's n_applied when done ran */
static struct member *submitter;

/* Records a command: a 4-byte one as its value, one of another length n (n bytes of value n,
 * test_restart_reads_log's) as ODD + n. */
#define ODD 0x10000u

static int
on_apply(void *arg, uint64_t index, const uint8_t *cmd, size_t len)
{
    struct member *m = arg;
    uint32_t v = ODD + (uint32_t)len;
    if (len == 4)
        memcpy(&v, cmd, 4);
    else
        for (size_t i = 0; i < len; i++)
            ck_assert_uint_eq(cmd[i], len);
    ck_assert_uint_lt(m->n_applied, MAX_APPLIED);
    m->index[m->n_applied] = index;
    m->applied[m->n_applied++] = v;
    return (int)(v * 2 + 1);
}

static void
on_changed(void *arg, const struct cluster_group_status *st)
{
    struct member *m = arg;
    m->n_changes++;
}

static const struct cluster_group_ops ops = {.apply = on_apply, .changed = on_changed};

static void
on_done(void *arg, enum cluster_outcome outcome, int result)
{
    uint32_t v = (uint32_t)(uintptr_t)arg;
    ck_assert_uint_lt(n_done, MAX_APPLIED);
    done_cmd[n_done] = v;
    done_outcome[n_done] = outcome;
    done_result[n_done] = result;
    applied_at_done[n_done] = submitter->n_applied;
    n_done++;
}

/* Raft thread: a node-link message goes to the member's one group. */
static void
on_link_message(void *arg, uint64_t peer, uint8_t type, const uint8_t *bytes, size_t len)
{
    struct member *m = arg;
    ck_assert_uint_ge(len, 8);
    cluster_group_on_message(m->g, peer, type, bytes + 8, len - 8);
}

static void
on_started(void *arg, int rc)
{
    struct member *m = arg;
    m->started_rc = rc;
}

static void
on_timeout(evutil_socket_t fd, short what, void *arg)
{
    *(bool *)arg = true;
}

/* Runs the base until cond() holds or ms pass. Returns whether cond() holds. */
static bool
run_until(bool (*cond)(void), int ms)
{
    bool expired = false;
    struct event *t = evtimer_new(base, on_timeout, &expired);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(t, &tv);
    while (!cond() && !expired)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(t);
    return cond();
}

static struct member *
leader(void)
{
    for (unsigned i = 0; i < N; i++)
        if (cluster_group_status(members[i].g)->role == CLUSTER_LEADER) {
            raft_id id = cluster_group_status(members[i].g)->leader_id;
            for (unsigned j = 0; j < N; j++)
                if (cluster_group_status(members[j].g)->leader_id != id)
                    return NULL;
            return &members[i];
        }
    return NULL;
}

static bool
have_leader(void)
{
    return leader() != NULL;
}

static uint16_t ports[N]; /* the members' ports: a restarted member listens on its own again */

/* Starts the three members: on fresh directories, or (again) on the ones they had. */
static void
members_start(bool again)
{
    char err[512];
    for (unsigned i = 0; i < N; i++) {
        struct member *m = &members[i];
        char dir[sizeof(m->dir)];
        memcpy(dir, m->dir, sizeof(dir));
        memset(m, 0, sizeof(*m));
        m->thread = cluster_thread_new(base, err, sizeof(err));
        ck_assert_msg(m->thread != NULL, "%s", err);
        m->tr =
            cluster_transport_new(cluster_thread_loop(m->thread), "127.0.0.1", again ? ports[i] : 0,
                                  secret, sizeof(secret) - 1, err, sizeof(err));
        ck_assert_msg(m->tr != NULL, "%s", err);
        ck_assert_int_eq(cluster_transport_listen(m->tr, err, sizeof(err)), 0);
        ports[i] = cluster_transport_port(m->tr);
        initial[i] = (struct cluster_member){.id = i + 1, .voter = true};
        snprintf(initial[i].address, sizeof(initial[i].address), "n%u@127.0.0.1:%u", i + 1,
                 (unsigned)cluster_transport_port(m->tr));
        ck_assert_int_eq(cluster_transport_set_self(m->tr, initial[i].id, initial[i].address), 0);
        cluster_transport_on_message(m->tr, on_link_message, m);
        if (again) {
            memcpy(m->dir, dir, sizeof(dir));
        } else {
            snprintf(m->dir, sizeof(m->dir), "/tmp/check_cluster_group.XXXXXX");
            ck_assert_ptr_nonnull(mkdtemp(m->dir));
        }
    }
    for (unsigned i = 0; i < N; i++) {
        struct member *m = &members[i];
        struct cluster_group_options o = {.id = 7,
                                          .dir = m->dir,
                                          .self_id = initial[i].id,
                                          .self_address = initial[i].address,
                                          .n_initial = N,
                                          .initial = initial,
                                          .election_timeout_ms = 300,
                                          .ops = &ops,
                                          .arg = m,
                                          .links_members = true};
        m->g = cluster_group_new(base, m->thread, &o, err, sizeof(err));
        ck_assert_msg(m->g != NULL, "%s", err);
        /* The thread has not started: its loop is this thread's to set up. */
        m->started_rc = 1;
        cluster_group_start(m->g, m->tr, on_started, m);
        ck_assert_msg(m->started_rc == 0, "%s", cluster_group_error(m->g));
        ck_assert_int_eq(cluster_thread_start(m->thread, err, sizeof(err)), 0);
    }
}

struct closing {
    struct cluster_call call;
    struct member *m;
};

static void
on_tr_closed(void *arg)
{
    struct member *m = arg;
    m->tr_closed = true; /* read by the test after the join */
    cluster_thread_finish(m->thread);
}

static void
close_tr_on_raft(struct cluster_call *call)
{
    struct closing *c = (struct closing *)call;
    cluster_transport_close(c->m->tr, on_tr_closed, c->m);
}

static void
on_group_closed(void *arg)
{
    struct member *m = arg;
    m->closed = true;
}

static bool
all_closed(void)
{
    for (unsigned i = 0; i < N; i++)
        if (!members[i].closed)
            return false;
    return true;
}

/* Stops the three members (and removes their directories unless they start again). */
static void
members_stop(bool again)
{
    struct closing closings[N];
    for (unsigned i = 0; i < N; i++)
        cluster_group_close(members[i].g, 2000, on_group_closed, &members[i]);
    ck_assert(run_until(all_closed, 10000));
    for (unsigned i = 0; i < N; i++) {
        closings[i] = (struct closing){.call.fn = close_tr_on_raft, .m = &members[i]};
        cluster_thread_call(members[i].thread, &closings[i].call);
    }
    for (unsigned i = 0; i < N; i++) {
        cluster_thread_free(members[i].thread);
        ck_assert(members[i].tr_closed);
        if (again)
            continue;
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", members[i].dir);
        ck_assert_int_eq(system(cmd), 0);
    }
}

static void
setup(void)
{
    base = event_base_new();
    ck_assert_ptr_nonnull(base);
    n_done = 0;
    members_start(false);
}

static void
teardown(void)
{
    members_stop(false);
    event_base_free(base);
}

static unsigned want_done;

static bool
all_done(void)
{
    return n_done >= want_done;
}

static unsigned want_applied;

static bool
all_applied(void)
{
    for (unsigned i = 0; i < N; i++)
        if (members[i].n_applied < want_applied)
            return false;
    return true;
}

static void
submit(struct member *m, uint32_t v)
{
    ck_assert_int_eq(cluster_group_submit(m->g, &v, sizeof(v), on_done, (void *)(uintptr_t)v), 0);
}

START_TEST(test_leader_commits_in_order)
{
    ck_assert_msg(run_until(have_leader, 10000), "no leader within 10 s");
    struct member *l = leader();
    submitter = l;
    /* three loop turns of commands: 1..100, then 101..200, then 201..300 */
    uint32_t v = 0;
    for (int turn = 0; turn < 3; turn++) {
        for (int i = 0; i < 100; i++)
            submit(l, ++v);
        event_base_loop(base, EVLOOP_NONBLOCK);
    }
    want_done = 300;
    ck_assert_msg(run_until(all_done, 10000), "%u of 300 answered", n_done);
    for (unsigned i = 0; i < 300; i++) {
        ck_assert_uint_eq(done_cmd[i], i + 1);
        ck_assert_int_eq(done_outcome[i], CLUSTER_COMMITTED);
        ck_assert_int_eq(done_result[i], (int)(2 * (i + 1) + 1));
        /* answered right after its own apply on the submitter */
        ck_assert_uint_eq(l->applied[applied_at_done[i] - 1], i + 1);
    }
    want_applied = 300;
    ck_assert(run_until(all_applied, 10000));
    for (unsigned i = 0; i < N; i++) {
        ck_assert_uint_eq(members[i].n_applied, 300);
        ck_assert_mem_eq(members[i].applied, l->applied, 300 * sizeof(uint32_t));
        ck_assert_mem_eq(members[i].index, l->index, 300 * sizeof(uint64_t));
        ck_assert_uint_gt(members[i].n_changes, 0);
    }
    for (unsigned i = 0; i < 300; i++) {
        ck_assert_uint_eq(l->applied[i], i + 1);
        /* one entry per loop turn (at least the bootstrap configuration before them) */
        ck_assert_uint_gt(l->index[i], 1);
        if (i % 100 != 0)
            ck_assert_uint_eq(l->index[i], l->index[i - 1]);
        else if (i > 0)
            ck_assert_uint_gt(l->index[i], l->index[i - 1]);
    }
    const struct cluster_group_status *st = cluster_group_status(l->g);
    ck_assert_uint_eq(st->n_members, N);
    for (unsigned i = 0; i < N; i++)
        ck_assert(st->members[i].reachable);
}
END_TEST

static bool
all_reachable(void)
{
    for (unsigned i = 0; i < N; i++) {
        const struct cluster_group_status *st = cluster_group_status(members[i].g);
        if (st->n_members != N)
            return false;
        for (unsigned j = 0; j < N; j++)
            if (!st->members[j].reachable)
                return false;
    }
    return true;
}

START_TEST(test_follower_forwards)
{
    ck_assert_msg(run_until(have_leader, 10000), "no leader within 10 s");
    ck_assert_msg(run_until(all_reachable, 10000), "members not all reachable");
    struct member *f = leader() == &members[0] ? &members[1] : &members[0];
    submitter = f;
    for (uint32_t v = 1; v <= 50; v++)
        submit(f, v);
    want_done = 50;
    ck_assert_msg(run_until(all_done, 10000), "%u of 50 answered", n_done);
    for (unsigned i = 0; i < 50; i++) {
        ck_assert_uint_eq(done_cmd[i], i + 1);
        ck_assert_int_eq(done_outcome[i], CLUSTER_COMMITTED);
        ck_assert_int_eq(done_result[i], (int)(2 * (i + 1) + 1));
        ck_assert_uint_eq(f->applied[applied_at_done[i] - 1], i + 1);
    }
    want_applied = 50;
    ck_assert(run_until(all_applied, 10000));
    for (unsigned i = 0; i < N; i++)
        ck_assert_mem_eq(members[i].applied, f->applied, 50 * sizeof(uint32_t));
}
END_TEST

/* Membership changes' outcomes, in order (broker's loop). */
static unsigned n_changed;
static enum cluster_change changed[8];

static void
on_change(void *arg, enum cluster_change outcome)
{
    ck_assert_uint_lt(n_changed, 8);
    changed[n_changed++] = outcome;
}

static unsigned want_changed;

static bool
all_changed(void)
{
    return n_changed >= want_changed;
}

/* An addition, asked on a member's Raft thread (as a join question is), answered back on the
 * broker's loop. */
struct add_req {
    struct cluster_call call;
    struct member *m;
    raft_id id;
    const char *address;
    enum cluster_change outcome;
};

static void
add_back(struct cluster_call *call)
{
    struct add_req *q = (struct add_req *)call;
    on_change(NULL, q->outcome);
}

static void
add_done(void *arg, enum cluster_change outcome)
{
    struct add_req *q = arg;
    q->outcome = outcome;
    q->call.fn = add_back;
    cluster_thread_post(q->m->thread, &q->call);
}

static void
add_on_raft(struct cluster_call *call)
{
    struct add_req *q = (struct add_req *)call;
    cluster_group_add_on_raft(q->m->g, q->id, q->address, add_done, q);
}

static bool
leader_has_4(void)
{
    return leader() != NULL && cluster_group_status(leader()->g)->n_members == 4;
}

/* The leader refuses to remove a member it sees alive (itself too), and a stranger; a
 * follower's addition of node 99 (nobody listens there) is forwarded and committed as a
 * spare; while raft tries to catch it up to make it a voter, another change is refused
 * (RAFT_CANTCHANGE). */
START_TEST(test_member_changes)
{
    ck_assert_msg(run_until(have_leader, 10000), "no leader within 10 s");
    ck_assert_msg(run_until(all_reachable, 10000), "members not all reachable");
    struct member *l = leader();
    struct member *f = l == &members[0] ? &members[1] : &members[0];
    struct member *o = l != &members[2] && f != &members[2] ? &members[2] : &members[1];
    raft_id o_id = (raft_id)(o - members) + 1, l_id = (raft_id)(l - members) + 1;
    n_changed = 0;
    ck_assert_int_eq(cluster_group_remove(f->g, o_id, false, on_change, NULL), 0);
    ck_assert_int_eq(cluster_group_remove(l->g, l_id, false, on_change, NULL), 0);
    ck_assert_int_eq(cluster_group_remove(f->g, 99, false, on_change, NULL), 0);
    ck_assert_uint_eq(n_changed, 0); /* never from within the call */
    want_changed = 3;
    ck_assert(run_until(all_changed, 10000));
    ck_assert_int_eq(changed[0], CLUSTER_CHANGE_RUNNING);
    ck_assert_int_eq(changed[1], CLUSTER_CHANGE_RUNNING);
    ck_assert_int_eq(changed[2], CLUSTER_CHANGE_NOT_MEMBER);

    struct add_req q = {.call.fn = add_on_raft, .m = f, .id = 99, .address = "n99@127.0.0.1:1"};
    cluster_thread_call(f->thread, &q.call);
    want_changed = 4;
    ck_assert(run_until(all_changed, 10000));
    ck_assert_int_eq(changed[3], CLUSTER_CHANGE_DONE);
    ck_assert(run_until(leader_has_4, 5000));
    const struct cluster_group_status *st = cluster_group_status(leader()->g);
    for (unsigned i = 0; i < st->n_members; i++)
        if (st->members[i].id == 99)
            ck_assert(!st->members[i].voter && !st->members[i].reachable);
    ck_assert_int_eq(cluster_group_remove(leader()->g, 99, false, on_change, NULL), 0);
    want_changed = 5;
    ck_assert(run_until(all_changed, 10000));
    ck_assert_int_eq(changed[4], CLUSTER_CHANGE_BUSY);
}
END_TEST

static struct member *evicted_leader;

/* One of the two others leads them both (the evicted leader, which stepped down, hears from
 * nobody any more). */
static bool
two_left_lead(void)
{
    const struct cluster_group_status *st[N];
    unsigned leading = 0, agreeing = 0;
    for (unsigned i = 0; i < N; i++)
        st[i] = cluster_group_status(members[i].g);
    for (unsigned i = 0; i < N; i++) {
        if (&members[i] == evicted_leader || st[i]->role != CLUSTER_LEADER || st[i]->n_members != 2)
            continue;
        leading++;
        for (unsigned j = 0; j < N; j++)
            agreeing += &members[j] != evicted_leader && st[j]->leader_id == st[i]->leader_id;
    }
    return leading == 1 && agreeing == 2;
}

/* A running member removed (a replicated queue's delete_member): a follower asks the leader to
 * remove itself (forwarded there); it steps down once the configuration without it is
 * committed, and one of the two others leads. (A running follower removed would go on
 * campaigning, with ever higher terms, and stall the others' elections: its owner closes it
 * as soon as the removal is done.) */
START_TEST(test_evict_running)
{
    ck_assert_msg(run_until(have_leader, 10000), "no leader within 10 s");
    ck_assert_msg(run_until(all_reachable, 10000), "members not all reachable");
    struct member *l = leader();
    struct member *f = l == &members[0] ? &members[1] : &members[0];
    evicted_leader = l;
    n_changed = 0;
    ck_assert_int_eq(cluster_group_remove(f->g, (raft_id)(l - members) + 1, true, on_change, NULL),
                     0);
    want_changed = 1;
    ck_assert(run_until(all_changed, 10000));
    ck_assert_int_eq(changed[0], CLUSTER_CHANGE_DONE);
    ck_assert_msg(run_until(two_left_lead, 10000), "no other member leads");
}
END_TEST

/* Commands of every length from 1 to 20 bytes (entries of every size modulo 8): the members,
 * stopped and started again on their logs, read them back and apply them again in the same
 * order (raft 0.15's log loader misreads a segment whose entries are not padded to 8 bytes:
 * the group pads them). */
START_TEST(test_restart_reads_log)
{
    ck_assert_msg(run_until(have_leader, 10000), "no leader within 10 s");
    struct member *l = leader();
    submitter = l;
    uint8_t cmd[20];
    for (unsigned len = 1; len <= 20; len++) {
        memset(cmd, (int)len, len);
        ck_assert_int_eq(cluster_group_submit(l->g, cmd, len, on_done, NULL), 0);
        event_base_loop(base, EVLOOP_NONBLOCK); /* an entry each */
    }
    want_done = 20;
    ck_assert_msg(run_until(all_done, 10000), "%u of 20 answered", n_done);
    want_applied = 20;
    ck_assert(run_until(all_applied, 10000));
    uint32_t before[20];
    memcpy(before, l->applied, sizeof(before));
    for (unsigned i = 0; i < 20; i++) /* (the 4-byte one is recorded as its value) */
        ck_assert_uint_eq(before[i], i + 1 == 4 ? 0x04040404u : ODD + i + 1);

    members_stop(true);
    members_start(true);
    ck_assert_msg(run_until(have_leader, 10000), "no leader after the restart");
    /* A leader commits its predecessors' entries with one of its own term (Raft 3.6.2). */
    submitter = leader();
    n_done = 0;
    submit(submitter, 21);
    want_done = 1;
    ck_assert(run_until(all_done, 10000));
    want_applied = 21;
    ck_assert_int_eq(done_outcome[0], CLUSTER_COMMITTED);
    ck_assert_msg(run_until(all_applied, 10000), "%u commands applied again, not 21",
                  members[0].n_applied);
    for (unsigned i = 0; i < N; i++) {
        ck_assert_mem_eq(members[i].applied, before, sizeof(before));
        ck_assert_uint_eq(members[i].applied[20], 21);
    }
}
END_TEST

static Suite *
group_suite(void)
{
    Suite *s = suite_create("cluster_group");
    TCase *tc = tcase_create("group");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_leader_commits_in_order);
    tcase_add_test(tc, test_follower_forwards);
    tcase_add_test(tc, test_restart_reads_log);
    tcase_add_test(tc, test_member_changes);
    tcase_add_test(tc, test_evict_running);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    log_set_level(LOG_WARNING);
    SRunner *sr = srunner_create(group_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
