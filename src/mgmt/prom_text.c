/* Prometheus's text exposition format 0.0.4 (see prom_text.h). */
#include "config.h"

#include "prom_text.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

static void
prom_add(struct prom_w *w, const char *p, size_t len)
{
    if (len > 0 && evbuffer_add(w->buf, p, len) < 0)
        w->failed = true;
}

static void
prom_str(struct prom_w *w, const char *s)
{
    prom_add(w, s, strlen(s));
}

/* s with each byte of specials replaced by a backslash and its escape letter: '\\' by "\\\\",
 * '"' by "\\\"", '\n' by "\\n". Runs without any are added in one piece. */
static void
prom_escaped(struct prom_w *w, const char *s, const char *specials)
{
    for (;;) {
        size_t run = strcspn(s, specials);
        prom_add(w, s, run);
        s += run;
        if (*s == '\0')
            return;
        prom_add(w, *s == '\n' ? "\\n" : *s == '"' ? "\\\"" : "\\\\", 2);
        s++;
    }
}

void
prom_family(struct prom_w *w, const char *name, const char *type, const char *help)
{
    prom_str(w, "# TYPE ");
    prom_str(w, name);
    prom_add(w, " ", 1);
    prom_str(w, type);
    prom_str(w, "\n# HELP ");
    prom_str(w, name);
    prom_add(w, " ", 1);
    prom_escaped(w, help, "\\\n");
    prom_add(w, "\n", 1);
}

/* name{l...[,le="le"]} without the value. */
static void
prom_series(struct prom_w *w, const char *name, const char *suffix, const struct prom_label *l,
            size_t n, const char *le)
{
    prom_str(w, name);
    prom_str(w, suffix);
    if (n == 0 && le == NULL)
        return;
    prom_add(w, "{", 1);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            prom_add(w, ",", 1);
        prom_str(w, l[i].name);
        prom_add(w, "=\"", 2);
        prom_escaped(w, l[i].value, "\\\"\n");
        prom_add(w, "\"", 1);
    }
    if (le != NULL) {
        prom_str(w, n > 0 ? ",le=\"" : "le=\"");
        prom_str(w, le);
        prom_add(w, "\"", 1);
    }
    prom_add(w, "}", 1);
}

static void
prom_value_u64(struct prom_w *w, uint64_t v)
{
    char num[32];
    int len = snprintf(num, sizeof(num), " %" PRIu64 "\n", v);
    prom_add(w, num, (size_t)len);
}

/* A float as Go's ParseFloat reads it: 15 significant digits, +Inf, -Inf, NaN. */
static void
prom_fmt_f64(char *buf, size_t cap, double v)
{
    if (isnan(v))
        snprintf(buf, cap, "NaN");
    else if (isinf(v))
        snprintf(buf, cap, v > 0 ? "+Inf" : "-Inf");
    else
        snprintf(buf, cap, "%.15g", v);
}

void
prom_u64(struct prom_w *w, const char *name, const struct prom_label *l, size_t n, uint64_t v)
{
    prom_series(w, name, "", l, n, NULL);
    prom_value_u64(w, v);
}

void
prom_f64(struct prom_w *w, const char *name, const struct prom_label *l, size_t n, double v)
{
    char num[40];
    prom_fmt_f64(num, sizeof(num), v);
    prom_series(w, name, "", l, n, NULL);
    prom_add(w, " ", 1);
    prom_str(w, num);
    prom_add(w, "\n", 1);
}

void
prom_hist(struct prom_w *w, const char *name, const struct prom_label *l, size_t n,
          const struct stats_hist *h, double scale)
{
    uint64_t cum = 0;
    char le[40];
    for (unsigned i = 0; i <= h->n; i++) {
        cum += h->counts[i];
        if (i < h->n)
            prom_fmt_f64(le, sizeof(le), (double)h->bounds[i] * scale);
        else
            strcpy(le, "+Inf");
        prom_series(w, name, "_bucket", l, n, le);
        prom_value_u64(w, cum);
    }
    char sum[40];
    prom_fmt_f64(sum, sizeof(sum), (double)h->sum * scale);
    prom_series(w, name, "_sum", l, n, NULL);
    prom_add(w, " ", 1);
    prom_str(w, sum);
    prom_add(w, "\n", 1);
    prom_series(w, name, "_count", l, n, NULL);
    prom_value_u64(w, cum);
}
