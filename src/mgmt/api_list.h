/* What the two list replies share (api_list.c): the parsed query of a list, the name filter,
 * RabbitMQ's order over JSON values, paging and columns. mgmt_list_reply (api_list.c) sorts
 * JSON it is given; mgmt_list_reply_objs (api_list_objs.c) walks the objects over several
 * loop turns. */
#ifndef WARREN_MGMT_API_LIST_H
#define WARREN_MGMT_API_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "mgmt_int.h"
#include "warren/regex.h"

#define LIST_KEYS_MAX 8 /* sort, then the route's (vhost, name...) */
#define LIST_COLS_MAX 64

/* The query parameters of a list, parsed. */
struct mgmt_list_opts {
    bool paged;
    long long page, page_size;
    const char *name; /* borrows from r->query; NULL or "": no filter */
    pcre2_code *re;   /* owns: name compiled, with use_regex=true */
    pcre2_match_data *md;
    const char *keys[LIST_KEYS_MAX]; /* borrows: the sort keys, dotted, in order */
    size_t n_keys;
    bool reverse;
    char *cols_buf; /* owns: the columns parameter, cut at its commas */
    const char *cols[LIST_COLS_MAX];
    size_t n_cols;
    bool all_cols;
};

/* {"vhost", "name", NULL}: what most lists are sorted by after the sort parameter. */
extern const char *const mgmt_list_default_sorts[];

/* The query parameter key of r, or NULL. */
const char *mgmt_list_param(const struct mgmt_req *r, const char *key);
/* Parses r's query into o: the paging parameters only when pageable, sorts (NULL-terminated)
 * the keys after r's sort. Returns 0, or -1 after replying 400 as RabbitMQ does (o then holds
 * nothing). */
int mgmt_list_opts_parse(struct mgmt_req *r, struct mgmt_list_opts *o, const char *const *sorts,
                         bool pageable);
void mgmt_list_opts_free(struct mgmt_list_opts *o);
/* Whether name passes o's name filter (none: all do). */
bool mgmt_list_name_matches(const struct mgmt_list_opts *o, const char *name);
/* The value of the dotted key in item (borrowed), as get_dotted_value finds it; NULL where
 * RabbitMQ puts 0 (missing). */
json_t *mgmt_list_dotted(json_t *item, const char *key);
/* Erlang's term order over JSON values, as RabbitMQ sorts: numbers < atoms (false < null <
 * true) < objects < arrays < strings; NULL (missing) is the number 0. */
int mgmt_list_value_cmp(const json_t *a, const json_t *b);
/* The page o asks for among n sorted items: [*from, *to), all of them when not paged. false
 * for a page past the end, with RabbitMQ's reason in why (cap bytes). */
bool mgmt_list_page(const struct mgmt_list_opts *o, size_t n, size_t *from, size_t *to, char *why,
                    size_t cap);
struct evbuffer;
/* Writes item (taken) with only the columns o asks for into dst, after a comma unless it is
 * the first (*written 0), and counts it in *written. 0, or -1 on ENOMEM (item NULL too). */
int mgmt_list_write_item(const struct mgmt_list_opts *o, json_t *item, struct evbuffer *dst,
                         size_t *written);
/* A page's reply into out: {filtered_count: n, item_count: n_items, page, page_count,
 * page_size, total_count: total, items: [...]}, the items from a buffer holding the page's
 * entries, comma-separated (emptied). 0, or -1 on ENOMEM. */
int mgmt_list_write_page(const struct mgmt_list_opts *o, size_t n, size_t n_items, size_t total,
                         struct evbuffer *items, struct evbuffer *out);

/* A stable merge sort of n elements of size bytes, resumable after any element, for a sort
 * spread over loop turns. Set rows (the elements), tmp (room for n), n, size, cmp, ctx and
 * width 1, the rest 0; once sorted the elements are in rows (rows and tmp may have swapped:
 * the owner frees both). */
struct mgmt_msort {
    void *rows, *tmp;
    size_t n, size;
    int (*cmp)(const void *ctx, const void *a, const void *b);
    const void *ctx;
    /* The runs' width, the pair being merged (rows[a, mid) and rows[b, hi), the next of each
     * run), and the next place in tmp. */
    size_t width, a, mid, b, hi, k;
};
/* Sorts until the clock (mgmt_now_us) passes until (false: the next call goes on) or the
 * elements are sorted (true). */
bool mgmt_msort_step(struct mgmt_msort *m, uint64_t until);

#endif
