/* std-r --telemetry-cost: see telemetry_cost.h. Each run is a child std-r
 * writing --json to a temporary file, so that nothing of one engine (its
 * threads, arenas, caches) lingers into the next. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "telemetry_cost.h"

static double one_run(int argc, char **argv, bool on)
{
	char json[] = "/tmp/std-r-cost-XXXXXX";
	int fd = mkstemp(json); /* mkstemp fills in the six X's */
	if (fd < 0)
		return -1;
	close(fd);
	char **av = calloc((size_t)argc + 8, sizeof(char *));
	if (!av)
		return -1;
	int k = 0;
	av[k++] = "std-r";
	for (int i = 1; i < argc; i++)
		av[k++] = argv[i];
	av[k++] = "--histograms";
	av[k++] = on ? "on" : "off";
	av[k++] = "--probe";
	av[k++] = on ? "auto" : "off";
	av[k++] = "--json";
	av[k++] = json;
	av[k++] = "-q";
	av[k] = NULL;
	pid_t pid = fork();
	if (pid == 0) {
		if (!freopen("/dev/null", "w", stdout))
			_exit(127);
		execv("/proc/self/exe", av);
		_exit(127);
	}
	free(av);
	int status = 0;
	waitpid(pid, &status, 0);
	json_t *j = json_load_file(json, 0, NULL);
	unlink(json);
	double rate = WIFEXITED(status) && WEXITSTATUS(status) == 0 && j
			      ? json_number_value(json_object_get(j, "dispatches_per_sec"))
			      : -1;
	json_decref(j);
	return rate;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int telemetry_cost_run(int rounds, int argc, char **argv)
{
	double on[64], off[64];
	if (rounds < 1 || rounds > 64) {
		fprintf(stderr, "std-r: --telemetry-cost wants 1..64 rounds\n");
		return 2;
	}
	for (int r = 0; r < rounds; r++) {
		on[r] = one_run(argc, argv, true);
		off[r] = one_run(argc, argv, false);
		if (on[r] < 0 || off[r] < 0) {
			fprintf(stderr, "std-r: a run failed (run it without --telemetry-cost to see why)\n");
			return 1;
		}
		fprintf(stderr, "std-r: round %d: telemetry on %.0f/s, off %.0f/s\n", r + 1, on[r],
			off[r]);
	}
	qsort(on, (size_t)rounds, sizeof(double), cmp);
	qsort(off, (size_t)rounds, sizeof(double), cmp);
	double mon = on[rounds / 2], moff = off[rounds / 2];
	printf("std-r  telemetry cost  %d rounds, alternating\n", rounds);
	printf("  telemetry on        median %12.0f dispatches/s  (%.0f - %.0f)\n"
	       "                      (histograms, and the eBPF probe where it loads)\n", mon, on[0],
	       on[rounds - 1]);
	printf("  telemetry off       median %12.0f dispatches/s  (%.0f - %.0f)\n", moff, off[0],
	       off[rounds - 1]);
	printf("  cost                %12.2f %%  (1 - on/off of the medians; noise on this\n"
	       "                      machine is larger: compare the spreads)\n",
	       moff > 0 ? (1 - mon / moff) * 100 : 0);
	return 0;
}
