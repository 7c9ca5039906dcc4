/* warren-perf's output: the progress line and the final JSON line (see report.c). */
#ifndef WARREN_PERF_REPORT_H
#define WARREN_PERF_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "hist.h"
#include "perf.h"

struct perf_totals {
    uint64_t sent, confirmed, nacked, received;
    uint64_t priority_rises; /* --priorities: deliveries above the priority before them */
    uint64_t first_send_ns, last_send_ns, first_recv_ns, last_recv_ns;
};
/* Sums every worker's counters (a snapshot: they keep running). */
void perf_totals_sum(const struct perf_run *run, struct perf_totals *t);
/* Merges the latency histograms into h: the producers' (confirm latency) or the consumers'
 * (publish to delivery). */
void perf_hist_collect(const struct perf_run *run, bool producers, struct perf_hist *h);
/* A latency in ns as "312us", "1.2ms" or "2.35s", in buf. */
const char *perf_fmt_latency(uint64_t ns, char *buf, size_t cap);

/* The per-second progress line: rates and percentiles since the previous line. */
struct perf_progress {
    uint64_t start_ns, last_ns;
    struct perf_totals last;
    struct perf_hist *snap;     /* owns: two snapshots, the previous one and the current */
    struct perf_hist *interval; /* owns */
    int flip;
};
void perf_progress_init(struct perf_progress *p, const struct perf_run *run, uint64_t now);
void perf_progress_tick(struct perf_progress *p, const struct perf_run *run, uint64_t now);
void perf_progress_free(struct perf_progress *p);

/* What main() measured, for the final line. */
struct perf_result {
    uint64_t t0_ns;    /* the producers (and consumers) were released */
    uint64_t ready_ns; /* backlog: the queues held every message published */
    uint64_t drain_ns; /* backlog: the consumers were released */
    uint64_t end_ns;   /* the run stopped */
    uint64_t expected; /* deliveries expected in count and backlog modes */
    bool interrupted;
    char server[128];
};
/* Prints a summary to stderr and the JSON line to out. */
void perf_report(const struct perf_run *run, const struct perf_result *r, FILE *out);

#endif
