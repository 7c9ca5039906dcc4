/* The relay's internals shared by its files (relay.c: the peers, their batches and the
 * consumer's side; relay_home.c: the home side). Network layer only. */
#ifndef WARREN_NET_RELAY_INT_H
#define WARREN_NET_RELAY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net_int.h"
#include "warren/cluster.h"
#include "warren/hmap.h"
#include "warren/idmap.h"
#include "warren/queue.h"

struct iovec;

#define RELAY_BATCH_MAX (1u << 20)
#define RELAY_CHECK_MS 500
/* How long a consume or get waits for its answer before it fails (ms). */
#define RELAY_ANSWER_MS 10000
/* The credit of a consumer without a prefetch limit (or with no_ack): what may be in flight
 * from its home at once. */
#define RELAY_WINDOW 256
#define RELAY_EXCLUSIVE 0x02
#define RELAY_UNSEEN 0x01    /* 'X' flags */
#define RELAY_CREDIT 0xff    /* 'K' how: credit only */
#define RELAY_NO_CREDIT 0x80 /* 'K' how: or'ed in: settled, its credit comes later */
#define RELAY_HDR 9

/* Another node, as this one consumes from it (home side fields: as it consumes from here). */
struct relay_peer {
    struct relay_peer *next;
    struct net_relay *relay;
    char node[CLUSTER_NODE_NAME_MAX];
    uint8_t *out; /* owns: the records to send it this turn, after RELAY_HDR bytes */
    size_t len, cap;
    uint64_t incarnation; /* its run, as this node last heard from it (0: never) */
    unsigned n_subs;      /* consumer's side: this node's consumers and requests there */
    /* home side: its consumers here, by id */
    struct hmap proxies;     /* owns each struct relay_cons */
    struct relay_cons *gets; /* owns: its basic.get deliveries not settled, as consumer 0 */
};

/* A consumer of another node (home side), in its queue's round robin. */
struct relay_cons {
    struct cons base; /* first: the queue calls back with &base */
    struct hmap_entry by_id;
    uint8_t key[8];
    uint64_t id;
    struct relay_peer *client;
    uint32_t credit;
    struct idmap delivered; /* its deliveries not settled: struct relay_delivered by id */
    uint64_t next_delivery;
};

struct relay_delivered {
    struct idmap_entry by_id;
    struct qentry *e; /* owns (settled through the queue's commands) */
};

struct net_relay {
    struct net_server *s;
    struct relay_peer *peers; /* owns */
    struct hmap subs;         /* owns each struct relay_sub, by id */
    uint64_t next_id;
    struct event *flush; /* owns: sends the turn's batches */
    struct event *check; /* owns: every RELAY_CHECK_MS */
};

/* relay.c: appends a record of type with the parts given to p's batch (sent at the end of
 * the loop turn, or now when the batch is full). 0, or -1 on ENOMEM. */
int relay_record(struct net_relay *r, struct relay_peer *p, uint8_t type, const struct iovec *parts,
                 int n_parts);

/* relay_home.c: the records a consumer's node p sends the home (b..end: the record's body). */
void relay_on_consume(struct net_relay *r, struct relay_peer *p, const uint8_t *b,
                      const uint8_t *end);
void relay_on_cancel(struct relay_peer *p, const uint8_t *b, const uint8_t *end);
void relay_on_settle(struct relay_peer *p, const uint8_t *b, const uint8_t *end);
void relay_on_get(struct net_relay *r, struct relay_peer *p, const uint8_t *b, const uint8_t *end);
/* 'U' (purge) or 'N' (counts), answered 'u' or 'n' (relay_req.c asks them). */
void relay_on_queue_request(struct net_relay *r, struct relay_peer *p, uint8_t type,
                            const uint8_t *b, const uint8_t *end);
/* p, consuming from here, is gone or restarted: its consumers go, what they were delivered
 * is requeued. */
void relay_client_lost(struct relay_peer *p);

#endif
