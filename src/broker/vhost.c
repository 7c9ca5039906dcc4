/* Virtual host registry, and each vhost's maps of exchanges and queues by name. A handful of
 * vhosts per node is the norm, so the registry is a list (looked up once per connection.open);
 * exchanges and queues are hashed, since there may be hundreds of thousands. */
#include "config.h"

#include "warren/vhost.h"

#include <stdlib.h>
#include <string.h>

#include "warren/durable.h"
#include "warren/exchange.h"
#include "warren/log.h"
#include "warren/policy.h"
#include "warren/queue.h"

/* vhost_set_self_delete's. Loop thread only. */
static void (*vhost_self_delete_fn)(void *arg, struct queue *q);
static void *vhost_self_delete_arg;

void
vhost_set_self_delete(void (*fn)(void *arg, struct queue *q), void *arg)
{
    vhost_self_delete_fn = fn;
    vhost_self_delete_arg = arg;
}

void
vhost_queue_delete_self(struct queue *q)
{
    if (vhost_self_delete_fn != NULL)
        vhost_self_delete_fn(vhost_self_delete_arg, q);
    else
        vhost_queue_delete(q->vhost, q);
}

void
vhost_registry_init(struct vhost_registry *reg)
{
    reg->head = NULL;
    reg->durable = NULL;
    TAILQ_INIT(&reg->others.queues);
    reg->others.id = 0;
}

static void
vhost_meta_free(struct vhost_meta *m)
{
    free(m->description);
    for (size_t i = 0; i < m->n_tags; i++)
        free(m->tags[i]);
    free(m->tags);
    free(m->default_queue_type);
    m->description = m->default_queue_type = NULL;
    m->tags = NULL;
    m->n_tags = 0;
}

int
vhost_meta_set(struct vhost *v, const char *description, const char *const *tags, size_t n_tags,
               const char *default_queue_type)
{
    struct vhost_meta m = {.max_connections = v->meta.max_connections,
                           .max_queues = v->meta.max_queues};
    if ((description != NULL && (m.description = strdup(description)) == NULL) ||
        (default_queue_type != NULL &&
         (m.default_queue_type = strdup(default_queue_type)) == NULL) ||
        (n_tags > 0 && (m.tags = calloc(n_tags, sizeof(*m.tags))) == NULL))
        goto fail;
    for (; m.n_tags < n_tags; m.n_tags++)
        if ((m.tags[m.n_tags] = strdup(tags[m.n_tags])) == NULL)
            goto fail;
    vhost_meta_free(&v->meta);
    v->meta = m;
    return 0;
fail:
    vhost_meta_free(&m);
    return -1;
}

/* Frees every queue, then every exchange. */
static void
vhost_free(struct vhost *v)
{
    struct hmap_iter it;
    struct hmap_entry *he;
    hmap_iter_init(&it, &v->queues);
    while ((he = hmap_iter_next(&it)) != NULL) {
        struct queue *q = hmap_container_of(he, struct queue, by_name);
        hmap_remove(&v->queues, he);
        queue_free(q, NULL, NULL); /* every exchange goes below anyway */
    }
    hmap_iter_init(&it, &v->exchanges);
    while ((he = hmap_iter_next(&it)) != NULL) {
        struct exch *e = hmap_container_of(he, struct exch, by_name);
        hmap_remove(&v->exchanges, he);
        exch_free(e);
    }
    hmap_clear(&v->queues);
    hmap_clear(&v->exchanges);
    policy_free_all(v);
    vhost_meta_free(&v->meta);
    free(v->name);
    stats_obj_clear(&v->stats);
    stats_obj_clear(&v->default_exch_stats);
    free(v);
}

void
vhost_registry_set_durable(struct vhost_registry *reg, struct durable *d)
{
    reg->durable = d;
    for (struct vhost *v = reg->head; v != NULL; v = v->next)
        v->durable = d;
}

void
vhost_registry_clear(struct vhost_registry *reg)
{
    vhost_registry_set_durable(reg, NULL); /* freeing the broker's state is not deleting it */
    struct vhost *v = reg->head;
    while (v != NULL) {
        struct vhost *next = v->next;
        vhost_free(v);
        v = next;
    }
    reg->head = NULL;
}

/* RabbitMQ's predeclared exchanges, durable, in every vhost. */
static const struct {
    const char *name;
    enum exch_type type;
} vhost_predeclared[] = {
    {"amq.direct", EXCH_DIRECT},   {"amq.fanout", EXCH_FANOUT}, {"amq.topic", EXCH_TOPIC},
    {"amq.headers", EXCH_HEADERS}, {"amq.match", EXCH_HEADERS},
};

struct vhost *
vhost_add(struct vhost_registry *reg, const char *name)
{
    struct vhost *v = vhost_find(reg, (struct wire_str){(const uint8_t *)name, strlen(name)});
    if (v != NULL)
        return v;
    v = calloc(1, sizeof(*v));
    if (v == NULL)
        return NULL;
    v->reg = reg;
    v->meta.max_connections = -1;
    v->meta.max_queues = -1;
    hmap_init(&v->exchanges);
    hmap_init(&v->queues);
    v->name = strdup(name);
    if (v->name == NULL)
        goto fail;
    for (size_t i = 0; i < sizeof(vhost_predeclared) / sizeof(vhost_predeclared[0]); i++) {
        const char *en = vhost_predeclared[i].name;
        struct exch *e =
            exch_new(v, (struct wire_str){(const uint8_t *)en, strlen(en)},
                     vhost_predeclared[i].type, true, false, false, (struct wire_table){NULL, 0});
        if (e == NULL)
            goto fail;
        if (vhost_exch_add(v, e) < 0) {
            exch_free(e);
            goto fail;
        }
    }
    v->durable = reg->durable; /* after the predeclared exchanges, which are never stored */
    v->next = reg->head;
    reg->head = v;
    return v;
fail:
    vhost_free(v);
    return NULL;
}

struct vhost *
vhost_find(const struct vhost_registry *reg, struct wire_str name)
{
    for (struct vhost *v = reg->head; v != NULL; v = v->next)
        if (wire_str_eq(name, v->name))
            return v;
    return NULL;
}

struct exch *
vhost_exch_find(const struct vhost *vh, struct wire_str name)
{
    struct hmap_entry *he = hmap_find(&vh->exchanges, name.ptr, name.len);
    return he != NULL ? hmap_container_of(he, struct exch, by_name) : NULL;
}

struct queue *
vhost_queue_find(const struct vhost *vh, struct wire_str name)
{
    struct hmap_entry *he = hmap_find(&vh->queues, name.ptr, name.len);
    return he != NULL ? hmap_container_of(he, struct queue, by_name) : NULL;
}

int
vhost_exch_add(struct vhost *vh, struct exch *e)
{
    if (policy_exch_apply(e) < 0 ||
        hmap_insert(&vh->exchanges, &e->by_name, e->name, e->name_len) < 0)
        return -1;
    durable_exchange_added(vh->durable, e);
    return 0;
}

int
vhost_queue_add(struct vhost *vh, struct queue *q)
{
    /* Every way a queue is made (declare, definitions, recovery) passes here: its policies
     * apply from the start, before any message or consumer. */
    if (policy_queue_apply(q) < 0 ||
        hmap_insert(&vh->queues, &q->by_name, q->name, q->name_len) < 0)
        return -1;
    durable_queue_added(vh->durable, q);
    stats_node.queues_created++;
    return 0;
}

/* Deletes the auto-delete exchanges that a removal left without bindings, and those that
 * their own deletion empties in turn. Takes ownership of the emptied array. */
static void
vhost_delete_emptied(struct vhost *vh, struct exch **emptied, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        struct exch *e = emptied[i];
        struct exch **more = NULL;
        uint32_t n_more = 0;
        hmap_remove(&vh->exchanges, &e->by_name);
        /* Its own outgoing bindings are gone already; bindings to it (from other exchanges)
         * go with it and may empty further auto-delete sources. */
        if (exch_unbind_all(&e->bindings_in, &more, &n_more) < 0)
            log_msg(LOG_ERROR, "out of memory cascading auto-delete from exchange '%s'", e->name);
        durable_exchange_removed(vh->durable, e);
        exch_free(e);
        vhost_delete_emptied(vh, more, n_more);
    }
    free(emptied);
}

void
vhost_exch_delete(struct vhost *vh, struct exch *e)
{
    struct exch **emptied = NULL;
    uint32_t n = 0;
    hmap_remove(&vh->exchanges, &e->by_name);
    if (exch_unbind_all(&e->bindings_in, &emptied, &n) < 0)
        log_msg(LOG_ERROR, "out of memory cascading auto-delete from exchange '%s'", e->name);
    durable_exchange_removed(vh->durable, e);
    exch_free(e);
    vhost_delete_emptied(vh, emptied, n);
}

uint64_t
vhost_queue_delete(struct vhost *vh, struct queue *q)
{
    struct exch **emptied = NULL;
    uint32_t n = 0;
    hmap_remove(&vh->queues, &q->by_name);
    stats_node.queues_deleted++;
    uint64_t dropped = queue_free(q, &emptied, &n);
    vhost_delete_emptied(vh, emptied, n);
    return dropped;
}

void
vhost_delete(struct vhost_registry *reg, struct vhost *v)
{
    struct vhost **pp = &reg->head;
    while (*pp != NULL && *pp != v)
        pp = &(*pp)->next;
    if (*pp != NULL)
        *pp = v->next;
    /* Queues first (their bindings go with them), then exchanges: each deletion is written
     * as the AMQP method's would be, stored messages included. No exchange is auto-deleted
     * on the way (they all go anyway), so the walks never meet a freed one. */
    struct hmap_iter it;
    struct hmap_entry *he;
    hmap_iter_init(&it, &v->exchanges);
    while ((he = hmap_iter_next(&it)) != NULL)
        hmap_container_of(he, struct exch, by_name)->auto_delete = false;
    hmap_iter_init(&it, &v->queues);
    while ((he = hmap_iter_next(&it)) != NULL)
        vhost_queue_delete(v, hmap_container_of(he, struct queue, by_name));
    hmap_iter_init(&it, &v->exchanges);
    while ((he = hmap_iter_next(&it)) != NULL)
        vhost_exch_delete(v, hmap_container_of(he, struct exch, by_name));
    v->durable = NULL;
    vhost_free(v);
}
