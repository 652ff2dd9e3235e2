/* Log-linear histogram arithmetic (layout in telemetry.h). */
#include <string.h>

#include "telemetry.h"

void dd_tel_hist_reset(struct dd_tel_hist *h)
{
	memset(h, 0, sizeof(*h));
}

void dd_tel_hist_merge(struct dd_tel_hist *dst, const struct dd_tel_hist *src)
{
	if (src->count == 0)
		return;
	if (dst->count == 0 || src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
	dst->count += src->count;
	dst->sum += src->sum;
	for (unsigned i = 0; i < DD_TEL_BUCKETS; i++)
		dst->bucket[i] += src->bucket[i];
}

void dd_tel_shist_merge_into(struct dd_tel_hist *dst, const struct dd_tel_shist *src)
{
	uint64_t count = atomic_load_explicit(&src->count, memory_order_relaxed);
	if (count == 0)
		return;
	uint64_t mn = atomic_load_explicit(&src->min, memory_order_relaxed);
	uint64_t mx = atomic_load_explicit(&src->max, memory_order_relaxed);
	if (dst->count == 0 || mn < dst->min)
		dst->min = mn;
	if (mx > dst->max)
		dst->max = mx;
	/* the count is the sum of the buckets read, so that quantiles and
	 * cumulative counts agree with it whatever the writer did meanwhile */
	uint64_t n = 0;
	for (unsigned i = 0; i < DD_TEL_BUCKETS; i++) {
		uint64_t b = atomic_load_explicit(&src->bucket[i], memory_order_relaxed);
		dst->bucket[i] += b;
		n += b;
	}
	dst->count += n;
	dst->sum += atomic_load_explicit(&src->sum, memory_order_relaxed);
}

uint64_t dd_tel_hist_count_le(const struct dd_tel_hist *h, uint64_t v)
{
	unsigned last = dd_tel_bucket(v);
	uint64_t n = 0;
	for (unsigned b = 0; b <= last; b++)
		n += h->bucket[b];
	return n;
}

uint64_t dd_tel_bucket_low(unsigned b)
{
	if (b < DD_TEL_SUB)
		return b;
	unsigned e = (b - DD_TEL_SUB) / DD_TEL_SUB + DD_TEL_SUB_BITS;
	uint64_t m = (b - DD_TEL_SUB) % DD_TEL_SUB;
	return (1ull << e) | (m << (e - DD_TEL_SUB_BITS));
}

uint64_t dd_tel_bucket_high(unsigned b)
{
	if (b < DD_TEL_SUB)
		return b;
	unsigned e = (b - DD_TEL_SUB) / DD_TEL_SUB + DD_TEL_SUB_BITS;
	return dd_tel_bucket_low(b) + (1ull << (e - DD_TEL_SUB_BITS)) - 1;
}

uint64_t dd_tel_hist_quantile(const struct dd_tel_hist *h, double q)
{
	if (h->count == 0)
		return 0;
	if (q <= 0)
		return h->min;
	if (q >= 1)
		return h->max;
	/* rank of the value we want, 1-based: ceil(q * count) */
	uint64_t rank = (uint64_t)(q * (double)h->count);
	if ((double)rank < q * (double)h->count)
		rank++;
	if (rank == 0)
		rank = 1;
	uint64_t seen = 0;
	for (unsigned b = 0; b < DD_TEL_BUCKETS; b++) {
		seen += h->bucket[b];
		if (seen >= rank) {
			uint64_t lo = dd_tel_bucket_low(b), hi = dd_tel_bucket_high(b);
			uint64_t v = lo + (hi - lo) / 2;
			if (v > h->max)
				v = h->max;
			if (v < h->min)
				v = h->min;
			return v;
		}
	}
	return h->max;
}
