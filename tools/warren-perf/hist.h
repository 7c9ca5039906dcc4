/* warren-perf's latency histogram: HDR-like log-bucketed counts with a fixed 1/64 relative
 * precision over the whole uint64 range (values below 128 are exact), in one flat array, so
 * recording is an index computation and an increment: no allocation, no lock. One thread
 * records into a histogram; others may read it at any time (the counters are relaxed atomics,
 * plain loads and stores on x86-64), which is how the progress line takes per-second
 * percentiles from the consumers' live histograms: snapshot, subtract the previous snapshot. */
#ifndef WARREN_PERF_HIST_H
#define WARREN_PERF_HIST_H

#include <stdatomic.h>
#include <stdint.h>

#define PERF_HIST_SUB_BITS 6
#define PERF_HIST_SUB (1u << PERF_HIST_SUB_BITS) /* buckets per power of two */
/* Values below 2 * PERF_HIST_SUB have a bucket each; every power of two above has SUB. */
#define PERF_HIST_BUCKETS ((64 - PERF_HIST_SUB_BITS + 1) * PERF_HIST_SUB)

struct perf_hist {
    _Atomic uint64_t counts[PERF_HIST_BUCKETS];
    _Atomic uint64_t total;
    _Atomic uint64_t max; /* largest value recorded (for a difference: of the newer one) */
};

/* Empties h. Not safe while another thread records into it. */
void perf_hist_reset(struct perf_hist *h);
/* Counts v. One recording thread per histogram. */
void perf_hist_record(struct perf_hist *h, uint64_t v);
/* dst += src. src may be recording meanwhile: dst gets a consistent-enough snapshot. */
void perf_hist_add(struct perf_hist *dst, const struct perf_hist *src);
/* dst = now - before, where before is an earlier snapshot of the same counts. */
void perf_hist_sub(struct perf_hist *dst, const struct perf_hist *now,
                   const struct perf_hist *before);
uint64_t perf_hist_count(const struct perf_hist *h);
uint64_t perf_hist_max(const struct perf_hist *h);
/* The value at percentile p (0..100): the highest value of the bucket holding the
 * ceil(p% * count)-th smallest recording, never above max. 0 for an empty histogram. */
uint64_t perf_hist_percentile(const struct perf_hist *h, double p);

/* The bucket of v, and the range of values [lo, hi] a bucket stands for (for tests). */
unsigned perf_hist_bucket(uint64_t v);
uint64_t perf_hist_bucket_lo(unsigned b);
uint64_t perf_hist_bucket_hi(unsigned b);

#endif
