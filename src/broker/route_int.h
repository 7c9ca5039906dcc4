/* Private to exchange.c, route_topic.c and route_headers.c: the binding record, each exchange
 * type's lookup structure, and the state of one routing pass. */
#ifndef WARREN_ROUTE_INT_H
#define WARREN_ROUTE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "warren/exchange.h"
#include "warren/hmap.h"
#include "warren/wire.h"

/* A headers binding's x-match. */
enum route_hdr_match {
    ROUTE_HDR_ALL = 0,
    ROUTE_HDR_ANY,
    ROUTE_HDR_ALL_WITH_X,
    ROUTE_HDR_ANY_WITH_X,
};

/* One binding. Its source owns it (through exch_routes.ids); it sits in the list of its source's
 * lookup structure that routes it (a direct key group, a topic trie node, or the fanout and
 * headers list) and in its destination's bind_list. */
struct binding {
    struct hmap_entry by_id;             /* in src->routes->ids; key = id[] */
    struct exch *src;                    /* borrows: the source owns the binding */
    struct bind_dest dst;                /* borrows */
    struct binding *dst_prev, *dst_next; /* in the destination's bind_list */
    struct binding *prev, *next;         /* in the routing list that holds it */
    void *holder;        /* direct: its struct direct_group; topic: its struct route_topic_node */
    struct wire_str key; /* routing key (binding key): points into id[] */
    struct wire_table args;     /* arguments: point into id[] */
    enum route_hdr_match match; /* headers exchanges: x-match */
    uint32_t id_len;
    uint8_t id[]; /* identity for idempotent bind/unbind: destination kind and pointer, key
                   * length (4 bytes), key, argument bytes */
};

/* A doubly linked list of bindings through binding.prev/next. */
void route_blist_push(struct binding **head, struct binding *b);
void route_blist_remove(struct binding **head, struct binding *b);

/* The topic trie: one node per distinct word prefix of the binding keys. Every node but the
 * root is in one exchange-wide map keyed by (parent node, word), so finding a child costs one
 * hash lookup. */
struct route_topic_node;
struct route_topic_trie {
    struct hmap edges;             /* owns every node but the root */
    struct route_topic_node *root; /* owns; NULL until the first binding */
};

/* One routing pass (one exch_route call). */
struct route_ctx {
    struct route_result *r;
    uint64_t pass;     /* this pass's number, stamped into exch.route_visit */
    struct exch *work; /* exchanges to route, linked through exch.route_next */
    uint32_t matched;  /* destinations the exchange being routed matched (for its AE) */
};

/* Adds b's destination: a queue to the result (duplicates are removed at the end of the pass),
 * an exchange not yet visited in this pass to the work list. 0, or -1 on ENOMEM. */
int route_ctx_add(struct route_ctx *c, const struct binding *b);

void route_topic_init(struct route_topic_trie *t);
/* Frees every node (the bindings belong to the exchange and must be gone already). */
void route_topic_clear(struct route_topic_trie *t);
/* Files b under its key's words. 0, or -1 on ENOMEM with the trie unchanged. */
int route_topic_add(struct route_topic_trie *t, struct binding *b);
/* Unfiles b and frees the nodes that are left without bindings or children. */
void route_topic_remove(struct route_topic_trie *t, struct binding *b);
/* Adds the destination of every binding whose pattern matches routing_key. 0, or -1 on
 * ENOMEM. */
int route_topic_route(struct route_topic_trie *t, struct wire_str routing_key, struct route_ctx *c);

/* The x-match of validated binding arguments (ROUTE_HDR_ALL when absent or, as RabbitMQ treats
 * unvalidated legacy bindings, unrecognised). */
enum route_hdr_match route_headers_parse_match(struct wire_table args);
/* Adds the destination of every binding in list (a headers exchange's) that a message with
 * these headers matches. 0, or -1 on ENOMEM. */
int route_headers_route(struct binding *list, struct wire_table headers, struct route_ctx *c);

#endif
