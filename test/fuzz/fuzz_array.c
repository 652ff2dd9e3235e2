/* Fuzz target: the array syntax reader (engine/array_parse.c), which reads
 * what a client sent to the daemon. Properties: it never reads past the
 * text nor crashes; what it accepts is sorted, disjoint and normalised,
 * counted right, and reads back the same when written out again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatchd.h"

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[512], why[200];
	struct dd_array_range r[16], again[16];
	unsigned n, n2;
	uint32_t max, max2;
	uint64_t count, count2, sum = 0;
	if (!dd_fuzz_cstr(data, size, text, sizeof(text)))
		return 0;
	if (dd_array_parse(text, r, 16, &n, &max, &count, why, sizeof(why)) < 0) {
		if (!why[0] || !memchr(why, 0, sizeof(why)))
			abort(); /* a refusal says why */
		return 0;
	}
	if (n == 0 || n > 16 || count == 0 || count > DD_ARRAY_MAX || max > DD_ARRAY_MAX)
		abort();
	/* written out again, as a list of its ranges */
	char out[16 * 40 + 16];
	size_t o = 0;
	for (unsigned i = 0; i < n; i++) {
		if (r[i].step == 0 || r[i].last < r[i].first || r[i].last > DD_ARRAY_INDEX_MAX ||
		    (r[i].last - r[i].first) % r[i].step || (i && r[i].first <= r[i - 1].last))
			abort();
		sum += (r[i].last - r[i].first) / r[i].step + 1;
		o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%u-%u:%u", i ? "," : "", r[i].first,
				      r[i].last, r[i].step);
	}
	if (max)
		snprintf(out + o, sizeof(out) - o, "%%%u", max);
	if (sum != count)
		abort();
	if (dd_array_parse(out, again, 16, &n2, &max2, &count2, why, sizeof(why)) < 0 || n2 != n ||
	    max2 != max || count2 != count || memcmp(again, r, n * sizeof(*r)))
		abort();
	return 0;
}

const struct dd_fuzz_seed *dd_fuzz_seeds(size_t *n)
{
	static const char *const seeds[] = {
		"1-1000", "0-15%4", "1-10:2", "1,3,5-9", "9,1,5%2", "0-2147483647:1073741824",
		"0-16777215", "5-1", "1-5,3", NULL,
	};
	return dd_fuzz_text_seeds(seeds, n);
}
