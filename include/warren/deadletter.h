/* Dead-lettering, as RabbitMQ 3.10's classic queues do it: a message that dies in a queue
 * (rejected or nacked without requeue, expired, dropped by a length limit, redelivered past its
 * delivery limit) is republished to the queue's dead-letter exchange (queue->settings.dlx,
 * looked up by name in the queue's vhost each time) as a new message: its properties are the
 * original's with the headers' x-death updated and the expiration removed, its exchange is the
 * dead-letter exchange and its routing key the queue's dead-letter routing key, or its own
 * when the queue has none. Its body is the original's, shared, not copied.
 *
 * The x-death header is an array of tables, one per (queue, reason), most recent first as
 * RabbitMQ orders it, each with count, reason, queue, time (seconds), exchange and
 * routing-keys (the routing key the message had and its CC keys, not its BCC ones), and
 * original-expiration when it had an expiration; the first death also sets
 * x-first-death-reason, -queue and -exchange. The headers table is rewritten sorted by key,
 * as RabbitMQ's re-encoding leaves it; every other property keeps its bytes.
 *
 * It is routed with the dead-letter routing key alone, or with the routing keys it had (its
 * routing key, its CC and BCC keys: publish_keys_init); a dead-letter routing key also removes
 * its CC header, as RabbitMQ does. Queues it reaches that would close a cycle are left out: a
 * queue where the message died before, when every death since then (that one included) was
 * automatic (expired, maxlen, delivery_limit) rather than a rejection; such a drop is logged
 * at warning level once per cycle. A rejection never counts as a cycle: a consumer decided.
 *
 * A message published with BCC reached its queues without that header (publish.h), so its
 * BCC keys are gone when it dies; RabbitMQ keeps a message's routing keys apart from its
 * headers (and in its store) and dead-letters it to its BCC destinations again.
 *
 * Ordering for crashes: the copy is enqueued (and written, for a persistent message reaching
 * durable queues) before the caller removes the original, in the same store batch, so a
 * kill -9 leaves one or the other (or both), never neither. Hence deadletter_message never
 * settles or frees the original: the caller does, after it returns. */
#ifndef WARREN_DEADLETTER_H
#define WARREN_DEADLETTER_H

#include <stdbool.h>
#include <stdint.h>

#include "warren/publish.h"
#include "warren/wire.h"

struct msg;
struct queue;

enum deadletter_reason {
    DEADLETTER_REJECTED = 0, /* basic.reject / basic.nack with requeue=false */
    DEADLETTER_EXPIRED,      /* per-message or per-queue TTL */
    DEADLETTER_MAXLEN,       /* dropped from the head by max-length / max-length-bytes */
    DEADLETTER_DELIVERY_LIMIT,
};

enum deadletter_status {
    DEADLETTER_OK = 0,      /* routed: out says to how many queues (0: unroutable) */
    DEADLETTER_CYCLE,       /* every queue it reached would close a cycle: dropped (logged) */
    DEADLETTER_NO_DLX,      /* the queue has no dead-letter exchange: the message just goes */
    DEADLETTER_NO_EXCHANGE, /* its dead-letter exchange does not exist: dropped, as RabbitMQ */
    DEADLETTER_NOMEM,       /* out of memory: reached some of its queues at most (logged) */
};

/* "rejected", "expired", "maxlen", "delivery_limit": x-death's reason. */
const char *deadletter_reason_name(enum deadletter_reason reason);

/* Dead-letters m, a message of q dying for reason, to q's dead-letter exchange: builds the
 * copy, routes it, leaves out cycles, and publishes it (publish_routed: stored when persistent
 * and reaching durable queues, enqueued, the queues dispatched). m is borrowed and left as it
 * is: the copy takes a reference to share its body, and the caller settles or drops the
 * original afterwards (see the ordering above). out (may be NULL) says what publish_routed
 * did; a stored copy is written in this turn's store batch. In a cluster, with remote, the
 * copy goes to the other nodes' queues it routes to as well (the registry's forward_dead: at
 * most once, unanswered); without (at-least-once), only queues here take it. */
enum deadletter_status deadletter_message(struct queue *q, struct msg *m,
                                          enum deadletter_reason reason, bool remote,
                                          struct publish_outcome *out);

/* The copy deadletter_message publishes, for m dying in the queue named queue for reason at
 * time now (seconds since the epoch), sent to exchange dlx with routing key dlx_routing_key
 * (NULL: m's own). m is borrowed (the copy holds a reference for the body). One reference,
 * owned by the caller; NULL on ENOMEM or properties that do not decode (logged). */
struct msg *deadletter_msg_new(struct msg *m, struct wire_str queue, enum deadletter_reason reason,
                               struct wire_str dlx, const struct wire_str *dlx_routing_key,
                               uint64_t now);

/* Whether the copy dead (from deadletter_msg_new, reason not rejected) reaching the queue
 * named queue closes a cycle: queue is in its x-death and no death since, that one included,
 * was a rejection. */
bool deadletter_is_cycle(const struct msg *dead, struct wire_str queue);

#endif
