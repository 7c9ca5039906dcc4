/* Exchanges and bindings: where a published message goes. Four types route a message to a set
 * of destinations: direct (exact routing key, hashed), fanout (every binding), topic (`*` one
 * word, `#` zero or more, matched with a trie so the cost follows the routing key, not the
 * number of bindings), headers (x-match all / any / all-with-x / any-with-x over the message's
 * headers table). A binding's destination is a queue or another exchange; routing follows
 * exchange-to-exchange bindings, visiting each exchange at most once per message (so cycles
 * end), and tries the alternate exchange (argument "alternate-exchange") of an exchange that
 * routed the message nowhere. The result is each matched queue once.
 *
 * Ownership: the vhost owns exchanges (struct exch) and queues; an exchange owns the bindings
 * it is the source of. A destination (queue or exchange) keeps a list of the bindings that
 * point at it (struct bind_list, non-owning) so that deleting it removes them. */
#ifndef WARREN_EXCHANGE_H
#define WARREN_EXCHANGE_H

#include <stdbool.h>
#include <stdint.h>

#include "warren/hmap.h"
#include "warren/stats.h"
#include "warren/wire.h"

struct queue;
struct vhost;
struct binding;
struct exch_routes; /* private to exchange.c and the route_*.c files */

enum exch_type {
    EXCH_DIRECT = 0,
    EXCH_FANOUT,
    EXCH_TOPIC,
    EXCH_HEADERS,
};

/* Bindings that point at one destination, linked through the bindings themselves. */
struct bind_list {
    struct binding *head;
};

/* A binding's destination. */
struct bind_dest {
    bool is_exch;
    union {
        struct queue *queue;
        struct exch *exch;
    } u;
};

static inline struct bind_dest
bind_dest_queue(struct queue *q)
{
    return (struct bind_dest){.is_exch = false, .u.queue = q};
}

static inline struct bind_dest
bind_dest_exch(struct exch *e)
{
    return (struct bind_dest){.is_exch = true, .u.exch = e};
}

struct exch {
    struct hmap_entry by_name; /* in the vhost's exchange map; key = name */
    struct vhost *vhost;       /* borrows: the vhost owns the exchange */
    char *name;                /* owns; NUL-terminated */
    uint32_t name_len;
    enum exch_type type;
    bool durable, auto_delete, internal;
    uint8_t *args; /* owns a copy of the declare arguments (a field table's entries) */
    uint32_t args_len;
    char *alternate; /* owns; "alternate-exchange" argument, or NULL */
    uint32_t alternate_len;
    char *policy_alternate;       /* owns: its policy's (policy.h) if no argument's; or NULL */
    uint32_t n_bindings_out;      /* bindings this exchange is the source of */
    struct exch_routes *routes;   /* owns: the type's lookup structure and the bindings */
    struct bind_list bindings_in; /* bindings with this exchange as destination */
    uint64_t route_visit;         /* routing scratch: the last route pass that visited it */
    struct exch *route_next;      /* routing scratch: next exchange in that pass's work list */
    struct stats_obj stats;       /* message_stats: publish_in, publish_out */
};

/* Calls fn for each binding of a destination's list (bindings_in): its source, routing key and
 * arguments (valid during the call). fn must not bind or unbind. */
void bind_list_foreach(const struct bind_list *l,
                       void (*fn)(void *arg, const struct exch *src, struct wire_str routing_key,
                                  struct wire_table args),
                       void *arg);
/* "direct", "fanout", "topic", "headers" (exact, case-sensitive as RabbitMQ). 0 or -1. */
int exch_type_parse(struct wire_str name, enum exch_type *type);
const char *exch_type_name(enum exch_type type);

/* A new exchange, not yet in any map. args are copied. NULL on ENOMEM. */
struct exch *exch_new(struct vhost *vh, struct wire_str name, enum exch_type type, bool durable,
                      bool auto_delete, bool internal, struct wire_table args);
/* Removes every binding from and to e (unlinking them from their destinations and sources),
 * then frees it. The caller has removed it from the vhost's map. */
void exch_free(struct exch *e);

/* Adds a binding from src to dst. Binding the same (src, dst, routing key, arguments) twice is
 * a no-op, as in RabbitMQ. Returns 0 (added), 1 (already there), -1 (ENOMEM; nothing added).
 * For headers exchanges args["x-match"] must already have been validated (exch_check_bind_args). */
int exch_bind(struct exch *src, struct bind_dest dst, struct wire_str routing_key,
              struct wire_table args);
/* Whether that binding exists. */
bool exch_has_binding(struct exch *src, struct bind_dest dst, struct wire_str routing_key,
                      struct wire_table args);
/* Removes that binding. Returns 0 (removed) or 1 (there was none: RabbitMQ's unbind is
 * idempotent). */
int exch_unbind(struct exch *src, struct bind_dest dst, struct wire_str routing_key,
                struct wire_table args);
/* Removes every binding in list (the bindings pointing at a queue or exchange being deleted).
 * Source exchanges left without bindings that are auto-delete are appended to *emptied
 * (an array the caller frees) so the vhost can delete them, except the exchange whose own
 * bindings_in list this is (a binding to itself); -1 only on ENOMEM growing it (the
 * bindings are removed regardless). */
int exch_unbind_all(struct bind_list *list, struct exch ***emptied, uint32_t *n_emptied);

/* Checks binding arguments for this exchange's type: for headers, x-match must be absent or a
 * longstr "all", "any", "all-with-x" or "any-with-x". 0, or -1 with a reply text in why (the
 * caller raises 406 PRECONDITION_FAILED, e.g. "Invalid x-match field value <<\"foo\">>; expected
 * all, any, all-with-x, or any-with-x"). */
int exch_check_bind_args(const struct exch *e, struct wire_table args, char *why, size_t whylen);

/* Routing result: each matched queue once. Reused across publishes (reset n, keep the array). */
struct route_result {
    struct queue **queues; /* owns the array */
    uint32_t n, cap;
};
void route_result_free(struct route_result *r);
/* Appends q to r unless it is already there (the default exchange's route uses it too).
 * 0, or -1 on ENOMEM (r unchanged). */
int route_result_add(struct route_result *r, struct queue *q);

/* Routes a message published to e with that routing key and headers (the basic properties'
 * headers table, possibly empty), following exchange-to-exchange bindings and alternate
 * exchanges (looked up by name in e->vhost at route time, as RabbitMQ does). Appends matched
 * queues to r (after resetting r->n). 0, or -1 on ENOMEM. */
int exch_route(struct exch *e, struct wire_str routing_key, struct wire_table headers,
               struct route_result *r);
/* The same with several routing keys (n_keys >= 1), as RabbitMQ routes a message with CC
 * keys or a dead-lettered one: each exchange reached matches its bindings against every key,
 * and only one that matched none of them falls back to its alternate exchange. */
int exch_route_keys(struct exch *e, const struct wire_str *keys, uint32_t n_keys,
                    struct wire_table headers, struct route_result *r);

#endif
