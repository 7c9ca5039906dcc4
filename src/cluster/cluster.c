/* The node's part of a cluster (warren/cluster.h): reads the member list from the
 * configuration, starts the Raft thread, the cluster listener and the metadata group, hands
 * the metadata commands to the layers that apply them (by kind, their first byte), and keeps
 * what the group and the node links say about the nodes for the management API.
 *
 * The cluster's own command is the leader's marker: a new leader commits
 * [CLUSTER_META_LEADER][term, 8 bytes big-endian][its name] first thing in its term, which
 * tells every member who leads since when (logged) and, on the leader, that every entry of
 * earlier terms is committed and applied (Raft's no-op at the start of a term: a leader
 * commits its predecessors' entries only with one of its own).
 *
 * Joining (classic_config's first-boot semantics). A node whose metadata directory holds no
 * log yet asks every other listed node, over the transport's one-shot join connection
 * (cluster_transport_join), whether it is a member, before it starts its group:
 *   - a node whose group is formed (its log was there at its start, or it has known a leader,
 *     or committed an entry past the first configuration) answers MEMBER when the asker is in
 *     its configuration, else has the leader add it (raft_add, answered ADDED once committed,
 *     then raft_assign to voter once raft caught it up) and answers ADDED, or RETRY when that
 *     failed (no leader, another change under way);
 *   - a node not formed yet (pristine and still asking, or bootstrapped without a leader yet)
 *     answers NOT_FORMED.
 * MEMBER or ADDED from any node: the group starts without a bootstrap and the leader sends
 * the log. RETRY: the round is asked again every 500 ms, for up to 30 s, then the start fails.
 * Otherwise (every node answered NOT_FORMED or nothing within CLUSTER_JOIN_ROUND_MS) the node
 * bootstraps with the configured list, as every node of a new cluster does: identical first
 * configurations, so the nodes of a new cluster may bootstrap in any order. "Formed" needs a
 * leader (not just a bootstrap) so that nodes started one after the other still all
 * bootstrap: a node without configuration has no vote, and a bootstrapped node alone has no
 * leader to add anyone. The race: nodes that cannot reach each other at their first start
 * (two fresh partitions) each bootstrap; with the same list everywhere that is harmless (one
 * first configuration, one majority of it), but a node meant to join a formed cluster that
 * reaches none of its members bootstraps a configuration of its own list, whose first entry
 * conflicts with the cluster's: it must be started while the nodes it lists run. */
#include "config.h"

#include "warren/cluster.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "cluster_int.h"
#include "cookie.h"
#include "group.h"
#include "raft_thread.h"
#include "transport.h"
#include "warren/conf.h"
#include "warren/log.h"
#include "warren/tls.h"

/* The metadata group's id on the wire and its directory under <data_dir>/cluster. */
#define CLUSTER_META_GROUP 1
#define CLUSTER_META_DIR "cluster/meta"
/* Joining: how long a round of questions to the listed nodes may take (ms); how long a node
 * asks again while a formed cluster cannot add it now (ms), and how often (ms). */
#define CLUSTER_JOIN_ROUND_MS 3000
#define CLUSTER_JOIN_TRY_MS 30000
#define CLUSTER_JOIN_RETRY_MS 500
/* The answers to a join question (cluster_transport_join). */
enum {
    CLUSTER_JOIN_MEMBER = 'M',     /* in the formed cluster's configuration: start, no bootstrap */
    CLUSTER_JOIN_ADDED = 'A',      /* added to it now: the same */
    CLUSTER_JOIN_NOT_FORMED = 'N', /* the node asked has no formed group (pristine, or asking) */
    CLUSTER_JOIN_RETRY = 'R',      /* formed, but it could not add the asker now: ask again */
};
/* How long a closing node waits for its metadata changes in flight (ms). */
#define CLUSTER_CLOSE_DRAIN_MS 2000

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
size_t
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
    if (len < 9)
        return -1;
    uint64_t term = 0;
    for (int i = 1; i <= 8; i++)
        term = term << 8 | cmd[i];
    log_msg(LOG_INFO, "cluster: %.*s leads the metadata group (term %llu)", (int)(len - 9),
            (const char *)cmd + 9, (unsigned long long)term);
    return 0;
}

static int
cluster_meta_apply(void *arg, uint64_t index, const uint8_t *cmd, size_t len)
{
    struct cluster *c = arg;
    int rc = -1;
    if (len > 0 && c->appliers[cmd[0]].fn != NULL)
        rc = c->appliers[cmd[0]].fn(c->appliers[cmd[0]].arg, index, cmd, len);
    else
        log_msg(LOG_ERROR, "cluster: unknown metadata command %d of %zu bytes: skipped",
                len > 0 ? cmd[0] : -1, len);
    cluster_meta_applied(c, index);
    return rc;
}

void
cluster_meta_register(struct cluster *c, enum cluster_meta_kind kind, cluster_meta_apply_fn fn,
                      void *arg)
{
    c->appliers[(uint8_t)kind].fn = fn;
    c->appliers[(uint8_t)kind].arg = arg;
}

int
cluster_meta_submit(struct cluster *c, const void *cmd, size_t len, cluster_done_fn done, void *arg)
{
    if (c->meta == NULL || c->closing) {
        errno = ESHUTDOWN;
        return -1;
    }
    return cluster_group_submit(c->meta, cmd, len, done, arg);
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
    if (cluster_group_submit(c->meta, cmd, 9 + name_len, NULL, NULL) < 0)
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
        c->meta_started = true;
        cluster_setup_done(c, 0);
        return;
    }
    if (rc == -1) /* -2: the reason is in setup_err already */
        snprintf(c->setup_err, sizeof(c->setup_err), "%s", cluster_group_error(c->meta));
    cluster_transport_close(c->transport, cluster_setup_on_transport_closed, c);
}

/* A node's description, on its way from the broker's loop to the others or back. */
struct cluster_info {
    struct cluster_call call;
    struct cluster *c;
    raft_id peer; /* who sent it (received ones) */
    size_t len;
    char text[]; /* NUL-terminated */
};

static struct cluster_info *
cluster_info_new(struct cluster *c, raft_id peer, const void *text, size_t len)
{
    struct cluster_info *in = malloc(sizeof(*in) + len + 1);
    if (in == NULL)
        return NULL;
    in->c = c;
    in->peer = peer;
    in->len = len;
    memcpy(in->text, text, len);
    in->text[len] = '\0';
    return in;
}

/* Broker's loop: keeps the peer's latest description. */
static void
cluster_info_store(struct cluster_call *call)
{
    struct cluster_info *in = (struct cluster_info *)call;
    struct cluster *c = in->c;
    for (unsigned i = 0; i < CLUSTER_MAX_NODES; i++)
        if (c->peer_info[i].id == in->peer || c->peer_info[i].id == 0) {
            char *text = strdup(in->text);
            if (text != NULL) {
                free(c->peer_info[i].text);
                c->peer_info[i].id = in->peer;
                c->peer_info[i].text = text;
            }
            break;
        }
    free(in);
}

/* Raft thread: a peer's description, for the broker's loop. */
static void
cluster_info_received(struct cluster *c, raft_id peer, const uint8_t *bytes, size_t len)
{
    struct cluster_info *in = cluster_info_new(c, peer, bytes, len);
    if (in == NULL)
        return; /* the next one comes within an interval */
    in->call.fn = cluster_info_store;
    cluster_thread_post(c->thread, &in->call);
}

/* Raft thread: this node's description to every other member its link reaches. */
static void
cluster_info_send(struct cluster_call *call)
{
    struct cluster_info *out = (struct cluster_info *)call;
    struct cluster *c = out->c;
    raft_id ids[CLUSTER_MAX_NODES];
    unsigned n = c->transport != NULL && c->meta != NULL
                     ? cluster_group_members_now(c->meta, ids, CLUSTER_MAX_NODES)
                     : 0;
    for (unsigned i = 0; i < n; i++)
        if (ids[i] != c->self_id && cluster_transport_peer_alive(c->transport, ids[i]))
            cluster_transport_send(c->transport, ids[i], CLUSTER_MSG_NODE_INFO, out->text,
                                   out->len); /* lost: the next one comes */
    free(out);
}

static void
cluster_on_info_timer(evutil_socket_t fd, short what, void *arg)
{
    struct cluster *c = arg;
    char *text = c->info_fn(c->info_arg);
    struct cluster_info *out = text != NULL ? cluster_info_new(c, 0, text, strlen(text)) : NULL;
    free(text);
    if (out == NULL)
        return;
    out->call.fn = cluster_info_send;
    cluster_thread_call(c->thread, &out->call);
}

void
cluster_set_node_info(struct cluster *c, char *(*fn)(void *arg), void *arg, unsigned interval_ms)
{
    if (c->info_timer != NULL) {
        event_free(c->info_timer);
        c->info_timer = NULL;
    }
    c->info_fn = fn;
    c->info_arg = arg;
    if (fn == NULL || c->closing)
        return;
    struct timeval tv = {interval_ms / 1000, (interval_ms % 1000) * 1000};
    c->info_timer = event_new(c->base, -1, EV_PERSIST, cluster_on_info_timer, c);
    if (c->info_timer == NULL || event_add(c->info_timer, &tv) < 0)
        log_msg(LOG_ERROR, "cluster: cannot start sending this node's figures to the others");
}

/* Raft thread: a node-link message, [group id, u64][body], to its group. */
static void
cluster_on_link_message(void *arg, uint64_t peer, uint8_t type, const uint8_t *bytes, size_t len)
{
    struct cluster *c = arg;
    if (type == CLUSTER_MSG_NODE_INFO) {
        cluster_info_received(c, peer, bytes, len);
        return;
    }
    if (type >= CLUSTER_MSG_BROKER) {
        cluster_node_msg_received(c, peer, type, bytes, len);
        return;
    }
    uint64_t group = 0;
    for (int i = 0; i < 8 && (size_t)i < len; i++)
        group = group << 8 | bytes[i];
    if (len < 8) {
        log_msg(LOG_WARNING, "cluster: a message for no group here (%zu bytes) from node %llx", len,
                (unsigned long long)peer);
        return;
    }
    if (group == CLUSTER_META_GROUP)
        cluster_group_on_message(c->meta, peer, type, bytes + 8, len - 8);
    else /* a replicated queue's, or one gone (a deleted queue's late message): dropped */
        cluster_replica_on_message(c, group, peer, type, bytes + 8, len - 8);
}

/* ---- joining (Raft thread): see the top of the file ---- */

/* A join question being answered through the leader. */
struct cluster_join_pending {
    struct cluster *c;
    uint64_t token;
};

static void
cluster_join_added(void *arg, enum cluster_change outcome)
{
    struct cluster_join_pending *p = arg;
    if (p->c->transport != NULL)
        cluster_transport_join_answer(p->c->transport, p->token,
                                      outcome == CLUSTER_CHANGE_DONE ? CLUSTER_JOIN_ADDED
                                                                     : CLUSTER_JOIN_RETRY);
    free(p);
}

/* Another node asks whether it is a member of this node's cluster. */
static void
cluster_on_join(void *arg, uint64_t token, uint64_t id, const char *address)
{
    struct cluster *c = arg;
    if (!c->meta_started || !cluster_group_formed(c->meta)) {
        cluster_transport_join_answer(c->transport, token, CLUSTER_JOIN_NOT_FORMED);
        return;
    }
    raft_id ids[CLUSTER_GROUP_MAX_MEMBERS];
    unsigned n = cluster_group_members_now(c->meta, ids, CLUSTER_GROUP_MAX_MEMBERS);
    for (unsigned i = 0; i < n; i++)
        if (ids[i] == id) {
            cluster_transport_join_answer(c->transport, token, CLUSTER_JOIN_MEMBER);
            return;
        }
    struct cluster_join_pending *p = malloc(sizeof(*p));
    if (p == NULL) {
        cluster_transport_join_answer(c->transport, token, CLUSTER_JOIN_RETRY);
        return;
    }
    log_msg(LOG_INFO, "cluster: %s asks to join: adding it", address);
    *p = (struct cluster_join_pending){c, token};
    cluster_group_add_on_raft(c->meta, id, address, cluster_join_added, p);
}

static void cluster_setup_on_started(void *arg, int rc);
static void cluster_join_ask(struct cluster *c);

/* One question of a round, for its answer. */
struct cluster_join_question {
    struct cluster *c;
    unsigned round;
};

static void
cluster_join_again(uv_timer_t *t)
{
    cluster_join_ask(t->data);
}

/* The round is over: every listed node answered, or its time is up. */
static void
cluster_join_decide(struct cluster *c)
{
    uv_timer_stop(&c->join_timer);
    c->join_round++; /* late answers are this round's no more */
    uint64_t now = uv_now(cluster_thread_loop(c->thread));
    if (!c->join_member && c->join_retry && now - c->join_start < CLUSTER_JOIN_TRY_MS) {
        uv_timer_start(&c->join_timer, cluster_join_again, CLUSTER_JOIN_RETRY_MS, 0);
        return;
    }
    uv_close((uv_handle_t *)&c->join_timer, NULL);
    c->asking = false;
    if (c->join_member) {
        log_msg(LOG_INFO, "cluster: joining the formed cluster: its leader sends the log");
        cluster_group_skip_bootstrap(c->meta);
    } else if (c->join_retry) {
        snprintf(c->setup_err, sizeof(c->setup_err),
                 "cluster: the formed cluster could not add this node within %d s",
                 CLUSTER_JOIN_TRY_MS / 1000);
        cluster_setup_on_started(c, -2);
        return;
    } else {
        log_msg(LOG_INFO, "cluster: no listed node has a formed cluster: forming it with the "
                          "configured nodes");
    }
    cluster_group_start(c->meta, c->transport, cluster_setup_on_started, c);
}

static void
cluster_join_answered(void *arg, int answer)
{
    struct cluster_join_question *q = arg;
    struct cluster *c = q->c;
    unsigned round = q->round;
    free(q);
    if (round != c->join_round || !c->asking)
        return; /* a late answer: the round is decided */
    if (answer == CLUSTER_JOIN_MEMBER || answer == CLUSTER_JOIN_ADDED)
        c->join_member = true;
    else if (answer == CLUSTER_JOIN_RETRY)
        c->join_retry = true;
    if (--c->join_waiting == 0 || c->join_member)
        cluster_join_decide(c);
}

static void
cluster_join_timeout(uv_timer_t *t)
{
    cluster_join_decide(t->data);
}

/* A round: the join question to every other listed node at once. */
static void
cluster_join_ask(struct cluster *c)
{
    c->join_waiting = 0;
    c->join_retry = false;
    for (unsigned i = 0; i < c->n_peers; i++) {
        struct cluster_join_question *q = malloc(sizeof(*q));
        if (q == NULL)
            continue;
        *q = (struct cluster_join_question){c, c->join_round};
        if (cluster_transport_join(c->transport, c->peers[i], cluster_join_answered, q) < 0)
            free(q);
        else
            c->join_waiting++;
    }
    if (c->join_waiting == 0) {
        cluster_join_decide(c);
        return;
    }
    uv_timer_start(&c->join_timer, cluster_join_timeout, CLUSTER_JOIN_ROUND_MS, 0);
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
    if (c->tls != NULL)
        cluster_transport_set_tls(c->transport, c->tls);
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
    cluster_transport_on_join(c->transport, cluster_on_join, c);
    if (!c->pristine || c->n_peers == 0) {
        cluster_group_start(c->meta, c->transport, cluster_setup_on_started, c);
        return;
    }
    c->asking = true;
    c->join_start = uv_now(cluster_thread_loop(c->thread));
    uv_timer_init(cluster_thread_loop(c->thread), &c->join_timer);
    c->join_timer.data = c;
    cluster_join_ask(c);
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
    memcpy(c->nodes, members, n_members * sizeof(members[0]));
    c->n_nodes = n_members;
    snprintf(c->data_dir, sizeof(c->data_dir), "%s", conf->data_dir);
    LIST_INIT(&c->replicas);
    c->port = conf_distribution_port(conf);
    cluster_meta_register(c, CLUSTER_META_LEADER, cluster_apply_leader, NULL);
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
    if ((c->tls = tls_node_ctx_new(conf, err, errlen)) == NULL && err[0] != '\0')
        goto fail;
    char dir[4096], path[4200];
    snprintf(dir, sizeof(dir), "%s/%s", conf->data_dir, CLUSTER_META_DIR);
    /* raft_uv's metadata files: written at the bootstrap, or the first thing a joining node
     * receives from its leader */
    snprintf(path, sizeof(path), "%s/metadata1", dir);
    c->pristine = access(path, F_OK) != 0;
    snprintf(path, sizeof(path), "%s/metadata2", dir);
    c->pristine = c->pristine && access(path, F_OK) != 0;
    for (unsigned i = 0; i < n_members; i++)
        if ((int)i != self)
            snprintf(c->peers[c->n_peers++], sizeof(c->peers[0]), "%s", members[i].address);
    struct cluster_group_options o = {.id = CLUSTER_META_GROUP,
                                      .dir = dir,
                                      .self_id = members[self].id,
                                      .self_address = members[self].address,
                                      .n_initial = n_members,
                                      .initial = members,
                                      .ops = &cluster_meta_ops,
                                      .arg = c,
                                      .kick_commits = true,
                                      .links_members = true};
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
    SSL_CTX_free(c->tls);                          /* and its reference */
    c->tls = NULL;
    if (c->setup_rc < 0) {
        snprintf(err, errlen, "%s", c->setup_err);
        c->transport = NULL;
        goto fail;
    }
    log_msg(LOG_INFO, "cluster: node %s, one of %u, listening on %s:%u%s", c->self_name, n_members,
            c->bind, (unsigned)c->port, conf->distribution_ssl_certfile != NULL ? " (TLS)" : "");
    *out = c;
    return 0;

fail:
    /* Nothing is open on the Raft thread any more: it ends (or never started). */
    SSL_CTX_free(c->tls);
    cluster_thread_free(c->thread);
    if (c->meta != NULL)
        cluster_group_free(c->meta);
    pthread_mutex_destroy(&c->setup_lock);
    pthread_cond_destroy(&c->setup_cond);
    free(c);
    return -1;
}

const char *
cluster_self_name(const struct cluster *c)
{
    return c->self_name;
}

/* The metadata group's status as last published; an empty one once the group is closed (the
 * broker's timers and the management API may still ask while the node stops). */
static const struct cluster_group_status *
cluster_meta_status(const struct cluster *c)
{
    static const struct cluster_group_status none;
    return c->meta != NULL ? cluster_group_status(c->meta) : &none;
}

unsigned
cluster_nodes(const struct cluster *c, struct cluster_node_view *out, unsigned cap)
{
    const struct cluster_group_status *st = cluster_meta_status(c);
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
        v->info = NULL;
        for (unsigned j = 0; j < CLUSTER_MAX_NODES && c->peer_info[j].id != 0; j++)
            if (c->peer_info[j].id == m->id)
                v->info = c->peer_info[j].text;
    }
    return n;
}

void
cluster_metadata_stats(const struct cluster *c, struct cluster_metadata_stats *out)
{
    const struct cluster_group_status *st = cluster_meta_status(c);
    *out = (struct cluster_metadata_stats){.term = st->term,
                                           .leader = st->role == CLUSTER_LEADER,
                                           .commit_index = st->commit_index,
                                           .last_applied = st->last_applied};
    for (unsigned i = 0; i < st->n_members; i++) {
        if (st->members[i].reachable)
            out->running++;
        else
            out->down++;
    }
}

bool
cluster_node_is_quorum_critical(const struct cluster *c)
{
    const struct cluster_group_status *st = cluster_meta_status(c);
    unsigned voters = 0, running = 0;
    for (unsigned i = 0; i < st->n_members; i++)
        if (st->members[i].voter) {
            voters++;
            running += st->members[i].reachable;
        }
    return voters > 1 && running - 1 < voters / 2 + 1;
}

/* A forget_cluster_node's answer, never given within cluster_forget's call. */
struct cluster_forget_refusal {
    cluster_change_fn done;
    void *arg;
    enum cluster_change outcome;
};

static void
cluster_on_forget_refused(evutil_socket_t fd, short what, void *arg)
{
    struct cluster_forget_refusal *f = arg;
    f->done(f->arg, f->outcome);
    free(f);
}

int
cluster_forget(struct cluster *c, const char *name, cluster_change_fn done, void *arg)
{
    if (c->meta == NULL || c->closing) {
        errno = ESHUTDOWN;
        return -1;
    }
    const struct cluster_group_status *st = cluster_group_status(c->meta);
    const struct cluster_member *m = NULL;
    for (unsigned i = 0; i < st->n_members && m == NULL; i++) {
        size_t len = cluster_address_name_len(st->members[i].address);
        if (strlen(name) == len && memcmp(name, st->members[i].address, len) == 0)
            m = &st->members[i];
    }
    /* Refused here as the leader would (a running node: as this node sees it; the leader
     * checks again with what it sees), without a round trip. */
    enum cluster_change outcome = m == NULL             ? CLUSTER_CHANGE_NOT_MEMBER
                                  : m->id == c->self_id ? CLUSTER_CHANGE_SELF
                                  : m->reachable        ? CLUSTER_CHANGE_RUNNING
                                                        : CLUSTER_CHANGE_DONE;
    if (outcome == CLUSTER_CHANGE_DONE) {
        log_msg(LOG_INFO, "cluster: removing node %s from the cluster", name);
        return cluster_group_remove(c->meta, m->id, false, done, arg);
    }
    struct cluster_forget_refusal *f = malloc(sizeof(*f));
    if (f != NULL) {
        *f = (struct cluster_forget_refusal){done, arg, outcome};
        if (event_base_once(c->base, -1, EV_TIMEOUT, cluster_on_forget_refused, f, NULL) == 0)
            return 0;
    }
    free(f);
    errno = ENOMEM;
    return -1;
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

/* The transport closes once the metadata group and every replicated queue's are closed. */
static void
cluster_close_transport(struct cluster *c)
{
    if (c->meta_closed && c->n_replica_groups == 0 && !c->transport_closing) {
        c->transport_closing = true;
        c->transport_close_call.fn = cluster_close_transport_on_raft;
        cluster_thread_call(c->thread, &c->transport_close_call);
    }
}

static void
cluster_on_meta_closed(void *arg)
{
    struct cluster *c = arg;
    c->meta = NULL;
    c->meta_closed = true;
    cluster_close_transport(c);
}

void
cluster_replicas_closed(struct cluster *c)
{
    if (c->closing)
        cluster_close_transport(c);
}

/* Raft thread: join questions get no answer from the group once its close starts (it is
 * freed before the transport closes). */
static void
cluster_join_stop_on_raft(struct cluster_call *call)
{
    struct cluster *c = (struct cluster *)((char *)call - offsetof(struct cluster, join_stop_call));
    c->meta_started = false;
}

void
cluster_close(struct cluster *c, void (*done)(void *arg), void *arg)
{
    c->closing = true;
    c->done = done;
    c->done_arg = arg;
    cluster_set_node_info(c, NULL, NULL, 0);
    c->join_stop_call.fn = cluster_join_stop_on_raft; /* before the group's close, in order */
    cluster_thread_call(c->thread, &c->join_stop_call);
    cluster_replicas_close(c);
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
    cluster_visible_free(c);
    for (unsigned i = 0; i < CLUSTER_MAX_NODES; i++)
        free(c->peer_info[i].text);
    pthread_mutex_destroy(&c->setup_lock);
    pthread_cond_destroy(&c->setup_cond);
    free(c);
}
