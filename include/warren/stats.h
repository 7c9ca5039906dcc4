/* Message statistics as RabbitMQ's management plugin reports them (message_stats: publish,
 * deliver, ack, confirm... each with X_details.rate), kept per queue, channel, exchange and
 * vhost; the node's are the sum of its vhosts'.
 *
 * Counting is on the hot path, so it is a plain uint64 increment where the event already
 * happens: no allocation, no lock (the broker runs on one event loop thread), no hash lookup.
 * The first change since the last sample also links the object into the sampler's changed
 * list (one branch on a pointer, taken once per interval at most).
 *
 * Rates: a timer every collect_statistics_interval ms (RabbitMQ's key, default 5000) walks
 * the changed list only, so idle objects cost nothing however many there are: each listed
 * object's rate is (counter now - counter at the previous sample) / interval, as RabbitMQ's
 * rate over its last two samples. An object that did not change since the previous sample
 * gets rates 0 and leaves the list; its next change puts it back. The previous sample's
 * counters and the rates live in a block allocated by the sampler (never on the hot path)
 * the first time the object is sampled, so objects that never had traffic carry only the
 * counters and a null pointer.
 *
 * Gauges (a queue's ready and unacknowledged messages, RabbitMQ's messages_ready_details and
 * messages_unacknowledged_details) are read by the sampler from the objects it walks, through
 * the object's gauges function: their rates cost the hot path nothing either. A change the
 * counters do not see (a purge, an expiry) shows at the object's next counted event. An
 * object leaving the list is idle from then on (RabbitMQ's idle_since). */
#ifndef WARREN_STATS_H
#define WARREN_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

/* The counters, by RabbitMQ's message_stats names (stats_name). deliver_get is not kept: it
 * is deliver + deliver_no_ack + get + get_no_ack, computed when shown, as RabbitMQ does. */
enum stats_field {
    STATS_PUBLISH = 0,       /* channel, queue, vhost: messages published */
    STATS_PUBLISH_IN,        /* exchange: messages published into it */
    STATS_PUBLISH_OUT,       /* exchange: messages it routed to at least one queue */
    STATS_CONFIRM,           /* channel, vhost: publishes confirmed (basic.ack to publisher) */
    STATS_RETURN_UNROUTABLE, /* channel, vhost: mandatory publishes returned */
    STATS_DROP_UNROUTABLE,   /* channel, vhost: other unroutable publishes, dropped */
    STATS_DELIVER,           /* deliveries to consumers needing an ack */
    STATS_DELIVER_NO_ACK,    /* deliveries to no-ack consumers */
    STATS_GET,               /* basic.get answered with a message, to be acked */
    STATS_GET_NO_ACK,        /* basic.get answered with a message, no ack */
    STATS_GET_EMPTY,         /* basic.get answered get-empty */
    STATS_ACK,               /* deliveries acknowledged */
    STATS_REDELIVER,         /* deliveries (or gets) of a message marked redelivered */
    STATS_N
};

#define STATS_GAUGES 2 /* a queue's: ready, unacknowledged */

/* The sampler's per-object block: the counters at the previous sample and the rates. */
struct stats_rates {
    uint64_t prev[STATS_N];
    double rate[STATS_N]; /* per second, over the last interval */
    uint64_t gauge_prev[STATS_GAUGES];
    double gauge_rate[STATS_GAUGES]; /* per second; negative when the gauge falls */
    uint64_t idle_since_ms;          /* wall clock (ms) when it last left the changed list */
};

struct stats_obj;
/* Reads an object's gauges into out. */
typedef void (*stats_gauges_fn)(const struct stats_obj *o, uint64_t out[STATS_GAUGES]);

/* Embedded in each object with statistics. Zeroed (stats_obj_init) means no traffic yet. */
struct stats_obj {
    uint64_t n[STATS_N];
    LIST_ENTRY(stats_obj) changed; /* in the sampler's changed list; le_prev NULL: not in it */
    struct stats_rates *rates;     /* owns: NULL until its first sample */
    stats_gauges_fn gauges;        /* NULL: the object has none (all but queues) */
};
LIST_HEAD(stats_list, stats_obj);

/* The objects changed since the last sample. One per broker (the event loop's), global so
 * that the hot path reaches it without a pointer in every object; stats_sample and the
 * unit tests are its only other users. */
extern struct stats_list stats_changed;

/* The slow part of stats_add: links o into stats_changed. */
void stats_mark(struct stats_obj *o);

/* Counts k events of field f on o. */
static inline void
stats_add(struct stats_obj *o, enum stats_field f, uint64_t k)
{
    o->n[f] += k;
    if (o->changed.le_prev == NULL)
        stats_mark(o);
}

void stats_obj_init(struct stats_obj *o);
/* Unlinks o from the changed list and frees its rates block (the object is going away). */
void stats_obj_clear(struct stats_obj *o);
/* Whether o ever counted anything: RabbitMQ shows no message_stats on an object without. */
bool stats_obj_any(const struct stats_obj *o);
/* o's rate of field f (0 before its first sample). */
double stats_rate(const struct stats_obj *o, enum stats_field f);
/* o's rate of change of its gauge g (0 before its first sample). */
double stats_gauge_rate(const struct stats_obj *o, unsigned g);
/* Whether o is idle: no event counted since the last sample but one. *since_ms: when it
 * went idle (wall clock, ms), 0 if it never had traffic (its owner knows since when). */
bool stats_idle(const struct stats_obj *o, uint64_t *since_ms);

/* Samples every changed object, interval_ms after the previous sample: rates, then the
 * objects that did not change leave the list. Returns how many objects are still listed.
 * An object whose rates block cannot be allocated stays listed, its rates 0, and is tried
 * again next time. */
size_t stats_sample(uint64_t interval_ms);

/* The node's lifetime counters behind rabbitmq_prometheus's *_opened_total, *_closed_total,
 * queues_declared/created/deleted_total: one increment where the event happens (connection
 * opened (connection.open-ok) or gone, channel opened or freed, queue.declare answered, queue added
 * to or removed from its vhost). Global as stats_changed, for the same reason. */
struct stats_node {
    uint64_t conns_opened, conns_closed;
    uint64_t chans_opened, chans_closed;
    uint64_t queues_declared, queues_created, queues_deleted;
};
extern struct stats_node stats_node;

/* A histogram with fixed upper bounds (Prometheus's "le"): an observation is a search over
 * at most STATS_HIST_MAX bounds and two increments; no allocation. Values are integers in
 * the unit the owner chose (microseconds, batches); whoever shows them scales them. Not
 * locked: each histogram has one writer thread, and a reader on another thread holds the
 * writer's lock (the store's) or accepts a sample a few observations old. */
#define STATS_HIST_MAX 16
struct stats_hist {
    const uint64_t *bounds;              /* borrows: n increasing upper bounds */
    unsigned n;                          /* at most STATS_HIST_MAX */
    uint64_t counts[STATS_HIST_MAX + 1]; /* per bucket, not cumulative; [n]: above the last */
    uint64_t sum;                        /* of the observed values */
};
void stats_hist_init(struct stats_hist *h, const uint64_t *bounds, unsigned n);
void stats_hist_observe(struct stats_hist *h, uint64_t v);

/* RabbitMQ's name of field f ("publish", "deliver_no_ack"...). */
const char *stats_name(enum stats_field f);

#endif
