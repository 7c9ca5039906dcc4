/* warren-perf's figures: summing the workers' counters, the progress line printed every
 * second to stderr ("time 3s, sent 251234 msg/s, received 250981 msg/s, latency p50 312us p99
 * 1.2ms") with per-second percentiles taken from snapshots of the consumers' histograms, and
 * the final JSON line on stdout that scripts compare runs with. */
#include "config.h"

#include "report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

static uint64_t
ld(const _Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

void
perf_totals_sum(const struct perf_run *run, struct perf_totals *t)
{
    memset(t, 0, sizeof *t);
    for (unsigned i = 0; i < run->nworkers; i++) {
        const struct perf_worker *w = &run->workers[i];
        uint64_t first = ld(&w->first_ns), last = ld(&w->last_ns);
        uint64_t *tf = w->producer ? &t->first_send_ns : &t->first_recv_ns;
        uint64_t *tl = w->producer ? &t->last_send_ns : &t->last_recv_ns;
        t->sent += ld(&w->sent);
        t->confirmed += ld(&w->confirmed);
        t->nacked += ld(&w->nacked);
        t->received += ld(&w->received);
        t->priority_rises += ld(&w->priority_rises);
        if (first != 0 && (*tf == 0 || first < *tf))
            *tf = first;
        if (last > *tl)
            *tl = last;
    }
}

const char *
perf_fmt_latency(uint64_t ns, char *buf, size_t cap)
{
    double us = (double)ns / 1000;
    if (us < 1000)
        snprintf(buf, cap, "%.0fus", us);
    else if (us < 1e6)
        snprintf(buf, cap, "%.*fms", us < 1e4 ? 1 : 0, us / 1000);
    else
        snprintf(buf, cap, "%.2fs", us / 1e6);
    return buf;
}

void
perf_progress_init(struct perf_progress *p, const struct perf_run *run, uint64_t now)
{
    memset(p, 0, sizeof *p);
    p->snap = calloc(2, sizeof *p->snap);
    p->interval = calloc(1, sizeof *p->interval);
    if (p->snap == NULL || p->interval == NULL) {
        fprintf(stderr, "warren-perf: out of memory\n");
        exit(1);
    }
    p->start_ns = p->last_ns = now;
    perf_totals_sum(run, &p->last);
}

void
perf_progress_free(struct perf_progress *p)
{
    free(p->snap);
    free(p->interval);
}

void
perf_hist_collect(const struct perf_run *run, bool producers, struct perf_hist *h)
{
    perf_hist_reset(h);
    for (unsigned i = 0; i < run->nworkers; i++)
        if (run->workers[i].producer == producers)
            perf_hist_add(h, &run->workers[i].hist);
}

void
perf_progress_tick(struct perf_progress *p, const struct perf_run *run, uint64_t now)
{
    struct perf_totals t;
    char l50[32], l99[32];
    double dt = (double)(now - p->last_ns) / 1e9;
    struct perf_hist *cur = &p->snap[p->flip], *prev = &p->snap[!p->flip];

    perf_totals_sum(run, &t);
    perf_hist_collect(run, false, cur);
    perf_hist_sub(p->interval, cur, prev);
    p->flip = !p->flip;
    if (dt <= 0)
        dt = 1e-9;
    fprintf(stderr, "time %.0fs, sent %.0f msg/s, received %.0f msg/s",
            (double)(now - p->start_ns) / 1e9, (double)(t.sent - p->last.sent) / dt,
            (double)(t.received - p->last.received) / dt);
    if (perf_hist_count(p->interval) > 0)
        fprintf(stderr, ", latency p50 %s p99 %s",
                perf_fmt_latency(perf_hist_percentile(p->interval, 50), l50, sizeof l50),
                perf_fmt_latency(perf_hist_percentile(p->interval, 99), l99, sizeof l99));
    fputc('\n', stderr);
    p->last = t;
    p->last_ns = now;
}

static double
rate(uint64_t n, uint64_t from_ns, uint64_t to_ns)
{
    if (n == 0 || to_ns <= from_ns)
        return 0;
    return (double)n / ((double)(to_ns - from_ns) / 1e9);
}

static double
us(uint64_t ns)
{
    return (double)ns / 1000;
}

void
perf_report(const struct perf_run *run, const struct perf_result *r, FILE *out)
{
    const struct perf_opts *o = run->opts;
    struct perf_totals t;
    struct perf_hist *h = calloc(1, sizeof *h), *ch = calloc(1, sizeof *ch);
    char a[32], b[32], c[32], d[32];
    double sent_rate, recv_rate;
    uint64_t publish_end = 0;

    if (h == NULL || ch == NULL) {
        fprintf(stderr, "warren-perf: out of memory\n");
        exit(1);
    }
    perf_totals_sum(run, &t);
    perf_hist_collect(run, false, h);
    perf_hist_collect(run, true, ch);
    if (o->duration > 0) {
        sent_rate = rate(t.sent, r->t0_ns, r->end_ns);
        recv_rate = rate(t.received, r->t0_ns, r->end_ns);
    } else if (o->backlog) {
        /* Published = in the queues: confirmed, or seen there by the setup connection. */
        publish_end = o->confirm ? t.last_send_ns : r->ready_ns;
        sent_rate = rate(t.sent, r->t0_ns, publish_end);
        recv_rate = rate(t.received, r->drain_ns, t.last_recv_ns);
    } else {
        sent_rate = rate(t.sent, r->t0_ns, t.last_send_ns);
        recv_rate = rate(t.received, r->t0_ns, t.last_recv_ns);
    }
    uint64_t p50 = perf_hist_percentile(h, 50), p95 = perf_hist_percentile(h, 95);
    uint64_t p99 = perf_hist_percentile(h, 99), max = perf_hist_max(h);
    uint64_t c50 = perf_hist_percentile(ch, 50), c95 = perf_hist_percentile(ch, 95);
    uint64_t c99 = perf_hist_percentile(ch, 99), cmax = perf_hist_max(ch);

    fprintf(stderr, "sent %llu (%.0f msg/s), received %llu (%.0f msg/s)",
            (unsigned long long)t.sent, sent_rate, (unsigned long long)t.received, recv_rate);
    if (o->confirm)
        fprintf(stderr, ", confirmed %llu, nacked %llu", (unsigned long long)t.confirmed,
                (unsigned long long)t.nacked);
    if (o->priorities > 0)
        fprintf(stderr, ", %llu above the priority before", (unsigned long long)t.priority_rises);
    if (perf_hist_count(h) > 0)
        fprintf(stderr, ", latency p50 %s p95 %s p99 %s max %s", perf_fmt_latency(p50, a, sizeof a),
                perf_fmt_latency(p95, b, sizeof b), perf_fmt_latency(p99, c, sizeof c),
                perf_fmt_latency(max, d, sizeof d));
    if (perf_hist_count(ch) > 0)
        fprintf(stderr,
                o->churn ? ", open+close p50 %s p95 %s p99 %s max %s"
                         : ", confirm latency p50 %s p95 %s p99 %s max %s",
                perf_fmt_latency(c50, a, sizeof a), perf_fmt_latency(c95, b, sizeof b),
                perf_fmt_latency(c99, c, sizeof c), perf_fmt_latency(cmax, d, sizeof d));
    fputc('\n', stderr);

    fprintf(out,
            "{\"sent_msgs_per_s\":%.1f,\"received_msgs_per_s\":%.1f,"
            "\"latency_us\":{\"p50\":%.1f,\"p95\":%.1f,\"p99\":%.1f,\"max\":%.1f},"
            "\"sent\":%llu,\"received\":%llu,\"confirmed\":%llu,\"nacked\":%llu,"
            "\"duration_s\":%.3f",
            sent_rate, recv_rate, us(p50), us(p95), us(p99), us(max), (unsigned long long)t.sent,
            (unsigned long long)t.received, (unsigned long long)t.confirmed,
            (unsigned long long)t.nacked, (double)(r->end_ns - r->t0_ns) / 1e9);
    if (o->confirm || o->churn)
        fprintf(out, ",\"%s\":{\"p50\":%.1f,\"p95\":%.1f,\"p99\":%.1f,\"max\":%.1f}",
                o->churn ? "connection_us" : "confirm_latency_us", us(c50), us(c95), us(c99),
                us(cmax));
    if (o->backlog)
        fprintf(out,
                ",\"publish_msgs_per_s\":%.1f,\"drain_msgs_per_s\":%.1f,\"publish_s\":%.3f,"
                "\"drain_s\":%.3f",
                sent_rate, recv_rate,
                publish_end > r->t0_ns ? (double)(publish_end - r->t0_ns) / 1e9 : 0,
                t.last_recv_ns > r->drain_ns ? (double)(t.last_recv_ns - r->drain_ns) / 1e9 : 0);
    if (o->priorities > 0)
        fprintf(out, ",\"priority_rises\":%llu", (unsigned long long)t.priority_rises);
    fprintf(out, ",\"expected\":%llu,\"interrupted\":%s,\"server\":\"",
            (unsigned long long)r->expected, r->interrupted ? "true" : "false");
    for (const char *s = r->server; *s; s++)
        if (*s != '"' && *s != '\\' && (unsigned char)*s >= 0x20)
            fputc(*s, out);
    fputs("\",\"params\":{", out);
    perf_opts_json(o, out);
    fputs("}}\n", out);
    fflush(out);
    free(ch);
    free(h);
}
