/* Fuzz target: the process-spec decoder (proc/execspec.c), which reads
 * payload bytes back from the log and the store at recovery. Seeds are
 * made by the encoder, with every optional field (cwd, umask, stdin path),
 * and one is an older engine's payload as it was written. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proc.h"

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* what people are shown of it: read in place, within the bytes and the
	 * buffers, one line without terminal controls */
	char cmd[64], cwd[32];
	dd_proc_spec_describe(data, size, cmd, sizeof(cmd), cwd, sizeof(cwd));
	if (strnlen(cmd, sizeof(cmd)) == sizeof(cmd) || strnlen(cwd, sizeof(cwd)) == sizeof(cwd))
		abort();
	for (const char *c = cmd; *c; c++)
		if ((unsigned char)*c < ' ' || *c == 0x7f)
			abort();
	struct dd_proc_spec x;
	if (dd_proc_spec_decode(data, size, &x) == 0) {
		/* what decodes must be usable: terminated strings, a program */
		if (!x.argv || !x.argv[0] || !x.argv[0][0])
			abort();
		for (size_t i = 0; x.env && x.env[i]; i++)
			if (!strchr(x.env[i], '='))
				abort();
		if (x.umask > 0777 || (x.stdin_path && !x.stdin_path[0]) ||
		    (x.stdout_path && !x.stdout_path[0]) || (x.stderr_path && !x.stderr_path[0]))
			abort();
		/* and what decodes encodes back to a spec that decodes alike */
		struct dd_exec_spec sp = {
			.argv = (const char *const *)x.argv, .env = (const char *const *)x.env,
			.env_replace = x.env_replace, .cwd = x.cwd, .output_max = x.output_max,
			.rlimits = x.rl, .nrlimits = x.nrl, .flags = DD_EXEC_UMASK,
			.umask = x.umask, .stdin_path = x.stdin_path, .mem = x.mem,
			.cpus = x.cpus, .stdout_path = x.stdout_path, .stderr_path = x.stderr_path,
		};
		void *buf;
		size_t len;
		struct dd_proc_spec y;
		if (dd_proc_spec_encode(&sp, &buf, &len) == 0) {
			if (dd_proc_spec_decode(buf, len, &y) < 0 || y.umask != x.umask ||
			    !y.stdin_path != !x.stdin_path ||
			    (y.stdin_path && strcmp(y.stdin_path, x.stdin_path)) ||
			    strcmp(y.argv[0], x.argv[0]) || y.mem != x.mem ||
			    y.cpus != x.cpus || !y.stdout_path != !x.stdout_path ||
			    (y.stdout_path && strcmp(y.stdout_path, x.stdout_path)) ||
			    !y.stderr_path != !x.stderr_path ||
			    (y.stderr_path && strcmp(y.stderr_path, x.stderr_path)))
				abort();
			dd_proc_spec_free(&y);
			free(buf);
		}
		dd_proc_spec_free(&x);
	}
	return 0;
}

/* Seeds made by the encoder. */
const struct dd_fuzz_seed *dd_fuzz_seeds(size_t *n)
{
	static struct dd_fuzz_seed seeds[9];
	const char *a1[] = {"sh", "-c", "echo hi", NULL};
	const char *e1[] = {"A=b", "PATH=/bin", NULL};
	struct dd_rlimit rl = {.resource = 7, .cur = 10, .max = 20};
	struct dd_exec_spec specs[] = {
		{.argv = a1},
		{.argv = a1, .env = e1, .env_replace = true, .cwd = "/tmp", .output_max = 9,
		 .rlimits = &rl, .nrlimits = 1},
		{.argv = a1, .cwd = "/"},
		{.argv = a1, .flags = DD_EXEC_UMASK, .umask = 027},
		{.argv = a1, .stdin_path = "/etc/hostname", .cwd = "/tmp"},
		{.argv = a1, .env = e1, .cwd = "/tmp", .rlimits = &rl, .nrlimits = 1,
		 .flags = DD_EXEC_UMASK, .umask = 0777, .stdin_path = "in"},
		{.argv = a1, .cwd = "/tmp", .mem = 64u << 20, .cpus = 4},
		{.argv = a1, .stdout_path = "out-%j", .stderr_path = "err-%A_%a"},
	};
	for (int i = 0; i < 8; i++) {
		void *buf;
		size_t len;
		if (!seeds[i].data && dd_proc_spec_encode(&specs[i], &buf, &len) == 0)
			seeds[i] = (struct dd_fuzz_seed){buf, len}; /* kept for the run */
	}
	/* an older engine's payload, byte by byte: "DDX1", cwd, no umask or
	 * stdin (host order, as the encoder; this is little-endian's) */
	static const unsigned char old[] = {
		/* magic, flags (cwd), output_max */
		'D', 'D', 'X', '1', 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,                     /* nrl, argc, envc */
		1, 0, 0, 0, '/', 4, 0, 0, 0, 't', 'r', 'u', 'e',        /* cwd, argv[0] */
	};
	seeds[8] = (struct dd_fuzz_seed){old, sizeof(old)};
	*n = 9;
	return seeds;
}
