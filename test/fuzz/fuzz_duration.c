/* Fuzz target: the duration parser (daemon/duration.c). */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[128];
	if (!dd_fuzz_cstr(data, size, text, sizeof(text)))
		return 0;
	uint64_t ns, again;
	if (dd_duration_parse(text, &ns) < 0)
		return 0;
	/* what it read, said in nanoseconds, reads back the same */
	char ns_text[32];
	snprintf(ns_text, sizeof(ns_text), "%" PRIu64 "ns", ns);
	if (dd_duration_parse(ns_text, &again) < 0 || again != ns)
		abort();
	/* a bare count of seconds is that many seconds */
	if (size && size <= 9 && strspn(text, "0123456789") == size &&
	    ns != strtoull(text, NULL, 10) * 1000000000ull)
		abort();
	return 0;
}

const struct dd_fuzz_seed *dd_fuzz_seeds(size_t *n)
{
	static const char *const seeds[] = {
		"90", "1.5", "90s", "10m", "1h30m", "1:00:00", "250ms", "2-03:04:05", "1d2h3m4s5ms6us7ns",
		"0:00:00.25", "18446744073", NULL,
	};
	return dd_fuzz_text_seeds(seeds, n);
}
