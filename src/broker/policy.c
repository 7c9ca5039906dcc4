/* Policies applied to queues and exchanges (warren/policy.h): each vhost's lists, kept in
 * precedence order so that an object's policy is the first one that applies to it, and the
 * merge of arguments, policy and operator policy into a queue's settings. */
#include "config.h"

#include "warren/policy.h"

#include <stdlib.h>
#include <string.h>

#include "warren/exchange.h"
#include "warren/log.h"
#include "warren/queue.h"
#include "warren/vhost.h"

void
policy_def_init(struct policy_def *d)
{
    *d = (struct policy_def){
        .message_ttl = QUEUE_SETTING_NONE,
        .expires = QUEUE_SETTING_NONE,
        .max_length = QUEUE_SETTING_NONE,
        .max_length_bytes = QUEUE_SETTING_NONE,
        .delivery_limit = QUEUE_SETTING_NONE,
        .consumer_timeout = QUEUE_SETTING_NONE,
        .overflow = -1,
        .dlx_strategy = -1,
    };
}

void
policy_def_free(struct policy_def *d)
{
    free(d->dlx);
    free(d->dlx_routing_key);
    free(d->alternate_exchange);
    policy_def_init(d);
}

static void
policy_free(struct policy *p)
{
    pcre2_match_data_free(p->md);
    pcre2_code_free(p->re);
    policy_def_free(&p->def);
    free(p->name);
    free(p);
}

/* Whether a goes before b: the higher priority, then the name (see policy.h on ties). */
static bool
policy_before(const struct policy *a, const struct policy *b)
{
    if (a->priority != b->priority)
        return a->priority > b->priority;
    return strcmp(a->name, b->name) < 0;
}

/* Unlinks the policy named name from *head and returns it (NULL if none). */
static struct policy *
policy_unlink(struct policy **head, const char *name)
{
    for (struct policy **pp = head; *pp != NULL; pp = &(*pp)->next)
        if (strcmp((*pp)->name, name) == 0) {
            struct policy *p = *pp;
            *pp = p->next;
            p->next = NULL;
            return p;
        }
    return NULL;
}

/* Applies v's policies again to each of its queues and exchanges. An object that cannot take
 * its new settings for lack of memory keeps its old ones, with an error logged: the policy
 * change itself stands, as it is stored. */
static void
policy_reapply(struct vhost *v)
{
    struct hmap_iter it;
    struct hmap_entry *he;
    uint64_t failed = 0;
    hmap_iter_init(&it, &v->queues);
    while ((he = hmap_iter_next(&it)) != NULL)
        if (policy_queue_apply(hmap_container_of(he, struct queue, by_name)) < 0)
            failed++;
    hmap_iter_init(&it, &v->exchanges);
    while ((he = hmap_iter_next(&it)) != NULL)
        if (policy_exch_apply(hmap_container_of(he, struct exch, by_name)) < 0)
            failed++;
    if (failed > 0)
        log_msg(LOG_ERROR,
                "vhost '%s': out of memory applying policies: %llu queues or exchanges keep "
                "their previous settings",
                v->name, (unsigned long long)failed);
}

int
policy_set(struct vhost *v, enum policy_kind kind, const char *name, pcre2_code *re,
           enum policy_apply_to apply_to, double priority, struct policy_def *def)
{
    struct policy *p = calloc(1, sizeof(*p));
    if (p == NULL || (p->name = strdup(name)) == NULL ||
        (p->md = pcre2_match_data_create_from_pattern(re, NULL)) == NULL) {
        if (p != NULL) {
            free(p->name);
            free(p);
        }
        pcre2_code_free(re);
        policy_def_free(def);
        return -1;
    }
    p->re = re;
    p->apply_to = apply_to;
    p->priority = priority;
    p->def = *def;
    policy_def_init(def);
    struct policy *old = policy_unlink(&v->policies[kind], name);
    if (old != NULL)
        policy_free(old);
    struct policy **pp = &v->policies[kind];
    while (*pp != NULL && !policy_before(p, *pp))
        pp = &(*pp)->next;
    p->next = *pp;
    *pp = p;
    policy_reapply(v);
    return 0;
}

bool
policy_clear(struct vhost *v, enum policy_kind kind, const char *name)
{
    struct policy *p = policy_unlink(&v->policies[kind], name);
    if (p == NULL)
        return false;
    policy_free(p);
    policy_reapply(v);
    return true;
}

void
policy_free_all(struct vhost *v)
{
    for (int k = 0; k < POLICY_KINDS; k++)
        while (v->policies[k] != NULL) {
            struct policy *p = v->policies[k];
            v->policies[k] = p->next;
            policy_free(p);
        }
}

const struct policy *
policy_match(const struct vhost *v, enum policy_kind kind, bool is_queue, bool quorum,
             const char *name, size_t len)
{
    enum policy_apply_to other = is_queue ? POLICY_APPLY_EXCHANGES : POLICY_APPLY_QUEUES;
    unsigned refused = !is_queue ? 0 : quorum ? POLICY_NOT_QUORUM : POLICY_NOT_CLASSIC;
    for (const struct policy *p = v->policies[kind]; p != NULL; p = p->next)
        if (p->apply_to != other && (p->def.not_for & refused) == 0 &&
            regex_match(p->re, p->md, name, len))
            return p;
    return NULL;
}

/* The lower of two limits, either possibly unset. */
static int64_t
policy_min(int64_t a, int64_t b)
{
    if (a == QUEUE_SETTING_NONE)
        return b;
    if (b == QUEUE_SETTING_NONE)
        return a;
    return a < b ? a : b;
}

/* *dst (an argument's copy, or NULL) stays when set; else a copy of the policy's (may be
 * NULL). -1 on ENOMEM. */
static int
policy_str_unless_arg(char **dst, const char *pol)
{
    if (*dst != NULL || pol == NULL)
        return 0;
    return (*dst = strdup(pol)) == NULL ? -1 : 0;
}

int
policy_queue_settings(const struct queue *q, struct queue_settings *s)
{
    struct wire_table args = {q->args, q->args_len};
    if (queue_settings_from_args(s, args) < 0)
        return -1;
    if (q->vhost == NULL)
        return 0;
    const struct policy *pol =
        policy_match(q->vhost, POLICY_USER, true, s->quorum, q->name, q->name_len);
    const struct policy *op =
        policy_match(q->vhost, POLICY_OPERATOR, true, s->quorum, q->name, q->name_len);
    struct policy_def none;
    policy_def_init(&none);
    const struct policy_def *p = pol != NULL ? &pol->def : &none;
    const struct policy_def *o = op != NULL ? &op->def : &none;
    /* The policy's value merged with the operator policy's (rabbit_policies:
     * merge_policy_value: the lower), then with the argument's (res_min: the lower). */
    s->message_ttl = policy_min(s->message_ttl, policy_min(p->message_ttl, o->message_ttl));
    s->expires = policy_min(s->expires, policy_min(p->expires, o->expires));
    s->max_length = policy_min(s->max_length, policy_min(p->max_length, o->max_length));
    s->max_length_bytes =
        policy_min(s->max_length_bytes, policy_min(p->max_length_bytes, o->max_length_bytes));
    s->delivery_limit =
        policy_min(s->delivery_limit, policy_min(p->delivery_limit, o->delivery_limit));
    s->consumer_timeout =
        policy_min(s->consumer_timeout, policy_min(p->consumer_timeout, o->consumer_timeout));
    /* The argument wins (res_arg); operator policies cannot hold these keys, but should one,
     * the policy's value goes first. */
    struct wire_value v;
    int overflow = p->overflow >= 0 ? p->overflow : o->overflow;
    if (overflow >= 0 && !wire_table_get(args, "x-overflow", &v))
        s->overflow = (enum queue_overflow)overflow;
    int strategy = p->dlx_strategy >= 0 ? p->dlx_strategy : o->dlx_strategy;
    if (strategy >= 0 && !wire_table_get(args, "x-dead-letter-strategy", &v))
        s->dlx_strategy = (enum queue_dlx_strategy)strategy;
    if (policy_str_unless_arg(&s->dlx, p->dlx != NULL ? p->dlx : o->dlx) < 0 ||
        policy_str_unless_arg(&s->dlx_routing_key, p->dlx_routing_key != NULL
                                                       ? p->dlx_routing_key
                                                       : o->dlx_routing_key) < 0 ||
        (pol != NULL && (s->policy = strdup(pol->name)) == NULL) ||
        (op != NULL && (s->operator_policy = strdup(op->name)) == NULL)) {
        queue_settings_free(s);
        return -1;
    }
    return 0;
}

/* NULL-safe string equality. */
static bool
policy_str_same(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool
policy_settings_same(const struct queue_settings *a, const struct queue_settings *b)
{
    return a->message_ttl == b->message_ttl && a->expires == b->expires &&
           a->max_length == b->max_length && a->max_length_bytes == b->max_length_bytes &&
           a->delivery_limit == b->delivery_limit && a->consumer_timeout == b->consumer_timeout &&
           a->overflow == b->overflow && a->dlx_strategy == b->dlx_strategy &&
           a->max_priority == b->max_priority &&
           a->single_active_consumer == b->single_active_consumer && a->quorum == b->quorum &&
           policy_str_same(a->dlx, b->dlx) &&
           policy_str_same(a->dlx_routing_key, b->dlx_routing_key) &&
           policy_str_same(a->policy, b->policy) &&
           policy_str_same(a->operator_policy, b->operator_policy);
}

int
policy_queue_apply(struct queue *q)
{
    struct queue_settings s;
    if (policy_queue_settings(q, &s) < 0)
        return -1;
    if (policy_settings_same(&s, &q->settings))
        queue_settings_free(&s);
    else
        queue_settings_set(q, &s);
    return 0;
}

int
policy_exch_apply(struct exch *x)
{
    const char *alt = NULL;
    struct wire_value v;
    if (x->vhost != NULL &&
        !wire_table_get((struct wire_table){x->args, x->args_len}, "alternate-exchange", &v)) {
        const struct policy *p =
            policy_match(x->vhost, POLICY_USER, false, false, x->name, x->name_len);
        const struct policy *o =
            policy_match(x->vhost, POLICY_OPERATOR, false, false, x->name, x->name_len);
        alt = p != NULL && p->def.alternate_exchange != NULL ? p->def.alternate_exchange
              : o != NULL                                    ? o->def.alternate_exchange
                                                             : NULL;
    }
    if (policy_str_same(alt, x->policy_alternate))
        return 0;
    char *copy = NULL;
    if (alt != NULL && (copy = strdup(alt)) == NULL)
        return -1;
    free(x->policy_alternate);
    x->policy_alternate = copy;
    return 0;
}
