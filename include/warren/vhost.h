/* Virtual hosts: named, isolated namespaces of exchanges, queues and bindings. The registry
 * owns every vhost; a vhost owns its exchanges and queues (by name, in hash maps); a
 * connection borrows the vhost it opened. A new vhost gets RabbitMQ's predeclared exchanges
 * (amq.direct, amq.fanout, amq.topic, amq.headers, amq.match). The default exchange ("") is
 * not an object: publishing to it looks the routing key up as a queue name. */
#ifndef WARREN_VHOST_H
#define WARREN_VHOST_H

#include <stddef.h>
#include <stdint.h>

#include "warren/hmap.h"
#include "warren/queue.h"
#include "warren/stats.h"
#include "warren/wire.h"

struct exch;
struct policy;
struct queue;

struct durable;

/* What an operator says about a vhost (rabbitmqctl add_vhost --description --tags
 * --default-queue-type, set_vhost_limits), set through warren/admin.h. */
struct vhost_meta {
    char *description; /* owns; NULL: none */
    char **tags;       /* owns the array and each tag */
    size_t n_tags;
    char *default_queue_type; /* owns; NULL: not set (classic) */
    int64_t max_connections;  /* -1: no limit */
    int64_t max_queues;       /* -1: no limit */
};

struct vhost {
    char *name;                 /* owns */
    struct vhost_registry *reg; /* borrows: the registry it is in */
    struct durable *durable;    /* borrows: where its changes are written; NULL: nowhere */
    struct vhost *next;
    struct hmap exchanges; /* owns each struct exch */
    struct hmap queues;    /* owns each struct queue */
    struct vhost_meta meta;
    /* owns: its policies and operator policies (policy.h), each list in precedence order */
    struct policy *policies[2];
    uint32_t n_conns; /* open connections, counted by the network layer for max-connections */
    /* message_stats of its channels and queues together (the node's are the sum of its
     * vhosts'), and those of its default exchange, which is no object (publish_in/out) */
    struct stats_obj stats;
    struct stats_obj default_exch_stats;
};

struct vhost_registry {
    struct vhost *head;      /* owns the list */
    struct durable *durable; /* borrows; given to each vhost (durable_recover sets it) */
    /* In a cluster: the stand-in owner of the exclusive queues whose connection is not one of
     * this node's (on another node, or gone before a restart) */
    struct queue_owner others;
    /* In a cluster (the network layer's, NULL alone): sends a dead letter m of vh to
     * queues[0..n), other nodes' queues, at most once (deadletter_message) */
    void (*forward_dead)(void *arg, struct vhost *vh, struct queue **queues, uint32_t n,
                         struct msg *m);
    void *forward_dead_arg;
};

void vhost_registry_init(struct vhost_registry *reg);
/* Where every vhost's changes are written from now on (NULL: nowhere, e.g. while the broker
 * shuts down: consumers going away then must not delete auto-delete queues from the store). */
void vhost_registry_set_durable(struct vhost_registry *reg, struct durable *d);
/* Frees every vhost with its exchanges and queues (nothing is written to the store). */
void vhost_registry_clear(struct vhost_registry *reg);
/* Adds a vhost with its predeclared exchanges (or returns the existing one of that name).
 * NULL on ENOMEM. */
struct vhost *vhost_add(struct vhost_registry *reg, const char *name);
/* Removes the vhost from the registry and frees it with its queues and exchanges, deleting
 * their stored records and messages as queue.delete and exchange.delete would. Its
 * connections must be gone (they borrow it). */
void vhost_delete(struct vhost_registry *reg, struct vhost *v);
/* Replaces the vhost's metadata with a copy of description, tags and default_queue_type
 * (each NULL: none); limits stay. 0, or -1 on ENOMEM (nothing changed). */
int vhost_meta_set(struct vhost *v, const char *description, const char *const *tags, size_t n_tags,
                   const char *default_queue_type);
/* NULL if no vhost has that name. */
struct vhost *vhost_find(const struct vhost_registry *reg, struct wire_str name);

struct exch *vhost_exch_find(const struct vhost *vh, struct wire_str name);
struct queue *vhost_queue_find(const struct vhost *vh, struct wire_str name);
/* Adds e (or q) to the vhost's map, with the settings its policies give it (policy.h); its
 * name must not be taken. 0, or -1 on ENOMEM (not added). */
int vhost_exch_add(struct vhost *vh, struct exch *e);
int vhost_queue_add(struct vhost *vh, struct queue *q);
/* Removes from the map and frees, including what that empties: auto-delete exchanges left
 * without bindings go too, transitively. queue.delete returns the ready count dropped. */
void vhost_exch_delete(struct vhost *vh, struct exch *e);
uint64_t vhost_queue_delete(struct vhost *vh, struct queue *q);
/* A queue deletes itself (x-expires, or auto-delete as its last consumer goes): at once, or
 * in a cluster through its log, by what vhost_set_self_delete gave (called with q, which
 * stays until the log's delete is applied). */
void vhost_queue_delete_self(struct queue *q);
/* In a cluster: fn(arg, q) submits q's deletion to the cluster's log. NULL: none (alone).
 * Process-wide, as there is one registry. */
void vhost_set_self_delete(void (*fn)(void *arg, struct queue *q), void *arg);

#endif
