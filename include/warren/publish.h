/* The publish pipeline: what happens to a complete message, whoever published it (an AMQP
 * channel, dead-lettering; the management API's publish and replication tomorrow):
 *  1. route: the default exchange (the queue named by the routing key) or the named
 *     exchange's bindings, exchange-to-exchange bindings and alternate exchanges included;
 *  2. refuse: queues at their length limit with x-overflow reject-publish drop out;
 *  3. store: a persistent message reaching several stored queues gets one shared record;
 *  4. enqueue on every queue left (queue_cmd_enqueue, which writes what is stored);
 *  5. dispatch: each of those queues offers it to its consumers, then applies its limits
 *     and TTLs (queue_publish_dispatch).
 * What the publisher hears back (a confirm, which waits for the store's barrier when
 * something was stored; a return when mandatory and unroutable) is the caller's: the outcome
 * says what to answer. */
#ifndef WARREN_PUBLISH_H
#define WARREN_PUBLISH_H

#include <stdbool.h>
#include <stdint.h>

struct msg;
struct route_result;
struct vhost;

enum publish_status {
    PUBLISH_OK = 0,
    PUBLISH_NO_EXCHANGE, /* the named exchange does not exist (any more): nothing was done */
    PUBLISH_NOMEM,       /* out of memory: it reached some of its queues at most (logged) */
};

struct publish_outcome {
    uint32_t n_queues;  /* queues it was enqueued on: 0 (and none refused) means unroutable */
    uint32_t n_refused; /* queues that refused it (x-overflow reject-publish): nack it */
    bool stored;        /* written to the store: a confirm or commit waits for the sync */
};

/* Publishes m (borrowed: the queues take references of their own) in vh. scratch: a route
 * result the caller keeps for reuse (its memory stays allocated between calls). */
enum publish_status publish_message(struct vhost *vh, struct msg *m, struct route_result *scratch,
                                    struct publish_outcome *out);
/* Steps 2 to 5 for a message its publisher routed itself (dead-lettering routes with several
 * keys and leaves out the queues that would close a cycle): r loses the queues that refuse m
 * (counted in out->n_refused); m is borrowed. PUBLISH_OK or PUBLISH_NOMEM. */
enum publish_status publish_routed(struct vhost *vh, struct msg *m, struct route_result *r,
                                   struct publish_outcome *out);

#endif
