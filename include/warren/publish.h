/* The publish pipeline: what happens to a complete message, whoever published it (an AMQP
 * channel, dead-lettering; the management API's publish and replication tomorrow):
 *  1. route: the default exchange (the queue named by the routing key) or the named
 *     exchange's bindings, exchange-to-exchange bindings and alternate exchanges included,
 *     with the routing key and the keys of the CC and BCC headers (RabbitMQ's sender-selected
 *     distribution); the queues get the message without its BCC header, which headers
 *     exchanges match already;
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
#include <stddef.h>
#include <stdint.h>

#include "warren/wire.h"

struct exch;
struct msg;
struct route_result;
struct vhost;

/* Routing keys held without allocating: a message's own and a few CC/BCC ones. */
#define PUBLISH_KEYS_INLINE 8

/* The routing keys of a message, as RabbitMQ 3.10's rabbit_basic:header_routes gives them:
 * its routing key, then the longstr values of its "CC" header, then those of its "BCC"
 * header (the first entry of each name; values of other types are ignored, and so is a
 * header that is not an array, which a publish cannot carry: publish_check_header_routes). */
struct publish_keys {
    struct wire_str *v; /* inline_v, or allocated when that is too short; borrows the strings */
    uint32_t n;
    bool bcc; /* the message has a "BCC" header (even an empty one): queues must not see it */
    struct wire_str inline_v[PUBLISH_KEYS_INLINE];
};

enum publish_status {
    PUBLISH_OK = 0,
    PUBLISH_NO_EXCHANGE, /* the named exchange does not exist (any more): nothing was done */
    PUBLISH_NOMEM,       /* out of memory: it reached some of its queues at most (logged) */
};

struct publish_outcome {
    uint32_t n_queues;  /* queues it was enqueued on: 0 (and none refused) means unroutable */
    uint32_t n_refused; /* queues that refused it (x-overflow reject-publish): nack it */
    /* In a cluster, the other nodes' queues it routed to, for the caller to forward: the
     * route result's queues[n .. n + n_remote) */
    uint32_t n_remote;
    bool stored; /* written to the store: a confirm or commit waits for the sync */
};

/* Checks a publish's headers table as RabbitMQ does before routing: a "CC" or "BCC" header
 * must be an array. 0, or -1 with the reply text for a 406 PRECONDITION_FAILED in why
 * ("invalid message: {unacceptable_type_in_header,\"CC\",longstr}"). */
int publish_check_header_routes(struct wire_table headers, char *why, size_t whylen);
/* Fills k with m's routing keys (k's strings point into m, borrowed). 0, or -1 on ENOMEM (k
 * needs no freeing then). */
int publish_keys_init(struct publish_keys *k, const struct msg *m);
/* Frees what publish_keys_init allocated. */
void publish_keys_free(struct publish_keys *k);
/* Routes a message with headers and n_keys >= 1 routing keys through x (exch_route_keys), or
 * the default exchange when x is NULL (the queues named by the keys), into r (reset first).
 * 0, or -1 on ENOMEM. */
int publish_route_keys(struct vhost *vh, struct exch *x, const struct wire_str *keys,
                       uint32_t n_keys, struct wire_table headers, struct route_result *r);

/* Publishes *mp in vh. *mp is the caller's reference, borrowed: the queues take references
 * of their own. When it has a BCC header, the queues get a copy without it (its body
 * shared), and *mp is replaced by that copy (the caller's reference moves to it) so that a
 * basic.return shows what the queues would have had, as RabbitMQ's does; it stays as it was
 * if the copy cannot be made (PUBLISH_NOMEM). scratch: a route result the caller keeps for
 * reuse (its memory stays allocated between calls). */
enum publish_status publish_message(struct vhost *vh, struct msg **mp, struct route_result *scratch,
                                    struct publish_outcome *out);
/* Steps 2 to 5 for a message its publisher routed itself (dead-lettering routes with several
 * keys and leaves out the queues that would close a cycle): r loses the queues that refuse m
 * (counted in out->n_refused); m is borrowed. PUBLISH_OK or PUBLISH_NOMEM. */
enum publish_status publish_routed(struct vhost *vh, struct msg *m, struct route_result *r,
                                   struct publish_outcome *out);

#endif
