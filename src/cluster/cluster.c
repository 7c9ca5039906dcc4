/* The node's part of a cluster (warren/cluster.h): reads the member list from the
 * configuration, starts the Raft thread, the cluster listener and the metadata group, and
 * keeps what the group says about the nodes for the management API.
 *
 * The metadata group's one command so far is the leader's marker: a new leader commits
 * [CLUSTER_META_LEADER][term, 8 bytes big-endian][its name] first thing in its term, which
 * tells every member who leads since when and, on the leader, that every entry of earlier
 * terms is committed and applied (Raft's no-op at the start of a term). */
#include "config.h"

#include "warren/cluster.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "cookie.h"
#include "group.h"
#include "raft_thread.h"
#include "transport.h"
#include "warren/conf.h"
#include "warren/log.h"

/* The metadata group's id on the wire and its directory under <data_dir>/cluster. */
#define CLUSTER_META_GROUP 1
#define CLUSTER_META_DIR "cluster/meta"
/* How long a closing node waits for its metadata changes in flight (ms). */
#define CLUSTER_CLOSE_DRAIN_MS 2000

struct cluster {
    struct event_base *base;             /* borrows */
    struct cluster_thread *thread;       /* owns */
    struct cluster_transport *transport; /* owns; lives on the Raft thread */
    struct cluster_group *meta;          /* owns, until closed */
    char self_name[CLUSTER_NODE_NAME_MAX];
    raft_id self_id;
    char self_address[CLUSTER_ADDRESS_MAX];
    uint64_t marked_term; /* the last term this node, as leader, submitted its marker for */
    char leader_name[CLUSTER_NODE_NAME_MAX]; /* from the last marker applied */
    uint64_t leader_term;
    struct {
        cluster_meta_apply_fn fn;
        void *arg;
    } appliers[256]; /* by kind, the command's first byte */
    /* starting: the Raft thread opens the transport and the group while the broker waits */
    pthread_mutex_t setup_lock;
    pthread_cond_t setup_cond;
    int setup_rc; /* 1 while under way, then 0 or -1 */
    char setup_err[512];
    char bind[64];
    uint16_t port;
    unsigned char secret[32]; /* the transport's key, until the set-up has passed it on */
    struct cluster_call setup_call;
    /* closing */
    bool closing, closed;
    void (*done)(void *arg);
    void *done_arg;
    struct cluster_call transport_close_call, closed_call;
};

/* A node's Raft id: 63 bits of SHA-256 over its name, the same on every node without any
 * registry, never 0 (raft's "none"). */
static raft_id
cluster_node_id(const char *name, size_t len)
{
    unsigned char md[32];
    unsigned int md_len = 0;
    EVP_Digest(name, len, md, &md_len, EVP_sha256(), NULL);
    raft_id id = 0;
    for (int i = 0; i < 8; i++)
        id = id << 8 | md[i];
    id >>= 1;
    return id != 0 ? id : 1;
}

/* The node name in a Raft address "name@host:port": its length. */
static size_t
cluster_address_name_len(const char *address)
{
    const char *colon = strrchr(address, ':');
    return colon != NULL ? (size_t)(colon - address) : strlen(address);
}

/* Fills m for the node name@host listening on port. Returns 0, or -1 when the address does
 * not fit. */
static int
cluster_member_set(struct cluster_member *m, const struct conf_node *n, uint16_t port)
{
    char name[2 * CONF_NODE_MAX + 2];
    memset(m, 0, sizeof(*m));
    snprintf(name, sizeof(name), "%s@%s", n->name, n->host);
    m->id = cluster_node_id(name, strlen(name));
    m->voter = true;
    bool v6 = strchr(n->host, ':') != NULL; /* an IPv6 address, bracketed in an address */
    int len = snprintf(m->address, sizeof(m->address), "%s@%s%s%s:%u", n->name, v6 ? "[" : "",
                       n->host, v6 ? "]" : "", (unsigned)port);
    return len < (int)sizeof(m->address) ? 0 : -1;
}

/* The group's members from cluster_formation.classic_config.nodes.N, "name@host:port" with
 * this node's distribution port where an entry gives none, and this node among them (added
 * when the list leaves it out, as RabbitMQ allows). Every node must list the same nodes: they
 * are the metadata group's first members. Returns 0, or -1 with err filled. */
static int
cluster_members_from_conf(const struct conf *conf, struct cluster_member *members,
                          unsigned *n_members, int *self, char *err, size_t errlen)
{
    uint16_t port = conf_distribution_port(conf);
    struct conf_node self_node, n;
    if (conf_node_parse(conf->nodename, false, &self_node, err, errlen) < 0)
        return -1;
    *self = -1;
    *n_members = 0;
    for (unsigned i = 0; i <= conf->cluster_nodes.n; i++) {
        if (i < conf->cluster_nodes.n) {
            if (conf_node_parse(conf->cluster_nodes.items[i], true, &n, err, errlen) < 0)
                return -1;
        } else if (*self < 0) {
            n = self_node; /* not listed: this node joins the list */
            n.port = 0;
        } else {
            break;
        }
        if (*n_members == CLUSTER_GROUP_MAX_MEMBERS) {
            snprintf(err, errlen, "cluster: at most %d nodes", CLUSTER_GROUP_MAX_MEMBERS);
            return -1;
        }
        struct cluster_member *m = &members[*n_members];
        if (cluster_member_set(m, &n, n.port != 0 ? n.port : port) < 0) {
            snprintf(err, errlen, "cluster: node name too long: %s@%s", n.name, n.host);
            return -1;
        }
        for (unsigned j = 0; j < *n_members; j++)
            if (members[j].id == m->id) {
                snprintf(err, errlen, "cluster: node %s@%s is listed twice", n.name, n.host);
                return -1;
            }
        if (strcmp(n.name, self_node.name) == 0 && strcmp(n.host, self_node.host) == 0)
            *self = (int)*n_members;
        (*n_members)++;
    }
    return 0;
}

/* The leader's marker (see the top of the file). */
static int
cluster_apply_leader(void *arg, uint64_t index, const uint8_t *cmd, size_t len)
{
    struct cluster *c = arg;
    if (len < 9)
        return -1;
    uint64_t term = 0;
    for (int i = 1; i <= 8; i++)
        term = term << 8 | cmd[i];
    c->leader_term = term;
    snprintf(c->leader_name, sizeof(c->leader_name), "%.*s", (int)(len - 9), (const char *)cmd + 9);
    log_msg(LOG_INFO, "cluster: %s leads the metadata group (term %llu)", c->leader_name,
            (unsigned long long)term);
    return 0;
}

static int
cluster_meta_apply(void *arg, uint64_t index, const uint8_t *cmd, size_t len)
{
    struct cluster *c = arg;
    for (int i = 0; i < 7 && len > 1 && cmd[len - 1] == 0; i++)
        len--; /* cluster_meta_put's padding */
    if (len > 0 && c->appliers[cmd[0]].fn != NULL)
        return c->appliers[cmd[0]].fn(c->appliers[cmd[0]].arg, index, cmd, len);
    log_msg(LOG_ERROR, "cluster: unknown metadata command %d of %zu bytes: skipped",
            len > 0 ? cmd[0] : -1, len);
    return -1;
}

void
cluster_meta_register(struct cluster *c, enum cluster_meta_kind kind, cluster_meta_apply_fn fn,
                      void *arg)
{
    c->appliers[(uint8_t)kind].fn = fn;
    c->appliers[(uint8_t)kind].arg = arg;
}

/* Submits a metadata command padded with NUL bytes (no command ends with one: the apply
 * strips them) so that its slot in the group's entry, a 4-byte length then the command, is a
 * multiple of 8 bytes, as the entry's 24-byte header is. raft 0.15's log writer pads an
 * entry's data to 8 bytes but its loader (uvLoadEntriesBatch) reads the unpadded length: an
 * entry of another size makes the batches after it in its segment unreadable at the next
 * start ("read header: short read"). The group's encoding is where this belongs; until it
 * pads, every metadata command goes through here. */
static int
cluster_meta_put(struct cluster *c, const void *cmd, size_t len, cluster_done_fn done, void *arg)
{
    size_t padded = len + (8 - (4 + len) % 8) % 8;
    uint8_t *buf = malloc(padded > 0 ? padded : 1);
    if (buf == NULL) {
        errno = ENOMEM;
        return -1;
    }
    memcpy(buf, cmd, len);
    memset(buf + len, 0, padded - len);
    int rc = cluster_group_submit(c->meta, buf, padded, done, arg);
    int e = errno;
    free(buf);
    errno = e;
    return rc;
}

int
cluster_meta_submit(struct cluster *c, const void *cmd, size_t len, cluster_done_fn done, void *arg)
{
    if (c->meta == NULL || c->closing) {
        errno = ESHUTDOWN;
        return -1;
    }
    return cluster_meta_put(c, cmd, len, done, arg);
}

static void
cluster_meta_changed(void *arg, const struct cluster_group_status *st)
{
    struct cluster *c = arg;
    if (st->role != CLUSTER_LEADER || st->term == c->marked_term || c->closing)
        return;
    uint8_t cmd[9 + CLUSTER_NODE_NAME_MAX];
    size_t name_len = strlen(c->self_name);
    cmd[0] = CLUSTER_META_LEADER;
    for (int i = 0; i < 8; i++)
        cmd[1 + i] = (uint8_t)(st->term >> (56 - 8 * i));
    memcpy(cmd + 9, c->self_name, name_len);
    if (cluster_meta_put(c, cmd, 9 + name_len, NULL, NULL) < 0)
        log_msg(LOG_ERROR, "cluster: cannot submit the leader's marker: %s", strerror(errno));
    else
        c->marked_term = st->term;
}

static const struct cluster_group_ops cluster_meta_ops = {
    .apply = cluster_meta_apply,
    .changed = cluster_meta_changed,
};

/* The Raft thread's answer to the broker waiting in cluster_open. */
static void
cluster_setup_done(struct cluster *c, int rc)
{
    if (rc < 0)
        cluster_thread_finish(c->thread);
    pthread_mutex_lock(&c->setup_lock);
    c->setup_rc = rc;
    pthread_cond_signal(&c->setup_cond);
    pthread_mutex_unlock(&c->setup_lock);
}

static void
cluster_setup_on_transport_closed(void *arg)
{
    cluster_setup_done(arg, -1);
}

static void
cluster_setup_on_started(void *arg, int rc)
{
    struct cluster *c = arg;
    if (rc == 0) {
        cluster_setup_done(c, 0);
        return;
    }
    snprintf(c->setup_err, sizeof(c->setup_err), "%s", cluster_group_error(c->meta));
    cluster_transport_close(c->transport, cluster_setup_on_transport_closed, c);
}

/* Raft thread: a node-link message, [group id, u64][body], to its group. */
static void
cluster_on_link_message(void *arg, uint64_t peer, uint8_t type, const uint8_t *bytes, size_t len)
{
    struct cluster *c = arg;
    uint64_t group = 0;
    for (int i = 0; i < 8 && (size_t)i < len; i++)
        group = group << 8 | bytes[i];
    if (len < 8 || group != CLUSTER_META_GROUP) {
        log_msg(LOG_WARNING, "cluster: a message for no group here (%zu bytes) from node %llx", len,
                (unsigned long long)peer);
        return;
    }
    cluster_group_on_message(c->meta, peer, type, bytes + 8, len - 8);
}

static void
cluster_setup_on_raft(struct cluster_call *call)
{
    struct cluster *c = (struct cluster *)((char *)call - offsetof(struct cluster, setup_call));
    c->transport =
        cluster_transport_new(cluster_thread_loop(c->thread), c->bind, c->port, c->secret,
                              sizeof(c->secret), c->setup_err, sizeof(c->setup_err));
    if (c->transport == NULL) {
        cluster_setup_done(c, -1);
        return;
    }
    cluster_transport_on_message(c->transport, cluster_on_link_message, c);
    if (cluster_transport_set_self(c->transport, c->self_id, c->self_address) < 0) {
        snprintf(c->setup_err, sizeof(c->setup_err), "cluster: bad address %s", c->self_address);
        cluster_transport_close(c->transport, cluster_setup_on_transport_closed, c);
        return;
    }
    if (cluster_transport_listen(c->transport, c->setup_err, sizeof(c->setup_err)) < 0) {
        cluster_transport_close(c->transport, cluster_setup_on_transport_closed, c);
        return;
    }
    cluster_group_start(c->meta, c->transport, cluster_setup_on_started, c);
}

int
cluster_open(struct event_base *base, const struct conf *conf, struct cluster **out, char *err,
             size_t errlen)
{
    *out = NULL;
    if (conf->cluster_nodes.n == 0)
        return 0;
    struct cluster_member members[CLUSTER_GROUP_MAX_MEMBERS];
    unsigned n_members;
    int self;
    if (cluster_members_from_conf(conf, members, &n_members, &self, err, errlen) < 0)
        return -1;
    struct cluster *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, errlen, "cluster: out of memory");
        return -1;
    }
    pthread_mutex_init(&c->setup_lock, NULL);
    pthread_cond_init(&c->setup_cond, NULL);
    c->base = base;
    snprintf(c->self_name, sizeof(c->self_name), "%s", conf->nodename);
    c->self_id = members[self].id;
    snprintf(c->self_address, sizeof(c->self_address), "%s", members[self].address);
    c->port = conf_distribution_port(conf);
    cluster_meta_register(c, CLUSTER_META_LEADER, cluster_apply_leader, c);
    snprintf(c->bind, sizeof(c->bind), "%s",
             conf->distribution_interface[0] != '\0' ? conf->distribution_interface : "0.0.0.0");
    /* The transport's key is the cookie's SHA-256: a cookie of any length Erlang takes (a
     * short one is as strong as it is) makes a key of the size HMAC-SHA256 wants. */
    char cookie[CLUSTER_COOKIE_MAX + 1];
    size_t cookie_len;
    int cookie_rc =
        cluster_cookie_load(conf->data_dir, cookie, sizeof(cookie), &cookie_len, err, errlen);
    if (cookie_rc == 0)
        EVP_Digest(cookie, cookie_len, c->secret, NULL, EVP_sha256(), NULL);
    OPENSSL_cleanse(cookie, sizeof(cookie));
    if (cookie_rc < 0)
        goto fail;
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/%s", conf->data_dir, CLUSTER_META_DIR);
    struct cluster_group_options o = {.id = CLUSTER_META_GROUP,
                                      .dir = dir,
                                      .self_id = members[self].id,
                                      .self_address = members[self].address,
                                      .n_initial = n_members,
                                      .initial = members,
                                      .ops = &cluster_meta_ops,
                                      .arg = c};
    if ((c->thread = cluster_thread_new(base, err, errlen)) == NULL ||
        (c->meta = cluster_group_new(base, c->thread, &o, err, errlen)) == NULL ||
        cluster_thread_start(c->thread, err, errlen) < 0)
        goto fail;
    /* The set-up runs on the Raft thread, as every libuv and raft call must; the broker
     * waits for it (once, at start). */
    c->setup_rc = 1;
    c->setup_call.fn = cluster_setup_on_raft;
    cluster_thread_call(c->thread, &c->setup_call);
    pthread_mutex_lock(&c->setup_lock);
    while (c->setup_rc == 1)
        pthread_cond_wait(&c->setup_cond, &c->setup_lock);
    pthread_mutex_unlock(&c->setup_lock);
    OPENSSL_cleanse(c->secret, sizeof(c->secret)); /* the transport keeps its copy */
    if (c->setup_rc < 0) {
        snprintf(err, errlen, "%s", c->setup_err);
        c->transport = NULL;
        goto fail;
    }
    log_msg(LOG_INFO, "cluster: node %s, one of %u, listening on %s:%u", c->self_name, n_members,
            c->bind, (unsigned)c->port);
    *out = c;
    return 0;

fail:
    /* Nothing is open on the Raft thread any more: it ends (or never started). */
    cluster_thread_free(c->thread);
    if (c->meta != NULL)
        cluster_group_free(c->meta);
    pthread_mutex_destroy(&c->setup_lock);
    pthread_cond_destroy(&c->setup_cond);
    free(c);
    return -1;
}

unsigned
cluster_nodes(const struct cluster *c, struct cluster_node_view *out, unsigned cap)
{
    const struct cluster_group_status *st = cluster_group_status(c->meta);
    unsigned n = 0;
    for (unsigned i = 0; i < st->n_members; i++, n++) {
        if (n >= cap)
            continue;
        const struct cluster_member *m = &st->members[i];
        struct cluster_node_view *v = &out[n];
        snprintf(v->name, sizeof(v->name), "%.*s", (int)cluster_address_name_len(m->address),
                 m->address);
        v->self = m->id == c->self_id;
        v->running = m->reachable;
        v->leader = m->id == st->leader_id;
    }
    return n;
}

/* ---- closing: the metadata group, then the transport (Raft thread), then the thread ---- */

static void
cluster_on_closed(struct cluster_call *call)
{
    struct cluster *c = (struct cluster *)((char *)call - offsetof(struct cluster, closed_call));
    c->closed = true;
    if (c->done != NULL)
        c->done(c->done_arg);
}

static void
cluster_on_transport_closed(void *arg)
{
    struct cluster *c = arg;
    c->transport = NULL;
    c->closed_call.fn = cluster_on_closed;
    cluster_thread_post(c->thread, &c->closed_call);
    cluster_thread_finish(c->thread);
}

static void
cluster_close_transport_on_raft(struct cluster_call *call)
{
    struct cluster *c =
        (struct cluster *)((char *)call - offsetof(struct cluster, transport_close_call));
    cluster_transport_close(c->transport, cluster_on_transport_closed, c);
}

static void
cluster_on_meta_closed(void *arg)
{
    struct cluster *c = arg;
    c->meta = NULL;
    c->transport_close_call.fn = cluster_close_transport_on_raft;
    cluster_thread_call(c->thread, &c->transport_close_call);
}

void
cluster_close(struct cluster *c, void (*done)(void *arg), void *arg)
{
    c->closing = true;
    c->done = done;
    c->done_arg = arg;
    if (c->meta != NULL)
        cluster_group_close(c->meta, CLUSTER_CLOSE_DRAIN_MS, cluster_on_meta_closed, c);
    else
        cluster_on_meta_closed(c);
}

static void
cluster_on_closed_sync(void *arg)
{
    struct cluster *c = arg;
    event_base_loopbreak(c->base);
}

void
cluster_free(struct cluster *c)
{
    if (c == NULL)
        return;
    if (!c->closing)
        cluster_close(c, cluster_on_closed_sync, c);
    else if (!c->closed) {
        c->done = cluster_on_closed_sync;
        c->done_arg = c;
    }
    while (!c->closed && event_base_loop(c->base, EVLOOP_ONCE) == 0)
        continue;
    cluster_thread_free(c->thread);
    pthread_mutex_destroy(&c->setup_lock);
    pthread_cond_destroy(&c->setup_cond);
    free(c);
}
