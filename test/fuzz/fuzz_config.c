/* Fuzz target: the daemon's config reader (daemon/config.c over inih). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	struct dd_dcfg c;
	char err[512];
	dd_dcfg_defaults(&c);
	err[0] = 0;
	if (dd_dcfg_load_string(&c, text, err, sizeof(err)) < 0 && !err[0])
		abort(); /* a refusal says why */
	if (c.max_frame < 1024 || !memchr(c.state_dir, 0, sizeof(c.state_dir)))
		abort(); /* limits hold, strings stay terminated */
	free(text);
	return 0;
}

const struct dd_fuzz_seed *dd_fuzz_seeds(size_t *n)
{
	static const char *const seeds[] = {
		"[dispatchd]\nstate_dir = /var/lib/dispatchd\nsocket = /run/d.sock\nshards = 2\n"
		"workers = 4\ndurability = fsync\nmax_frame = 65536\nmax_jobs_per_user = 10\n"
		"kill_grace = 2.5\nshutdown_grace = 250ms\n",
		"; comment\nlisten = 127.0.0.1:7000\ntoken_file = /etc/t\nlog_file = /var/log/d\n",
		"max_batch = 5\nmax_conns = 9\noutput_max = 1048576\n",
		"[dispatchd]\ndurability = fsync          # none | buffered | fsync\n"
		"spin = auto                 # seconds; auto:\n"
		"                            # 50e-6 with a CPU to spare\n"
		"max_batch = 10 ; ten\nkill_grace = 1m30s\t# tab\nsubmit_wait = 250ms\n"
		"shutdown_grace = 1:00:00\nspin = 50us\n",
		"output_dir = /srv/dispatchd/output\noutput_reserve = 2G\n",
		"output_reserve = auto\noutput-reserve = 1048576\n",
		NULL,
	};
	return dd_fuzz_text_seeds(seeds, n);
}
