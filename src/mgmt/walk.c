/* A walk over the queues (or exchanges) of every vhost, spread over several loop turns: what a
 * Prometheus scrape and a long list of the HTTP API (api_list_objs.c) use so that 100,000
 * queues never hold the loop for long. Queues, exchanges and vhosts may be created and
 * deleted between turns, so a walk holds no pointer to any of them, only the name of the vhost
 * being walked and a cursor of hmap_scan in its table. Vhosts are taken in name order.
 * hmap_scan meets an entry present throughout once, and one created or deleted meanwhile at
 * most once, even if the table grows; hmap never shrinks a table, so a smaller one means the
 * vhost was deleted and created again: the walk goes on to the next vhost rather than risk
 * meeting an entry twice. A generation counter could only restart the walk, meeting entries
 * twice; a sorted copy of the names would cost what this avoids. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mgmt_int.h"
#include "warren/vhost.h"

/* A walk looks at the clock every WALK_CHECK hash buckets (about as many entries). */
#define WALK_CHECK 32

uint64_t
mgmt_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* The vhost named name, or with name NULL none; after: the first one whose name sorts after
 * name (NULL: the first of all). A scan of the vhosts, which are few. */
static struct vhost *
walk_vhost_at(const struct vhost_registry *reg, const char *name, bool after)
{
    struct vhost *best = NULL;
    for (struct vhost *v = reg->head; v != NULL; v = v->next) {
        int c = name != NULL ? strcmp(v->name, name) : 1;
        if (!after && c == 0)
            return v;
        if (after && c > 0 && (best == NULL || strcmp(v->name, best->name) < 0))
            best = v;
    }
    return best;
}

static const struct hmap *
walk_table(const struct vhost *v, enum mgmt_walk_table t)
{
    return t == MGMT_WALK_QUEUES ? &v->queues : &v->exchanges;
}

/* What mgmt_walk_step hands hmap_scan. */
struct walk_visit {
    const struct vhost *v;
    mgmt_walk_fn fn;
    void *arg;
};

static void
walk_visit(const struct hmap_entry *e, void *arg)
{
    const struct walk_visit *x = arg;
    x->fn(x->arg, x->v, e);
}

/* The vhost to walk after v (NULL: the first), or NULL when the walk is over. */
static struct vhost *
walk_next_vhost(const struct mgmt_walk *w, const struct vhost_registry *reg, const char *v)
{
    if (w->only != NULL)
        return v == NULL ? walk_vhost_at(reg, w->only, false) : NULL;
    return walk_vhost_at(reg, v, true);
}

int
mgmt_walk_step(struct mgmt_walk *w, const struct vhost_registry *reg, uint64_t until,
               mgmt_walk_fn fn, void *arg)
{
    struct vhost *v;
    if (w->vhost == NULL) {
        v = walk_next_vhost(w, reg, NULL);
        w->cursor = 0;
    } else {
        v = walk_vhost_at(reg, w->vhost, false);
        if (v == NULL || walk_table(v, w->table)->n_buckets < w->n_buckets) {
            /* deleted (and created again?) */
            v = walk_next_vhost(w, reg, w->vhost);
            w->cursor = 0;
        }
    }
    unsigned since_check = 0;
    for (; v != NULL; v = walk_next_vhost(w, reg, v->name), w->cursor = 0) {
        if (w->seen_by != NULL && !mgmt_vhost_visible(w->seen_by, v->name))
            continue;
        struct walk_visit x = {v, fn, arg};
        do {
            w->cursor = hmap_scan(walk_table(v, w->table), w->cursor, walk_visit, &x);
            if (w->cursor != 0 && ++since_check == WALK_CHECK) {
                since_check = 0;
                if (mgmt_now_us() >= until)
                    goto pause;
            }
        } while (w->cursor != 0);
    }
    mgmt_walk_clear(w);
    return 1;
pause:
    w->n_buckets = walk_table(v, w->table)->n_buckets;
    if (w->vhost == NULL || strcmp(w->vhost, v->name) != 0) {
        free(w->vhost);
        w->vhost = strdup(v->name);
        if (w->vhost == NULL) {
            mgmt_walk_clear(w);
            return -1;
        }
    }
    return 0;
}

void
mgmt_walk_clear(struct mgmt_walk *w)
{
    free(w->vhost);
    w->vhost = NULL;
    w->cursor = 0;
    w->n_buckets = 0;
}
