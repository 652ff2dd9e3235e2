/* telemetry/ — log-linear latency histograms.
 *
 * HDR-style buckets: values below 128 are exact, then each power of two is
 * split into 128 sub-buckets, so every recorded value is known to within
 * 1/128 (better than 2 significant digits) from 1 ns to beyond 100 s.
 * One writer per histogram with plain stores; readers merge copies.
 */
#ifndef DD_TEL_H
#define DD_TEL_H

#include <stdatomic.h>
#include <stdint.h>

#define DD_TEL_SUB_BITS 7
#define DD_TEL_SUB (1u << DD_TEL_SUB_BITS)
#define DD_TEL_MAX_EXP 40 /* 2^40 ns ~ 18 minutes; larger values clamp */
#define DD_TEL_BUCKETS (DD_TEL_SUB + (DD_TEL_MAX_EXP - DD_TEL_SUB_BITS + 1) * DD_TEL_SUB)

struct dd_tel_hist {
	uint64_t count;
	uint64_t sum;
	uint64_t max;
	uint64_t min;
	uint64_t bucket[DD_TEL_BUCKETS];
};

static inline unsigned dd_tel_bucket(uint64_t v)
{
	if (v < DD_TEL_SUB)
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v);
	if (e > DD_TEL_MAX_EXP)
		return DD_TEL_BUCKETS - 1;
	unsigned m = (unsigned)(v >> (e - DD_TEL_SUB_BITS)) & (DD_TEL_SUB - 1);
	return DD_TEL_SUB + (e - DD_TEL_SUB_BITS) * DD_TEL_SUB + m;
}

/* Single writer: no atomics, no locks. */
static inline void dd_tel_hist_record(struct dd_tel_hist *h, uint64_t v)
{
	h->bucket[dd_tel_bucket(v)]++;
	h->count++;
	h->sum += v;
	if (v > h->max)
		h->max = v;
	if (v < h->min || h->count == 1)
		h->min = v;
}

/* A histogram with one writer that any thread may read while it is being
 * written: the writer's updates are relaxed loads and stores (plain moves
 * on x86 — no locked instruction, no fence); a reader takes a snapshot,
 * each field exact, the set not one instant. */
struct dd_tel_shist {
	_Atomic uint64_t count, sum, max, min;
	_Atomic uint64_t bucket[DD_TEL_BUCKETS];
};

static inline void dd_tel_inc(_Atomic uint64_t *x, uint64_t d)
{
	atomic_store_explicit(x, atomic_load_explicit(x, memory_order_relaxed) + d,
			      memory_order_relaxed);
}

/* Single writer. */
static inline void dd_tel_shist_record(struct dd_tel_shist *h, uint64_t v)
{
	dd_tel_inc(&h->bucket[dd_tel_bucket(v)], 1);
	uint64_t n = atomic_load_explicit(&h->count, memory_order_relaxed);
	atomic_store_explicit(&h->count, n + 1, memory_order_relaxed);
	dd_tel_inc(&h->sum, v);
	if (v > atomic_load_explicit(&h->max, memory_order_relaxed))
		atomic_store_explicit(&h->max, v, memory_order_relaxed);
	if (n == 0 || v < atomic_load_explicit(&h->min, memory_order_relaxed))
		atomic_store_explicit(&h->min, v, memory_order_relaxed);
}

/* Any thread: adds a snapshot of @src into @dst. */
void dd_tel_shist_merge_into(struct dd_tel_hist *dst, const struct dd_tel_shist *src);
/* How many recorded values are at most @v (bucket resolution: counts the
 * whole bucket holding @v). */
uint64_t dd_tel_hist_count_le(const struct dd_tel_hist *h, uint64_t v);

void dd_tel_hist_reset(struct dd_tel_hist *h);
/* Adds @src into @dst. */
void dd_tel_hist_merge(struct dd_tel_hist *dst, const struct dd_tel_hist *src);
/* Value at quantile @q (0..1): the midpoint of the bucket that holds it,
 * clamped to the recorded max; 0 for an empty histogram. */
uint64_t dd_tel_hist_quantile(const struct dd_tel_hist *h, double q);
/* Lowest and highest value that map to bucket @b. */
uint64_t dd_tel_bucket_low(unsigned b);
uint64_t dd_tel_bucket_high(unsigned b);

#endif
