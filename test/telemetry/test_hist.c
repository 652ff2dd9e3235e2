/* Log-linear histogram: bucket bounds and quantiles. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "telemetry.h"

Test(hist, buckets_cover_values_within_one_percent)
{
	for (uint64_t v = 1; v < 200000000000ull; v = v * 3 + 1) {
		unsigned b = dd_tel_bucket(v);
		cr_assert_leq(dd_tel_bucket_low(b), v);
		cr_assert_geq(dd_tel_bucket_high(b), v);
		double width = (double)(dd_tel_bucket_high(b) - dd_tel_bucket_low(b) + 1);
		if (v < DD_TEL_SUB)
			cr_assert_eq(width, 1.0, "exact below %u", DD_TEL_SUB);
		else
			cr_assert_leq(width / (double)v, 1.0 / 100, "v=%lu width=%f", (unsigned long)v,
				      width);
	}
}

Test(hist, quantiles_of_a_uniform_sample)
{
	struct dd_tel_hist *h = calloc(1, sizeof(*h)), *m = calloc(1, sizeof(*m));
	for (uint64_t v = 1; v <= 100000; v++)
		dd_tel_hist_record(h, v * 10);
	cr_assert_eq(h->count, 100000);
	cr_assert_eq(h->min, 10);
	cr_assert_eq(h->max, 1000000);
	uint64_t p50 = dd_tel_hist_quantile(h, 0.5), p99 = dd_tel_hist_quantile(h, 0.99);
	cr_assert(p50 > 495000 && p50 < 505000, "p50=%lu", (unsigned long)p50);
	cr_assert(p99 > 985000 && p99 < 995000, "p99=%lu", (unsigned long)p99);
	dd_tel_hist_merge(m, h);
	dd_tel_hist_merge(m, h);
	cr_assert_eq(m->count, 200000);
	cr_assert_eq(dd_tel_hist_quantile(m, 0.5), p50);
	free(h);
	free(m);
}
