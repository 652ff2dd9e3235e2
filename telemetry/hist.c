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
