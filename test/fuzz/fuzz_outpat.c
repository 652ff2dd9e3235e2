/* Fuzz target: output path patterns (engine/outpat.c), which read what a
 * client sent. Properties: it never writes past its buffer nor reads past
 * the pattern; what it writes is as long as it says; a pattern without
 * '%' is its own path; "%%" is one '%'. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dispatchd.h"

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[300], out[64];
	if (!dd_fuzz_cstr(data, size, text, sizeof(text)))
		return 0;
	/* a small buffer: the length checks are exercised too */
	int r = dd_output_pattern(text, 42, size % 2 ? 41 : 0, size % 3 ? (int64_t)size : -1, "name",
				  "user", out, sizeof(out));
	if (r >= 0 && ((size_t)r != strlen(out) || (size_t)r >= sizeof(out)))
		abort();
	if (r < 0 && r != -EINVAL && r != -ENAMETOOLONG)
		abort();
	if (!strchr(text, '%') && strlen(text) < sizeof(out) && (r < 0 || strcmp(out, text)))
		abort();
	if (!strcmp(text, "%%") && (r != 1 || strcmp(out, "%")))
		abort();
	return 0;
}

const struct dd_fuzz_seed *dd_fuzz_seeds(size_t *n)
{
	static const char *const seeds[] = {
		"out-%j.txt", "%x-%A_%a.%u", "%N/%%", "%", "%q", "plain/path", "%j%j%j%j%j%j%j%j%j%j",
		NULL,
	};
	return dd_fuzz_text_seeds(seeds, n);
}
