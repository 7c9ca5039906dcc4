/* mgmt_list_reply_objs: a list of many objects (100,000 queues) answered over several loop
 * turns (struct mgmt_stepped), each step a few milliseconds, so that neither an unpaged
 * /api/queues (64 MB of JSON at 100,000 queues) nor a page sorted by any field holds the loop
 * that AMQP clients share. Its phases:
 *
 *   collect: a resumable walk (walk.c) over the vhosts' tables copies each visible object's
 *     name passing the name filter into a row, with the value sorted by: a count read from the
 *     object (number_field), or the dotted key of its entry, built and dropped (any other
 *     sort key: what RabbitMQ sorts by, at the cost of building every entry once);
 *   select: for a page in the first half, the rows up to its end picked with a heap;
 *   sort: a bottom-up merge sort of those rows (mgmt_msort), resumable after any row;
 *   release: the values sorted by, no longer needed, released a part at a time;
 *   write: the page's rows (every row, unpaged) looked up again by name, their entries built
 *     with the columns asked for and written as JSON, a page's envelope last but in front.
 *
 * The rows hold names, never pointers to objects or vhosts, which may be deleted between
 * turns: one deleted before it is written is left out (item_count then says so), as a list
 * RabbitMQ assembles from its statistics database mixes moments too. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "api_list.h"
#include "mgmt_int.h"
#include "warren/log.h"
#include "warren/vhost.h"

/* Rows weighed by the selection, or values released, between looks at the clock; rows written
 * (an entry each: about 25 us) between looks. */
#define OBJS_CHECK 256
#define OBJS_WRITE_CHECK 16

struct objs_row {
    const char *vhost; /* borrows: one of the job's vhost names */
    size_t name;       /* the name's place in the job's names */
    double num;        /* the value sorted by, with a number field */
    json_t *val;       /* owns a reference: the value sorted by, with another key; NULL: 0 */
};

enum objs_phase {
    OBJS_COLLECT,
    OBJS_SELECT, /* a page near the start: the rows up to its end picked with a heap */
    OBJS_SORT,
    OBJS_RELEASE, /* the values sorted by, no longer needed, released a part at a time */
    OBJS_WRITE,
};

struct objs_job {
    struct mgmt_stepped base; /* first: what the transport holds */
    struct mgmt_req *r;       /* borrows: the transport frees it after the job */
    const struct mgmt_list_src *src;
    struct mgmt_list_opts o;
    /* The order: by (a number field | a JSON key)?, then vhost and name, or name and vhost. */
    int field;            /* src's number field sorted by, or -1 */
    const char *json_key; /* borrows from r->query: another key sorted by, or NULL */
    bool by_name;
    enum objs_phase phase;
    struct mgmt_walk walk;
    /* The names of the vhosts met (owned, each), which the rows point to. */
    char **vhosts;
    size_t n_vhosts;
    /* The rows' names, one after another, each with its NUL: one allocation, freed at once
     * (100,000 names freed one by one take milliseconds). */
    char *names;
    size_t names_len, names_cap;
    struct objs_row *rows, *tmp; /* owns both; tmp: the merge sort's other half */
    size_t n_rows, cap_rows;
    size_t total;       /* objects the user may see, before the name filter */
    size_t m;           /* the rows up to the page's end, which are sorted */
    size_t build, scan; /* the selection: the heap's next row to sift, the next row to weigh */
    struct mgmt_msort sort;
    size_t released; /* rows whose value was released */
    size_t from, to, next;
    size_t written;
    struct evbuffer *items; /* owns: a page's items, written before the envelope */
    bool failed;            /* ENOMEM */
};

/* rows a and b in the reply's order (sort_reverse applied: rows are never equal). */
static int
objs_cmp(const struct objs_job *j, const struct objs_row *a, const struct objs_row *b)
{
    int c = 0;
    if (j->field >= 0)
        c = (a->num > b->num) - (a->num < b->num);
    else if (j->json_key != NULL)
        c = mgmt_list_value_cmp(a->val, b->val);
    if (c == 0 && !j->by_name && a->vhost != b->vhost)
        c = strcmp(a->vhost, b->vhost);
    if (c == 0)
        c = strcmp(j->names + a->name, j->names + b->name);
    if (c == 0 && j->by_name && a->vhost != b->vhost)
        c = strcmp(a->vhost, b->vhost);
    return j->o.reverse ? -c : c;
}

/* The job's copy of v's name, made when v is first met. NULL on ENOMEM. */
static const char *
objs_vhost_name(struct objs_job *j, const struct vhost *v)
{
    if (j->n_vhosts > 0 && strcmp(j->vhosts[j->n_vhosts - 1], v->name) == 0)
        return j->vhosts[j->n_vhosts - 1]; /* the walk takes one vhost after another */
    char **g = realloc(j->vhosts, (j->n_vhosts + 1) * sizeof(*g));
    if (g == NULL)
        return NULL;
    j->vhosts = g;
    if ((g[j->n_vhosts] = strdup(v->name)) == NULL)
        return NULL;
    return g[j->n_vhosts++];
}

/* mgmt_walk_fn of the collect phase (which meets the objects the user may see): a row for
 * the object if it passes the filter. */
static void
objs_collect_one(void *arg, const struct vhost *v, const struct hmap_entry *e)
{
    struct objs_job *j = arg;
    if (j->failed)
        return;
    j->total++;
    const void *obj = j->src->of_entry(e);
    const char *name = j->src->name(obj);
    if (j->o.paged && !mgmt_list_name_matches(&j->o, name))
        return;
    if (j->n_rows == j->cap_rows) {
        size_t cap = j->cap_rows > 0 ? j->cap_rows * 2 : 256;
        struct objs_row *g = realloc(j->rows, cap * sizeof(*g));
        if (g == NULL) {
            j->failed = true;
            return;
        }
        j->rows = g;
        j->cap_rows = cap;
    }
    size_t len = strlen(name) + 1;
    if (j->names_cap - j->names_len < len) {
        size_t cap = j->names_cap > 0 ? j->names_cap * 2 : 4096;
        while (cap - j->names_len < len)
            cap *= 2;
        char *g = realloc(j->names, cap);
        if (g == NULL) {
            j->failed = true;
            return;
        }
        j->names = g;
        j->names_cap = cap;
    }
    struct objs_row *row = &j->rows[j->n_rows];
    memset(row, 0, sizeof(*row));
    row->vhost = objs_vhost_name(j, v);
    if (row->vhost == NULL) {
        j->failed = true;
        return;
    }
    row->name = j->names_len;
    memcpy(j->names + j->names_len, name, len);
    if (j->field >= 0) {
        row->num = j->src->number(obj, j->field);
    } else if (j->json_key != NULL) {
        json_t *entry = j->src->entry(j->r, obj);
        if (entry == NULL) {
            j->failed = true;
            return;
        }
        row->val = json_incref(mgmt_list_dotted(entry, j->json_key));
        json_decref(entry);
    }
    j->names_len += len;
    j->n_rows++;
}

/* mgmt_msort's cmp. */
static int
objs_sort_cmp(const void *ctx, const void *a, const void *b)
{
    return objs_cmp(ctx, a, b);
}

/* Sifts rows[i] down the heap rows[0, m) whose root is the last row in the reply's order. */
static void
objs_sift(struct objs_job *j, size_t i, size_t m)
{
    for (;;) {
        size_t big = i, l = 2 * i + 1, r = l + 1;
        if (l < m && objs_cmp(j, &j->rows[l], &j->rows[big]) > 0)
            big = l;
        if (r < m && objs_cmp(j, &j->rows[r], &j->rows[big]) > 0)
            big = r;
        if (big == i)
            return;
        struct objs_row t = j->rows[i];
        j->rows[i] = j->rows[big];
        j->rows[big] = t;
        i = big;
    }
}

/* Puts the m first rows in the reply's order in rows[0, m), unsorted, the others after (a heap
 * of m: about n comparisons for the first pages, not n log n), until the clock passes until
 * (false) or it is done (true). */
static bool
objs_select_step(struct objs_job *j, uint64_t until)
{
    unsigned since_check = 0;
    while (j->build > 0 || j->scan < j->n_rows) {
        if (++since_check == OBJS_CHECK) {
            since_check = 0;
            if (mgmt_now_us() >= until)
                return false;
        }
        if (j->build > 0) {
            objs_sift(j, --j->build, j->m);
        } else {
            if (objs_cmp(j, &j->rows[j->scan], &j->rows[0]) < 0) {
                struct objs_row t = j->rows[0]; /* kept after the heap, for its value */
                j->rows[0] = j->rows[j->scan];
                j->rows[j->scan] = t;
                objs_sift(j, 0, j->m);
            }
            j->scan++;
        }
    }
    return true;
}

/* Writes the rows from j->next on (their objects that still exist) until the page's end
 * (true) or the clock passes until (false). */
static bool
objs_write_step(struct objs_job *j, struct evbuffer *dst, uint64_t until)
{
    const struct vhost_registry *reg = j->r->env->vhosts;
    const char *vname = NULL; /* the vhost of v, looked up once per step and name */
    const struct vhost *v = NULL;
    for (unsigned since_check = 0; j->next < j->to; j->next++) {
        if (++since_check == OBJS_WRITE_CHECK) {
            since_check = 0;
            if (mgmt_now_us() >= until)
                return false;
        }
        const struct objs_row *row = &j->rows[j->next];
        if (row->vhost != vname) {
            vname = row->vhost;
            v = vhost_find(reg, (struct wire_str){(const uint8_t *)vname, (uint32_t)strlen(vname)});
        }
        const void *obj = v != NULL ? j->src->find(v, j->names + row->name) : NULL;
        if (obj == NULL)
            continue; /* deleted since it was collected */
        if (mgmt_list_write_item(&j->o, j->src->entry(j->r, obj), dst, &j->written) < 0) {
            j->failed = true;
            return true;
        }
    }
    return true;
}

/* struct mgmt_stepped's step. */
static int
objs_step(struct mgmt_stepped *base, struct evbuffer *out, unsigned budget_us)
{
    struct objs_job *j = (struct objs_job *)base;
    uint64_t until = mgmt_now_us() + budget_us;
    switch (j->phase) {
    case OBJS_COLLECT: {
        int rc = mgmt_walk_step(&j->walk, j->r->env->vhosts, until, objs_collect_one, j);
        if (rc < 0 || j->failed)
            goto nomem;
        if (rc == 0)
            return 0;
        char why[160];
        if (!mgmt_list_page(&j->o, j->n_rows, &j->from, &j->to, why, sizeof(why)))
            return mgmt_stepped_error(out, 400, "page_out_of_range", why);
        /* A page in the first half: selected first, then only it and those before it sorted. */
        j->m = j->to <= j->n_rows / 2 ? j->to : j->n_rows;
        j->build = j->m < j->n_rows ? j->m / 2 : 0;
        j->scan = j->m;
        j->phase = OBJS_SELECT;
    }
    /* fall through */
    case OBJS_SELECT:
        if (!objs_select_step(j, until))
            return 0;
        j->tmp = malloc((j->m > 0 ? j->m : 1) * sizeof(*j->tmp));
        if (j->tmp == NULL)
            goto nomem;
        j->sort = (struct mgmt_msort){.rows = j->rows,
                                      .tmp = j->tmp,
                                      .n = j->m,
                                      .size = sizeof(*j->rows),
                                      .cmp = objs_sort_cmp,
                                      .ctx = j,
                                      .width = 1};
        j->phase = OBJS_SORT;
        /* fall through */
    case OBJS_SORT:
        if (!mgmt_msort_step(&j->sort, until))
            return 0;
        if (j->sort.rows != j->rows) /* the sorted rows back with the others */
            memcpy(j->rows, j->sort.rows, j->m * sizeof(*j->rows));
        j->phase = OBJS_RELEASE;
        /* fall through */
    case OBJS_RELEASE:
        for (; j->released < j->n_rows; j->released++) {
            json_decref(j->rows[j->released].val);
            if (j->released % OBJS_CHECK == 0 && mgmt_now_us() >= until) {
                j->released++;
                return 0;
            }
        }
        j->next = j->from;
        j->phase = OBJS_WRITE;
        if (!j->o.paged && evbuffer_add(out, "[", 1) < 0)
            goto nomem;
        /* fall through */
    case OBJS_WRITE:
        if (!objs_write_step(j, j->o.paged ? j->items : out, until))
            return 0;
        if (j->failed)
            goto nomem;
        if (j->o.paged
                ? mgmt_list_write_page(&j->o, j->n_rows, j->written, j->total, j->items, out) < 0
                : evbuffer_add(out, "]", 1) < 0)
            goto nomem;
        return 200;
    }
nomem:
    log_msg(LOG_ERROR, "management: out of memory for a list of %zu objects", j->n_rows);
    return mgmt_stepped_error(out, 500, "internal_server_error", "out of memory");
}

/* struct mgmt_stepped's free. */
static void
objs_free(struct mgmt_stepped *base)
{
    struct objs_job *j = (struct objs_job *)base;
    /* Mid-sort, the m first rows are whole in the sort's rows (tmp holds a pass half done),
     * the others where they were. */
    const struct objs_row *head = j->phase == OBJS_SORT ? j->sort.rows : j->rows;
    for (size_t i = j->released; i < j->n_rows; i++)
        json_decref((i < j->m ? head : j->rows)[i].val);
    free(j->names);
    free(j->rows);
    free(j->tmp);
    for (size_t i = 0; i < j->n_vhosts; i++)
        free(j->vhosts[i]);
    free(j->vhosts);
    mgmt_walk_clear(&j->walk);
    if (j->items != NULL)
        evbuffer_free(j->items);
    mgmt_list_opts_free(&j->o);
    free(j);
}

void
mgmt_list_reply_objs(struct mgmt_req *r, const struct mgmt_list_src *src, const char *only)
{
    struct objs_job *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        mgmt_nomem(r);
        return;
    }
    if (mgmt_list_opts_parse(r, &j->o, mgmt_list_default_sorts, true) < 0) {
        free(j);
        return;
    }
    j->base.step = objs_step;
    j->base.free = objs_free;
    j->r = r;
    j->src = src;
    j->walk.table = src->table;
    j->walk.only = only;
    j->walk.seen_by = r;
    const char *sort = mgmt_list_param(r, "sort");
    j->by_name = sort != NULL && strcmp(sort, "name") == 0;
    j->field = sort != NULL && src->number_field != NULL ? src->number_field(sort) : -1;
    if (sort != NULL && sort[0] != '\0' && !j->by_name && strcmp(sort, "vhost") != 0 &&
        j->field < 0)
        j->json_key = sort;
    if (j->o.paged && (j->items = evbuffer_new()) == NULL) {
        objs_free(&j->base);
        mgmt_nomem(r);
        return;
    }
    r->stepped(r, &j->base);
}
