/* Queue arguments at queue.declare, checked as RabbitMQ 3.10 checks them when it creates a
 * queue: the x-arguments its queue types know (rabbit_amqqueue:declare_args/0 and each type's
 * list in rabbit_queue_type), their types and values, which type takes which, and the
 * properties a quorum queue requires, with RabbitMQ's reply texts; and the ones it compares
 * when a queue is redeclared. Arguments RabbitMQ does not know (x-foo, or a consumer argument
 * such as x-priority) are accepted and ignored, as RabbitMQ does.
 *
 * Warren's queues are classic queues. A declare with x-queue-type "quorum" is checked as
 * RabbitMQ checks a quorum queue and creates a classic queue: clients written for quorum
 * queues keep working, durable and confirmed (what a single-node quorum queue gives), and the
 * creation is logged. "stream" is refused like an unknown type: a stream consumed as a
 * classic queue would silently lose what stream consumers expect to re-read.
 * queue_args_unapplied() names that for a warning when the queue is made. */
#ifndef WARREN_QUEUE_ARGS_H
#define WARREN_QUEUE_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "warren/wire.h"

/* A queue.declare that is about to create a queue. */
struct queue_args_decl {
    struct wire_str name; /* the queue's name; for a server-named queue, the generated one */
    const char *vhost;
    bool server_named, durable, exclusive, auto_delete;
};

/* Checks the declaration of a new queue (RabbitMQ checks neither a passive declare nor the
 * redeclaration of an existing queue, whose arguments are compared instead). Returns 0 if
 * RabbitMQ would create the queue; else -1 with RabbitMQ's reply text, without the
 * "PRECONDITION_FAILED - " prefix, in why (always NUL-terminated, truncated to cap): every
 * refusal here is 406 PRECONDITION_FAILED, a channel error. */
int queue_args_check(struct wire_table args, const struct queue_args_decl *d, char *why,
                     size_t cap);

/* Writes into buf (always NUL-terminated, truncated to cap) what of args, a table
 * queue_args_check() accepted, Warren does not apply: today only a quorum queue's type (a
 * classic queue here until clustering). Returns how many there are: 0 means nothing to warn
 * about. */
int queue_args_unapplied(struct wire_table args, char *buf, size_t cap);

/* The arguments RabbitMQ compares when a queue is redeclared, in its order, NULL-terminated:
 * those its type takes, the type being the one x-queue-type names in args, the queue's own
 * arguments (classic unless it says "quorum"). */
const char *const *queue_args_equivalent_keys(struct wire_table args);

/* True if a redeclare may give the argument key with value v where the queue has none, or
 * leave it out where the queue has it: x-queue-type "classic", what a queue is without one
 * (RabbitMQ's only such exception). */
bool queue_args_implied(const char *key, const struct wire_value *v);

/* A message's expiration property checked as RabbitMQ checks it at basic.publish
 * (rabbit_basic:parse_expiration): a decimal integer of milliseconds, optionally signed, at
 * most ten years. Returns 0 with the value in *ms, or -1 with RabbitMQ's reply text without
 * "PRECONDITION_FAILED - " in why (NUL-terminated, cut to cap): a 406 channel error. */
int queue_args_expiration(struct wire_str s, int64_t *ms, char *why, size_t cap);

#endif
