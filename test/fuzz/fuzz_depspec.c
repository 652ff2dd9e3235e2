/* Fuzz target: Slurm's --dependency syntax (daemon/depspec.c), which reads
 * what a client sent. Properties: it never reads past the text nor
 * crashes; a refusal says why; what it accepts, written out again kind by
 * kind, reads back the same. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "depspec.h"
#include "dispatchd.h"

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[512], why[200] = "", out[16 * 32];
	uint64_t ids[16], again[16];
	uint8_t kinds[16], kinds2[16];
	size_t n = 0, n2 = 0, o = 0;
	if (!dd_fuzz_cstr(data, size, text, sizeof(text)))
		return 0;
	int r = dd_depspec_parse(text, ids, kinds, 16, &n, why, sizeof(why));
	if (r < 0) {
		if (!why[0] || (r != -EINVAL && r != -E2BIG))
			abort();
		return 0;
	}
	if (n == 0 || n > 16)
		abort();
	for (size_t i = 0; i < n; i++) {
		if (ids[i] == 0 || kinds[i] >= DD_DEP_KINDS)
			abort();
		o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%s:%" PRIu64, i ? "," : "",
				      dd_dep_kind_name(kinds[i]), ids[i]);
	}
	if (dd_depspec_parse(out, again, kinds2, 16, &n2, why, sizeof(why)) < 0 || n2 != n ||
	    memcmp(again, ids, n * sizeof(*ids)) || memcmp(kinds2, kinds, n))
		abort();
	return 0;
}

const struct dd_fuzz_seed *dd_fuzz_seeds(size_t *n)
{
	static const char *const seeds[] = {
		"afterok:12", "afterok:12:13,afterany:14", "afternotok:1,aftercorr:2",
		"afterok:18446744073709551615", "singleton", "afterok:1?afterany:2", "after:3",
		"afterok:", NULL,
	};
	return dd_fuzz_text_seeds(seeds, n);
}
