/* The list routes' shared reply (rabbit_mgmt_util:reply_list / augment_resources in RabbitMQ
 * 3.10): sorting (sort with dotted keys, then vhost and name; sort_reverse), filtering by name
 * (a case-insensitive substring, or a regular expression with use_regex=true; only with
 * paging, as RabbitMQ), paging (page, page_size: default 100, at most 500; the reply is then
 * {filtered_count, item_count, items, page, page_count, page_size, total_count}) and column
 * selection (columns=a,b.c). disable_stats is accepted: Warren's entries carry no statistics
 * to leave out.
 *
 * Here: what the two list replies share (api_list.h): mgmt_list_reply (api_list_json.c) for
 * routes whose items are JSON, mgmt_list_reply_objs (api_list_objs.c) for the routes with many
 * objects (queues) whose JSON costs. Both answer over several loop turns. */
#include "config.h"

#include "api_list.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "mgmt_int.h"

#define LIST_PAGE_SIZE 100
#define LIST_PAGE_SIZE_MAX 500

const char *
mgmt_list_param(const struct mgmt_req *r, const char *key)
{
    return json_string_value(json_object_get(r->query, key));
}

/* list_to_integer as RabbitMQ applies it to page and page_size: an optional sign and digits.
 * Returns 0 and *out, or -1. */
static int
list_int(const char *s, long long *out)
{
    const char *d = (*s == '+' || *s == '-') ? s + 1 : s;
    if (*d == '\0')
        return -1;
    for (const char *p = d; *p != '\0'; p++)
        if (!isdigit((unsigned char)*p))
            return -1;
    errno = 0;
    *out = strtoll(s, NULL, 10);
    return errno == 0 ? 0 : -1;
}

void
mgmt_list_opts_free(struct mgmt_list_opts *o)
{
    pcre2_match_data_free(o->md);
    pcre2_code_free(o->re);
    free(o->cols_buf);
}

const char *const mgmt_list_default_sorts[] = {"vhost", "name", NULL};

/* Parses r's query into o: the paging parameters only when pageable, sorts (NULL-terminated)
 * the keys after r's sort. Returns 0, or -1 after replying 400 as RabbitMQ does. */
int
mgmt_list_opts_parse(struct mgmt_req *r, struct mgmt_list_opts *o, const char *const *sorts,
                     bool pageable)
{
    memset(o, 0, sizeof(*o));
    const char *page = pageable ? mgmt_list_param(r, "page") : NULL;
    const char *size = pageable ? mgmt_list_param(r, "page_size") : NULL;
    if ((page != NULL && list_int(page, &o->page) < 0) ||
        (size != NULL && list_int(size, &o->page_size) < 0)) {
        mgmt_bad_request(r, "Pagination parameters are invalid");
        return -1;
    }
    if (page != NULL) {
        if (size == NULL)
            o->page_size = LIST_PAGE_SIZE;
        if (o->page <= 0 ||
            (size != NULL && (o->page_size <= 0 || o->page_size > LIST_PAGE_SIZE_MAX))) {
            char why[160], ps[24];
            if (size != NULL)
                snprintf(ps, sizeof(ps), "%lld", o->page_size);
            else
                snprintf(ps, sizeof(ps), "undefined");
            snprintf(why, sizeof(why),
                     "Invalid pagination parameters: page number %lld, page size %s", o->page, ps);
            mgmt_reply_error(r, 400, "invalid_pagination_parameters", why);
            return -1;
        }
        o->paged = true;
        o->name = mgmt_list_param(r, "name");
        const char *re = mgmt_list_param(r, "use_regex");
        if (o->name != NULL && o->name[0] != '\0' && re != NULL && strcmp(re, "true") == 0) {
            /* re:run(Value, Name, [caseless]) */
            size_t len = strlen(o->name);
            char *pat = malloc(len + 5);
            if (pat == NULL) {
                mgmt_nomem(r);
                return -1;
            }
            memcpy(pat, "(?i)", 4);
            memcpy(pat + 4, o->name, len + 1);
            char err[128];
            size_t off;
            o->re = regex_compile(pat, err, sizeof(err), &off);
            free(pat);
            o->md = o->re != NULL ? pcre2_match_data_create_from_pattern(o->re, NULL) : NULL;
            if (o->md == NULL) {
                mgmt_list_opts_free(o);
                mgmt_bad_request(r, "Pagination parameters are invalid");
                return -1;
            }
        }
    }
    /* merge_sorts: the sort key, then the defaults it does not repeat. */
    const char *sort = mgmt_list_param(r, "sort");
    if (sort != NULL && sort[0] != '\0')
        o->keys[o->n_keys++] = sort;
    for (size_t i = 0; sorts[i] != NULL && o->n_keys < LIST_KEYS_MAX; i++)
        if (sort == NULL || strcmp(sort, sorts[i]) != 0)
            o->keys[o->n_keys++] = sorts[i];
    const char *rev = mgmt_list_param(r, "sort_reverse");
    o->reverse = rev != NULL && strcmp(rev, "true") == 0;
    const char *cols = mgmt_list_param(r, "columns");
    o->all_cols = cols == NULL;
    if (cols != NULL) {
        o->cols_buf = strdup(cols);
        if (o->cols_buf == NULL) {
            mgmt_list_opts_free(o);
            mgmt_nomem(r);
            return -1;
        }
        char *save = NULL;
        for (char *t = strtok_r(o->cols_buf, ",", &save); t != NULL && o->n_cols < LIST_COLS_MAX;
             t = strtok_r(NULL, ",", &save))
            o->cols[o->n_cols++] = t;
    }
    return 0;
}

/* Whether name passes the name filter (none: all do). */
bool
mgmt_list_name_matches(const struct mgmt_list_opts *o, const char *name)
{
    if (o->name == NULL || o->name[0] == '\0')
        return true;
    if (name == NULL)
        return false;
    if (o->re != NULL)
        return regex_match(o->re, o->md, name, strlen(name));
    size_t n = strlen(o->name);
    for (const char *p = name; *p != '\0'; p++) {
        size_t i = 0;
        while (i < n && p[i] != '\0' &&
               tolower((unsigned char)p[i]) == tolower((unsigned char)o->name[i]))
            i++;
        if (i == n)
            return true;
    }
    return false;
}

/* Whether the dotted column col selects key: col is key, or starts with "key.". Sets *rest to
 * what follows the dot, or NULL when col is key itself. */
static bool
list_col_selects(const char *col, const char *key, const char **rest)
{
    size_t n = strlen(key);
    const char *dot = strchr(col, '.');
    size_t head = dot != NULL ? (size_t)(dot - col) : strlen(col);
    if (head != n || strncmp(col, key, n) != 0)
        return false;
    *rest = dot != NULL ? dot + 1 : NULL;
    return true;
}

/* extract_column_items: item with only the columns cols select (objects keep the selected
 * keys, descending into the dotted rest; arrays map over their elements). Returns a new
 * reference; NULL on ENOMEM. */
static json_t *
list_columns(json_t *item, const char *const *cols, size_t n_cols)
{
    if (json_is_array(item)) {
        json_t *out = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(item, i, e)
        {
            if (out == NULL || json_array_append_new(out, list_columns(e, cols, n_cols)) < 0) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    }
    if (!json_is_object(item))
        return json_incref(item);
    json_t *out = json_object();
    const char *key;
    json_t *v;
    json_object_foreach(item, key, v)
    {
        const char *sub[LIST_COLS_MAX];
        size_t n_sub = 0;
        bool want = false, all = false;
        for (size_t i = 0; i < n_cols; i++) {
            const char *rest;
            if (!list_col_selects(cols[i], key, &rest))
                continue;
            want = true;
            if (rest == NULL)
                all = true;
            else
                sub[n_sub++] = rest;
        }
        if (!want)
            continue;
        json_t *val = all ? json_incref(v) : list_columns(v, sub, n_sub);
        if (out == NULL || json_object_set_new(out, key, val) < 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

/* The value of the dotted key in item, as get_dotted_value finds it; NULL where RabbitMQ puts
 * 0 (missing). */
json_t *
mgmt_list_dotted(json_t *item, const char *key)
{
    char seg[256];
    while (item != NULL) {
        const char *dot = strchr(key, '.');
        size_t n = dot != NULL ? (size_t)(dot - key) : strlen(key);
        if (n >= sizeof(seg))
            return NULL;
        memcpy(seg, key, n);
        seg[n] = '\0';
        item = json_object_get(item, seg);
        if (dot == NULL)
            return item;
        key = dot + 1;
    }
    return NULL;
}

/* Erlang's term order over JSON values: numbers < atoms (false < null < true) < objects <
 * arrays < strings (binaries); a missing value (NULL) is the number 0. */
static int
list_rank(const json_t *v)
{
    if (v == NULL || json_is_number(v))
        return 0;
    if (json_is_boolean(v) || json_is_null(v))
        return 1;
    if (json_is_object(v))
        return 2;
    if (json_is_array(v))
        return 3;
    return 4;
}

int
mgmt_list_value_cmp(const json_t *a, const json_t *b)
{
    int ra = list_rank(a), rb = list_rank(b);
    if (ra != rb)
        return ra < rb ? -1 : 1;
    switch (ra) {
    case 0: {
        double x = a != NULL ? json_number_value(a) : 0, y = b != NULL ? json_number_value(b) : 0;
        return x < y ? -1 : x > y;
    }
    case 1: {
        /* alphabetical: false, null, true */
        int x = json_is_false(a) ? 0 : json_is_null(a) ? 1 : 2;
        int y = json_is_false(b) ? 0 : json_is_null(b) ? 1 : 2;
        return x < y ? -1 : x > y;
    }
    case 2: {
        size_t x = json_object_size(a), y = json_object_size(b);
        return x < y ? -1 : x > y;
    }
    case 3: {
        size_t x = json_array_size(a), y = json_array_size(b);
        for (size_t i = 0; i < x && i < y; i++) {
            int c = mgmt_list_value_cmp(json_array_get(a, i), json_array_get(b, i));
            if (c != 0)
                return c;
        }
        return x < y ? -1 : x > y;
    }
    default: {
        size_t x = json_string_length(a), y = json_string_length(b);
        int c = memcmp(json_string_value(a), json_string_value(b), x < y ? x : y);
        return c != 0 ? c : x < y ? -1 : x > y;
    }
    }
}

/* A page's reply without its items, which go last: {filtered_count: n, item_count: items,
 * page, page_count, page_size, total_count: total}. A new object; NULL on ENOMEM. */
static json_t *
list_envelope(const struct mgmt_list_opts *o, size_t n, size_t items, size_t total)
{
    long long pages = ((long long)n + o->page_size - 1) / o->page_size;
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "filtered_count", (json_int_t)n,
                     "item_count", (json_int_t)items, "page", (json_int_t)o->page, "page_count",
                     (json_int_t)pages, "page_size", (json_int_t)o->page_size, "total_count",
                     (json_int_t)total);
}

int
mgmt_list_write_page(const struct mgmt_list_opts *o, size_t n, size_t n_items, size_t total,
                     struct evbuffer *items, struct evbuffer *out)
{
    json_t *env = list_envelope(o, n, n_items, total);
    char *text = env != NULL ? json_dumps(env, JSON_COMPACT) : NULL;
    json_decref(env);
    /* The envelope's text without its closing brace, for the items to go last. */
    int rc = text != NULL && evbuffer_add(out, text, strlen(text) - 1) == 0 &&
                     evbuffer_add(out, ",\"items\":[", 10) == 0 &&
                     evbuffer_add_buffer(out, items) == 0 && evbuffer_add(out, "]}", 2) == 0
                 ? 0
                 : -1;
    free(text);
    return rc;
}

/* Elements moved between looks at the clock. */
#define MSORT_CHECK 256

bool
mgmt_msort_step(struct mgmt_msort *m, uint64_t until)
{
    unsigned since_check = 0;
    while (m->width < m->n) {
        if (m->k == m->hi) { /* the pair is merged: the next one, or the next pass */
            if (m->hi == m->n) {
                void *t = m->rows; /* the pass is in tmp: it becomes the rows */
                m->rows = m->tmp;
                m->tmp = t;
                m->width *= 2;
                m->k = m->hi = 0;
                continue;
            }
            m->a = m->hi;
            m->mid = m->b = m->a + m->width < m->n ? m->a + m->width : m->n;
            m->hi = m->mid + m->width < m->n ? m->mid + m->width : m->n;
        }
        const char *rows = m->rows;
        /* Equal elements keep their order: the left one goes first. */
        size_t from = m->a < m->mid && (m->b == m->hi || m->cmp(m->ctx, rows + m->b * m->size,
                                                                rows + m->a * m->size) >= 0)
                          ? m->a++
                          : m->b++;
        memcpy((char *)m->tmp + m->k++ * m->size, rows + from * m->size, m->size);
        if (++since_check == MSORT_CHECK) {
            since_check = 0;
            if (mgmt_now_us() >= until)
                return false;
        }
    }
    return true;
}

bool
mgmt_list_page(const struct mgmt_list_opts *o, size_t n, size_t *from, size_t *to, char *why,
               size_t cap)
{
    *from = 0;
    *to = n;
    if (!o->paged)
        return true;
    /* lists:sublist(List, (Page - 1) * Size + 1, Size) fails past one beyond the end. */
    if ((unsigned long long)(o->page - 1) * (unsigned long long)o->page_size > n) {
        snprintf(why, cap, "Page out of range, page: %lld page size: %lld, len: %zu", o->page,
                 o->page_size, n);
        return false;
    }
    *from = (size_t)((o->page - 1) * o->page_size);
    *to = *from + (size_t)o->page_size < n ? *from + (size_t)o->page_size : n;
    return true;
}

int
mgmt_list_write_item(const struct mgmt_list_opts *o, json_t *item, struct evbuffer *dst,
                     size_t *written)
{
    if (item != NULL && !o->all_cols) {
        json_t *c = list_columns(item, o->cols, o->n_cols);
        json_decref(item);
        item = c;
    }
    int rc = item != NULL && (*written == 0 || evbuffer_add(dst, ",", 1) == 0) &&
                     mgmt_json_write(item, dst) == 0
                 ? 0
                 : -1;
    json_decref(item);
    if (rc == 0)
        (*written)++;
    return rc;
}
