/* Message statistics (warren/stats.h): the changed list and the rate sampler. */
#include "config.h"

#include "warren/stats.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct stats_list stats_changed = LIST_HEAD_INITIALIZER(stats_changed);
struct stats_node stats_node;

static const char *const stats_names[STATS_N] = {
    [STATS_PUBLISH] = "publish",
    [STATS_PUBLISH_IN] = "publish_in",
    [STATS_PUBLISH_OUT] = "publish_out",
    [STATS_CONFIRM] = "confirm",
    [STATS_RETURN_UNROUTABLE] = "return_unroutable",
    [STATS_DROP_UNROUTABLE] = "drop_unroutable",
    [STATS_DELIVER] = "deliver",
    [STATS_DELIVER_NO_ACK] = "deliver_no_ack",
    [STATS_GET] = "get",
    [STATS_GET_NO_ACK] = "get_no_ack",
    [STATS_GET_EMPTY] = "get_empty",
    [STATS_ACK] = "ack",
    [STATS_REDELIVER] = "redeliver",
};

void
stats_mark(struct stats_obj *o)
{
    LIST_INSERT_HEAD(&stats_changed, o, changed);
}

void
stats_obj_init(struct stats_obj *o)
{
    memset(o, 0, sizeof(*o));
}

void
stats_obj_clear(struct stats_obj *o)
{
    if (o->changed.le_prev != NULL)
        LIST_REMOVE(o, changed);
    free(o->rates);
    stats_obj_init(o);
}

bool
stats_obj_any(const struct stats_obj *o)
{
    for (int f = 0; f < STATS_N; f++)
        if (o->n[f] != 0)
            return true;
    return false;
}

double
stats_rate(const struct stats_obj *o, enum stats_field f)
{
    return o->rates != NULL ? o->rates->rate[f] : 0.0;
}

double
stats_gauge_rate(const struct stats_obj *o, unsigned g)
{
    return o->rates != NULL ? o->rates->gauge_rate[g] : 0.0;
}

bool
stats_idle(const struct stats_obj *o, uint64_t *since_ms)
{
    *since_ms = o->rates != NULL ? o->rates->idle_since_ms : 0;
    return o->changed.le_prev == NULL;
}

/* The wall clock in ms (idle_since is shown as a date). */
static uint64_t
stats_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

size_t
stats_sample(uint64_t interval_ms)
{
    double secs = interval_ms > 0 ? (double)interval_ms / 1000.0 : 1.0;
    size_t listed = 0;
    struct stats_obj *o = LIST_FIRST(&stats_changed), *next;
    for (; o != NULL; o = next) {
        next = LIST_NEXT(o, changed);
        if (o->rates == NULL && (o->rates = calloc(1, sizeof(*o->rates))) == NULL) {
            listed++;
            continue;
        }
        bool moved = false;
        for (int f = 0; f < STATS_N; f++) {
            uint64_t d = o->n[f] - o->rates->prev[f];
            o->rates->rate[f] = (double)d / secs;
            o->rates->prev[f] = o->n[f];
            moved |= d != 0;
        }
        if (o->gauges != NULL) {
            uint64_t g[STATS_GAUGES];
            o->gauges(o, g);
            for (int i = 0; i < STATS_GAUGES; i++) {
                double d = (double)g[i] - (double)o->rates->gauge_prev[i];
                o->rates->gauge_rate[i] = d / secs;
                o->rates->gauge_prev[i] = g[i];
                moved |= d != 0;
            }
        }
        if (moved) {
            listed++;
        } else {
            LIST_REMOVE(o, changed);
            o->changed.le_prev = NULL;
            o->rates->idle_since_ms = stats_wall_ms();
        }
    }
    return listed;
}

const char *
stats_name(enum stats_field f)
{
    return stats_names[f];
}

void
stats_hist_init(struct stats_hist *h, const uint64_t *bounds, unsigned n)
{
    memset(h, 0, sizeof(*h));
    h->bounds = bounds;
    h->n = n < STATS_HIST_MAX ? n : STATS_HIST_MAX;
}

void
stats_hist_observe(struct stats_hist *h, uint64_t v)
{
    unsigned lo = 0, hi = h->n; /* the first bound >= v, or n */
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (h->bounds[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    h->counts[lo]++;
    h->sum += v;
}
