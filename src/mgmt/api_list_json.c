/* mgmt_list_reply and mgmt_list_reply_produced: a list route's reply from its items as JSON,
 * sorted by the merged sort keys as RabbitMQ's (each item's values looked up once), filtered
 * by name and paged, with the columns asked for, answered over several loop turns (struct
 * mgmt_stepped) a few milliseconds each: a short list is answered in the first, at once; one of
 * 100,000 bindings never holds the loop that AMQP clients share. Phases:
 *
 *   produce: a route's producer (the bindings' walk) appends items in steps, or the route
 *     hands them all at once; each becomes a row with its sort values;
 *   sort: mgmt_msort over the rows, stable;
 *   write: the page's rows (every row, unpaged) written as JSON;
 *   release: the items freed, from the end.
 *
 * The items are JSON owned by the job: nothing they hold can be deleted between turns. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "api_list.h"
#include "mgmt_int.h"
#include "warren/log.h"

/* Items turned into rows, or rows written, between looks at the clock. */
#define JSON_CHECK 64

/* One item being sorted: its sort values, borrowed from it. */
struct json_row {
    json_t *item; /* borrows from the job's items */
    json_t *vals[LIST_KEYS_MAX];
};

enum json_phase {
    JSON_PRODUCE,
    JSON_SORT,
    JSON_WRITE,
    JSON_RELEASE, /* the items freed a part at a time: 100,000 at once take tens of ms */
};

struct json_job {
    struct mgmt_stepped base;     /* first: what the transport holds */
    struct mgmt_list_producer *p; /* owns; NULL once every item is in */
    struct mgmt_list_opts o;
    enum json_phase phase;
    json_t *items;               /* owns: every item, in the order produced */
    size_t seen;                 /* items turned into rows or left out by the filter */
    struct json_row *rows, *tmp; /* owns both: the items kept; the merge sort's other half */
    size_t n_rows, cap_rows;
    struct mgmt_msort sort;
    size_t from, to, next, written;
    struct evbuffer *page; /* owns: a page's items, written before the envelope */
};

/* mgmt_msort's cmp: the sort values in turn (equal rows keep their order: the sort is stable). */
static int
json_row_cmp(const void *ctx, const void *pa, const void *pb)
{
    const struct json_job *j = ctx;
    const struct json_row *a = pa, *b = pb;
    for (size_t i = 0; i < j->o.n_keys; i++) {
        int c = mgmt_list_value_cmp(a->vals[i], b->vals[i]);
        if (c != 0)
            return c;
    }
    return 0;
}

/* Turns the items not seen yet into rows (those that pass the filter) until the clock passes
 * until (false) or all are (true); ENOMEM: -1. */
static int
json_rows_step(struct json_job *j, uint64_t until)
{
    size_t n = json_array_size(j->items);
    if (j->cap_rows < n) {
        size_t cap = j->cap_rows > 0 ? j->cap_rows : 64;
        while (cap < n)
            cap *= 2;
        struct json_row *g = realloc(j->rows, cap * sizeof(*g));
        if (g == NULL)
            return -1;
        j->rows = g;
        j->cap_rows = cap;
    }
    for (unsigned since_check = 0; j->seen < n; j->seen++) {
        if (++since_check == JSON_CHECK) {
            since_check = 0;
            if (mgmt_now_us() >= until)
                return 0;
        }
        json_t *e = json_array_get(j->items, j->seen);
        if (j->o.paged &&
            !mgmt_list_name_matches(&j->o, json_string_value(json_object_get(e, "name"))))
            continue;
        struct json_row *row = &j->rows[j->n_rows++];
        row->item = e;
        for (size_t k = 0; k < j->o.n_keys; k++)
            row->vals[k] = mgmt_list_dotted(e, j->o.keys[k]);
    }
    return 1;
}

/* Writes the rows from j->next on until the page's end (1) or the clock passes until (0);
 * -1 on ENOMEM. */
static int
json_write_step(struct json_job *j, struct evbuffer *dst, uint64_t until)
{
    for (unsigned since_check = 0; j->next < j->to; j->next++) {
        if (++since_check == JSON_CHECK) {
            since_check = 0;
            if (mgmt_now_us() >= until)
                return 0;
        }
        const struct json_row *row = &j->rows[j->o.reverse ? j->n_rows - 1 - j->next : j->next];
        if (mgmt_list_write_item(&j->o, json_incref(row->item), dst, &j->written) < 0)
            return -1;
    }
    return 1;
}

/* struct mgmt_stepped's step. */
static int
json_step(struct mgmt_stepped *base, struct evbuffer *out, unsigned budget_us)
{
    struct json_job *j = (struct json_job *)base;
    uint64_t until = mgmt_now_us() + budget_us;
    int rc = -1;
    switch (j->phase) {
    case JSON_PRODUCE: {
        for (;;) {
            if ((rc = json_rows_step(j, until)) <= 0)
                goto more;
            if (j->p == NULL)
                break;
            if ((rc = j->p->step(j->p, j->items, until)) < 0)
                goto nomem;
            if (rc == 0)
                return 0;
            j->p->free(j->p);
            j->p = NULL;
        }
        char why[160];
        if (!mgmt_list_page(&j->o, j->n_rows, &j->from, &j->to, why, sizeof(why)))
            return mgmt_stepped_error(out, 400, "page_out_of_range", why);
        j->tmp = malloc((j->n_rows > 0 ? j->n_rows : 1) * sizeof(*j->tmp));
        if (j->tmp == NULL)
            goto nomem;
        j->sort = (struct mgmt_msort){.rows = j->rows,
                                      .tmp = j->tmp,
                                      .n = j->n_rows,
                                      .size = sizeof(*j->rows),
                                      .cmp = json_row_cmp,
                                      .ctx = j,
                                      .width = 1};
        j->phase = JSON_SORT;
    }
        /* fall through */
    case JSON_SORT:
        if (!mgmt_msort_step(&j->sort, until))
            return 0;
        j->rows = j->sort.rows;
        j->tmp = j->sort.tmp;
        j->next = j->from;
        j->phase = JSON_WRITE;
        if (!j->o.paged && evbuffer_add(out, "[", 1) < 0)
            goto nomem;
        /* fall through */
    case JSON_WRITE:
        if ((rc = json_write_step(j, j->o.paged ? j->page : out, until)) <= 0)
            goto more;
        if (j->o.paged ? mgmt_list_write_page(&j->o, j->n_rows, j->written,
                                              json_array_size(j->items), j->page, out) < 0
                       : evbuffer_add(out, "]", 1) < 0)
            goto nomem;
        j->phase = JSON_RELEASE;
        /* fall through */
    case JSON_RELEASE:
        /* From the end, where a removal moves nothing. */
        for (size_t n = json_array_size(j->items); n > 0; n--) {
            json_array_remove(j->items, n - 1);
            if (n % JSON_CHECK == 0 && mgmt_now_us() >= until)
                return 0;
        }
        return 200;
    }
more:
    if (rc == 0)
        return 0;
nomem:
    log_msg(LOG_ERROR, "management: out of memory for a list of %zu items",
            json_array_size(j->items));
    return mgmt_stepped_error(out, 500, "internal_server_error", "out of memory");
}

/* struct mgmt_stepped's free. */
static void
json_free(struct mgmt_stepped *base)
{
    struct json_job *j = (struct json_job *)base;
    if (j->p != NULL)
        j->p->free(j->p);
    mgmt_list_opts_free(&j->o);
    json_decref(j->items);
    free(j->rows);
    free(j->tmp);
    if (j->page != NULL)
        evbuffer_free(j->page);
    free(j);
}

void
mgmt_list_reply_produced(struct mgmt_req *r, json_t *items, struct mgmt_list_producer *p,
                         const char *const *sorts, bool pageable)
{
    struct json_job *j = items != NULL ? calloc(1, sizeof(*j)) : NULL;
    if (j == NULL) {
        json_decref(items);
        if (p != NULL)
            p->free(p);
        mgmt_nomem(r);
        return;
    }
    j->items = items;
    j->p = p;
    if (mgmt_list_opts_parse(r, &j->o, sorts != NULL ? sorts : mgmt_list_default_sorts, pageable) <
        0) {
        j->o = (struct mgmt_list_opts){0}; /* holds nothing after a 400 */
        json_free(&j->base);
        return;
    }
    j->base.step = json_step;
    j->base.free = json_free;
    if (j->o.paged && (j->page = evbuffer_new()) == NULL) {
        json_free(&j->base);
        mgmt_nomem(r);
        return;
    }
    r->stepped(r, &j->base);
}

void
mgmt_list_reply(struct mgmt_req *r, json_t *items, const char *const *sorts, bool pageable)
{
    mgmt_list_reply_produced(r, items, NULL, sorts, pageable);
}
