/* The process floor for exec jobs: a bare posix_spawn + waitpid loop, as
 * many loops as the engine has workers. An engine that starts processes
 * cannot beat what the kernel and libc do with nothing around them. */
#include <errno.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "dd_clock.h"
#include "floor.h"
#include "telemetry.h"

extern char **environ;

struct loop {
	pthread_t thread;
	const char *program;
	uint64_t end_ns;
	struct dd_tel_hist hist;
	int error;
};

static void *spawn_loop(void *arg)
{
	struct loop *l = arg;
	char *const argv[] = {(char *)l->program, NULL};
	while (dd_mono_ns() < l->end_ns) {
		pid_t pid;
		uint64_t t0 = dd_mono_ns();
		int r = posix_spawn(&pid, l->program, NULL, NULL, argv, environ);
		if (r) {
			l->error = r;
			break;
		}
		waitpid(pid, NULL, 0);
		dd_tel_hist_record(&l->hist, dd_mono_ns() - t0);
	}
	return NULL;
}

int spawn_floor_measure(const char *program, unsigned threads, double seconds,
			struct spawn_floor *out)
{
	memset(out, 0, sizeof(*out));
	if (threads < 1 || threads > 256)
		return -EINVAL;
	struct loop *l = calloc(threads, sizeof(*l));
	struct dd_tel_hist *all = calloc(1, sizeof(*all));
	int r = 0;
	if (!l || !all) {
		free(l);
		free(all);
		return -ENOMEM;
	}
	uint64_t t0 = dd_mono_ns(), end = t0 + (uint64_t)(seconds * 1e9);
	unsigned started = 0;
	for (; started < threads; started++) {
		l[started].program = program;
		l[started].end_ns = end;
		if ((r = -pthread_create(&l[started].thread, NULL, spawn_loop, &l[started])))
			break;
	}
	for (unsigned i = 0; i < started; i++) {
		pthread_join(l[i].thread, NULL);
		dd_tel_hist_merge(all, &l[i].hist);
		if (l[i].error && !r)
			r = -l[i].error;
	}
	double wall = (double)(dd_mono_ns() - t0) / 1e9;
	out->threads = threads;
	out->count = all->count;
	out->per_sec = wall > 0 ? (double)all->count / wall : 0;
	out->p50_ns = dd_tel_hist_quantile(all, 0.5);
	out->p99_ns = dd_tel_hist_quantile(all, 0.99);
	out->max_ns = all->max;
	free(l);
	free(all);
	return r;
}
