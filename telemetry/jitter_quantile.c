/* Quantiles of the probe's histograms (bucket layout in jitter.h). */
#include "probe.h"

static uint64_t slot_low(unsigned s)
{
	if (s < DD_JIT_SUB)
		return s;
	unsigned e = (s - DD_JIT_SUB) / DD_JIT_SUB + DD_JIT_SUB_BITS;
	uint64_t m = (s - DD_JIT_SUB) % DD_JIT_SUB;
	return (1ull << e) | (m << (e - DD_JIT_SUB_BITS));
}

uint64_t dd_tel_jit_quantile(const struct dd_jit_hist *h, double q)
{
	uint64_t total = 0;
	for (unsigned s = 0; s < DD_JIT_SLOTS; s++)
		total += h->slot[s];
	if (!total)
		return 0;
	uint64_t rank = (uint64_t)(q * (double)total);
	if ((double)rank < q * (double)total)
		rank++;
	if (!rank)
		rank = 1;
	uint64_t seen = 0;
	for (unsigned s = 0; s < DD_JIT_SLOTS; s++) {
		seen += h->slot[s];
		if (seen >= rank) {
			uint64_t lo = slot_low(s);
			uint64_t hi = s + 1 < DD_JIT_SLOTS ? slot_low(s + 1) - 1 : lo;
			uint64_t mid = lo + (hi - lo) / 2;
			return mid < h->max || !h->max ? mid : h->max;
		}
	}
	return h->max;
}
