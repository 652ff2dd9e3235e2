/* Fuzz target: the process-spec decoder (engine/execspec.c), which reads
 * payload bytes back from the log and the store at recovery. Seeds are
 * made by the encoder. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dd_exec_decoded x;
	if (dd_exec_decode(data, size, &x) == 0) {
		/* what decodes must be usable: terminated strings, a program */
		if (!x.argv || !x.argv[0] || !x.argv[0][0])
			abort();
		for (size_t i = 0; x.env && x.env[i]; i++)
			if (!strchr(x.env[i], '='))
				abort();
		dd_exec_decoded_free(&x);
	}
	return 0;
}

/* Seeds made by the encoder. */
const struct dd_fuzz_seed *dd_fuzz_seeds(size_t *n)
{
	static struct dd_fuzz_seed seeds[3];
	const char *a1[] = {"sh", "-c", "echo hi", NULL};
	const char *e1[] = {"A=b", "PATH=/bin", NULL};
	struct dd_rlimit rl = {.resource = 7, .cur = 10, .max = 20};
	struct dd_exec_spec specs[] = {
		{.argv = a1},
		{.argv = a1, .env = e1, .env_replace = true, .cwd = "/tmp", .output_max = 9,
		 .rlimits = &rl, .nrlimits = 1},
		{.argv = a1, .cwd = "/"},
	};
	for (int i = 0; i < 3; i++) {
		void *buf;
		size_t len;
		if (!seeds[i].data && dd_exec_encode(&specs[i], &buf, &len) == 0)
			seeds[i] = (struct dd_fuzz_seed){buf, len}; /* kept for the run */
	}
	*n = 3;
	return seeds;
}
