/* The administration layer in a cluster (warren/admin.h): a change asked for on any node is
 * checked as far as that needs no state, then submitted to the cluster's metadata group as
 * one command, which every node applies in log order through the same functions as alone
 * (the public admin_* functions, with a->applying set so that they change rather than
 * submit). The apply's result is the command's: a permission for a missing user is refused
 * on every node alike, and the submitting node answers with the apply's text.
 *
 * A command (warren/cluster.h: its first byte is its kind) is 'A', an op byte, then the
 * op's arguments as a compact JSON array:
 *   'R' [kind, record]                 admin_apply(kind, record) stored: a whole record (a
 *                                      user's carries a password_hash made by the
 *                                      submitter, never a password, so every node stores
 *                                      the same hash)
 *   'u' [user]                         admin_user_delete
 *   't' [user, [tag, ...]]             admin_user_set_tags
 *   'w' [user, password_hash, alg]     admin_user_set_password, hashed by the submitter
 *                                      ("" for clear_password)
 *   'l' [user, limit, value]           admin_user_set_limit
 *   'd' [vhost]                        admin_vhost_delete
 *   'm' [vhost, limit, value]          admin_vhost_set_limit
 *   'c' [user, vhost]                  admin_perm_clear
 *   'x' [user, vhost, exchange|null]   admin_topic_perm_clear
 *   'p' [operator, vhost, name, body]  admin_policy_put (operator: true for an operator
 *                                      policy)
 *   'q' [operator, vhost, name]        admin_policy_delete
 *   's' [kind, name, ...]              admin_stored_delete
 *   'S' [vhost, user, permission]      a first start's defaults (admin_seed_records): applied
 *                                      only while there is no user and no vhost, so that the
 *                                      first in the log makes them and the others (every
 *                                      node's first start submits them, even one joining
 *                                      later) change nothing
 *   'D' [definitions, node]            admin_definitions_import (POST /api/definitions, and
 *                                      load_definitions, which each start submits); users
 *                                      carry hashes, as in 'R'; the queues it makes live on
 *                                      node, the one that submitted it
 *
 * Replay: the log is replayed from its start at every start (no snapshots yet). Each apply
 * writes its entry's index (durable_meta_index_put) in the loop turn's batch, the one its
 * records go in, so that what is stored is always the state after some index; a start skips
 * the entries at or below it (durable_meta_index), and the state never goes back, even for a
 * moment.
 *
 * Waiting: a change's done is called once, on the first of its outcome (committed, applied
 * here, then its records synced) and ADMIN_CLUSTER_WAIT_MS (ADMIN_UNAVAILABLE: "may or may
 * not"); its pending entry stays until the cluster answers, which it always does (closing
 * answers CLUSTER_MAYBE). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "admin_int.h"
#include "warren/cluster.h"
#include "warren/conf.h"
#include "warren/durable.h"
#include "warren/log.h"
#include "warren/vhost.h"

/* How long a start waits before submitting its defaults or definitions again (no leader
 * yet). */
#define ADMIN_BOOT_RETRY_MS 200

/* A change submitted, waiting for its outcome. */
struct admin_pending {
    struct admin_pending *next, **prevp; /* in a->pending */
    struct admin *a;
    admin_done_fn done; /* NULL once called */
    void *arg;
    struct event *timer; /* owns: ADMIN_CLUSTER_WAIT_MS */
};

bool
admin_replicated(const struct admin *a)
{
    return a->cluster != NULL && !a->applying;
}

/* ---- applying ---- */

/* The i-th argument of a command when it is a string (borrowed from args), else NULL. */
static const char *
admin_arg_str(json_t *args, size_t i)
{
    return json_string_value(json_array_get(args, i));
}

/* Counts users into *(size_t *)arg. */
static void
admin_count_user(void *arg, struct auth_user *u)
{
    (void)u;
    (*(size_t *)arg)++;
}

/* Whether there is no user and no vhost (RabbitMQ's new database). */
static bool
admin_is_empty(struct admin *a)
{
    size_t users = 0;
    auth_user_foreach(a->env.auth, admin_count_user, &users);
    return users == 0 && a->env.vhosts->head == NULL;
}

/* 'S': the defaults, unless the database has a user or a vhost already. */
static enum admin_result
admin_apply_seed(struct admin *a, json_t *records, char *err, size_t errlen)
{
    if (!admin_is_empty(a))
        return ADMIN_OK;
    return admin_seed_apply(a, records, err, errlen) == 0 ? ADMIN_OK : ADMIN_INVALID;
}

/* 'w': the password hash b64 ("" none) with alg, for an existing user. */
static enum admin_result
admin_apply_password(struct admin *a, const char *name, const char *b64, const char *alg_name,
                     char *err, size_t errlen)
{
    enum auth_hash_alg alg;
    struct auth_user *u = auth_user_get(a->env.auth, name);
    if (u == NULL)
        return admin_fail(err, errlen, ADMIN_NOT_FOUND, "no user '%s'", name);
    if (b64 == NULL || alg_name == NULL || auth_hash_alg_parse(alg_name, &alg) < 0)
        return admin_fail(err, errlen, ADMIN_INVALID, "a password command without its hash");
    /* A user record with this hash, its tags and limits kept: applied as any record. */
    json_t *e = admin_user_json(u);
    if (e == NULL || json_object_set_new(e, "password_hash", json_string(b64)) < 0 ||
        json_object_set_new(e, "hashing_algorithm", json_string(alg_name)) < 0) {
        json_decref(e);
        return admin_fail(err, errlen, ADMIN_NOMEM, "out of memory");
    }
    json_object_del(e, ADMIN_PENDING_FIELD);
    enum admin_result r = admin_apply(a, "users", e, NULL, true, err, errlen);
    json_decref(e);
    return r;
}

/* Runs op with its arguments, as asked on this node alone. */
static enum admin_result
admin_apply_op(struct admin *a, char op, json_t *x, char *err, size_t errlen)
{
    const char *s0 = admin_arg_str(x, 0), *s1 = admin_arg_str(x, 1), *s2 = admin_arg_str(x, 2);
    int64_t v2 = json_integer_value(json_array_get(x, 2));
    bool b0 = json_is_true(json_array_get(x, 0));
    switch (op) {
    case 'R': {
        const char *name = json_string_value(json_object_get(json_array_get(x, 1), "name"));
        bool vhost_new = s0 != NULL && strcmp(s0, "vhosts") == 0 && name != NULL &&
                         admin_vhost_get(a, name) == NULL;
        enum admin_result r =
            s0 == NULL ? ADMIN_INVALID
                       : admin_apply(a, s0, json_array_get(x, 1), NULL, true, err, errlen);
        if (r == ADMIN_OK && vhost_new)
            log_msg(LOG_INFO, "added vhost '%s'", name);
        return r;
    }
    case 'u':
        return s0 == NULL ? ADMIN_INVALID : admin_user_delete(a, s0, NULL, NULL, err, errlen);
    case 't': {
        json_t *jt = json_array_get(x, 1);
        size_t n = json_array_size(jt);
        const char **tags = calloc(n + 1, sizeof(*tags));
        if (tags == NULL)
            return admin_fail(err, errlen, ADMIN_NOMEM, "out of memory");
        for (size_t i = 0; i < n; i++)
            tags[i] = json_string_value(json_array_get(jt, i)) != NULL
                          ? json_string_value(json_array_get(jt, i))
                          : "";
        enum admin_result r = s0 == NULL
                                  ? ADMIN_INVALID
                                  : admin_user_set_tags(a, s0, tags, n, NULL, NULL, err, errlen);
        free(tags);
        return r;
    }
    case 'w':
        return s0 == NULL ? ADMIN_INVALID : admin_apply_password(a, s0, s1, s2, err, errlen);
    case 'l':
        return s0 == NULL || s1 == NULL
                   ? ADMIN_INVALID
                   : admin_user_set_limit(a, s0, s1, v2, NULL, NULL, err, errlen);
    case 'd':
        return s0 == NULL ? ADMIN_INVALID : admin_vhost_delete(a, s0, NULL, NULL, err, errlen);
    case 'm':
        return s0 == NULL || s1 == NULL
                   ? ADMIN_INVALID
                   : admin_vhost_set_limit(a, s0, s1, v2, NULL, NULL, err, errlen);
    case 'c':
        return s0 == NULL || s1 == NULL ? ADMIN_INVALID
                                        : admin_perm_clear(a, s0, s1, NULL, NULL, err, errlen);
    case 'x':
        return s0 == NULL || s1 == NULL
                   ? ADMIN_INVALID
                   : admin_topic_perm_clear(a, s0, s1, s2, NULL, NULL, err, errlen);
    case 'p':
        return s1 == NULL || s2 == NULL
                   ? ADMIN_INVALID
                   : admin_policy_put(a, b0, s1, s2, json_array_get(x, 3), NULL, NULL, err, errlen);
    case 'q':
        return s1 == NULL || s2 == NULL
                   ? ADMIN_INVALID
                   : admin_policy_delete(a, b0, s1, s2, NULL, NULL, err, errlen);
    case 's': {
        const char *names[3];
        size_t n = json_array_size(x) - 1;
        for (size_t i = 0; i < n && i < 3; i++)
            if ((names[i] = admin_arg_str(x, i + 1)) == NULL)
                return ADMIN_INVALID;
        return s0 == NULL || n == 0 || n > 3
                   ? ADMIN_INVALID
                   : admin_stored_delete(a, s0, names, n, NULL, NULL, err, errlen);
    }
    case 'S':
        return admin_apply_seed(a, x, err, errlen);
    case 'D': {
        /* the queues it makes live on the node that submitted it */
        a->import_home = s1 != NULL && strcmp(s1, cluster_self_name(a->cluster)) != 0 ? s1 : NULL;
        enum admin_result r = admin_definitions_import(a, json_array_get(x, 0), err, errlen);
        a->import_home = NULL;
        return r;
    }
    default:
        return ADMIN_INVALID;
    }
}

/* The metadata group's apply of kind 'A' (warren/cluster.h), on every node in log order. */
static int
admin_meta_apply(void *arg, uint64_t index, const uint8_t *cmd, size_t len)
{
    struct admin *a = arg;
    a->apply_err[0] = '\0';
    if (index <= durable_meta_index(a->env.durable))
        return ADMIN_OK; /* stored before this start */
    json_t *x = len > 2 ? json_loadb((const char *)cmd + 2, len - 2, JSON_ALLOW_NUL, NULL) : NULL;
    enum admin_result r = ADMIN_INVALID;
    if (json_is_array(x)) {
        a->applying = true;
        r = admin_apply_op(a, len > 1 ? (char)cmd[1] : 0, x, a->apply_err, sizeof(a->apply_err));
        a->applying = false;
    }
    if (r == ADMIN_INVALID && a->apply_err[0] == '\0') {
        snprintf(a->apply_err, sizeof(a->apply_err),
                 "metadata command %" PRIu64 " ('%c') does not parse", index,
                 len > 1 && cmd[1] >= 0x20 && cmd[1] < 0x7f ? cmd[1] : '?');
        log_msg(LOG_ERROR, "cluster: %s: skipped", a->apply_err);
    } else if (r != ADMIN_OK) {
        log_msg(LOG_INFO, "cluster: metadata change %" PRIu64 " refused: %s", index, a->apply_err);
    }
    json_decref(x);
    durable_meta_index_put(a->env.durable, index);
    return (int)r;
}

/* ---- submitting ---- */

/* Unlinks p from its admin's list and frees it with its timer. */
static void
admin_pending_free(struct admin_pending *p)
{
    *p->prevp = p->next;
    if (p->next != NULL)
        p->next->prevp = p->prevp;
    if (p->timer != NULL)
        event_free(p->timer);
    free(p);
}

/* Calls p's done once. */
static void
admin_pending_answer(struct admin_pending *p, enum admin_result r, const char *err)
{
    admin_done_fn done = p->done;
    p->done = NULL;
    if (p->timer != NULL)
        event_del(p->timer);
    if (done != NULL)
        done(p->arg, r, err);
}

/* ADMIN_CLUSTER_WAIT_MS passed without an outcome: done hears that the change may or may
 * not be made; p stays until the cluster answers. */
static void
admin_pending_on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    admin_pending_answer(arg, ADMIN_UNAVAILABLE,
                         "the change may or may not have been made: the cluster did not commit "
                         "it in time (no leader, or no majority of the nodes running)");
}

/* A change applied here, on its way to its answer: once every running node applied it too,
 * then once its records are synced here. */
struct admin_visible {
    struct admin *a;
    admin_done_fn done;
    void *arg;
};

static void
admin_on_visible(void *arg)
{
    struct admin_visible *v = arg;
    if (admin_sync(v->a, v->done, v->arg) < 0)
        v->done(v->arg, ADMIN_NOMEM,
                "out of memory (the change is made but may not be stored yet)");
    free(v);
}

/* The outcome of a submitted change, on the submitting node. */
static void
admin_pending_on_outcome(void *arg, enum cluster_outcome outcome, int result)
{
    struct admin_pending *p = arg;
    struct admin *a = p->a;
    switch (outcome) {
    case CLUSTER_COMMITTED:
        if (result != ADMIN_OK) {
            admin_pending_answer(p, (enum admin_result)result, a->apply_err);
        } else if (p->done != NULL) {
            /* applied here: answered once every running node applied it (as RabbitMQ's
             * changes are on every node when answered) and its records are written */
            struct admin_visible *v = malloc(sizeof(*v));
            if (p->timer != NULL)
                event_del(p->timer);
            if (v != NULL) {
                *v = (struct admin_visible){.a = a, .done = p->done, .arg = p->arg};
                if (cluster_meta_wait_visible(a->cluster, admin_on_visible, v) < 0)
                    admin_on_visible(v);
            } else {
                p->done(p->arg, ADMIN_NOMEM,
                        "out of memory (the change is made but may not be stored yet)");
            }
            p->done = NULL;
        }
        break;
    case CLUSTER_NOT_LEADER:
        admin_pending_answer(p, ADMIN_UNAVAILABLE,
                             "the cluster has no leader now (an election, or no majority of the "
                             "nodes running): the change is not made");
        break;
    case CLUSTER_MAYBE:
        admin_pending_answer(p, ADMIN_UNAVAILABLE,
                             "the change may or may not have been made: the cluster lost its "
                             "leader");
        break;
    case CLUSTER_FAILED:
        admin_pending_answer(p, ADMIN_UNAVAILABLE,
                             "the cluster could not take the change (out of memory, or the node "
                             "is stopping): the change is not made");
        break;
    }
    admin_pending_free(p);
}

/* The command: 'A', op, then args as compact JSON, in a new buffer of *len bytes. */
static uint8_t *
admin_command(char op, json_t *args, size_t *len)
{
    char *text = json_dumps(args, JSON_COMPACT);
    if (text == NULL)
        return NULL;
    size_t n = strlen(text);
    uint8_t *cmd = malloc(n + 2);
    if (cmd != NULL) {
        cmd[0] = CLUSTER_META_ADMIN;
        cmd[1] = (uint8_t)op;
        memcpy(cmd + 2, text, n);
        *len = n + 2;
    }
    free(text);
    return cmd;
}

enum admin_result
admin_submit(struct admin *a, char op, json_t *args, admin_done_fn done, void *arg, char *err,
             size_t errlen)
{
    size_t len = 0;
    uint8_t *cmd = args != NULL ? admin_command(op, args, &len) : NULL;
    json_decref(args);
    struct admin_pending *p = cmd != NULL ? calloc(1, sizeof(*p)) : NULL;
    if (p != NULL && a->env.base != NULL &&
        (p->timer = evtimer_new(a->env.base, admin_pending_on_timeout, p)) == NULL) {
        free(p);
        p = NULL;
    }
    if (p == NULL) {
        free(cmd);
        return admin_fail(err, errlen, ADMIN_NOMEM, "out of memory, or a name that is not UTF-8");
    }
    p->a = a;
    p->done = done;
    p->arg = arg;
    if (cluster_meta_submit(a->cluster, cmd, len, admin_pending_on_outcome, p) < 0) {
        int e = errno;
        free(cmd);
        if (p->timer != NULL)
            event_free(p->timer);
        free(p);
        if (e == EMSGSIZE)
            return admin_fail(err, errlen, ADMIN_INVALID, "the change is too large");
        if (e == ENOMEM)
            return admin_fail(err, errlen, ADMIN_NOMEM, "out of memory");
        return admin_fail(err, errlen, ADMIN_UNAVAILABLE, "the node is leaving the cluster");
    }
    free(cmd);
    p->next = a->pending;
    p->prevp = &a->pending;
    if (a->pending != NULL)
        a->pending->prevp = &p->next;
    a->pending = p;
    if (p->timer != NULL) {
        struct timeval tv = {ADMIN_CLUSTER_WAIT_MS / 1000, (ADMIN_CLUSTER_WAIT_MS % 1000) * 1000};
        evtimer_add(p->timer, &tv);
    }
    return ADMIN_OK;
}

/* ---- what a start submits: a first start's defaults, load_definitions ---- */

/* A command a start submits until the log has it. */
struct admin_boot {
    struct admin *a;
    char op;             /* 'S' or 'D' */
    json_t *args;        /* owns */
    char what[300];      /* for the log */
    struct event *retry; /* owns; NULL until a submission failed */
};

/* Frees b (NULL is ignored) with its arguments and timer. */
static void
admin_boot_free(struct admin_boot *b)
{
    if (b == NULL)
        return;
    if (b->retry != NULL)
        event_free(b->retry);
    json_decref(b->args);
    free(b);
}

/* A new boot command of op with args (owned), or NULL on ENOMEM (logged). */
static struct admin_boot *
admin_boot_new(struct admin *a, char op, json_t *args, const char *what)
{
    struct admin_boot *b = args != NULL ? calloc(1, sizeof(*b)) : NULL;
    if (b == NULL) {
        json_decref(args);
        log_msg(LOG_ERROR, "cluster: cannot keep %s to submit: out of memory", what);
        return NULL;
    }
    *b = (struct admin_boot){.a = a, .op = op, .args = args};
    snprintf(b->what, sizeof(b->what), "%s", what);
    return b;
}

int
admin_boot_seed(struct admin *a, char *err, size_t errlen)
{
    a->boot[0] = admin_boot_new(a, 'S', admin_seed_records(a), "the default user and vhost");
    if (a->boot[0] == NULL) {
        snprintf(err, errlen, "cannot create the default user and vhost: out of memory");
        return -1;
    }
    return 0;
}

void
admin_boot_defs(struct admin *a, json_t *defs, const char *path)
{
    char what[300];
    snprintf(what, sizeof(what), "the definitions of %s", path);
    json_t *args = NULL;
    if (admin_prehash_users(a, json_object_get(defs, "users")) == 0)
        args = json_pack("[os]", defs, a->env.conf->nodename);
    else
        json_decref(defs);
    a->boot[1] = admin_boot_new(a, 'D', args, what);
}

static void admin_boot_submit(struct admin_boot *b);

/* The retry timer of b (arg): submits it again. */
static void
admin_boot_on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    admin_boot_submit(arg);
}

/* The outcome of b's (arg) submission: done with it once committed (its apply's error
 * logged), else submitted again after ADMIN_BOOT_RETRY_MS (not after CLUSTER_FAILED: the node
 * is stopping). */
static void
admin_boot_on_outcome(void *arg, enum cluster_outcome outcome, int result)
{
    struct admin_boot *b = arg;
    struct admin *a = b->a;
    if (outcome == CLUSTER_COMMITTED) {
        if (result != ADMIN_OK)
            log_msg(LOG_ERROR, "cluster: %s: %s", b->what, a->apply_err);
        else if (b->op == 'D')
            log_msg(LOG_INFO, "imported %s through the cluster's log", b->what);
        a->boot[b->op == 'D'] = NULL;
        admin_boot_free(b);
        return;
    }
    struct timeval tv = {ADMIN_BOOT_RETRY_MS / 1000, (ADMIN_BOOT_RETRY_MS % 1000) * 1000};
    if (b->retry == NULL && (b->retry = evtimer_new(a->env.base, admin_boot_on_retry, b)) == NULL) {
        log_msg(LOG_ERROR, "cluster: cannot submit %s again: out of memory", b->what);
        return;
    }
    if (outcome != CLUSTER_FAILED)
        evtimer_add(b->retry, &tv);
}

/* Submits b (again), until the log has it: the defaults only while there is no user and no
 * vhost (another node's may have come first, already applied here). */
static void
admin_boot_submit(struct admin_boot *b)
{
    struct admin *a = b->a;
    if (b->op == 'S' && !admin_is_empty(a)) {
        a->boot[0] = NULL;
        admin_boot_free(b);
        return;
    }
    size_t len = 0;
    uint8_t *cmd = admin_command(b->op, b->args, &len);
    if (cmd == NULL || cluster_meta_submit(a->cluster, cmd, len, admin_boot_on_outcome, b) < 0)
        log_msg(LOG_ERROR, "cluster: cannot submit %s: %s", b->what,
                cmd == NULL ? "out of memory" : strerror(errno));
    free(cmd);
}

int
admin_prehash_users(struct admin *a, json_t *users)
{
    size_t i;
    json_t *e;
    json_array_foreach(users, i, e)
    {
        const char *password = json_string_value(json_object_get(e, "password"));
        char b64[AUTH_HASH_B64_MAX];
        enum auth_hash_alg alg;
        if (password == NULL)
            continue;
        if (auth_password_hash(a->env.auth, password, b64, &alg) < 0 ||
            json_object_set_new(e, "password_hash", json_string(b64)) < 0 ||
            json_object_set_new(e, "hashing_algorithm", json_string(auth_hash_alg_name(alg))) < 0 ||
            json_object_del(e, "password") < 0) {
            log_msg(LOG_ERROR, "cannot hash the password of a user: out of memory");
            return -1;
        }
    }
    return 0;
}

void
admin_set_cluster(struct admin *a, struct cluster *c)
{
    if (c == NULL)
        return;
    a->cluster = c;
    cluster_meta_register(c, CLUSTER_META_ADMIN, admin_meta_apply, a);
    if (a->boot[0] != NULL)
        log_msg(LOG_INFO, "new database in a cluster: the default user and vhost are made "
                          "through the cluster's log");
    for (int i = 0; i < 2; i++)
        if (a->boot[i] != NULL)
            admin_boot_submit(a->boot[i]);
}

void
admin_cluster_free(struct admin *a)
{
    while (a->pending != NULL) {
        admin_pending_answer(a->pending, ADMIN_UNAVAILABLE, "the node is stopping");
        admin_pending_free(a->pending);
    }
    for (int i = 0; i < 2; i++) {
        admin_boot_free(a->boot[i]);
        a->boot[i] = NULL;
    }
}
