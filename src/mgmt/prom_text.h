/* A writer of Prometheus's text exposition format 0.0.4, straight into an evbuffer: a
 * family's "# TYPE" and "# HELP" lines (in the order rabbitmq_prometheus writes them), its
 * samples with their labels, and histograms from warren/stats.h's stats_hist. Label values
 * and help texts are escaped as the format says (\\, \" and \n in label values; \\ and \n in
 * help). The writer remembers the first failure (ENOMEM) so that callers write on and check
 * once at the end. */
#ifndef WARREN_PROM_TEXT_H
#define WARREN_PROM_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "warren/stats.h"

struct evbuffer;

struct prom_w {
    struct evbuffer *buf; /* borrows */
    bool failed;          /* an evbuffer_add failed: the text is incomplete */
};

struct prom_label {
    const char *name;  /* a valid label name: not escaped */
    const char *value; /* any bytes up to a NUL: escaped */
};

/* "# TYPE name type" and "# HELP name help". type: "counter", "gauge", "untyped",
 * "histogram". */
void prom_family(struct prom_w *w, const char *name, const char *type, const char *help);
/* One sample: name{labels} value. n may be 0 (no braces). */
void prom_u64(struct prom_w *w, const char *name, const struct prom_label *l, size_t n, uint64_t v);
void prom_f64(struct prom_w *w, const char *name, const struct prom_label *l, size_t n, double v);
/* The samples of histogram h: name_bucket{labels,le="b"} cumulative for each bound and
 * "+Inf", name_sum and name_count. Bounds and the sum are multiplied by scale (1e-6 shows
 * microseconds as seconds, as Prometheus's base units want). */
void prom_hist(struct prom_w *w, const char *name, const struct prom_label *l, size_t n,
               const struct stats_hist *h, double scale);

#endif
