/* A known workload for the probe's validation (test_runqlat.py): opens the
 * probe on itself, starts a thread registered as a worker, prints the
 * thread's id, waits for a line on stdin, makes the thread sleep 1 ms 500
 * times, then prints what the probe saw as JSON. Exit 77 when the probe is
 * unavailable (with the reason on stderr). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"

static struct dd_tel_probe *probe;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t go = PTHREAD_COND_INITIALIZER;
static int started;

static void *sleeper(void *arg)
{
	(void)arg;
	pid_t tid = (pid_t)syscall(SYS_gettid);
	dd_tel_probe_role(probe, tid, DD_JIT_WORKER);
	printf("%d\n", (int)tid);
	fflush(stdout);
	pthread_mutex_lock(&mu);
	while (!started)
		pthread_cond_wait(&go, &mu);
	pthread_mutex_unlock(&mu);
	for (int i = 0; i < 500; i++) {
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	return NULL;
}

int main(void)
{
	char why[256], line[16];
	if (dd_tel_probe_open(getpid(), NULL, NULL, &probe, why, sizeof(why)) < 0) {
		fprintf(stderr, "probe unavailable: %s\n", why);
		return 77;
	}
	pthread_t t;
	pthread_create(&t, NULL, sleeper, NULL);
	if (!fgets(line, sizeof(line), stdin))
		return 1;
	pthread_mutex_lock(&mu);
	started = 1;
	pthread_cond_signal(&go);
	pthread_mutex_unlock(&mu);
	pthread_join(t, NULL);
	struct dd_jit_hist h;
	if (dd_tel_probe_read(probe, DD_JIT_WORKER, &h) < 0)
		return 1;
	printf("{\"count\": %llu, \"p50_ns\": %llu, \"p90_ns\": %llu, \"max_ns\": %llu}\n", h.count,
	       (unsigned long long)dd_tel_jit_quantile(&h, 0.5),
	       (unsigned long long)dd_tel_jit_quantile(&h, 0.9), h.max);
	fflush(stdout);
	/* stay a little, so that runqlat's interval ends while we exist */
	if (!fgets(line, sizeof(line), stdin))
		return 0;
	dd_tel_probe_close(probe);
	return 0;
}
