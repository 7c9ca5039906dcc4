/* Topology in a cluster: exchanges, queues' definitions and bindings change only through the
 * cluster's metadata log (warren/cluster.h, kind CLUSTER_META_TOPOLOGY), which every node
 * applies in the same order through the same functions as a node alone (chan_decl.c's
 * net_*), so that each change has the same outcome everywhere: a declare refused for an
 * inequivalent argument is refused on every node, and the node that submitted it answers the
 * client with the apply's reply code and text once it applied it: an AMQP channel
 * (chan_topology.c) or the HTTP API (net_topo_* below, net.h), whose changes have no
 * connection: no owner, their home this node, the HTTP user's name (none for the Unix socket).
 *
 * Queues have a home: the node whose connection declared them (q->home is NULL there and
 * names it on the others). Their messages live there; the other nodes hold the definition.
 * An exclusive queue's owner is named by a cluster-wide id (queue_owner.id, drawn by its
 * connection): on its home node the queue belongs to the connection's list, on the others
 * (and on its home once the connection is gone) to the registry's stand-in owner, so that
 * only that connection may use it. When the connection closes, its home submits 'O', which
 * deletes its queues on every node. An exclusive replicated queue's home moves with its
 * group's leader while its owner stays: its owner's node (queue.owner_node, the declare's
 * context home) is where it "lives" for 'N' and a restart's leftovers, and the one node
 * whose consumers its home serves (relay_home.c).
 *
 * A command is 'T', an op, then the submitter's context and the op's fields; strings are a u32
 * length then the bytes, flags a byte, ids u64 (big-endian):
 *   context  [user][vhost][u64 owner id][home node]    user "": no user (the admin socket);
 *                                                      owner: the submitting connection's
 *   'X' exchange.declare  [name][type][flags][arguments]
 *   'x' exchange.delete   [name][flags]
 *   'Q' queue.declare     [name][flags][arguments]     a new queue's home is the context's
 *   'q' queue.delete      [name]                       unconditional: if-unused and
 *                                                      if-empty are the home's to check
 *                                                      before it submits
 *   'B' bind, 'b' unbind  [flags][destination][source][routing key][arguments]
 *   'O' owner gone        (the context's owner id)     deletes the owner's exclusive queues
 *   'N' node down         (the context's home)         deletes the exclusive and transient
 *                                                      queues that live on that node (an
 *                                                      exclusive one's owner's node; the
 *                                                      metadata leader submits it for a node
 *                                                      it sees down, as RabbitMQ deletes a
 *                                                      down node's transient queues)
 *   'H' queue's home      [name]                       a replicated queue (its group: the
 *                                                      context's owner id) is served by the
 *                                                      context's home from now on (its
 *                                                      group's new leader: quorum.c)
 *   'G' member added      [name]                       the context's home is a member of
 *   'g' member removed    [name]                       the replicated queue's group (its id:
 *                                                      the context's owner id) from now on,
 *                                                      or no longer: it opens or deletes its
 *                                                      copy (quorum_members.c)
 *   '.' barrier           ()                           changes nothing: once it is applied
 *                                                      here, so is every change committed
 *                                                      before it was submitted
 * Permissions are checked when the command is applied, with the user's permissions as the log
 * has them at that point (users and permissions are in the same log), so every node decides
 * alike.
 *
 * Replay: like the admin layer's (src/admin/replicate.c), each apply writes its entry's index
 * (durable_meta_index_put) in the batch its records go in (in a cluster, every exchange,
 * binding and queue definition is stored: durable_set_clustered), and a start skips the
 * entries the store had. A restarted node's transient and exclusive queues lost their
 * messages and owners with its previous run: it deletes them through the log at start, as
 * RabbitMQ deletes a restarted node's transient queues. */
#include "config.h"

#include "topology.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "net_int.h"
#include "quorum.h"
#include "relay.h"
#include "warren/auth.h"
#include "warren/bytes.h"
#include "warren/cluster.h"
#include "warren/durable.h"
#include "warren/log.h"
#include "warren/queue.h"
#include "warren/vhost.h"

/* How often the metadata leader looks for nodes down (ms). */
#define TOPO_WATCH_MS 1000

/* ---- encoding ---- */

static void
topo_put(struct topo_buf *b, const void *bytes, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap > 0 ? b->cap * 2 : 256;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (p == NULL) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->p + b->len, bytes, n);
    b->len += n;
}

static void
topo_put_u8(struct topo_buf *b, uint8_t v)
{
    topo_put(b, &v, 1);
}

static void
topo_put_u64(struct topo_buf *b, uint64_t v)
{
    uint8_t x[8];
    bytes_put64(x, v);
    topo_put(b, x, 8);
}

static void
topo_put_bytes(struct topo_buf *b, const void *p, uint32_t n)
{
    uint8_t x[4];
    bytes_put32(x, n);
    topo_put(b, x, 4);
    topo_put(b, p, n);
}

static void
topo_put_cstr(struct topo_buf *b, const char *s)
{
    topo_put_bytes(b, s, (uint32_t)strlen(s));
}

void
topo_cmd_begin(struct topo_buf *b, char op, const char *user, const char *vhost, uint64_t owner_id,
               const char *home)
{
    *b = (struct topo_buf){0};
    topo_put_u8(b, CLUSTER_META_TOPOLOGY);
    topo_put_u8(b, (uint8_t)op);
    topo_put_cstr(b, user != NULL ? user : "");
    topo_put_cstr(b, vhost);
    topo_put_u64(b, owner_id);
    topo_put_cstr(b, home);
}

static void
topo_cmd_str(struct topo_buf *b, struct wire_str s)
{
    topo_put_bytes(b, s.ptr, s.len);
}

void
topo_cmd_exch_declare(struct topo_buf *b, const struct wire_exchange_declare *d)
{
    topo_cmd_str(b, d->exchange);
    topo_cmd_str(b, d->type);
    topo_put_u8(b, (d->durable ? TOPO_DURABLE : 0) | (d->auto_delete ? TOPO_AUTO_DELETE : 0) |
                       (d->internal ? TOPO_INTERNAL : 0));
    topo_put_bytes(b, d->arguments.ptr, d->arguments.len);
}

void
topo_cmd_exch_delete(struct topo_buf *b, struct wire_str name, bool if_unused)
{
    topo_cmd_str(b, name);
    topo_put_u8(b, if_unused ? TOPO_IF_UNUSED : 0);
}

void
topo_cmd_queue_declare(struct topo_buf *b, struct wire_str name, const struct wire_queue_declare *d)
{
    topo_cmd_str(b, name);
    topo_put_u8(b, (d->durable ? TOPO_DURABLE : 0) | (d->auto_delete ? TOPO_AUTO_DELETE : 0) |
                       (d->exclusive ? TOPO_EXCLUSIVE : 0) |
                       (d->queue.len == 0 ? TOPO_SERVER_NAMED : 0));
    topo_put_bytes(b, d->arguments.ptr, d->arguments.len);
}

void
topo_cmd_queue_delete(struct topo_buf *b, struct wire_str name)
{
    topo_cmd_str(b, name);
}

void
topo_cmd_queue_name(struct topo_buf *b, struct wire_str name)
{
    topo_cmd_str(b, name);
}

void
topo_cmd_bind(struct topo_buf *b, bool to_queue, struct wire_str destination,
              struct wire_str source, struct wire_str key, struct wire_table args)
{
    topo_put_u8(b, to_queue ? TOPO_TO_QUEUE : 0);
    topo_cmd_str(b, destination);
    topo_cmd_str(b, source);
    topo_cmd_str(b, key);
    topo_put_bytes(b, args.ptr, args.len);
}

int
topo_cmd_submit(struct net_server *s, struct topo_buf *b, cluster_done_fn done, void *arg)
{
    int rc = -1;
    if (b->failed)
        errno = ENOMEM;
    else
        rc = cluster_meta_submit(s->env.cluster, b->p, b->len, done, arg);
    free(b->p);
    *b = (struct topo_buf){0};
    return rc;
}

const char *
topo_outcome_text(enum cluster_outcome outcome)
{
    switch (outcome) {
    case CLUSTER_NOT_LEADER:
        return "the cluster has no leader now (an election, or no majority of the nodes "
               "running): the change is not made";
    case CLUSTER_MAYBE:
        return "the change may or may not have been made: the cluster lost its leader";
    default:
        return "the cluster could not take the change (out of memory, or the node is "
               "stopping)";
    }
}

/* ---- decoding ---- */

/* A command's fields as the apply reads them (borrowing the command's bytes). */
struct topo_cmd {
    char op;
    struct wire_str user, vhost, home;
    uint64_t owner_id;
    struct wire_str name, other; /* 'X': type; 'B', 'b': name is the destination, other the
                                  * source */
    struct wire_str key;         /* 'B', 'b': the routing key */
    struct wire_table args;
    uint8_t flags;
};

struct topo_reader {
    const uint8_t *p, *end;
    bool bad;
};

static struct wire_str
topo_get_str(struct topo_reader *r)
{
    if (r->bad || r->end - r->p < 4) {
        r->bad = true;
        return (struct wire_str){(const uint8_t *)"", 0};
    }
    uint32_t n = bytes_get32(r->p);
    r->p += 4;
    if ((size_t)(r->end - r->p) < n) {
        r->bad = true;
        return (struct wire_str){(const uint8_t *)"", 0};
    }
    struct wire_str s = {r->p, n};
    r->p += n;
    return s;
}

static uint8_t
topo_get_u8(struct topo_reader *r)
{
    if (r->bad || r->p >= r->end) {
        r->bad = true;
        return 0;
    }
    return *r->p++;
}

static uint64_t
topo_get_u64(struct topo_reader *r)
{
    if (r->bad || r->end - r->p < 8) {
        r->bad = true;
        return 0;
    }
    uint64_t v = bytes_get64(r->p);
    r->p += 8;
    return v;
}

/* Decodes cmd (len bytes, its kind byte first) into *c. 0, or -1 if it does not parse. */
static int
topo_decode(const uint8_t *cmd, size_t len, struct topo_cmd *c)
{
    struct topo_reader r = {cmd + 2, cmd + len, len < 2};
    memset(c, 0, sizeof(*c));
    c->op = len >= 2 ? (char)cmd[1] : 0;
    c->user = topo_get_str(&r);
    c->vhost = topo_get_str(&r);
    c->owner_id = topo_get_u64(&r);
    c->home = topo_get_str(&r);
    struct wire_str args = {0};
    switch (c->op) {
    case 'X':
        c->name = topo_get_str(&r);
        c->other = topo_get_str(&r);
        c->flags = topo_get_u8(&r);
        args = topo_get_str(&r);
        break;
    case 'x':
        c->name = topo_get_str(&r);
        c->flags = topo_get_u8(&r);
        break;
    case 'Q':
        c->name = topo_get_str(&r);
        c->flags = topo_get_u8(&r);
        args = topo_get_str(&r);
        break;
    case 'q':
    case 'H':
    case 'G':
    case 'g':
        c->name = topo_get_str(&r);
        break;
    case 'B':
    case 'b':
        c->flags = topo_get_u8(&r);
        c->name = topo_get_str(&r);
        c->other = topo_get_str(&r);
        c->key = topo_get_str(&r);
        args = topo_get_str(&r);
        break;
    case 'O':
    case 'N':
    case '.':
        break;
    default:
        return -1;
    }
    c->args = (struct wire_table){args.ptr, args.len};
    /* Names are AMQP shortstrs: longer ones never come from a well-formed submitter. */
    if (r.bad || r.p != r.end || c->name.len > 255 || c->other.len > 255 || c->key.len > 255 ||
        c->vhost.len > 255)
        return -1;
    return 0;
}

/* ---- applying ---- */

/* Fills *err. Returns code. */
static int
topo_fail(struct net_decl_err *err, uint16_t code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
    err->code = code;
    return code;
}

/* Whether s is this node's name. */
static bool
topo_is_self(const struct net_topology *t, struct wire_str s)
{
    return s.len == strlen(t->self) && memcmp(s.ptr, t->self, s.len) == 0;
}

/* The queue name in vh when it is exclusive to another owner than owner_id: then err is
 * RabbitMQ's RESOURCE_LOCKED. */
static bool
topo_locked(struct net_topology *t, struct vhost *vh, struct wire_str name, uint64_t owner_id)
{
    struct queue *q = vhost_queue_find(vh, name);
    if (q == NULL || q->owner == NULL || q->owner_id == owner_id)
        return false;
    topo_fail(&t->err, WIRE_RESOURCE_LOCKED,
              "cannot obtain exclusive access to locked queue '%s' in vhost '%s'. It could be "
              "originally declared on another connection or the exclusive property value does "
              "not match that of the original declaration.",
              q->name, vh->name);
    return true;
}

/* The exclusive-queue owner for a queue the command makes or uses: the queue's own owner when
 * it exists (the id matched: topo_locked), else on its home the connection's (the stand-in
 * once the connection is gone: its 'O' follows), elsewhere the stand-in. */
static struct queue_owner *
topo_owner(struct net_topology *t, struct vhost *vh, const struct topo_cmd *c)
{
    struct queue *q = vhost_queue_find(vh, c->name);
    if (q != NULL && q->owner != NULL)
        return q->owner;
    if (c->owner_id == 0)
        return NULL;
    if (topo_is_self(t, c->home)) {
        uint8_t key[8];
        bytes_put64(key, c->owner_id);
        struct hmap_entry *he = hmap_find(&t->owners, key, sizeof(key));
        if (he != NULL)
            return &hmap_container_of(he, struct conn, owner_by_id)->exclusive;
    }
    return &t->s->env.vhosts->others;
}

/* 'O': deletes the exclusive queues of owner id, now the stand-in's on every node. */
static void
topo_apply_owner_gone(struct net_topology *t, uint64_t id)
{
    struct queue_list *l = &t->s->env.vhosts->others.queues;
    struct queue *q = TAILQ_FIRST(l), *next;
    for (; q != NULL; q = next) {
        next = TAILQ_NEXT(q, owner_link);
        if (q->owner_id == id)
            vhost_queue_delete(q->vhost, q);
    }
}

/* Whether q goes with node: an exclusive queue whose owner's connection was there, or a
 * transient one whose messages were. */
static bool
topo_goes_with(struct net_topology *t, const struct queue *q, struct wire_str node)
{
    if (q->durable && q->owner == NULL)
        return false;
    const char *there = q->owner_node != NULL ? q->owner_node : q->home;
    return there != NULL ? strlen(there) == node.len && memcmp(there, node.ptr, node.len) == 0
                         : topo_is_self(t, node);
}

/* 'N': deletes the exclusive and transient queues that live on node (its exclusive queues'
 * connections and transient queues' messages went with it). */
static void
topo_apply_node_down(struct net_topology *t, struct wire_str node)
{
    for (struct vhost *vh = t->s->env.vhosts->head; vh != NULL; vh = vh->next) {
        struct hmap_iter it;
        struct hmap_entry *he;
        hmap_iter_init(&it, &vh->queues);
        while ((he = hmap_iter_next(&it)) != NULL) {
            struct queue *q = hmap_container_of(he, struct queue, by_name);
            if (topo_goes_with(t, q, node)) {
                log_msg(LOG_INFO, "cluster: queue '%s' in vhost '%s' deleted: node %.*s is down",
                        q->name, vh->name, WIRE_STR_ARG(node));
                vhost_queue_delete(vh, q);
            }
        }
    }
}

/* Applies c in vh for user (NULL: none) with perm. Returns 0 or the reply code (t->err). */
static int
topo_apply_op(struct net_topology *t, struct vhost *vh, const struct auth_perm *perm,
              const struct auth_user *u, const struct topo_cmd *c)
{
    const char *user = u != NULL ? auth_user_name(u) : NULL;
    struct net_decl_err *err = &t->err;
    bool *created = &t->created;
    switch (c->op) {
    case 'X': {
        struct wire_exchange_declare d = {.exchange = c->name,
                                          .type = c->other,
                                          .durable = (c->flags & TOPO_DURABLE) != 0,
                                          .auto_delete = (c->flags & TOPO_AUTO_DELETE) != 0,
                                          .internal = (c->flags & TOPO_INTERNAL) != 0,
                                          .arguments = c->args};
        return net_exch_declare(vh, perm, user, &d, created, err) < 0 ? err->code : 0;
    }
    case 'x':
        return net_exch_delete(vh, perm, user, c->name, (c->flags & TOPO_IF_UNUSED) != 0, err) < 0
                   ? err->code
                   : 0;
    case 'Q': {
        if (topo_locked(t, vh, c->name, c->owner_id))
            return err->code;
        struct wire_queue_declare d = {.queue = c->name,
                                       .durable = (c->flags & TOPO_DURABLE) != 0,
                                       .exclusive = (c->flags & TOPO_EXCLUSIVE) != 0,
                                       .auto_delete = (c->flags & TOPO_AUTO_DELETE) != 0,
                                       .arguments = c->args};
        if (c->flags & TOPO_SERVER_NAMED)
            d.queue = (struct wire_str){(const uint8_t *)"", 0};
        char home[CLUSTER_NODE_NAME_MAX];
        snprintf(home, sizeof(home), "%.*s", WIRE_STR_ARG(c->home));
        struct net_queue_home h = {.node = topo_is_self(t, c->home) ? NULL : home,
                                   .owner_node = home,
                                   .owner_id = c->owner_id,
                                   .group_id = t->index};
        struct queue *q;
        if (net_queue_declare(vh, perm, user, topo_owner(t, vh, c), &h, NULL, c->name, &d, &q,
                              created, err) < 0)
            return err->code;
        if (*created && q->group_id != 0)
            net_quorum_queue_added(t->s, q);
        return 0;
    }
    case 'H':
        net_quorum_home_changed(t->s, vh, c->name, c->owner_id, c->home);
        return 0;
    case 'G':
    case 'g':
        net_quorum_member_changed(t->s, vh, c->name, c->owner_id, c->home, c->op == 'G');
        return 0;
    case 'q':
        if (topo_locked(t, vh, c->name, c->owner_id))
            return err->code;
        return net_queue_delete(vh, perm, user, topo_owner(t, vh, c), c->name, false, false,
                                &t->deleted, err) < 0
                   ? err->code
                   : 0;
    case 'B':
    case 'b':
        if ((c->flags & TOPO_TO_QUEUE) && topo_locked(t, vh, c->name, c->owner_id))
            return c->op == 'b' ? 0 : err->code; /* unbinding another's queue: nothing */
        return net_bind(vh, perm, u, (c->flags & TOPO_TO_QUEUE) ? topo_owner(t, vh, c) : NULL,
                        c->op == 'b', (c->flags & TOPO_TO_QUEUE) != 0, c->name, c->other, c->key,
                        c->args, err) < 0
                   ? err->code
                   : 0;
    case 'O':
        topo_apply_owner_gone(t, c->owner_id);
        return 0;
    case 'N':
        topo_apply_node_down(t, c->home);
        return 0;
    default: /* '.' */
        return 0;
    }
}

/* The metadata group's apply of kind 'T', on every node in log order. */
static int
topo_apply(void *arg, uint64_t index, const uint8_t *cmd, size_t len)
{
    struct net_topology *t = arg;
    struct net_server *s = t->s;
    struct durable *d = s->env.vhosts->durable;
    t->err.code = 0;
    t->err.text[0] = '\0';
    t->created = false;
    t->deleted = 0;
    t->index = index;
    if (d != NULL && index <= durable_meta_index(d))
        return 0; /* stored before this start */
    struct topo_cmd c;
    int rc;
    if (topo_decode(cmd, len, &c) < 0) {
        rc = topo_fail(&t->err, WIRE_INTERNAL_ERROR, "metadata command %" PRIu64 " does not parse",
                       index);
        log_msg(LOG_ERROR, "cluster: %s: skipped", t->err.text);
    } else if (c.op == 'O' || c.op == 'N' || c.op == '.') {
        rc = topo_apply_op(t, NULL, NULL, NULL, &c);
    } else {
        struct vhost *vh = vhost_find(s->env.vhosts, c.vhost);
        struct auth_user *u = NULL;
        char user[256];
        snprintf(user, sizeof(user), "%.*s", WIRE_STR_ARG(c.user));
        if (vh == NULL)
            rc = topo_fail(&t->err, WIRE_NOT_FOUND, "no vhost '%.*s'", WIRE_STR_ARG(c.vhost));
        else if (c.user.len > 0 && (u = auth_user_get(s->env.auth, user)) == NULL)
            rc = topo_fail(&t->err, WIRE_ACCESS_REFUSED, "user '%s' no longer exists", user);
        else
            rc = topo_apply_op(t, vh, u != NULL ? auth_perm_find(u, vh->name) : NULL, u, &c);
    }
    if (d != NULL)
        durable_meta_index_put(d, index);
    return rc;
}

/* ---- the node's part ---- */

static void
topo_on_cleanup_done(void *arg, enum cluster_outcome outcome, int result)
{
    char *what = arg;
    if (outcome != CLUSTER_COMMITTED)
        log_msg(LOG_WARNING, "cluster: %s: not deleted (no leader): it stays until deleted", what);
    else if (result != 0)
        log_msg(LOG_WARNING, "cluster: %s: not deleted (%d)", what, result);
    free(what);
}

/* Submits the deletion of q, this node's, for the reason what (malloc'ed, or NULL on ENOMEM:
 * logged and not submitted). */
static void
topo_delete_queue(struct net_topology *t, struct queue *q, char *what)
{
    struct topo_buf cmd;
    topo_cmd_begin(&cmd, 'q', NULL, q->vhost->name, q->owner_id, t->self);
    topo_cmd_queue_delete(&cmd, (struct wire_str){(const uint8_t *)q->name, q->name_len});
    if (what == NULL || topo_cmd_submit(t->s, &cmd, topo_on_cleanup_done, what) < 0) {
        log_msg(LOG_ERROR, "cluster: cannot delete the queue '%s' in vhost '%s': %s", q->name,
                q->vhost->name, what == NULL ? "out of memory" : strerror(errno));
        free(cmd.p);
        free(what);
    }
}

static void
topo_on_node_down_done(void *arg, enum cluster_outcome outcome, int result)
{
    char *node = arg;
    (void)result;
    if (outcome != CLUSTER_COMMITTED)
        log_msg(LOG_WARNING, "cluster: the transient queues of node %s, down, may not be deleted",
                node);
    free(node);
}

int
topo_node_down_submit(struct net_server *s, const char *node)
{
    struct topo_buf cmd;
    topo_cmd_begin(&cmd, 'N', NULL, "", 0, node);
    char *name = strdup(node);
    if (name != NULL && topo_cmd_submit(s, &cmd, topo_on_node_down_done, name) == 0)
        return 0;
    free(cmd.p);
    free(name);
    return -1;
}

/* A queue deletes itself (vhost_queue_delete_self): on every node, through the log. */
static void
topo_delete_self(void *arg, struct queue *q)
{
    char *what = malloc(600);
    if (what != NULL)
        snprintf(what, 600, "queue '%s' in vhost '%s' (x-expires or auto-delete)", q->name,
                 q->vhost->name);
    topo_delete_queue(arg, q, what);
}

/* A restart's leftovers: this node's transient and exclusive queues (their messages and
 * owners went with the previous run) are deleted through the log. */
static void
topo_delete_leftovers(struct net_topology *t)
{
    for (struct vhost *vh = t->s->env.vhosts->head; vh != NULL; vh = vh->next) {
        struct hmap_iter it;
        struct hmap_entry *he;
        hmap_iter_init(&it, &vh->queues);
        while ((he = hmap_iter_next(&it)) != NULL) {
            struct queue *q = hmap_container_of(he, struct queue, by_name);
            if (!topo_goes_with(
                    t, q, (struct wire_str){(const uint8_t *)t->self, (uint32_t)strlen(t->self)}))
                continue;
            char *what = malloc(600);
            if (what != NULL)
                snprintf(what, 600, "%s queue '%s' in vhost '%s' of the previous run",
                         q->owner != NULL ? "exclusive" : "transient", q->name, vh->name);
            topo_delete_queue(t, q, what);
        }
    }
}

/* ---- the HTTP API's changes ---- */

/* One change in flight. */
struct topo_http_wait {
    LIST_ENTRY(topo_http_wait) link; /* in net_topology.http_waits */
    struct net_topology *t;          /* borrows; NULL once answered by net_topology_free */
    net_topo_done_fn done;
    void *arg;
    bool created; /* the apply's, kept while the change becomes visible everywhere */
    uint64_t deleted;
};

bool
net_clustered(const struct net_server *s)
{
    return s != NULL && s->topo != NULL;
}

/* Fills err for the HTTP API. Returns -1. */
static int
topo_http_fail(struct net_decl_err *err, uint16_t code, const char *text)
{
    topo_fail(err, code, "%s", text);
    return -1;
}

/* w's change is applied on every running node: answered (unless net_topology_free did). */
static void
topo_http_on_visible(void *arg)
{
    struct topo_http_wait *w = arg;
    if (w->t != NULL) {
        LIST_REMOVE(w, link);
        struct net_decl_err none = {0};
        w->done(w->arg, &none, w->created, w->deleted);
    }
    free(w);
}

/* The cluster's done callback of a wait: its change's outcome, from the apply that ran just
 * before on this node, to the wait's done. */
static void
topo_http_on_outcome(void *arg, enum cluster_outcome outcome, int result)
{
    struct topo_http_wait *w = arg;
    struct net_topology *t = w->t;
    if (t != NULL && outcome == CLUSTER_COMMITTED && result == 0) {
        /* answered once every running node applied it too */
        w->created = t->created;
        w->deleted = t->deleted;
        if (cluster_meta_wait_visible(t->s->env.cluster, topo_http_on_visible, w) == 0)
            return;
    }
    if (t != NULL) {
        LIST_REMOVE(w, link);
        struct net_decl_err none = {0};
        if (outcome != CLUSTER_COMMITTED) {
            topo_http_fail(&none, NET_DECL_UNAVAILABLE, topo_outcome_text(outcome));
            w->done(w->arg, &none, false, 0);
        } else if (result != 0) {
            w->done(w->arg, &t->err, false, 0);
        } else {
            w->done(w->arg, &none, w->created, w->deleted);
        }
    }
    free(w);
}

/* Starts op for the HTTP API: u's (NULL: none, the Unix socket's), in vh, no owner, its home
 * (a new queue's) this node. */
static void
topo_http_begin(struct net_server *s, struct topo_buf *b, char op, struct vhost *vh,
                const struct auth_user *u)
{
    topo_cmd_begin(b, op, u != NULL ? auth_user_name(u) : NULL, vh->name, 0, s->topo->self);
}

/* Submits b's command (emptied) for the HTTP API, answered by done(arg). 0, or -1 with err. */
static int
topo_http_submit(struct net_server *s, struct topo_buf *b, net_topo_done_fn done, void *arg,
                 struct net_decl_err *err)
{
    struct topo_http_wait *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        free(b->p);
        *b = (struct topo_buf){0};
        return topo_http_fail(err, WIRE_RESOURCE_ERROR, "out of memory");
    }
    *w = (struct topo_http_wait){.t = s->topo, .done = done, .arg = arg};
    LIST_INSERT_HEAD(&s->topo->http_waits, w, link);
    if (topo_cmd_submit(s, b, topo_http_on_outcome, w) < 0) {
        int e = errno;
        LIST_REMOVE(w, link);
        free(w);
        if (e == ENOMEM)
            return topo_http_fail(err, WIRE_RESOURCE_ERROR, "out of memory");
        if (e == EMSGSIZE)
            return topo_http_fail(err, WIRE_PRECONDITION_FAILED, "the change is too large");
        return topo_http_fail(err, NET_DECL_UNAVAILABLE, topo_outcome_text(CLUSTER_FAILED));
    }
    return 0;
}

/* Whether the vhost's name and the n names fit a command (topo_decode takes AMQP's short
 * strings); else err. The HTTP API's paths may be longer. */
static bool
topo_http_names_fit(const struct vhost *vh, const struct wire_str *names, size_t n,
                    struct net_decl_err *err)
{
    bool fit = strlen(vh->name) <= 255;
    for (size_t i = 0; i < n; i++)
        fit = fit && names[i].len <= 255;
    if (!fit)
        topo_http_fail(err, WIRE_PRECONDITION_FAILED,
                       "names longer than 255 bytes are not taken in a cluster");
    return fit;
}

int
net_topo_exch_declare(struct net_server *s, struct vhost *vh, const struct auth_user *u,
                      const struct wire_exchange_declare *d, net_topo_done_fn done, void *arg,
                      struct net_decl_err *err)
{
    if (!topo_http_names_fit(vh, &d->exchange, 1, err))
        return -1;
    struct topo_buf b;
    topo_http_begin(s, &b, 'X', vh, u);
    topo_cmd_exch_declare(&b, d);
    return topo_http_submit(s, &b, done, arg, err);
}

int
net_topo_exch_delete(struct net_server *s, struct vhost *vh, const struct auth_user *u,
                     struct wire_str name, bool if_unused, net_topo_done_fn done, void *arg,
                     struct net_decl_err *err)
{
    if (!topo_http_names_fit(vh, &name, 1, err))
        return -1;
    struct topo_buf b;
    topo_http_begin(s, &b, 'x', vh, u);
    topo_cmd_exch_delete(&b, name, if_unused);
    return topo_http_submit(s, &b, done, arg, err);
}

int
net_topo_queue_declare(struct net_server *s, struct vhost *vh, const struct auth_user *u,
                       const struct wire_queue_declare *d, net_topo_done_fn done, void *arg,
                       struct net_decl_err *err)
{
    if (!topo_http_names_fit(vh, &d->queue, 1, err))
        return -1;
    struct topo_buf b;
    topo_http_begin(s, &b, 'Q', vh, u);
    topo_cmd_queue_declare(&b, d->queue, d);
    return topo_http_submit(s, &b, done, arg, err);
}

int
net_topo_queue_delete(struct net_server *s, struct vhost *vh, const struct auth_user *u,
                      struct wire_str name, bool if_unused, bool if_empty, net_topo_done_fn done,
                      void *arg, struct net_decl_err *err)
{
    if (!topo_http_names_fit(vh, &name, 1, err))
        return -1;
    /* The command is unconditional: if-unused and if-empty are checked here first, as
     * chan_topology_queue_delete does (by asking its home for a queue living on another
     * node). */
    struct queue *q;
    const char *user = u != NULL ? auth_user_name(u) : NULL;
    if ((if_unused || if_empty) &&
        net_queue_delete_check(vh, u != NULL ? auth_perm_find(u, vh->name) : NULL, user, NULL, name,
                               if_unused, if_empty, &q, err) < 0)
        return -1;
    if ((if_unused || if_empty) && q != NULL && q->home != NULL)
        return relay_http_queue_delete(s, vh, user, q, if_unused, if_empty, done, arg, err);
    return topo_http_queue_delete(s, vh->name, user, name, done, arg, err);
}

int
topo_http_queue_delete(struct net_server *s, const char *vhost, const char *user,
                       struct wire_str name, net_topo_done_fn done, void *arg,
                       struct net_decl_err *err)
{
    struct topo_buf b;
    topo_cmd_begin(&b, 'q', user, vhost, 0, s->topo->self);
    topo_cmd_queue_delete(&b, name);
    return topo_http_submit(s, &b, done, arg, err);
}

int
net_topo_bind(struct net_server *s, struct vhost *vh, const struct auth_user *u, bool unbind,
              bool to_queue, struct wire_str destination, struct wire_str source,
              struct wire_str routing_key, struct wire_table args, net_topo_done_fn done, void *arg,
              struct net_decl_err *err)
{
    struct wire_str names[] = {destination, source, routing_key};
    if (!topo_http_names_fit(vh, names, 3, err))
        return -1;
    struct topo_buf b;
    topo_http_begin(s, &b, unbind ? 'b' : 'B', vh, u);
    topo_cmd_bind(&b, to_queue, destination, source, routing_key, args);
    return topo_http_submit(s, &b, done, arg, err);
}

/* Every TOPO_WATCH_MS: the metadata leader submits 'N' for each node it sees down (once
 * until it runs again); a node that sees another run forgets it was down. */
static void
topo_on_watch(evutil_socket_t fd, short what, void *arg)
{
    struct net_topology *t = arg;
    (void)fd;
    (void)what;
    struct cluster_node_view v[CLUSTER_MAX_NODES];
    unsigned n = cluster_nodes(t->s->env.cluster, v, CLUSTER_MAX_NODES);
    bool leads = false;
    for (unsigned i = 0; i < n && i < CLUSTER_MAX_NODES; i++)
        leads |= v[i].self && v[i].leader;
    for (unsigned i = 0; i < n && i < CLUSTER_MAX_NODES; i++) {
        unsigned j = 0;
        while (j < t->n_down && strcmp(t->down[j], v[i].name) != 0)
            j++;
        if (v[i].running && j < t->n_down) {
            memmove(t->down[j], t->down[--t->n_down], sizeof(t->down[j]));
        } else if (!v[i].running && j == t->n_down && leads && t->n_down < CLUSTER_MAX_NODES &&
                   topo_node_down_submit(t->s, v[i].name) == 0) {
            memcpy(t->down[t->n_down++], v[i].name, sizeof(t->down[0])); /* (else: next look) */
        }
    }
}

int
net_topology_open(struct net_server *s)
{
    if (s->env.cluster == NULL)
        return 0;
    struct net_topology *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -1;
    t->s = s;
    t->self = cluster_self_name(s->env.cluster);
    hmap_init(&t->owners);
    LIST_INIT(&t->http_waits);
    s->topo = t;
    struct timeval every = {TOPO_WATCH_MS / 1000, (TOPO_WATCH_MS % 1000) * 1000};
    if ((t->watch = event_new(s->env.base, -1, EV_PERSIST, topo_on_watch, t)) == NULL ||
        event_add(t->watch, &every) < 0) {
        if (t->watch != NULL)
            event_free(t->watch);
        hmap_clear(&t->owners);
        free(t);
        s->topo = NULL;
        return -1;
    }
    cluster_meta_register(s->env.cluster, CLUSTER_META_TOPOLOGY, topo_apply, t);
    vhost_set_self_delete(topo_delete_self, t);
    topo_delete_leftovers(t);
    return 0;
}

void
net_topology_free(struct net_server *s)
{
    struct net_topology *t = s->topo;
    if (t == NULL)
        return;
    cluster_meta_register(s->env.cluster, CLUSTER_META_TOPOLOGY, NULL, NULL);
    vhost_set_self_delete(NULL, NULL);
    event_free(t->watch);
    struct topo_http_wait *w;
    while ((w = LIST_FIRST(&t->http_waits)) != NULL) { /* the cluster's answer frees w */
        LIST_REMOVE(w, link);
        w->t = NULL;
        struct net_decl_err err;
        topo_http_fail(&err, NET_DECL_UNAVAILABLE, "the node is stopping");
        w->done(w->arg, &err, false, 0);
    }
    hmap_clear(&t->owners);
    free(t);
    s->topo = NULL;
}
