/* The latency histogram (see hist.h). A value v below 2 * SUB has bucket v. Above, with b the
 * index of v's highest set bit, v keeps its top SUB_BITS + 1 bits: bucket (b - SUB_BITS) * SUB +
 * (v >> (b - SUB_BITS)), so each power of two [2^b, 2^(b+1)) is split into SUB equal buckets and
 * a bucket's width is at most 1/SUB of the values it holds. The same formula gives v for
 * v < 2 * SUB, so the two ranges join without a gap. */
#include "config.h"

#include "hist.h"

#include <math.h>

#define RELAXED memory_order_relaxed

unsigned
perf_hist_bucket(uint64_t v)
{
    if (v < 2 * PERF_HIST_SUB)
        return (unsigned)v;
    unsigned b = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = b - PERF_HIST_SUB_BITS;
    return shift * PERF_HIST_SUB + (unsigned)(v >> shift);
}

uint64_t
perf_hist_bucket_lo(unsigned b)
{
    if (b < 2 * PERF_HIST_SUB)
        return b;
    unsigned shift = b / PERF_HIST_SUB - 1;
    uint64_t mant = PERF_HIST_SUB + b % PERF_HIST_SUB;
    return mant << shift;
}

uint64_t
perf_hist_bucket_hi(unsigned b)
{
    if (b < 2 * PERF_HIST_SUB)
        return b;
    unsigned shift = b / PERF_HIST_SUB - 1;
    return perf_hist_bucket_lo(b) + ((UINT64_C(1) << shift) - 1);
}

void
perf_hist_reset(struct perf_hist *h)
{
    for (unsigned i = 0; i < PERF_HIST_BUCKETS; i++)
        atomic_store_explicit(&h->counts[i], 0, RELAXED);
    atomic_store_explicit(&h->total, 0, RELAXED);
    atomic_store_explicit(&h->max, 0, RELAXED);
}

/* Single writer: a load and a store, not a locked add. */
static inline void
hist_bump(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, RELAXED) + n, RELAXED);
}

void
perf_hist_record(struct perf_hist *h, uint64_t v)
{
    hist_bump(&h->counts[perf_hist_bucket(v)], 1);
    hist_bump(&h->total, 1);
    if (v > atomic_load_explicit(&h->max, RELAXED))
        atomic_store_explicit(&h->max, v, RELAXED);
}

void
perf_hist_add(struct perf_hist *dst, const struct perf_hist *src)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < PERF_HIST_BUCKETS; i++) {
        uint64_t n = atomic_load_explicit(&src->counts[i], RELAXED);
        hist_bump(&dst->counts[i], n);
        total += n;
    }
    /* The total is summed from the counts copied, so it matches them even while src records. */
    hist_bump(&dst->total, total);
    uint64_t m = atomic_load_explicit(&src->max, RELAXED);
    if (m > atomic_load_explicit(&dst->max, RELAXED))
        atomic_store_explicit(&dst->max, m, RELAXED);
}

void
perf_hist_sub(struct perf_hist *dst, const struct perf_hist *now, const struct perf_hist *before)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < PERF_HIST_BUCKETS; i++) {
        uint64_t a = atomic_load_explicit(&now->counts[i], RELAXED);
        uint64_t b = atomic_load_explicit(&before->counts[i], RELAXED);
        uint64_t n = a >= b ? a - b : 0;
        atomic_store_explicit(&dst->counts[i], n, RELAXED);
        total += n;
    }
    atomic_store_explicit(&dst->total, total, RELAXED);
    atomic_store_explicit(&dst->max, atomic_load_explicit(&now->max, RELAXED), RELAXED);
}

uint64_t
perf_hist_count(const struct perf_hist *h)
{
    return atomic_load_explicit(&h->total, RELAXED);
}

uint64_t
perf_hist_max(const struct perf_hist *h)
{
    return atomic_load_explicit(&h->max, RELAXED);
}

uint64_t
perf_hist_percentile(const struct perf_hist *h, double p)
{
    uint64_t total = perf_hist_count(h);
    if (total == 0)
        return 0;
    if (p < 0)
        p = 0;
    if (p > 100)
        p = 100;
    uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)total);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0, max = perf_hist_max(h), v = max;
    for (unsigned i = 0; i < PERF_HIST_BUCKETS; i++) {
        seen += atomic_load_explicit(&h->counts[i], RELAXED);
        if (seen >= rank) {
            v = perf_hist_bucket_hi(i);
            break;
        }
    }
    return v < max ? v : max;
}
