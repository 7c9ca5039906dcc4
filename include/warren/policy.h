/* Policies and operator policies: per vhost, a name, a pattern matched against queue and
 * exchange names, what they apply to, a priority, and a definition of settings, applied as
 * RabbitMQ 3.10 applies them (rabbit_policy.erl):
 *
 * - Of the policies of one kind that apply to an object, the one with the highest priority
 *   is its policy; the same for operator policies. A policy whose definition holds a key
 *   the queue's type refuses (rabbit_queue_type:is_policy_applicable) does not apply to that
 *   queue at all. Equal priorities are ordered by name here: RabbitMQ takes whichever its
 *   table's hash order gives first, which no one can predict or rely on.
 * - A queue's numeric limits (message-ttl, expires, max-length, max-length-bytes,
 *   delivery-limit, consumer-timeout) are the lowest of its argument, its policy's and its
 *   operator policy's; for the others (dead-letter-exchange, dead-letter-routing-key,
 *   overflow, dead-letter-strategy) the argument wins over the policy, as in
 *   rabbit_amqqueue_process:process_args_policy. An exchange's alternate-exchange argument
 *   wins over its policy's (rabbit_policy:get_arg).
 *
 * The broker keeps, per policy, the compiled pattern and the keys it acts on (policy_def);
 * the administration layer (admin.h) validates definitions, keeps their JSON and calls this.
 * Setting or clearing a policy re-applies the vhost's policies to every queue
 * (queue_settings_set, only where the outcome changed) and exchange at once; a queue or
 * exchange added to a vhost gets them as it enters (vhost_queue_add, vhost_exch_add). */
#ifndef WARREN_POLICY_H
#define WARREN_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "warren/queue_settings.h"
#include "warren/regex.h"

struct exch;
struct queue;
struct vhost;

enum policy_kind {
    POLICY_USER = 0, /* a policy */
    POLICY_OPERATOR, /* an operator policy */
};
#define POLICY_KINDS 2

enum policy_apply_to {
    POLICY_APPLY_ALL = 0,
    POLICY_APPLY_QUEUES,
    POLICY_APPLY_EXCHANGES,
};

/* Queue types that refuse a policy (policy_def.not_for bits). */
#define POLICY_NOT_CLASSIC 1u /* it has stream keys (max-age, queue-leader-locator...) */
#define POLICY_NOT_QUORUM 2u  /* it has classic or stream keys (queue-mode, ha-*...) */

/* The keys of a definition that Warren acts on. */
struct policy_def {
    int64_t message_ttl, expires, max_length, max_length_bytes, delivery_limit,
        consumer_timeout; /* QUEUE_SETTING_NONE: not in the definition */
    int overflow;         /* enum queue_overflow, or -1: not in it */
    int dlx_strategy;     /* enum queue_dlx_strategy, or -1 */
    char *dlx;            /* owns; NULL: not in it */
    char *dlx_routing_key;
    char *alternate_exchange;
    unsigned not_for; /* POLICY_NOT_* */
};

/* One policy of a vhost (vhost->policies[kind], highest precedence first). */
struct policy {
    struct policy *next;
    char *name;           /* owns */
    pcre2_code *re;       /* owns */
    pcre2_match_data *md; /* owns */
    enum policy_apply_to apply_to;
    double priority; /* a JSON number: RabbitMQ takes any */
    struct policy_def def;
};

/* A definition with no keys. */
void policy_def_init(struct policy_def *d);
/* Frees what d owns and leaves it empty. */
void policy_def_free(struct policy_def *d);

/* Adds, or replaces, the policy of that kind and name in v, and applies v's policies again to
 * its queues and exchanges. Takes re (compiled by regex_compile) and what def owns (def is
 * left empty), whatever the outcome. 0, or -1 on ENOMEM (v's policies unchanged). */
int policy_set(struct vhost *v, enum policy_kind kind, const char *name, pcre2_code *re,
               enum policy_apply_to apply_to, double priority, struct policy_def *def);
/* Removes that policy and applies v's policies again. False if there was none. */
bool policy_clear(struct vhost *v, enum policy_kind kind, const char *name);
/* Frees every policy of v, applying nothing (v is being freed). */
void policy_free_all(struct vhost *v);

/* The policy of that kind that applies to the queue (is_queue, of type quorum or classic) or
 * exchange named name in v; NULL if none. */
const struct policy *policy_match(const struct vhost *v, enum policy_kind kind, bool is_queue,
                                  bool quorum, const char *name, size_t len);
/* q's effective settings: its arguments' (queue_settings_from_args) with its vhost's policy
 * and operator policy on top, their names in s->policy and s->operator_policy. 0, or -1 on
 * ENOMEM (s left empty). */
int policy_queue_settings(const struct queue *q, struct queue_settings *s);
/* Gives q its effective settings (queue_settings_set) if they changed. 0, or -1 on ENOMEM
 * (q keeps the settings it had). */
int policy_queue_apply(struct queue *q);
/* Gives x the alternate exchange of its policy, unless an argument names one. 0, or -1 on
 * ENOMEM (x keeps the one it had). */
int policy_exch_apply(struct exch *x);

#endif
