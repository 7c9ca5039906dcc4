/* Permissions, as RabbitMQ's internal backend keeps them (rabbit_auth_backend_internal.erl):
 * per user and vhost a configure, a write and a read regular expression, and per user, vhost
 * and topic exchange a write and a read expression on routing keys.
 *
 * The expressions are PCRE, which RabbitMQ runs through Erlang's re module (PCRE itself) on
 * names as bytes, unanchored: "^amq\." anchors, "q" matches any name holding a q. An empty
 * expression stands for "^$" (RabbitMQ rewrites it so), which no resource name matches.
 * Debian's libpcre2 is that same engine: a pattern copied from a RabbitMQ definition means
 * the same thing here, which no hand-written or POSIX matcher would promise. Each expression
 * is compiled once, when it is set, and JIT-compiled where the platform has a JIT: a check is
 * then one pcre2_match on a short name. Topic expressions with {username}, {vhost} or
 * {client_id} are expanded for each check and compiled then (RabbitMQ does the same). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth_int.h"
#include "warren/log.h"
#include "warren/regex.h"

/* One compiled expression and the match data its matches use (the loop thread's only). */
struct auth_re {
    char *src;        /* owns: as set */
    pcre2_code *code; /* owns; NULL for a topic pattern with variables */
    pcre2_match_data *md;
};

struct auth_perm {
    struct auth_perm *next;
    char *vhost;          /* owns */
    struct auth_re re[3]; /* by enum auth_perm_kind */
};

struct auth_topic_perm {
    struct auth_topic_perm *next;
    char *vhost, *exchange; /* owns */
    struct auth_re re[2];   /* write, read */
};

static void
auth_re_free(struct auth_re *r)
{
    pcre2_match_data_free(r->md);
    pcre2_code_free(r->code);
    free(r->src);
    memset(r, 0, sizeof(*r));
}

/* Compiles pattern (an empty one as "^$") into a fresh code. NULL with err set. */
static pcre2_code *
auth_re_compile(const char *pattern, char *err, size_t errlen)
{
    char msg[128];
    size_t eoff;
    pcre2_code *code = regex_compile(*pattern == '\0' ? "^$" : pattern, msg, sizeof(msg), &eoff);
    if (code == NULL)
        snprintf(err, errlen, "invalid regular expression '%s': %s at offset %zu", pattern, msg,
                 eoff);
    return code;
}

static bool
auth_re_has_vars(const char *s)
{
    return strstr(s, "{username}") != NULL || strstr(s, "{vhost}") != NULL ||
           strstr(s, "{client_id}") != NULL;
}

/* Sets r to pattern. Topic patterns (topic) with variables are only checked here and compiled
 * per match. 0, or -1 with err set. */
static int
auth_re_set(struct auth_re *r, const char *pattern, bool topic, char *err, size_t errlen)
{
    struct auth_re n = {0};
    n.code = auth_re_compile(pattern, err, errlen);
    if (n.code == NULL)
        return -1;
    if (topic && auth_re_has_vars(pattern)) {
        pcre2_code_free(n.code);
        n.code = NULL;
    } else if ((n.md = pcre2_match_data_create_from_pattern(n.code, NULL)) == NULL) {
        goto nomem;
    }
    if ((n.src = strdup(pattern)) == NULL)
        goto nomem;
    *r = n;
    return 0;
nomem:
    auth_re_free(&n);
    snprintf(err, errlen, "out of memory");
    return -1;
}

void
auth_perms_free(struct auth_user *u)
{
    while (u->perms != NULL) {
        struct auth_perm *p = u->perms;
        u->perms = p->next;
        for (int i = 0; i < 3; i++)
            auth_re_free(&p->re[i]);
        free(p->vhost);
        free(p);
    }
    while (u->topics != NULL) {
        struct auth_topic_perm *t = u->topics;
        u->topics = t->next;
        auth_re_free(&t->re[0]);
        auth_re_free(&t->re[1]);
        free(t->vhost);
        free(t->exchange);
        free(t);
    }
}

const struct auth_perm *
auth_perm_find(const struct auth_user *u, const char *vhost)
{
    for (const struct auth_perm *p = u->perms; p != NULL; p = p->next)
        if (strcmp(p->vhost, vhost) == 0)
            return p;
    return NULL;
}

int
auth_perm_set(struct auth_db *db, struct auth_user *u, const char *vhost, const char *configure,
              const char *write, const char *read, char *err, size_t errlen)
{
    const char *src[3] = {configure, write, read};
    struct auth_perm *p = calloc(1, sizeof(*p));
    if (p == NULL || (p->vhost = strdup(vhost)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (int i = 0; i < 3; i++)
        if (auth_re_set(&p->re[i], src[i], false, err, errlen) < 0)
            goto fail;
    auth_perm_clear(db, u, vhost);
    p->next = u->perms;
    u->perms = p;
    db->generation++;
    return 0;
fail:
    if (p != NULL) {
        for (int i = 0; i < 3; i++)
            auth_re_free(&p->re[i]);
        free(p->vhost);
        free(p);
    }
    return -1;
}

bool
auth_perm_clear(struct auth_db *db, struct auth_user *u, const char *vhost)
{
    for (struct auth_perm **pp = &u->perms; *pp != NULL; pp = &(*pp)->next) {
        struct auth_perm *p = *pp;
        if (strcmp(p->vhost, vhost) != 0)
            continue;
        *pp = p->next;
        for (int i = 0; i < 3; i++)
            auth_re_free(&p->re[i]);
        free(p->vhost);
        free(p);
        db->generation++;
        return true;
    }
    return false;
}

static void
auth_perm_clear_vhost_one(void *arg, struct auth_user *u)
{
    const void *const *a = arg;
    auth_perm_clear((struct auth_db *)a[0], u, a[1]);
    auth_topic_perm_clear((struct auth_db *)a[0], u, a[1], NULL);
}

void
auth_perm_clear_vhost(struct auth_db *db, const char *vhost)
{
    const void *a[2] = {db, vhost};
    auth_user_foreach(db, auth_perm_clear_vhost_one, a);
}

const char *
auth_perm_pattern(const struct auth_perm *p, enum auth_perm_kind kind)
{
    return p->re[kind].src;
}

bool
auth_perm_allows(const struct auth_perm *p, enum auth_perm_kind kind, const void *name, size_t len)
{
    return regex_match(p->re[kind].code, p->re[kind].md, name, len);
}

void
auth_perm_foreach(const struct auth_user *u,
                  void (*fn)(void *arg, const char *vhost, const struct auth_perm *p), void *arg)
{
    for (const struct auth_perm *p = u->perms; p != NULL; p = p->next)
        fn(arg, p->vhost, p);
}

static struct auth_topic_perm *
auth_topic_find(const struct auth_user *u, const char *vhost, const void *exchange, size_t len)
{
    for (struct auth_topic_perm *t = u->topics; t != NULL; t = t->next)
        if (strcmp(t->vhost, vhost) == 0 && strlen(t->exchange) == len &&
            memcmp(t->exchange, exchange, len) == 0)
            return t;
    return NULL;
}

int
auth_topic_perm_set(struct auth_db *db, struct auth_user *u, const char *vhost,
                    const char *exchange, const char *write, const char *read, char *err,
                    size_t errlen)
{
    struct auth_topic_perm *t = calloc(1, sizeof(*t));
    if (t == NULL || (t->vhost = strdup(vhost)) == NULL ||
        (t->exchange = strdup(exchange)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (auth_re_set(&t->re[0], write, true, err, errlen) < 0 ||
        auth_re_set(&t->re[1], read, true, err, errlen) < 0)
        goto fail;
    auth_topic_perm_clear(db, u, vhost, exchange);
    t->next = u->topics;
    u->topics = t;
    db->generation++;
    return 0;
fail:
    if (t != NULL) {
        auth_re_free(&t->re[0]);
        auth_re_free(&t->re[1]);
        free(t->vhost);
        free(t->exchange);
        free(t);
    }
    return -1;
}

bool
auth_topic_perm_clear(struct auth_db *db, struct auth_user *u, const char *vhost,
                      const char *exchange)
{
    bool any = false;
    struct auth_topic_perm **pp = &u->topics;
    while (*pp != NULL) {
        struct auth_topic_perm *t = *pp;
        if (strcmp(t->vhost, vhost) != 0 || (exchange != NULL && strcmp(t->exchange, exchange))) {
            pp = &t->next;
            continue;
        }
        *pp = t->next;
        auth_re_free(&t->re[0]);
        auth_re_free(&t->re[1]);
        free(t->vhost);
        free(t->exchange);
        free(t);
        any = true;
    }
    if (any)
        db->generation++;
    return any;
}

bool
auth_topic_perm_exists(const struct auth_user *u, const char *vhost, const void *exchange,
                       size_t exchange_len)
{
    return auth_topic_find(u, vhost, exchange, exchange_len) != NULL;
}

/* Appends s to buf at *n (cap bytes). false when it does not fit. */
static bool
auth_append(char *buf, size_t cap, size_t *n, const char *s, size_t len)
{
    if (*n + len >= cap)
        return false;
    memcpy(buf + *n, s, len);
    *n += len;
    buf[*n] = '\0';
    return true;
}

/* Matches routing_key against src with {username}, {vhost}, {client_id} replaced (values put
 * in as they are: RabbitMQ does not escape them either). */
static bool
auth_topic_match_expanded(const char *src, const struct auth_user *u, const char *vhost,
                          const char *client_id, const void *rk, size_t rklen)
{
    char buf[2048];
    size_t n = 0;
    buf[0] = '\0';
    const struct {
        const char *var, *val;
    } vars[] = {{"{username}", u->name}, {"{vhost}", vhost}, {"{client_id}", client_id}};
    for (const char *s = src; *s != '\0';) {
        size_t i;
        for (i = 0; i < 3; i++) {
            size_t vl = strlen(vars[i].var);
            if (vars[i].val != NULL && strncmp(s, vars[i].var, vl) == 0) {
                if (!auth_append(buf, sizeof(buf), &n, vars[i].val, strlen(vars[i].val)))
                    return false;
                s += vl;
                break;
            }
        }
        if (i == 3 && !auth_append(buf, sizeof(buf), &n, s++, 1))
            return false;
    }
    char err[256];
    pcre2_code *code = auth_re_compile(buf, err, sizeof(err));
    if (code == NULL)
        return false; /* a user name or vhost that breaks the expression: no match */
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(code, NULL);
    bool ok = md != NULL && regex_match(code, md, rk, rklen);
    pcre2_match_data_free(md);
    pcre2_code_free(code);
    return ok;
}

bool
auth_topic_allows(const struct auth_user *u, const char *vhost, const void *exchange,
                  size_t exchange_len, enum auth_perm_kind kind, const void *routing_key,
                  size_t rk_len, const char *client_id)
{
    const struct auth_topic_perm *t = auth_topic_find(u, vhost, exchange, exchange_len);
    if (t == NULL)
        return true;
    const struct auth_re *r = &t->re[kind == AUTH_WRITE ? 0 : 1];
    if (r->code == NULL)
        return auth_topic_match_expanded(r->src, u, vhost, client_id, routing_key, rk_len);
    return regex_match(r->code, r->md, routing_key, rk_len);
}

void
auth_topic_perm_foreach(const struct auth_user *u,
                        void (*fn)(void *arg, const char *vhost, const char *exchange,
                                   const char *write, const char *read),
                        void *arg)
{
    for (const struct auth_topic_perm *t = u->topics; t != NULL; t = t->next)
        fn(arg, t->vhost, t->exchange, t->re[0].src, t->re[1].src);
}
