/* Fuzz target: the size parser (daemon/size.c). */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "size.h"

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[128];
	if (!dd_fuzz_cstr(data, size, text, sizeof(text)))
		return 0;
	uint64_t b, again;
	if (dd_size_parse(text, &b) < 0)
		return 0;
	/* what it read, said in bytes, reads back the same */
	char b_text[32];
	snprintf(b_text, sizeof(b_text), "%" PRIu64 "B", b);
	if (dd_size_parse(b_text, &again) < 0 || again != b)
		abort();
	/* a bare count is that many MiB */
	if (size && size <= 9 && strspn(text, "0123456789") == size &&
	    b != strtoull(text, NULL, 10) << 20)
		abort();
	return 0;
}

const struct dd_fuzz_seed *dd_fuzz_seeds(size_t *n)
{
	static const char *const seeds[] = {
		"512M", "1.5G", "64MiB", "2T", "4096K", "100B", "300", "0.5k", "16777215.99999T", NULL,
	};
	return dd_fuzz_text_seeds(seeds, n);
}
