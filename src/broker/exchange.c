/* Exchanges, bindings and the routing pass (include/warren/exchange.h). An exchange's
 * exch_routes holds every binding it is the source of in a map keyed by the binding's identity
 * (destination, routing key, argument bytes), which makes bind and unbind idempotent in O(1),
 * and in its type's lookup structure: direct exchanges group bindings by routing key in a hash
 * map, fanout and headers exchanges keep one list, topic exchanges a trie (route_topic.c).
 *
 * exch_route() follows RabbitMQ's rabbit_exchange:route/2: a work list that starts with the
 * exchange published to; each exchange taken from it adds the queues its bindings match to the
 * result and the exchanges they match to the work list unless this pass already visited them,
 * and, if its bindings matched no destination at all (neither queue nor exchange), its
 * alternate exchange, looked up by name now. Queues reached more than once are kept once. */
#include "config.h"

#include "warren/exchange.h"

#include <stdlib.h>
#include <string.h>

#include "route_int.h"
#include "warren/assert.h"
#include "warren/durable.h"
#include "warren/queue.h"
#include "warren/vhost.h"

/* A direct exchange's bindings with one routing key. */
struct direct_group {
    struct hmap_entry by_key; /* in exch_routes.direct; key = key[] */
    struct binding *head;
    uint32_t klen;
    uint8_t key[];
};

struct exch_routes {
    struct hmap ids;               /* every binding of the exchange, by identity */
    struct hmap direct;            /* direct: struct direct_group by routing key (owns them) */
    struct binding *list;          /* fanout and headers: every binding */
    struct route_topic_trie topic; /* topic */
};

/* Numbers routing passes; exch.route_visit holds the last pass that reached the exchange. The
 * broker routes on its one event-loop thread. */
static uint64_t route_pass;

static const char *const type_names[] = {
    [EXCH_DIRECT] = "direct",
    [EXCH_FANOUT] = "fanout",
    [EXCH_TOPIC] = "topic",
    [EXCH_HEADERS] = "headers",
};

int
exch_type_parse(struct wire_str name, enum exch_type *type)
{
    for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++) {
        if (wire_str_eq(name, type_names[i])) {
            *type = (enum exch_type)i;
            return 0;
        }
    }
    return -1;
}

const char *
exch_type_name(enum exch_type type)
{
    WR_ASSERT((size_t)type < sizeof type_names / sizeof type_names[0]);
    return type_names[type];
}

void
route_blist_push(struct binding **head, struct binding *b)
{
    b->prev = NULL;
    b->next = *head;
    if (*head != NULL)
        (*head)->prev = b;
    *head = b;
}

void
route_blist_remove(struct binding **head, struct binding *b)
{
    if (b->prev != NULL)
        b->prev->next = b->next;
    else
        *head = b->next;
    if (b->next != NULL)
        b->next->prev = b->prev;
    b->prev = b->next = NULL;
}

static struct bind_list *
dest_list(struct bind_dest d)
{
    return d.is_exch ? &d.u.exch->bindings_in : &d.u.queue->bindings_in;
}

static void
dest_list_push(struct binding *b)
{
    struct bind_list *l = dest_list(b->dst);

    b->dst_prev = NULL;
    b->dst_next = l->head;
    if (l->head != NULL)
        l->head->dst_prev = b;
    l->head = b;
}

void
bind_list_foreach(const struct bind_list *l,
                  void (*fn)(void *arg, const struct exch *src, struct wire_str routing_key,
                             struct wire_table args),
                  void *arg)
{
    for (const struct binding *b = l->head; b != NULL; b = b->dst_next)
        fn(arg, b->src, b->key, b->args);
}

static void
dest_list_remove(struct binding *b)
{
    struct bind_list *l = dest_list(b->dst);

    if (b->dst_prev != NULL)
        b->dst_prev->dst_next = b->dst_next;
    else
        l->head = b->dst_next;
    if (b->dst_next != NULL)
        b->dst_next->dst_prev = b->dst_prev;
}

/* ---- exchanges ---- */

static char *
copy_str(const uint8_t *p, uint32_t n)
{
    char *s = malloc((size_t)n + 1);

    if (s != NULL) {
        if (n > 0)
            memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

struct exch *
exch_new(struct vhost *vh, struct wire_str name, enum exch_type type, bool durable,
         bool auto_delete, bool internal, struct wire_table args)
{
    struct exch *e = calloc(1, sizeof *e);
    struct wire_value v;

    if (e == NULL)
        return NULL;
    e->vhost = vh;
    e->type = type;
    e->durable = durable;
    e->auto_delete = auto_delete;
    e->internal = internal;
    if ((e->name = copy_str(name.ptr, name.len)) == NULL)
        goto fail;
    e->name_len = name.len;
    if (args.len > 0) {
        if ((e->args = malloc(args.len)) == NULL)
            goto fail;
        memcpy(e->args, args.ptr, args.len);
        e->args_len = args.len;
    }
    /* RabbitMQ takes the argument's value whatever its type; only a string can name an
     * exchange, so other types never find one. */
    if (wire_table_get(args, "alternate-exchange", &v) &&
        (v.type == WIRE_FIELD_LONGSTR || v.type == WIRE_FIELD_BYTES)) {
        if ((e->alternate = copy_str(v.v.str.ptr, v.v.str.len)) == NULL)
            goto fail;
        e->alternate_len = v.v.str.len;
    }
    if ((e->routes = calloc(1, sizeof *e->routes)) == NULL)
        goto fail;
    hmap_init(&e->routes->ids);
    hmap_init(&e->routes->direct);
    route_topic_init(&e->routes->topic);
    return e;

fail:
    free(e->alternate);
    free(e->args);
    free(e->name);
    free(e);
    return NULL;
}

/* ---- bindings ---- */

/* Writes the identity of (dst, key, args) into buf (which has room for id_size() bytes). */
static size_t
id_size(struct wire_str key, struct wire_table args)
{
    return 1 + sizeof(void *) + 4 + (size_t)key.len + args.len;
}

static void
id_write(uint8_t *buf, struct bind_dest dst, struct wire_str key, struct wire_table args)
{
    void *p = dst.is_exch ? (void *)dst.u.exch : (void *)dst.u.queue;

    buf[0] = dst.is_exch;
    memcpy(buf + 1, &p, sizeof p);
    buf += 1 + sizeof p;
    memcpy(buf, &key.len, 4);
    if (key.len > 0)
        memcpy(buf + 4, key.ptr, key.len);
    if (args.len > 0)
        memcpy(buf + 4 + key.len, args.ptr, args.len);
}

/* Where the exchange's bindings are written (NULL: nowhere, as for exchanges made without a
 * vhost by unit tests and benchmarks). */
static struct durable *
exch_durable(const struct exch *e)
{
    return e->vhost != NULL ? e->vhost->durable : NULL;
}

/* Takes b out of its source's lookup structure and identity map, and out of its destination's
 * list, and frees it. */
static void
binding_remove(struct binding *b)
{
    struct exch *src = b->src;
    struct exch_routes *rt = src->routes;
    struct direct_group *g;

    switch (src->type) {
    case EXCH_DIRECT:
        g = b->holder;
        route_blist_remove(&g->head, b);
        if (g->head == NULL) {
            hmap_remove(&rt->direct, &g->by_key);
            free(g);
        }
        break;
    case EXCH_TOPIC:
        route_topic_remove(&rt->topic, b);
        break;
    case EXCH_FANOUT:
    case EXCH_HEADERS:
        route_blist_remove(&rt->list, b);
        break;
    }
    hmap_remove(&rt->ids, &b->by_id);
    dest_list_remove(b);
    src->n_bindings_out--;
    durable_binding_changed(exch_durable(src), src, b->dst, b->key, b->args, false);
    free(b);
}

/* Files b in its source's lookup structure. 0, or -1 on ENOMEM (nothing filed). */
static int
binding_file(struct binding *b)
{
    struct exch_routes *rt = b->src->routes;
    struct hmap_entry *he;
    struct direct_group *g;

    switch (b->src->type) {
    case EXCH_DIRECT:
        he = hmap_find(&rt->direct, b->key.ptr, b->key.len);
        if (he != NULL) {
            g = hmap_container_of(he, struct direct_group, by_key);
        } else {
            if ((g = malloc(sizeof *g + b->key.len)) == NULL)
                return -1;
            g->head = NULL;
            g->klen = b->key.len;
            if (b->key.len > 0)
                memcpy(g->key, b->key.ptr, b->key.len);
            if (hmap_insert(&rt->direct, &g->by_key, g->key, g->klen) < 0) {
                free(g);
                return -1;
            }
        }
        route_blist_push(&g->head, b);
        b->holder = g;
        return 0;
    case EXCH_TOPIC:
        return route_topic_add(&rt->topic, b);
    case EXCH_FANOUT:
    case EXCH_HEADERS:
        route_blist_push(&rt->list, b);
        return 0;
    }
    return -1;
}

int
exch_bind(struct exch *src, struct bind_dest dst, struct wire_str routing_key,
          struct wire_table args)
{
    size_t n = id_size(routing_key, args);
    struct binding *b;

    if (n > UINT32_MAX || (b = calloc(1, sizeof *b + n)) == NULL)
        return -1;
    id_write(b->id, dst, routing_key, args);
    b->id_len = (uint32_t)n;
    if (hmap_find(&src->routes->ids, b->id, b->id_len) != NULL) {
        free(b);
        return 1;
    }
    b->src = src;
    b->dst = dst;
    b->key = (struct wire_str){b->id + 1 + sizeof(void *) + 4, routing_key.len};
    b->args = (struct wire_table){b->key.ptr + routing_key.len, args.len};
    if (src->type == EXCH_HEADERS)
        b->match = route_headers_parse_match(b->args);
    if (hmap_insert(&src->routes->ids, &b->by_id, b->id, b->id_len) < 0)
        goto fail;
    if (binding_file(b) < 0)
        goto fail_ids;
    dest_list_push(b);
    src->n_bindings_out++;
    durable_binding_changed(exch_durable(src), src, dst, b->key, b->args, true);
    return 0;

fail_ids:
    hmap_remove(&src->routes->ids, &b->by_id);
fail:
    free(b);
    return -1;
}

/* The binding (src, dst, key, args), or NULL. */
static struct binding *
binding_find(struct exch *src, struct bind_dest dst, struct wire_str key, struct wire_table args)
{
    uint8_t buf[1024];
    size_t n = id_size(key, args);
    struct hmap_entry *he;

    if (n <= sizeof buf) {
        id_write(buf, dst, key, args);
        he = hmap_find(&src->routes->ids, buf, n);
        return he != NULL ? hmap_container_of(he, struct binding, by_id) : NULL;
    }
    /* Large arguments: search the destination's bindings instead of allocating a key. */
    for (struct binding *b = dest_list(dst)->head; b != NULL; b = b->dst_next) {
        if (b->src == src && b->key.len == key.len && b->args.len == args.len &&
            (key.len == 0 || memcmp(b->key.ptr, key.ptr, key.len) == 0) &&
            (args.len == 0 || memcmp(b->args.ptr, args.ptr, args.len) == 0))
            return b;
    }
    return NULL;
}

bool
exch_has_binding(struct exch *src, struct bind_dest dst, struct wire_str routing_key,
                 struct wire_table args)
{
    return binding_find(src, dst, routing_key, args) != NULL;
}

int
exch_unbind(struct exch *src, struct bind_dest dst, struct wire_str routing_key,
            struct wire_table args)
{
    struct binding *b = binding_find(src, dst, routing_key, args);

    if (b == NULL)
        return 1;
    binding_remove(b);
    return 0;
}

int
exch_unbind_all(struct bind_list *list, struct exch ***emptied, uint32_t *n_emptied)
{
    int rc = 0;

    while (list->head != NULL) {
        struct exch *src = list->head->src, **grown;

        binding_remove(list->head);
        /* A source that is the destination being deleted (a binding from an exchange to
         * itself) is the caller's already: not reported. */
        if (!src->auto_delete || src->n_bindings_out != 0 || list == &src->bindings_in)
            continue;
        grown = realloc(*emptied, ((size_t)*n_emptied + 1) * sizeof *grown);
        if (grown == NULL) {
            rc = -1;
            continue;
        }
        grown[(*n_emptied)++] = src;
        *emptied = grown;
    }
    return rc;
}

void
exch_free(struct exch *e)
{
    struct hmap_iter it;
    struct hmap_entry *he;

    if (e == NULL)
        return;
    hmap_iter_init(&it, &e->routes->ids);
    while ((he = hmap_iter_next(&it)) != NULL)
        binding_remove(hmap_container_of(he, struct binding, by_id));
    while (e->bindings_in.head != NULL)
        binding_remove(e->bindings_in.head);
    WR_ASSERT(e->n_bindings_out == 0);
    hmap_clear(&e->routes->ids);
    hmap_clear(&e->routes->direct);
    route_topic_clear(&e->routes->topic);
    free(e->routes);
    free(e->policy_alternate);
    free(e->alternate);
    free(e->args);
    free(e->name);
    stats_obj_clear(&e->stats);
    free(e);
}

/* ---- routing ---- */

void
route_result_free(struct route_result *r)
{
    free(r->queues);
    r->queues = NULL;
    r->n = r->cap = 0;
}

/* Appends q without looking for it. 0, or -1 on ENOMEM (r unchanged). */
static int
route_result_push(struct route_result *r, struct queue *q)
{
    if (r->n == r->cap) {
        uint32_t cap = r->cap != 0 ? r->cap * 2 : 8;
        struct queue **a;

        if (cap < r->cap || (a = realloc(r->queues, (size_t)cap * sizeof *a)) == NULL)
            return -1;
        r->queues = a;
        r->cap = cap;
    }
    r->queues[r->n++] = q;
    return 0;
}

int
route_result_add(struct route_result *r, struct queue *q)
{
    for (uint32_t i = 0; i < r->n; i++)
        if (r->queues[i] == q)
            return 0;
    return route_result_push(r, q);
}

int
route_ctx_add(struct route_ctx *c, const struct binding *b)
{
    struct exch *x;

    c->matched++;
    if (!b->dst.is_exch)
        return route_result_push(c->r, b->dst.u.queue);
    x = b->dst.u.exch;
    if (x->route_visit != c->pass) {
        x->route_visit = c->pass;
        x->route_next = c->work;
        c->work = x;
    }
    return 0;
}

static int
cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (struct queue *const *)a,
              y = (uintptr_t) * (struct queue *const *)b;

    return x < y ? -1 : x > y;
}

/* Keeps each queue of r once: in first-matched order for short results, sorted by address
 * for long ones (a quadratic scan would cost more than the sort there). */
static void
route_result_dedup(struct route_result *r)
{
    uint32_t i, j, n = 0;

    if (r->n <= 32) {
        for (i = 0; i < r->n; i++) {
            for (j = 0; j < n && r->queues[j] != r->queues[i]; j++)
                ;
            if (j == n)
                r->queues[n++] = r->queues[i];
        }
    } else {
        qsort(r->queues, r->n, sizeof r->queues[0], cmp_ptr);
        for (i = 0; i < r->n; i++)
            if (n == 0 || r->queues[n - 1] != r->queues[i])
                r->queues[n++] = r->queues[i];
    }
    r->n = n;
}

/* Adds the destinations of x's bindings that match. 0, or -1 on ENOMEM. */
static int
route_one(struct exch *x, struct wire_str routing_key, struct wire_table headers,
          struct route_ctx *c)
{
    struct exch_routes *rt = x->routes;
    struct hmap_entry *he;
    struct binding *b;

    switch (x->type) {
    case EXCH_DIRECT:
        he = hmap_find(&rt->direct, routing_key.ptr, routing_key.len);
        if (he == NULL)
            return 0;
        b = hmap_container_of(he, struct direct_group, by_key)->head;
        for (; b != NULL; b = b->next)
            if (route_ctx_add(c, b) < 0)
                return -1;
        return 0;
    case EXCH_FANOUT:
        for (b = rt->list; b != NULL; b = b->next)
            if (route_ctx_add(c, b) < 0)
                return -1;
        return 0;
    case EXCH_TOPIC:
        return route_topic_route(&rt->topic, routing_key, c);
    case EXCH_HEADERS:
        return route_headers_route(rt->list, headers, c);
    }
    return 0;
}

int
exch_route_keys(struct exch *e, const struct wire_str *keys, uint32_t n_keys,
                struct wire_table headers, struct route_result *r)
{
    struct route_ctx c = {.r = r, .pass = ++route_pass, .work = e};
    struct exch *x, *ae;

    r->n = 0;
    e->route_visit = c.pass;
    e->route_next = NULL;
    while ((x = c.work) != NULL) {
        c.work = x->route_next;
        c.matched = 0;
        /* Fanout and headers exchanges do not look at the key: once is enough. */
        for (uint32_t k = 0; k < n_keys; k++)
            if (route_one(x, keys[k], headers, &c) < 0)
                return -1;
            else if (x->type == EXCH_FANOUT || x->type == EXCH_HEADERS)
                break;
        /* The argument's alternate exchange, else the policy's (rabbit_policy:get_arg). */
        struct wire_str alt = {(const uint8_t *)x->alternate, x->alternate_len};
        if (x->alternate == NULL && x->policy_alternate != NULL)
            alt = (struct wire_str){(const uint8_t *)x->policy_alternate,
                                    (uint32_t)strlen(x->policy_alternate)};
        if (c.matched != 0 || alt.ptr == NULL || x->vhost == NULL)
            continue;
        ae = vhost_exch_find(x->vhost, alt);
        if (ae != NULL && ae->route_visit != c.pass) {
            ae->route_visit = c.pass;
            ae->route_next = c.work;
            c.work = ae;
        }
    }
    route_result_dedup(r);
    return 0;
}

int
exch_route(struct exch *e, struct wire_str routing_key, struct wire_table headers,
           struct route_result *r)
{
    return exch_route_keys(e, &routing_key, 1, headers, r);
}
