/* warrenctl's output, shaped like rabbitmqctl's: a banner line on stdout ("Listing users
 * ..."), a tab-separated header and rows (or `--formatter json`: "[", one object a line, each
 * after the first prefixed with ",", "]"; or csv with every field quoted), and errors on
 * stderr as "Error:" then the reason. Also the small helpers that turn a reply into JSON or an
 * error message, so that every command reports an odd reply the same way. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

int
ctl_error(int rc, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout); /* the banner first, as on a terminal */
    fputs("Error:\n", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return rc;
}

int
ctl_error_reply(const struct ctl_reply *r)
{
    json_t *j = ctl_reply_json(r);
    json_t *reason = json_is_object(j) ? json_object_get(j, "reason") : NULL;
    if (json_is_string(reason))
        ctl_error(CTL_EX_UNAVAILABLE, "%s", json_string_value(reason));
    else if (reason != NULL) {
        char *s = json_dumps(reason, JSON_COMPACT | JSON_ENCODE_ANY);
        ctl_error(CTL_EX_UNAVAILABLE, "%s", s != NULL ? s : "(unprintable reason)");
        free(s);
    } else
        ctl_error(CTL_EX_UNAVAILABLE, "the broker answered HTTP %d", r->status);
    json_decref(j);
    return CTL_EX_UNAVAILABLE;
}

int
ctl_status_result(struct ctl_reply *r)
{
    int rc = r->status >= 200 && r->status < 300 ? CTL_OK : ctl_error_reply(r);
    ctl_reply_free(r);
    return rc;
}

void
ctl_banner(const struct ctl *c, const char *fmt, ...)
{
    if (c->quiet || c->silent || c->formatter != CTL_FMT_TABLE)
        return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

int
ctl_get_json(const struct ctl *c, const char *path, json_t **out)
{
    struct ctl_reply r;
    *out = NULL;
    if (ctl_http(c, "GET", path, NULL, 0, NULL, &r) < 0)
        return -CTL_EX_UNAVAILABLE;
    if (r.status != 200) {
        int status = r.status;
        if (status != 404) {
            ctl_error_reply(&r);
            status = -CTL_EX_UNAVAILABLE;
        }
        ctl_reply_free(&r);
        return status;
    }
    *out = ctl_reply_json(&r);
    ctl_reply_free(&r);
    if (*out == NULL) {
        ctl_error(CTL_EX_UNAVAILABLE, "the broker's reply to GET /api/%s is not JSON", path);
        return -CTL_EX_UNAVAILABLE;
    }
    return 0;
}

/* A value inside a list or proplist: strings quoted, as Erlang terms print. */
static void
ctl_out_term(FILE *f, const json_t *v)
{
    if (json_is_string(v)) {
        fputc('"', f);
        fputs(json_string_value(v), f);
        fputc('"', f);
    } else if (json_is_array(v)) {
        size_t i;
        const json_t *e;
        fputc('[', f);
        json_array_foreach(v, i, e)
        {
            if (i > 0)
                fputc(',', f);
            ctl_out_term(f, e);
        }
        fputc(']', f);
    } else if (json_is_object(v)) {
        const char *k;
        const json_t *e;
        bool first = true;
        fputc('[', f);
        json_object_foreach((json_t *)v, k, e)
        {
            fprintf(f, "%s{\"%s\",", first ? "" : ",", k);
            ctl_out_term(f, e);
            fputc('}', f);
            first = false;
        }
        fputc(']', f);
    } else {
        ctl_out_value(f, v);
    }
}

void
ctl_out_value(FILE *f, const json_t *v)
{
    if (v == NULL || json_is_null(v))
        return;
    if (json_is_string(v)) {
        fputs(json_string_value(v), f);
    } else if (json_is_true(v) || json_is_false(v)) {
        fputs(json_is_true(v) ? "true" : "false", f);
    } else if (json_is_integer(v)) {
        fprintf(f, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else if (json_is_real(v)) {
        fprintf(f, "%g", json_real_value(v));
    } else if (json_is_array(v)) {
        /* rabbitmqctl prints a list of names (tags) bare: [administrator, monitoring] */
        size_t i;
        const json_t *e;
        fputc('[', f);
        json_array_foreach(v, i, e)
        {
            fputs(i > 0 ? ", " : "", f);
            if (json_is_string(e))
                fputs(json_string_value(e), f);
            else
                ctl_out_term(f, e);
        }
        fputc(']', f);
    } else {
        ctl_out_term(f, v);
    }
}

static const char *ctl_sort_keys[2]; /* qsort's comparator has no argument for them */

/* Orders two rows by ctl_sort_keys; a missing or non-string value sorts as "". */
static int
ctl_rows_cmp(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    for (size_t i = 0; i < 2 && ctl_sort_keys[i] != NULL; i++) {
        const char *sx = json_string_value(json_object_get(x, ctl_sort_keys[i]));
        const char *sy = json_string_value(json_object_get(y, ctl_sort_keys[i]));
        int d = strcmp(sx != NULL ? sx : "", sy != NULL ? sy : "");
        if (d != 0)
            return d;
    }
    return 0;
}

int
ctl_rows_sort(json_t *rows, const char *key1, const char *key2)
{
    size_t n = json_array_size(rows), i;
    if (n == 0)
        return 0;
    json_t **v = malloc(n * sizeof(*v)), *e;
    if (v == NULL)
        return ctl_error(CTL_EX_SOFTWARE, "out of memory");
    json_array_foreach(rows, i, e) v[i] = json_incref(e);
    ctl_sort_keys[0] = key1;
    ctl_sort_keys[1] = key2;
    qsort(v, n, sizeof(*v), ctl_rows_cmp);
    json_array_clear(rows);
    for (i = 0; i < n; i++)
        json_array_append_new(rows, v[i]);
    free(v);
    return 0;
}

int
ctl_node_name(const struct ctl *c, char *buf, size_t cap)
{
    json_t *ov;
    int rc = ctl_get_json(c, "overview", &ov);
    if (rc != 0)
        return rc < 0 ? -rc : ctl_error(CTL_EX_UNAVAILABLE, "the broker has no /api/overview");
    const char *node = json_string_value(json_object_get(ov, "node"));
    snprintf(buf, cap, "%s", node != NULL ? node : "");
    json_decref(ov);
    return 0;
}

int
ctl_out_ok(const struct ctl *c)
{
    char node[256];
    if (c->formatter != CTL_FMT_JSON)
        return CTL_OK;
    int rc = ctl_node_name(c, node, sizeof(node));
    if (rc != 0)
        return rc;
    json_t *o = json_pack("{s:s, s:s}", "node", node, "result", "ok");
    char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (s == NULL)
        return ctl_error(CTL_EX_SOFTWARE, "out of memory");
    puts(s);
    free(s);
    return CTL_OK;
}

/* One CSV field: quoted, quotes doubled, as rabbitmqctl's csv formatter writes them. */
static void
ctl_out_csv_field(const char *s, size_t len)
{
    putchar('"');
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"')
            putchar('"');
        putchar(s[i]);
    }
    putchar('"');
}

/* One line of a table on stdout: the column names (row NULL) or row's values under them (a
 * missing key, or a row that is not an object, prints as an empty field), tab-separated, or
 * with csv each field quoted and comma-separated. */
static void
ctl_out_line(bool csv, const char *const *cols, size_t ncols, const json_t *row)
{
    for (size_t k = 0; k < ncols; k++) {
        char *s = NULL;
        size_t len = 0;
        /* csv: the field is written to memory first, then quoted */
        FILE *f = csv ? open_memstream(&s, &len) : stdout;
        fputs(k > 0 ? (csv ? "," : "\t") : "", stdout);
        if (f != NULL && row == NULL)
            fputs(cols[k], f);
        else if (f != NULL)
            ctl_out_value(f, json_is_object(row) ? json_object_get(row, cols[k]) : NULL);
        if (csv) {
            if (f != NULL)
                fclose(f);
            ctl_out_csv_field(s != NULL ? s : "", s != NULL ? len : 0);
            free(s);
        }
    }
    putchar('\n');
}

void
ctl_out_table(const struct ctl *c, const char *const *cols, size_t ncols, json_t *rows)
{
    size_t i;
    json_t *row;
    if (c->formatter == CTL_FMT_JSON) {
        puts("[");
        json_array_foreach(rows, i, row)
        {
            json_t *o = json_object();
            for (size_t k = 0; o != NULL && k < ncols; k++) {
                json_t *v = json_is_object(row) ? json_object_get(row, cols[k]) : NULL;
                json_object_set(o, cols[k], v != NULL ? v : json_null());
            }
            char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
            printf("%s%s\n", i > 0 ? "," : "", s != NULL ? s : "{}");
            free(s);
            json_decref(o);
        }
        puts("]");
        return;
    }
    bool csv = c->formatter == CTL_FMT_CSV;
    /* rabbitmqctl prints no header over an empty list */
    if (!c->silent && !c->no_headers && json_array_size(rows) > 0)
        ctl_out_line(csv, cols, ncols, NULL);
    json_array_foreach(rows, i, row) ctl_out_line(csv, cols, ncols, row);
}
