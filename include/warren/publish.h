/* The publish pipeline: what happens to a complete message, whoever published it (an AMQP
 * channel today; the management API's publish, dead-lettering and replication tomorrow):
 *  1. route: the default exchange (the queue named by the routing key) or the named
 *     exchange's bindings, exchange-to-exchange bindings and alternate exchanges included;
 *  2. store: a persistent message reaching several stored queues gets one shared record;
 *  3. enqueue on every queue reached (queue_cmd_enqueue, which writes what is stored);
 *  4. dispatch: each of those queues offers it to its consumers.
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
    uint32_t n_queues; /* queues it was enqueued on: 0 means unroutable */
    bool stored;       /* written to the store: a confirm or commit waits for the sync */
};

/* Publishes m (borrowed: the queues take references of their own) in vh. scratch: a route
 * result the caller keeps for reuse (its memory stays allocated between calls). */
enum publish_status publish_message(struct vhost *vh, struct msg *m, struct route_result *scratch,
                                    struct publish_outcome *out);
/* Steps 2 to 4 for a message its publisher routed itself (dead-lettering routes with several
 * keys and leaves out the queues that would make a cycle): stores m (borrowed) for the queues
 * of r that keep it, enqueues it on each, dispatches them. PUBLISH_OK or PUBLISH_NOMEM. */
enum publish_status publish_routed(struct vhost *vh, struct msg *m, const struct route_result *r,
                                   struct publish_outcome *out);

#endif
