/* Fuzz target: std-r's reader of cyclictest's JSON (bench/std-r). Any text
 * gives a clear refusal or figures in order. */
#include <stdlib.h>
#include <string.h>

#include "floor.h"

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cyclictest_floor f;
	memset(&f, 0, sizeof(f));
	int r = cyclictest_parse((const char *)data, size, &f);
	if (!memchr(f.status, 0, sizeof(f.status)))
		abort();
	if (r < 0 && (f.ran || !f.status[0]))
		abort(); /* a refusal says why */
	if (r == 0 && (!f.ran || !f.cycles || f.p50_ns > f.p99_ns || f.p99_ns > f.p999_ns))
		abort();
	return 0;
}

const struct dd_fuzz_seed *dd_fuzz_seeds(size_t *n)
{
	static const char *const seeds[] = {
		"{\"thread\": {\"0\": {\"histogram\": {\"8\": 1, \"15\": 192, \"16\": 1516}, "
		"\"cycles\": 1709, \"min\": 8, \"max\": 298, \"avg\": 19.7}, "
		"\"1\": {\"histogram\": {\"12\": 5}, \"cycles\": 9, \"max\": 20000}}}",
		"{\"thread\": {}}",
		"{\"num_threads\": 1}",
		NULL,
	};
	return dd_fuzz_text_seeds(seeds, n);
}
