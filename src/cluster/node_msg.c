/* The broker's messages between nodes (cluster_send, cluster_on_node_message), and the
 * visibility of metadata changes (cluster_meta_wait_visible): both ride the node links.
 *
 * Visibility. A metadata command is answered on the node that submitted it once that node
 * applied it; RabbitMQ's clients expect more: a queue declared on one node is there on every
 * node once declare-ok comes (mnesia writes to every running node). So the submitter, after
 * its apply, asks each other running node to tell it once that node applied the log up to
 * the same index (CLUSTER_MSG_META_WAIT), and answers its client once all did, or after
 * CLUSTER_VISIBLE_MS for a node that says nothing (a node that slow is about to be seen down,
 * and catches up from the log before it serves anything again). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "cluster_int.h"
#include "warren/bytes.h"
#include "warren/log.h"

/* How long a visibility wait waits for a node that does not answer (ms). */
#define CLUSTER_VISIBLE_MS 2000
/* How often the waits are checked against it (ms). */
#define CLUSTER_VISIBLE_CHECK_MS 100

/* A broker message, on its way from the loop to a peer (to: its id) or back (from). */
struct cluster_msg {
    struct cluster_call call;
    struct cluster *c;
    raft_id peer;
    uint8_t type;
    uint8_t *bytes; /* owns */
    size_t len;
};

/* This node waiting for the others to apply up to index. */
struct cluster_visible {
    struct cluster_visible *next;
    uint64_t token;
    uint64_t deadline_ms;
    raft_id waiting[CLUSTER_MAX_NODES]; /* the nodes that have not answered; 0: answered */
    unsigned n_waiting;
    void (*done)(void *arg);
    void *arg;
};

/* Another node waiting for this one to apply up to index. */
struct cluster_remote_wait {
    struct cluster_remote_wait *next;
    raft_id peer;
    uint64_t token, index;
};

static uint64_t
cluster_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Raft thread: sends a message (dropped when the link cannot take it: see cluster_send). */
static void
cluster_msg_send(struct cluster_call *call)
{
    struct cluster_msg *m = (struct cluster_msg *)call;
    if (m->c->transport != NULL)
        cluster_transport_send(m->c->transport, m->peer, m->type, m->bytes, m->len);
    free(m->bytes);
    free(m);
}

/* Queues bytes (taken) of type to peer on the Raft thread. 0, or -1 on ENOMEM (bytes
 * freed). */
static int
cluster_msg_post(struct cluster *c, raft_id peer, uint8_t type, uint8_t *bytes, size_t len)
{
    struct cluster_msg *m = malloc(sizeof(*m));
    if (m == NULL) {
        free(bytes);
        return -1;
    }
    *m = (struct cluster_msg){.c = c, .peer = peer, .type = type, .bytes = bytes, .len = len};
    m->call.fn = cluster_msg_send;
    cluster_thread_call(c->thread, &m->call);
    return 0;
}

const struct cluster_member *
cluster_member_named(const struct cluster *c, const char *name)
{
    const struct cluster_group_status *st = cluster_group_status(c->meta);
    size_t n = strlen(name);
    for (unsigned i = 0; i < st->n_members; i++)
        if (cluster_address_name_len(st->members[i].address) == n &&
            memcmp(st->members[i].address, name, n) == 0)
            return &st->members[i];
    return NULL;
}

bool
cluster_node_running(const struct cluster *c, const char *name)
{
    const struct cluster_member *m = c->meta != NULL ? cluster_member_named(c, name) : NULL;
    return m != NULL && m->reachable;
}

int
cluster_send(struct cluster *c, const char *name, uint8_t *bytes, size_t len)
{
    int e = 0;
    const struct cluster_member *to = NULL;
    if (c->meta == NULL || c->closing)
        e = ESHUTDOWN;
    else if ((to = cluster_member_named(c, name)) == NULL)
        e = ENOENT;
    else if (!to->reachable)
        e = ENOTCONN;
    else if (cluster_msg_post(c, to->id, CLUSTER_MSG_BROKER, bytes, len) < 0)
        e = ENOMEM;
    else
        return 0;
    if (e != ENOMEM)
        free(bytes);
    errno = e;
    return -1;
}

void
cluster_on_node_message(struct cluster *c, cluster_node_msg_fn fn, void *arg)
{
    c->msg_fn = fn;
    c->msg_arg = arg;
}

/* ---- visibility ---- */

/* Answers peer's wait token. */
static void
cluster_visible_answer(struct cluster *c, raft_id peer, uint64_t token)
{
    uint8_t *b = malloc(8);
    if (b == NULL ||
        (bytes_put64(b, token), cluster_msg_post(c, peer, CLUSTER_MSG_META_APPLIED, b, 8)) < 0)
        log_msg(LOG_ERROR, "cluster: out of memory answering a node (it waits %u ms)",
                CLUSTER_VISIBLE_MS);
}

void
cluster_meta_applied(struct cluster *c, uint64_t index)
{
    c->applied_index = index;
    struct cluster_remote_wait **pp = &c->remote_waits, *w;
    while ((w = *pp) != NULL) {
        if (w->index <= index) {
            *pp = w->next;
            cluster_visible_answer(c, w->peer, w->token);
            free(w);
        } else {
            pp = &w->next;
        }
    }
}

/* Calls w's done and frees it (unlinked by the caller). */
static void
cluster_visible_done(struct cluster_visible *w)
{
    w->done(w->arg);
    free(w);
}

/* Unlinks and answers the waits that are complete (or past their deadline, now >= it). */
static void
cluster_visible_sweep(struct cluster *c, uint64_t now)
{
    struct cluster_visible **pp = &c->visible, *w;
    while ((w = *pp) != NULL) {
        if (w->n_waiting == 0 || now >= w->deadline_ms) {
            *pp = w->next;
            cluster_visible_done(w);
        } else {
            pp = &w->next;
        }
    }
}

static void
cluster_on_visible_timer(evutil_socket_t fd, short what, void *arg)
{
    struct cluster *c = arg;
    cluster_visible_sweep(c, cluster_now_ms());
    if (c->visible == NULL)
        event_del(c->visible_timer);
}

int
cluster_meta_wait_visible(struct cluster *c, void (*done)(void *arg), void *arg)
{
    const struct cluster_group_status *st = c->meta != NULL ? cluster_group_status(c->meta) : NULL;
    struct cluster_visible *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -1;
    w->done = done;
    w->arg = arg;
    w->token = ++c->next_token;
    w->deadline_ms = cluster_now_ms() + CLUSTER_VISIBLE_MS;
    for (unsigned i = 0; st != NULL && i < st->n_members; i++) {
        const struct cluster_member *m = &st->members[i];
        uint8_t *b = m->id != c->self_id && m->reachable ? malloc(16) : NULL;
        if (b == NULL)
            continue; /* (ENOMEM: that node is not waited for) */
        bytes_put64(b, w->token);
        bytes_put64(b + 8, c->applied_index);
        if (cluster_msg_post(c, m->id, CLUSTER_MSG_META_WAIT, b, 16) == 0)
            w->waiting[w->n_waiting++] = m->id;
    }
    if (w->n_waiting == 0) { /* alone now: visible everywhere that runs */
        cluster_visible_done(w);
        return 0;
    }
    if (c->visible_timer == NULL &&
        (c->visible_timer = event_new(c->base, -1, EV_PERSIST, cluster_on_visible_timer, c)) ==
            NULL) {
        cluster_visible_done(w); /* (ENOMEM: not waited for) */
        return 0;
    }
    struct timeval every = {0, CLUSTER_VISIBLE_CHECK_MS * 1000};
    if (!event_pending(c->visible_timer, EV_TIMEOUT, NULL))
        event_add(c->visible_timer, &every);
    w->next = c->visible;
    c->visible = w;
    return 0;
}

/* Broker's loop: peer's wait (token, index): answered once this node applied index. */
static void
cluster_on_meta_wait(struct cluster *c, raft_id peer, uint64_t token, uint64_t index)
{
    if (c->applied_index >= index) {
        cluster_visible_answer(c, peer, token);
        return;
    }
    struct cluster_remote_wait *w = malloc(sizeof(*w));
    if (w == NULL)
        return; /* it stops waiting after CLUSTER_VISIBLE_MS */
    *w = (struct cluster_remote_wait){
        .next = c->remote_waits, .peer = peer, .token = token, .index = index};
    c->remote_waits = w;
}

/* Broker's loop: peer applied what this node's wait token asked. */
static void
cluster_on_meta_applied(struct cluster *c, raft_id peer, uint64_t token)
{
    for (struct cluster_visible *w = c->visible; w != NULL; w = w->next) {
        if (w->token != token)
            continue;
        for (unsigned i = 0; i < w->n_waiting; i++)
            if (w->waiting[i] == peer) {
                w->waiting[i] = w->waiting[--w->n_waiting];
                break;
            }
        if (w->n_waiting == 0)
            cluster_visible_sweep(c, 0);
        return;
    }
}

void
cluster_visible_free(struct cluster *c)
{
    struct cluster_visible *w;
    while ((w = c->visible) != NULL) {
        c->visible = w->next;
        cluster_visible_done(w);
    }
    struct cluster_remote_wait *r;
    while ((r = c->remote_waits) != NULL) {
        c->remote_waits = r->next;
        free(r);
    }
    if (c->visible_timer != NULL) {
        event_free(c->visible_timer);
        c->visible_timer = NULL;
    }
}

/* ---- received ---- */

/* Broker's loop: a message from a peer: to the broker's callback with the sender's name, or
 * a visibility wait or answer. */
static void
cluster_msg_deliver(struct cluster_call *call)
{
    struct cluster_msg *m = (struct cluster_msg *)call;
    struct cluster *c = m->c;
    if (m->type == CLUSTER_MSG_META_WAIT && m->len == 16) {
        cluster_on_meta_wait(c, m->peer, bytes_get64(m->bytes), bytes_get64(m->bytes + 8));
    } else if (m->type == CLUSTER_MSG_META_APPLIED && m->len == 8) {
        cluster_on_meta_applied(c, m->peer, bytes_get64(m->bytes));
    } else if (m->type == CLUSTER_MSG_BROKER && c->msg_fn != NULL && c->meta != NULL) {
        const struct cluster_group_status *st = cluster_group_status(c->meta);
        for (unsigned i = 0; i < st->n_members; i++)
            if (st->members[i].id == m->peer) {
                char name[CLUSTER_NODE_NAME_MAX];
                snprintf(name, sizeof(name), "%.*s",
                         (int)cluster_address_name_len(st->members[i].address),
                         st->members[i].address);
                c->msg_fn(c->msg_arg, name, m->bytes, m->len);
                break;
            }
    }
    free(m->bytes);
    free(m);
}

void
cluster_node_msg_received(struct cluster *c, uint64_t peer, uint8_t type, const uint8_t *bytes,
                          size_t len)
{
    struct cluster_msg *m = malloc(sizeof(*m));
    uint8_t *copy = malloc(len > 0 ? len : 1);
    if (m == NULL || copy == NULL) {
        free(m);
        free(copy);
        log_msg(LOG_ERROR, "cluster: out of memory: a message of %zu bytes from node %llx dropped",
                len, (unsigned long long)peer);
        return;
    }
    memcpy(copy, bytes, len);
    *m = (struct cluster_msg){.c = c, .peer = peer, .type = type, .bytes = copy, .len = len};
    m->call.fn = cluster_msg_deliver;
    cluster_thread_post(c->thread, &m->call);
}
